//! Route match rules, one `check` per case.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use model::typed::{HttpGatewayRouteMatch, HttpRouteMatch};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{HttpMatch, RequestView};

struct Req<'a> {
    method: Method,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [(&'a str, &'a str)],
    host: &'a str,
    port: Option<u16>,
}

const GET_ROOT: Req<'static> = Req {
    method: Method::GET,
    path: "/",
    query: None,
    headers: &[],
    host: "svc.local",
    port: None,
};

/// `rule` as a gateway route's `match`.
fn gateway(rule: &Value) -> Result<HttpMatch, String> {
    HttpMatch::from_gateway(&HttpGatewayRouteMatch::deserialize(rule).map_err(|e| e.to_string())?)
}

/// `rule` as a route's `match`.
fn route(rule: &Value) -> Result<HttpMatch, String> {
    HttpMatch::from_route(&HttpRouteMatch::deserialize(rule).map_err(|e| e.to_string())?)
}

/// Checks `rule` as a gateway route's match and, unless it matches a hostname (which only
/// gateway routes have), as a route's too.
fn check(rule: Value, request: Req<'_>, expected: bool) {
    let matcher = gateway(&rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
    let mut headers = HeaderMap::new();
    for (name, value) in request.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let view = RequestView {
        method: &request.method,
        path: request.path,
        query: request.query,
        headers: &headers,
        host: request.host,
        port: request.port,
    };
    assert_eq!(
        matcher.matches(&view),
        expected,
        "{rule} against {} {}",
        request.method,
        request.path
    );
    if rule.get("hostname").is_none() {
        let matcher = route(&rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(
            matcher.matches(&view),
            expected,
            "{rule} as a route's match against {} {}",
            request.method,
            request.path
        );
    }
}

#[test]
fn paths() {
    let at = |path| Req { path, ..GET_ROOT };
    check(json!({"prefix": "/"}), at("/anything"), true);
    check(json!({"prefix": "/api"}), at("/api/v1"), true);
    check(json!({"prefix": "/api"}), at("/apiary"), true);
    check(json!({"prefix": "/api/"}), at("/api"), false);
    check(json!({"path": {"exact": "/health"}}), at("/health"), true);
    check(json!({"path": {"exact": "/health"}}), at("/health/"), false);
    check(
        json!({"path": {"regex": "/users/[0-9]+"}}),
        at("/users/42"),
        true,
    );
    check(
        json!({"path": {"regex": "/users/[0-9]+"}}),
        at("/users/42/x"),
        false,
    );
    check(json!({}), at("/whatever"), true);
}

#[test]
fn method_port_and_hostname() {
    check(
        json!({"prefix": "/", "method": "POST"}),
        Req {
            method: Method::POST,
            ..GET_ROOT
        },
        true,
    );
    check(json!({"prefix": "/", "method": "POST"}), GET_ROOT, false);
    check(
        json!({"prefix": "/", "port": 8080}),
        Req {
            port: Some(9090),
            ..GET_ROOT
        },
        false,
    );
    check(json!({"prefix": "/", "port": 8080}), GET_ROOT, true);
    check(json!({"hostname": {"exact": "svc.local"}}), GET_ROOT, true);
    check(json!({"hostname": {"suffix": ".local"}}), GET_ROOT, true);
    check(
        json!({"hostname": {"exact": "other.local"}}),
        GET_ROOT,
        false,
    );
}

#[test]
fn headers_and_query_parameters() {
    let with = |headers| Req {
        headers,
        ..GET_ROOT
    };
    let rule = |m: Value| json!({"prefix": "/", "headers": [{"name": "X-Canary", "match": m}]});
    check(
        rule(json!({"exact": "yes"})),
        with(&[("x-canary", "yes")]),
        true,
    );
    check(
        rule(json!({"exact": "yes"})),
        with(&[("x-canary", "no")]),
        false,
    );
    check(
        rule(json!({"prefix": "ye"})),
        with(&[("x-canary", "yes")]),
        true,
    );
    check(
        rule(json!({"suffix": "es"})),
        with(&[("x-canary", "yes")]),
        true,
    );
    check(
        rule(json!({"regex": "y.s"})),
        with(&[("x-canary", "yes")]),
        true,
    );
    check(
        rule(json!({"regex": "y"})),
        with(&[("x-canary", "yes")]),
        false,
    );
    let range = rule(json!({"range": {"start": 10, "end": 20}}));
    check(range.clone(), with(&[("x-canary", "10")]), true);
    check(range.clone(), with(&[("x-canary", "20")]), false);
    check(range, with(&[("x-canary", "abc")]), false);
    let present = json!({"headers": [{"name": "x-debug"}]});
    check(present.clone(), with(&[("x-debug", "")]), true);
    check(present, GET_ROOT, false);
    let inverted =
        json!({"headers": [{"name": "x-canary", "invert": true, "match": {"exact": "yes"}}]});
    check(inverted.clone(), with(&[("x-canary", "yes")]), false);
    check(inverted, GET_ROOT, true);
    let query = json!({"queryParameters": [{"name": "v", "match": {"exact": "2"}}]});
    let q = |query| Req { query, ..GET_ROOT };
    check(query.clone(), q(Some("a=1&v=2")), true);
    check(query.clone(), q(Some("v=3")), false);
    check(query, q(None), false);
}

#[test]
fn specificity_orders_exact_then_regex_then_longer_prefix() {
    let m = |v: Value| gateway(&v).unwrap().specificity();
    assert!(m(json!({"path": {"exact": "/a"}})) > m(json!({"path": {"regex": "/.*"}})));
    assert!(m(json!({"path": {"regex": "/.*"}})) > m(json!({"prefix": "/long/prefix"})));
    assert!(m(json!({"prefix": "/long"})) > m(json!({"prefix": "/"})));
    assert!(m(json!({"prefix": "/", "headers": [{"name": "x"}]})) > m(json!({"prefix": "/"})));
    assert!(gateway(&json!({"path": {"regex": "("}})).is_err());
    assert!(route(&json!({"path": {"regex": "("}})).is_err());
}
