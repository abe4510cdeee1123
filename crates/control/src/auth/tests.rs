//! Unit tests of the policy table's matching, tokens' form and SigV4's pieces.

use std::time::{Duration, UNIX_EPOCH};

use super::policy::{Access, Matched, RULES, find};
use super::sigv4::{Keys, SigError, format_amz_date, parse_amz_date};
use super::tokens::{self, Role};
use super::{check_content_type, check_host};
use axum::http::{HeaderMap, HeaderValue, Method};

fn check_route(method: &str, path: &str, expected: Option<(&str, Option<&str>)>) {
    let found = find(method, path);
    match (expected, found) {
        (Some((pattern, mesh)), Matched::Rule { rule, mesh: got }) => {
            assert_eq!(rule.path, pattern, "{method} {path}");
            assert_eq!(got, mesh, "{method} {path}");
        }
        (None, Matched::None | Matched::WrongMethod) => {}
        (want, got) => panic!("{method} {path}: wanted {want:?}, got {got:?}"),
    }
}

#[test]
fn paths_match_their_rows_and_nothing_else() {
    let cases = [
        ("GET", "/healthz", Some(("/healthz", None))),
        (
            "GET",
            "/v1/meshes/m/snapshot",
            Some(("/v1/meshes/{mesh}/snapshot", Some("m"))),
        ),
        (
            "GET",
            "/v1/meshes//snapshot",
            Some(("/v1/meshes/{mesh}/snapshot", Some(""))),
        ),
        (
            "GET",
            "/v1/meshes/m/workloads/",
            Some(("/v1/meshes/{mesh}/workloads/{name}", Some("m"))),
        ),
        ("GET", "/v1/meshes/m/workloads/w/extra", None),
        (
            "POST",
            "/v1/meshes/m/canaries/c/abort",
            Some(("/v1/meshes/{mesh}/canaries/{name}/{command}", Some("m"))),
        ),
        (
            "GET",
            "/v20190125/meshes",
            Some(("/v20190125/{*rest}", None)),
        ),
        (
            "GET",
            "/v20190125/meshes/",
            Some(("/v20190125/{*rest}", None)),
        ),
        (
            "PUT",
            "/v20190125/meshes/m/virtualRouter/r/routes/x",
            Some((
                "/v20190125/meshes/{mesh}/virtualRouter/{router}/routes/{route}",
                Some("m"),
            )),
        ),
        (
            "PUT",
            "/v20190125/meshes/m/virtualNodes/n",
            Some(("/v20190125/{*rest}", None)),
        ),
        ("GET", "/nowhere", None),
        ("DELETE", "/v1/meshes/m/snapshot", None),
    ];
    for (method, path, expected) in cases {
        check_route(method, path, expected);
    }
    assert_eq!(
        find("DELETE", "/v1/meshes/m/snapshot"),
        Matched::WrongMethod
    );
}

#[test]
fn only_health_metrics_and_the_console_page_are_open() {
    let open: Vec<(&str, &str)> = RULES
        .iter()
        .filter(|r| r.access == Access::Open)
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        open,
        [
            ("GET", "/healthz"),
            ("GET", "/metrics"),
            ("GET", "/ui"),
            ("GET", "/ui/"),
            ("GET", "/ui/app.js"),
            ("GET", "/ui/app.css"),
            ("GET", "/ui/session"),
            ("POST", "/ui/session"),
            ("DELETE", "/ui/session"),
        ]
    );
}

#[test]
fn workloads_writes_are_admin_only_and_stats_pushes_proxy_only() {
    for method in ["PUT", "DELETE"] {
        let Matched::Rule { rule, .. } = find(method, "/v1/meshes/m/workloads/w") else {
            panic!("no rule for {method} workloads");
        };
        assert_eq!(rule.access, Access::Roles(&[Role::Admin]));
    }
    let Matched::Rule { rule, .. } = find("POST", "/v1/meshes/m/stats") else {
        panic!("no rule for stats");
    };
    assert_eq!(rule.access, Access::Roles(&[Role::Proxy]));
}

#[test]
fn tokens_have_one_form() {
    let token = tokens::generate();
    let id = tokens::id_of(&token).expect("a generated token parses");
    assert_eq!(id.len(), 16);
    assert_ne!(tokens::generate(), token, "two tokens are different");
    for bad in [
        "",
        "aviary_",
        "aviary_0123456789abcdef",
        "aviary_0123456789abcdef_short",
        &token.replace("aviary_", "other_"),
        &format!("{token}x"),
    ] {
        assert_eq!(tokens::id_of(bad), None, "{bad:?}");
    }
    assert!(tokens::constant_time_eq(b"abc", b"abc"));
    assert!(!tokens::constant_time_eq(b"abc", b"abd"));
    assert!(!tokens::constant_time_eq(b"abc", b"ab"));
}

#[test]
fn token_requests_are_checked_all_at_once() {
    assert!(tokens::validate_request("ci", Role::Operator, None).is_ok());
    assert!(tokens::validate_request("p", Role::Proxy, Some("m")).is_ok());
    let err = tokens::validate_request("", Role::Viewer, Some("m")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("name:") && text.contains("mesh:"), "{text}");
    let err = tokens::validate_request("p", Role::Proxy, None).unwrap_err();
    assert!(err.to_string().contains("needs the mesh"), "{err}");
}

#[test]
fn credentials_files_parse_and_generate() {
    let keys = Keys::parse(&Keys::generate_file()).expect("a generated file parses");
    assert!(!keys.is_empty());
    let two = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\n[ci]\n\
               aws_access_key_id=B\naws_secret_access_key=T\n";
    assert!(Keys::parse(two).is_ok());
    let err = Keys::parse("[default]\naws_access_key_id = A\n").unwrap_err();
    assert!(err.contains("[default]"), "{err}");
    let err = Keys::parse("aws_access_key_id = A\n").unwrap_err();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn amz_dates_round_trip() {
    let time = parse_amz_date("20261201T203000Z").unwrap();
    assert_eq!(format_amz_date(time), "20261201T203000Z");
    assert_eq!(parse_amz_date("19700101T000000Z").unwrap(), UNIX_EPOCH);
    assert_eq!(
        parse_amz_date("20000301T000001Z").unwrap(),
        UNIX_EPOCH + Duration::from_secs(951_868_801)
    );
    for bad in [
        "",
        "20261301T000000Z",
        "2026-12-01T00:00:00Z",
        "20261201T250000Z",
    ] {
        assert!(
            matches!(parse_amz_date(bad), Err(SigError::Invalid(_))),
            "{bad}"
        );
    }
}

/// A header map of `pairs`; a name given twice gets both values (two `Cookie` headers).
pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn hosts_that_dns_rebinding_cannot_forge_pass() {
    let allowed = vec!["mesh.internal".to_string()];
    for ok in [
        "127.0.0.1:7070",
        "localhost:7070",
        "[::1]:7070",
        "10.0.0.5",
        "mesh.internal:7070",
    ] {
        assert!(
            check_host(&headers(&[("host", ok)]), &allowed).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "evil.example:7070",
        "localhost.evil.example",
        "mesh.internal.evil",
    ] {
        assert!(
            check_host(&headers(&[("host", bad)]), &allowed).is_err(),
            "{bad}"
        );
    }
    assert!(check_host(&HeaderMap::new(), &allowed).is_err());
}

#[test]
fn writes_must_be_json() {
    let json = headers(&[("content-type", "application/json; charset=utf-8")]);
    assert!(check_content_type(&Method::POST, &json).is_ok());
    for bad in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let h = headers(&[("content-type", bad)]);
        assert!(check_content_type(&Method::POST, &h).is_err(), "{bad}");
        assert!(check_content_type(&Method::PUT, &h).is_err(), "{bad}");
    }
    assert!(check_content_type(&Method::POST, &HeaderMap::new()).is_err());
    assert!(check_content_type(&Method::GET, &HeaderMap::new()).is_ok());
    assert!(check_content_type(&Method::DELETE, &HeaderMap::new()).is_ok());
}

fn memory_store() -> std::sync::Arc<dyn store::Store> {
    std::sync::Arc::new(store::MemoryStore::new())
}

#[test]
fn random_hex_is_hex_of_the_asked_length() {
    for len in [0, 16, 40, 64, 100] {
        let hex = tokens::random_hex(len);
        assert_eq!(hex.len(), len);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
    }
    assert_ne!(tokens::random_hex(64), tokens::random_hex(64));
}

#[test]
fn a_token_name_is_refused_or_replaced_as_asked() {
    use tokens::SameName;
    let store = memory_store();
    let Ok(first) = tokens::issue(&store, "ci", Role::Viewer, None, SameName::Refuse) else {
        panic!("the first token named ci was refused");
    };
    // `Issued` holds a secret, so it has no Debug and `unwrap_err` is not for it.
    let Err(err) = tokens::issue(&store, "ci", Role::Viewer, None, SameName::Refuse) else {
        panic!("a second token named ci was issued");
    };
    assert!(err.to_string().contains("exists"), "{err}");
    let Ok(second) = tokens::issue(&store, "ci", Role::Operator, None, SameName::Replace) else {
        panic!("replacing ci was refused");
    };
    assert!(
        tokens::lookup(&store, &first.token).unwrap().is_none(),
        "replaced"
    );
    let record = tokens::lookup(&store, &second.token)
        .unwrap()
        .expect("the new one");
    assert_eq!(record.role, Role::Operator);
    assert_eq!(tokens::list(&store).unwrap().len(), 1);
    assert!(tokens::issue(&store, "p", Role::Proxy, None, SameName::Refuse).is_err());
}

#[test]
fn registering_the_bootstrap_token_again_writes_nothing() {
    let store = memory_store();
    let token = tokens::generate();
    tokens::register(&store, &token, "admin.token", Role::Admin).unwrap();
    let revision = store.revision();
    tokens::register(&store, &token, "admin.token", Role::Admin).unwrap();
    assert_eq!(
        store.revision(),
        revision,
        "an ordinary restart writes nothing"
    );
    assert!(tokens::lookup(&store, &token).unwrap().is_some());
}
