//! Tests of the typed views over the walkthrough's specs.

use serde_json::{Value, json};

use crate::spec::tests as walkthrough;
use crate::typed::{
    DurationUnit, GatewayRouteSpec, HeaderMatch, ListenersSpec, RouteSpec, VirtualNodeSpec,
    VirtualServiceProvider, VirtualServiceSpec, WeightedTarget, route_targets, view,
};

fn target(node: &str, weight: u32, port: Option<u16>) -> WeightedTarget {
    WeightedTarget {
        virtual_node: node.to_owned(),
        weight,
        port,
    }
}

#[test]
fn route_targets_of_every_route_type() {
    let tcp = json!({"tcpRoute": {"action": {"weightedTargets": [{"virtualNode": "db", "weight": 9000, "port": 5432}]}}});
    let grpc = json!({"grpcRoute": {"match": {"serviceName": "shop.Orders"}, "action": {"weightedTargets": [{"virtualNode": "g", "weight": 1}]}}});
    let http2 = json!({"http2Route": {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "h2", "weight": 0}]}}});
    let cases: Vec<(Value, Vec<WeightedTarget>)> = vec![
        (
            walkthrough::route(),
            vec![
                target("product-vn", 75, None),
                target("product-v15-vn", 25, None),
            ],
        ),
        (tcp, vec![target("db", 9000, Some(5432))]),
        (grpc, vec![target("g", 1, None)]),
        (http2, vec![target("h2", 0, None)]),
        (json!({}), vec![]),
        (json!("garbage"), vec![]),
    ];
    for (spec, expected) in cases {
        assert_eq!(route_targets(&spec), expected, "{spec}");
    }
}

#[test]
fn http_route_details() {
    let mut spec = walkthrough::route();
    spec["httpRoute"]["match"]["headers"] = json!([{"name": "x-canary", "match": {"exact": "1"}}, {"name": "x-v", "invert": true, "match": {"range": {"start": 1, "end": 5}}}]);
    spec["httpRoute"]["timeout"] = json!({"perRequest": {"unit": "s", "value": 15}});
    let route: RouteSpec = view(&spec).expect("route view");
    let http = route.http_route.expect("http route");
    assert_eq!(http.r#match.prefix.as_deref(), Some("/"));
    assert_eq!(
        http.r#match.headers[0].r#match,
        Some(HeaderMatch::Exact("1".into()))
    );
    assert!(http.r#match.headers[1].invert);
    assert_eq!(
        http.r#match.headers[1].r#match,
        Some(HeaderMatch::Range { start: 1, end: 5 })
    );
    let retry = http.retry_policy.expect("retry policy");
    assert_eq!(retry.max_retries, 2);
    assert_eq!(retry.per_retry_timeout.unit, DurationUnit::Millis);
    assert_eq!(
        retry.per_retry_timeout.to_std(),
        std::time::Duration::from_millis(1000)
    );
    assert_eq!(retry.http_retry_events, ["server-error", "gateway-error"]);
    let per_request = http.timeout.and_then(|t| t.per_request).expect("timeout");
    assert_eq!(per_request.to_std(), std::time::Duration::from_secs(15));
}

#[test]
fn other_kinds_views() {
    let vs: VirtualServiceSpec = view(&walkthrough::virtual_service()).unwrap();
    assert_eq!(
        vs.provider,
        Some(VirtualServiceProvider::VirtualRouter {
            virtual_router_name: "product-vr".into()
        })
    );
    let node: VirtualNodeSpec = view(&walkthrough::virtual_node()).unwrap();
    assert_eq!(node.listeners[0].port_mapping.port, 8080);
    let health = node.listeners[0].health_check.as_ref().unwrap();
    assert_eq!(
        (health.interval_millis, health.path.as_deref()),
        (5000, Some("/ping"))
    );
    assert_eq!(
        node.service_discovery
            .and_then(|d| d.dns)
            .map(|d| d.hostname)
            .as_deref(),
        Some("product-v1.demomesh.local")
    );
    assert_eq!(
        node.backends[0]
            .virtual_service
            .as_ref()
            .unwrap()
            .virtual_service_name,
        "customer.demomesh.local"
    );
    let gateway: ListenersSpec = view(&walkthrough::virtual_gateway()).unwrap();
    assert_eq!(gateway.listeners[0].port_mapping.port, 9080);
    let router: ListenersSpec = view(&walkthrough::virtual_router()).unwrap();
    assert_eq!(router.listeners[0].port_mapping.protocol, "http");
    let gateway_route: GatewayRouteSpec = view(&walkthrough::gateway_route()).unwrap();
    assert_eq!(
        gateway_route
            .target()
            .map(|t| t.virtual_service.virtual_service_name.as_str()),
        Some("order.demomesh.local")
    );
    assert!(view::<VirtualNodeSpec>(&json!({"listeners": "no"})).is_none());
}
