//! Compiling snapshots: resolution through providers, route order, egress filter, gateway
//! routes and rewrites, endpoint state kept across swaps.

use std::sync::Arc;

use http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::*;

fn snapshot(extra: Value) -> Arc<Snapshot> {
    let mut base = json!({
        "revision": 3,
        "mesh": {"meshName": "m", "spec": {}},
        "virtualNodes": [
            node("a", "http"), node("b", "http"), node("grpc-node", "grpc"),
            {"meshName": "m", "virtualNodeName": "client", "spec": {
                "backends": [{"virtualService": {"virtualServiceName": "svc.local"}}]}},
        ],
        "virtualRouters": [{"meshName": "m", "virtualRouterName": "r", "spec": {
            "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}]}}],
        "routes": [
            route("catch-all", None, json!({"prefix": "/"}), &[("a", 1)]),
            route("api", None, json!({"prefix": "/api"}), &[("b", 1)]),
            route("urgent", Some(1), json!({"prefix": "/"}), &[("a", 0), ("b", 5)]),
        ],
        "virtualServices": [
            {"meshName": "m", "virtualServiceName": "svc.local",
             "spec": {"provider": {"virtualRouter": {"virtualRouterName": "r"}}}},
            {"meshName": "m", "virtualServiceName": "direct.local",
             "spec": {"provider": {"virtualNode": {"virtualNodeName": "grpc-node"}}}},
        ],
        "virtualGateways": [],
        "gatewayRoutes": []
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            base[k] = v;
        }
    }
    Arc::new(Snapshot::from_json(&base).unwrap())
}

fn node(name: &str, protocol: &str) -> Value {
    json!({"meshName": "m", "virtualNodeName": name, "spec": {
        "listeners": [{"portMapping": {"port": 8080, "protocol": protocol}}],
        "serviceDiscovery": {"dns": {"hostname": "127.0.0.1"}}}})
}

fn route(name: &str, priority: Option<u32>, matcher: Value, targets: &[(&str, u32)]) -> Value {
    let targets: Vec<Value> = targets
        .iter()
        .map(|(n, w)| json!({"virtualNode": n, "weight": w}))
        .collect();
    let mut spec = json!({"httpRoute": {"match": matcher, "action": {"weightedTargets": targets}}});
    if let Some(p) = priority {
        spec["priority"] = json!(p);
    }
    json!({"meshName": "m", "virtualRouterName": "r", "routeName": name, "spec": spec})
}

fn compile(snapshot: Arc<Snapshot>, role: Role) -> RouteTable {
    RouteTable::compile(
        "m",
        snapshot,
        ConfigSource::Control,
        &role,
        None,
        &Telemetry::new("m"),
    )
}

fn view<'a>(path: &'a str, headers: &'a HeaderMap, host: &'a str) -> RequestView<'a> {
    RequestView {
        method: &Method::GET,
        path,
        query: None,
        headers,
        host,
        port: None,
    }
}

#[test]
fn priority_comes_first_then_the_longest_prefix() {
    let table = compile(snapshot(json!({})), Role::Node("client".into()));
    let headers = HeaderMap::new();
    let service = table.service("svc.local").unwrap();
    let chosen = service
        .route(&view("/api/x", &headers, "svc.local"))
        .unwrap();
    assert_eq!(
        chosen.name, "urgent",
        "priority 1 beats every unprioritised route"
    );
    assert_eq!(chosen.choice.weight(0), 0);

    let mut routes = snapshot(json!({})).as_ref().clone();
    routes
        .resources
        .retain(|(kind, _, name), _| *kind != Kind::Route || name != "urgent");
    let table = compile(Arc::new(routes), Role::Node("client".into()));
    let service = table.service("svc.local").unwrap();
    assert_eq!(
        service
            .route(&view("/api/x", &headers, "svc.local"))
            .unwrap()
            .name,
        "api"
    );
    assert_eq!(
        service
            .route(&view("/other", &headers, "svc.local"))
            .unwrap()
            .name,
        "catch-all"
    );
}

#[test]
fn a_node_provider_is_one_target_and_grpc_listeners_speak_http2() {
    let table = compile(snapshot(json!({})), Role::Node("client".into()));
    let headers = HeaderMap::new();
    let service = table.service("direct.local").unwrap();
    assert_eq!(service.provider, "virtual node 'grpc-node'");
    let route = service
        .route(&view("/pkg.Svc/Call", &headers, "direct.local"))
        .unwrap();
    assert_eq!(route.targets.len(), 1);
    assert!(route.targets[0].listener().unwrap().http2);
    assert_eq!(route.retry, RetryPolicy::app_mesh_default());
    assert_eq!(route.per_request, Some(Duration::from_secs(15)));
}

#[test]
fn unknown_services_and_the_egress_filter() {
    let table = compile(snapshot(json!({})), Role::Node("client".into()));
    assert_eq!(
        table.service("nope.local").err().unwrap().to_string(),
        "virtual service 'nope.local' not found in mesh 'm'"
    );
    assert!(table.check_backend(Some("client"), "svc.local").is_ok());
    let denied = table
        .check_backend(Some("client"), "direct.local")
        .unwrap_err();
    assert_eq!(denied.status(), http::StatusCode::FORBIDDEN);
    assert!(denied.to_string().contains("'direct.local'"), "{denied}");

    let allow_all = snapshot(
        json!({"mesh": {"meshName": "m", "spec": {"egressFilter": {"type": "ALLOW_ALL"}}}}),
    );
    let table = compile(allow_all, Role::Node("client".into()));
    assert!(table.check_backend(Some("client"), "direct.local").is_ok());
    // A node the mesh does not know has no backends.
    let table = compile(snapshot(json!({})), Role::Node("ghost".into()));
    assert!(table.check_backend(Some("ghost"), "svc.local").is_err());
    // A listener shared by callers it cannot tell apart does not filter.
    assert!(table.check_backend(None, "direct.local").is_ok());
}

#[test]
fn retry_policy_and_timeouts_come_from_the_route() {
    let mut spec = route("r1", None, json!({"prefix": "/"}), &[("a", 1)]);
    spec["spec"]["httpRoute"]["retryPolicy"] = json!({
        "maxRetries": 3, "perRetryTimeout": {"unit": "ms", "value": 250},
        "httpRetryEvents": ["server-error", "client-error"], "tcpRetryEvents": ["connection-error"]});
    spec["spec"]["httpRoute"]["timeout"] = json!({"perRequest": {"unit": "s", "value": 0},
        "idle": {"unit": "s", "value": 2}});
    let table = compile(
        snapshot(json!({"routes": [spec]})),
        Role::Node("client".into()),
    );
    let headers = HeaderMap::new();
    let service = table.service("svc.local").unwrap();
    let route = service.route(&view("/", &headers, "svc.local")).unwrap();
    assert_eq!(route.retry.max_retries, 3);
    assert_eq!(route.retry.per_try, Some(Duration::from_millis(250)));
    assert!(route.retry.retries_status(500) && route.retry.retries_status(409));
    assert!(!route.retry.retries_status(509) && !route.retry.retries_status(404));
    assert_eq!(route.per_request, None, "0 disables the timeout");
    assert_eq!(route.idle, Some(Duration::from_secs(2)));
}

/// A gRPC route matches `/service/method`; its retry policy's HTTP and TCP events apply as an
/// HTTP route's, its `grpcRetryEvents` add nothing.
#[test]
fn grpc_routes_match_the_method_path_and_retry_by_their_http_events() {
    let mut spec = route("g", None, json!({}), &[("a", 1)]);
    spec["spec"] = json!({"grpcRoute": {
        "match": {"serviceName": "shop.Orders", "methodName": "Get"},
        "action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]},
        "retryPolicy": {"maxRetries": 4, "perRetryTimeout": {"unit": "ms", "value": 100},
                        "grpcRetryEvents": ["unavailable"], "httpRetryEvents": ["gateway-error"]},
        "timeout": {"perRequest": {"unit": "s", "value": 3}}}});
    let table = compile(
        snapshot(json!({"routes": [spec]})),
        Role::Node("client".into()),
    );
    let headers = HeaderMap::new();
    let service = table.service("svc.local").unwrap();
    let route = service
        .route(&view("/shop.Orders/Get", &headers, "svc.local"))
        .unwrap();
    assert_eq!(route.name, "g");
    assert_eq!(
        route.retry,
        RetryPolicy {
            max_retries: 4,
            per_try: Some(Duration::from_millis(100)),
            server_error: false,
            gateway_error: true,
            client_error: false,
            stream_error: false,
            connection_error: false,
        }
    );
    assert_eq!(route.per_request, Some(Duration::from_secs(3)));
    let other = service.route(&view("/shop.Orders/List", &headers, "svc.local"));
    assert!(other.is_none(), "only the method's path matches");
}

fn gateway_snapshot(routes: Vec<Value>) -> Arc<Snapshot> {
    snapshot(json!({
        "virtualGateways": [{"meshName": "m", "virtualGatewayName": "gw", "spec": {
            "listeners": [{"portMapping": {"port": 9080, "protocol": "http"}}]}}],
        "gatewayRoutes": routes
    }))
}

fn gateway_route(name: &str, priority: Option<u32>, matcher: Value, rewrite: Value) -> Value {
    let mut spec = json!({"httpRoute": {"match": matcher, "action": {
        "target": {"virtualService": {"virtualServiceName": "svc.local"}}, "rewrite": rewrite}}});
    if let Some(p) = priority {
        spec["priority"] = json!(p);
    }
    json!({"meshName": "m", "virtualGatewayName": "gw", "gatewayRouteName": name, "spec": spec})
}

#[test]
fn a_grpc_gateway_route_keeps_the_method_path() {
    let route = json!({"meshName": "m", "virtualGatewayName": "gw", "gatewayRouteName": "rpc",
        "spec": {"grpcRoute": {"match": {"serviceName": "shop.Orders"},
            "action": {"target": {"virtualService": {"virtualServiceName": "svc.local"}}}}}});
    let table = compile(gateway_snapshot(vec![route]), Role::Gateway("gw".into()));
    let headers = HeaderMap::new();
    let route = table
        .gateway_route(&view("/shop.Orders/List", &headers, ""))
        .expect("the service's calls match");
    assert_eq!(
        route.rewrite_path("/shop.Orders/List", None),
        "/shop.Orders/List"
    );
    assert!(route.keeps_path("/shop.Orders/List"));
    assert!(
        table
            .gateway_route(&view("/shop.Users/Get", &headers, ""))
            .is_none()
    );
}

#[test]
fn gateway_routes_rewrite_as_app_mesh_does() {
    let table = compile(
        gateway_snapshot(vec![
            gateway_route("default", None, json!({"prefix": "/chapter"}), json!({})),
            gateway_route(
                "keep",
                None,
                json!({"prefix": "/keep/"}),
                json!({"prefix": {"defaultPrefix": "DISABLED"}}),
            ),
            gateway_route(
                "value",
                None,
                json!({"prefix": "/old/"}),
                json!({"prefix": {"value": "/new/"}, "hostname": {"defaultTargetHostname": "DISABLED"}}),
            ),
            gateway_route(
                "exact",
                None,
                json!({"path": {"exact": "/status"}}),
                json!({"path": {"exact": "/health"}}),
            ),
            gateway_route(
                "by-host",
                Some(0),
                json!({"prefix": "/", "hostname": {"exact": "admin.example"}}),
                json!({}),
            ),
        ]),
        Role::Gateway("gw".into()),
    );
    assert_eq!(table.gateway_ports(), [9080]);
    let headers = HeaderMap::new();
    let rewrite = |path: &str, host: &str| {
        let route = table.gateway_route(&view(path, &headers, host)).unwrap();
        (
            route.name.clone(),
            route.rewrite_path(path, Some("q=1")),
            route.host_rewrite().is_some(),
        )
    };
    assert_eq!(
        rewrite("/chapter/1", ""),
        ("default".into(), "/1?q=1".into(), true)
    );
    assert_eq!(
        rewrite("/chapter", ""),
        ("default".into(), "/?q=1".into(), true)
    );
    assert_eq!(
        rewrite("/keep/x", ""),
        ("keep".into(), "/keep/x?q=1".into(), true)
    );
    assert_eq!(
        rewrite("/old/a/b", ""),
        ("value".into(), "/new/a/b?q=1".into(), false)
    );
    assert_eq!(
        rewrite("/status", ""),
        ("exact".into(), "/health?q=1".into(), true)
    );
    assert_eq!(rewrite("/chapter/1", "admin.example").0, "by-host");
    assert!(
        table
            .gateway_route(&view("/nothing", &headers, ""))
            .is_none()
    );
    // `keeps_path` says exactly when the rewrite is the identity (the request's own path is
    // then forwarded as it came).
    let mut kept = Vec::new();
    for (path, host) in [
        ("/chapter/1", ""),
        ("/chapter", ""),
        ("/keep/x", ""),
        ("/old/a/b", ""),
        ("/status", ""),
        ("/x", "admin.example"),
        ("//x", "admin.example"),
        ("/", "admin.example"),
    ] {
        let route = table.gateway_route(&view(path, &headers, host)).unwrap();
        assert_eq!(
            route.keeps_path(path),
            route.rewrite_path(path, None) == path,
            "{path}"
        );
        if route.keeps_path(path) {
            kept.push(path);
        }
    }
    assert_eq!(kept, ["/keep/x", "/x", "/"]);
}

#[tokio::test]
async fn endpoint_state_survives_a_swap_when_the_source_is_unchanged() {
    let telemetry = Telemetry::new("m");
    let role = Role::Node("client".into());
    let first = RouteTable::compile(
        "m",
        snapshot(json!({})),
        ConfigSource::Control,
        &role,
        None,
        &telemetry,
    );
    let second = RouteTable::compile(
        "m",
        snapshot(json!({})),
        ConfigSource::Control,
        &role,
        Some(&first),
        &telemetry,
    );
    let endpoints = |t: &RouteTable| t.nodes["a"].listeners[0].endpoints.clone();
    assert!(Arc::ptr_eq(&endpoints(&first), &endpoints(&second)));
    let registered = snapshot(json!({"endpoints": [
        {"virtualNode": "a", "id": "a-0", "address": "127.0.0.1", "port": 9000, "healthy": true},
        {"virtualNode": "a", "id": "a-1", "address": "127.0.0.1", "port": 9001, "healthy": false}]}));
    let third = RouteTable::compile(
        "m",
        registered,
        ConfigSource::Control,
        &role,
        Some(&second),
        &telemetry,
    );
    assert!(!Arc::ptr_eq(&endpoints(&second), &endpoints(&third)));
    assert_eq!(endpoints(&third).source(), "registered [127.0.0.1:9000]");
    let picked = endpoints(&third).pick(None).await.unwrap();
    assert_eq!(picked.endpoint().addr.port(), 9000);
    assert!(picked.endpoint().workload.is_none(), "no workload named");

    // Endpoints of one workload are the node itself; of two, each counts for its workload too.
    let of = |workloads: [&str; 2]| {
        snapshot(json!({"endpoints": [
            {"virtualNode": "a", "id": "a-0", "address": "127.0.0.1", "port": 9000,
             "workload": workloads[0]},
            {"virtualNode": "a", "id": "a-1", "address": "127.0.0.1", "port": 9001,
             "workload": workloads[1]}]}))
    };
    let compile = |snapshot| {
        RouteTable::compile(
            "m",
            snapshot,
            ConfigSource::Control,
            &role,
            None,
            &telemetry,
        )
    };
    let one = compile(of(["a-v1", "a-v1"]));
    assert_eq!(
        endpoints(&one).source(),
        "registered [127.0.0.1:9000, 127.0.0.1:9001]"
    );
    let two = compile(of(["a-v1", "a-v2"]));
    assert_eq!(
        endpoints(&two).source(),
        "registered [127.0.0.1:9000 (a-v1), 127.0.0.1:9001 (a-v2)]"
    );
    let picked = endpoints(&two)
        .pick(Some("127.0.0.1:9000".parse().unwrap()))
        .await
        .unwrap();
    let workload = picked.endpoint().workload.clone().expect("a workload");
    assert_eq!(&*workload.name, "a-v2");
    assert!(
        Arc::ptr_eq(&workload.series, &telemetry.workload_series("a", "a-v2")),
        "the series outlives the table"
    );
}

/// App Mesh TLS sources aviary cannot use (`sds`, `acm`) are configuration problems, shown at
/// `/config`, and the listener or policy naming them serves nothing rather than plain text.
#[test]
fn sds_and_acm_tls_sources_are_reported_as_problems() {
    let sds_listener = json!({"meshName": "m", "virtualNodeName": "sds", "spec": {
        "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}, "tls": {
            "mode": "STRICT", "certificate": {"sds": {"secretName": "spiffe://m/sds"}}}}]}});
    let acm_policy = json!({"meshName": "m", "virtualNodeName": "acm", "spec": {
        "backendDefaults": {"clientPolicy": {"tls": {"validation": {"trust": {
            "acm": {"certificateAuthorityArns": ["arn:aws:acm-pca:us-east-1:1:ca/x"]}}}}}}}});
    let mut nodes = snapshot(json!({})).to_wire().virtual_nodes;
    nodes.extend([sds_listener, acm_policy]);
    let table = compile(snapshot(json!({"virtualNodes": nodes})), Role::Mesh);
    let problems = table.problems.join("\n");
    assert!(
        problems.contains("virtual node 'sds' listener 8080") && problems.contains("sds"),
        "{problems}"
    );
    assert!(
        problems.contains("virtual node 'acm' backendDefaults.clientPolicy")
            && problems.contains("acm"),
        "{problems}"
    );
    let sds = table.node("sds").unwrap();
    assert!(
        matches!(sds.listeners[0].tls, Some(Err(_))),
        "the listener refuses all"
    );
    let acm = table.node("acm").unwrap();
    assert!(
        matches!(acm.client_policies.for_service("any"), Some(Err(_))),
        "its calls fail"
    );
}

/// A canary record in its A/B step: `rules` send requests of `route` of router `r` to
/// `canary_node`.
fn canary_at_match_step(name: &str, route: &str, canary_node: &str, rules: Value) -> Value {
    let spec: rollout::CanarySpec = serde_json::from_value(json!({
        "mesh": "m", "router": "r", "route": route, "stableNode": "a",
        "canaryNode": canary_node,
        "strategy": {"type": "steps", "stepWeight": 50, "interval": "5m"},
        "match": rules,
    }))
    .unwrap();
    let (state, _) = rollout::start(&spec, 0);
    assert_eq!(state.steps.first(), Some(&rollout::StepSpec::Match));
    serde_json::to_value(model::wire::CanaryRecord {
        name: name.into(),
        spec,
        state,
        acted: 0,
        notes: Vec::new(),
    })
    .unwrap()
}

#[test]
fn a_canary_overlays_its_route_in_every_service_of_the_router() {
    let rules = json!([
        {"header": "x-canary", "exact": "yes"},
        {"header": "x-user", "regex": "("},
    ]);
    let snapshot = snapshot(json!({
        "virtualServices": [
            {"meshName": "m", "virtualServiceName": "svc.local",
             "spec": {"provider": {"virtualRouter": {"virtualRouterName": "r"}}}},
            {"meshName": "m", "virtualServiceName": "other.local",
             "spec": {"provider": {"virtualRouter": {"virtualRouterName": "r"}}}},
        ],
        "canaries": [
            canary_at_match_step("c1", "urgent", "b", rules),
            // Another canary of the same route: only the first (by name) applies.
            canary_at_match_step("c2", "urgent", "b", json!([{"cookie": "v", "exact": "2"}])),
            // Its node is not a target of its route: nothing to overlay.
            canary_at_match_step("c3", "catch-all", "b", json!([{"header": "h", "exact": "1"}])),
        ],
    }));
    let table = compile(snapshot, Role::Node("client".into()));
    // Once each, though two services reach the route.
    let problems = table.problems.clone();
    let empty = HeaderMap::new();
    let overlay_of = |service: &str, path: &str| {
        let service = table.service(service).unwrap();
        let route = service.route(&view(path, &empty, "svc.local")).unwrap();
        (route.name.clone(), route.canary.clone())
    };
    let (name, first) = overlay_of("svc.local", "/");
    assert_eq!(name, "urgent");
    let first = first.expect("an overlay on the canary's route");
    assert_eq!((first.canary.as_str(), first.target), ("c1", 1));
    let (_, second) = overlay_of("other.local", "/");
    assert!(
        Arc::ptr_eq(&first, &second.unwrap()),
        "compiled once, shared"
    );

    let choice = WeightedChoice::new([1, 0]);
    let mut yes = HeaderMap::new();
    yes.insert("x-canary", "yes".parse().unwrap());
    assert_eq!(first.decide(&yes, &choice).first, Some(1));
    assert_eq!(first.decide(&empty, &choice).first, None);
    let mut cookie = HeaderMap::new();
    cookie.insert("cookie", "v=2".parse().unwrap());
    assert_eq!(
        first.decide(&cookie, &choice).first,
        None,
        "c2's rule is not applied"
    );

    let mut without_urgent = table.snapshot.as_ref().clone();
    without_urgent
        .resources
        .retain(|(kind, _, name), _| *kind != Kind::Route || name != "urgent");
    let table = compile(Arc::new(without_urgent), Role::Node("client".into()));
    let route = table.service("svc.local").unwrap();
    let route = route.route(&view("/", &empty, "svc.local")).unwrap();
    assert_eq!(route.name, "catch-all");
    assert!(route.canary.is_none(), "b is not a target of catch-all");

    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("canary 'c2'") && problems[0].contains("'c1'"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("canary 'c1': match rule header x-user"),
        "{problems:?}"
    );
}
