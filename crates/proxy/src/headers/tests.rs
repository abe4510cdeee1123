//! Hop-by-hop removal and X-Forwarded-For.

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn names(map: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = map.keys().map(|k| k.as_str().to_string()).collect();
    names.sort();
    names
}

#[test]
fn hop_by_hop_headers_and_those_connection_names_are_removed() {
    let mut map = headers(&[
        ("connection", "keep-alive, X-Secret"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("x-secret", "1"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic x"),
        ("proxy-authenticate", "Basic"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        (
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
        ),
        ("authorization", "Bearer t"),
    ]);
    remove_hop_by_hop(&mut map, false);
    assert_eq!(
        names(&map),
        ["authorization", "traceparent", "x-amzn-trace-id"]
    );
}

#[test]
fn te_trailers_survives_only_for_http2_upstreams() {
    let mut map = headers(&[("te", "trailers, deflate")]);
    remove_hop_by_hop(&mut map, true);
    assert_eq!(map.get("te").unwrap(), "trailers");
    let mut map = headers(&[("te", "deflate")]);
    remove_hop_by_hop(&mut map, true);
    assert!(map.get("te").is_none());
}

#[test]
fn forwarded_for_appends_to_earlier_hops() {
    let mut map = HeaderMap::new();
    append_forwarded_for(&mut map, &forwarded_for("10.0.0.1".parse().unwrap()));
    assert_eq!(map.get("x-forwarded-for").unwrap(), "10.0.0.1");
    let mut map = headers(&[
        ("x-forwarded-for", "1.1.1.1"),
        ("x-forwarded-for", "2.2.2.2"),
    ]);
    append_forwarded_for(&mut map, &forwarded_for("::1".parse().unwrap()));
    assert_eq!(
        map.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
        ["1.1.1.1, 2.2.2.2, ::1"]
    );
}

#[test]
fn the_name_check_and_the_list_agree() {
    for name in HOP_BY_HOP {
        assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        assert!(names_hop_by_hop(&name.to_ascii_uppercase()), "{name}");
    }
    for name in [
        "host",
        "content-length",
        "trailers",
        "x-connection",
        "keep-alive-x",
    ] {
        assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
    }
}

#[test]
fn a_lone_hop_by_hop_header_goes_and_the_rest_stays() {
    let check = |pairs: &[(&str, &str)], expected: &[&str]| {
        let mut map = headers(pairs);
        remove_hop_by_hop(&mut map, false);
        assert_eq!(names(&map), expected, "{pairs:?}");
    };
    check(&[("host", "a"), ("x-b", "1")], &["host", "x-b"]);
    check(&[("connection", "keep-alive"), ("x-b", "1")], &["x-b"]);
    check(
        &[("Connection", "Keep-Alive, close"), ("x-b", "1")],
        &["x-b"],
    );
    check(
        &[("connection", " X-B "), ("x-b", "1"), ("x-c", "2")],
        &["x-c"],
    );
    check(&[("transfer-encoding", "chunked"), ("x-b", "1")], &["x-b"]);
    check(&[("upgrade", "h2c"), ("connection", "upgrade")], &[]);
}
