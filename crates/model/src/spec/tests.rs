//! Tests of full spec validation, names, references and kinds, on the walkthrough's resources.

use serde_json::{Value, json};

use crate::{
    Kind, MAX_SPEC_BYTES, reference_sites, references, service_model, size_problem, validate_name,
    validate_spec,
};

/// Validate `spec` as `kind` and compare every problem, rendered `path: message`, in order.
fn check(kind: Kind, spec: &Value, expected: &[&str]) {
    let got: Vec<String> = validate_spec(kind, spec)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got, expected, "{kind} spec: {spec}");
}

/// `base` with the value at JSON pointer `pointer` set (or inserted) to `value`; `Null` removes
/// an object member.
pub(crate) fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer has a '/'");
    match base.pointer_mut(parent).expect("parent exists") {
        Value::Object(map) if value.is_null() => {
            map.shift_remove(last);
        }
        Value::Object(map) => {
            map.insert(last.to_owned(), value);
        }
        Value::Array(items) => items[last.parse::<usize>().expect("index")] = value,
        other => panic!("cannot set {pointer} in {other}"),
    }
    base
}

pub(crate) fn mesh() -> Value {
    json!({"egressFilter": {"type": "ALLOW_ALL"}})
}

pub(crate) fn virtual_node() -> Value {
    json!({
        "listeners": [{
            "portMapping": {"port": 8080, "protocol": "http"},
            "healthCheck": {
                "protocol": "http", "path": "/ping",
                "healthyThreshold": 2, "unhealthyThreshold": 2,
                "timeoutMillis": 2000, "intervalMillis": 5000
            }
        }],
        "serviceDiscovery": {"dns": {"hostname": "product-v1.demomesh.local"}},
        "backends": [{"virtualService": {"virtualServiceName": "customer.demomesh.local"}}]
    })
}

pub(crate) fn virtual_router() -> Value {
    json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]})
}

pub(crate) fn route() -> Value {
    json!({
        "httpRoute": {
            "match": {"prefix": "/"},
            "action": {"weightedTargets": [
                {"virtualNode": "product-vn", "weight": 75},
                {"virtualNode": "product-v15-vn", "weight": 25}
            ]},
            "retryPolicy": {
                "maxRetries": 2,
                "perRetryTimeout": {"unit": "ms", "value": 1000},
                "httpRetryEvents": ["server-error", "gateway-error"],
                "tcpRetryEvents": ["connection-error"]
            }
        }
    })
}

pub(crate) fn virtual_service() -> Value {
    json!({"provider": {"virtualRouter": {"virtualRouterName": "product-vr"}}})
}

pub(crate) fn virtual_gateway() -> Value {
    json!({"listeners": [{"portMapping": {"port": 9080, "protocol": "http"}}]})
}

pub(crate) fn gateway_route() -> Value {
    json!({
        "httpRoute": {
            "match": {"prefix": "/"},
            "action": {"target": {"virtualService": {"virtualServiceName": "order.demomesh.local"}}}
        }
    })
}

fn targets(n: usize) -> Value {
    let targets: Vec<Value> = (0..n)
        .map(|i| json!({"virtualNode": format!("node-{i}"), "weight": 1}))
        .collect();
    with(
        route(),
        "/httpRoute/action/weightedTargets",
        Value::Array(targets),
    )
}

const WT: &str = "/httpRoute/action/weightedTargets";

#[test]
fn walkthrough_specs_of_every_kind_are_valid() {
    let cases = [
        (Kind::Mesh, mesh()),
        (Kind::Mesh, json!({})),
        (Kind::VirtualNode, virtual_node()),
        (Kind::VirtualRouter, virtual_router()),
        (Kind::Route, route()),
        (Kind::VirtualService, virtual_service()),
        (
            Kind::VirtualService,
            json!({"provider": {"virtualNode": {"virtualNodeName": "product-vn"}}}),
        ),
        (Kind::VirtualGateway, virtual_gateway()),
        (Kind::GatewayRoute, gateway_route()),
        (
            Kind::Route,
            json!({"tcpRoute": {"action": {"weightedTargets": [{"virtualNode": "db-vn", "weight": 1, "port": 5432}]}}}),
        ),
    ];
    let mut kinds_seen = std::collections::BTreeSet::new();
    for (kind, spec) in &cases {
        check(*kind, spec, &[]);
        kinds_seen.insert(*kind);
    }
    assert_eq!(
        kinds_seen.len(),
        Kind::ALL.len(),
        "a valid case for every kind"
    );
}

#[test]
fn weights_and_target_counts_follow_aviarys_limits() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(route(), &format!("{WT}/0/weight"), json!(10001)),
            vec!["spec.httpRoute.action.weightedTargets[0].weight: must be at most 10000"],
        ),
        (
            with(route(), &format!("{WT}/1/weight"), json!(-1)),
            vec!["spec.httpRoute.action.weightedTargets[1].weight: must be at least 0"],
        ),
        // App Mesh stops at 100; aviary does not.
        (with(route(), &format!("{WT}/0/weight"), json!(101)), vec![]),
        (
            with(route(), &format!("{WT}/0/weight"), json!(10000)),
            vec![],
        ),
        // App Mesh stops at 10 targets; aviary at 100.
        (targets(11), vec![]),
        (targets(100), vec![]),
        (
            targets(101),
            vec!["spec.httpRoute.action.weightedTargets: must have at most 100 items"],
        ),
        (
            targets(0),
            vec!["spec.httpRoute.action.weightedTargets: must have at least 1 item"],
        ),
    ];
    for (spec, expected) in &cases {
        check(Kind::Route, spec, expected);
    }
}

#[test]
fn semantic_route_rules() {
    let duplicate = with(route(), &format!("{WT}/1/virtualNode"), json!("product-vn"));
    let zero = with(
        with(route(), &format!("{WT}/0/weight"), json!(0)),
        &format!("{WT}/1/weight"),
        json!(0),
    );
    let same_node_other_port = json!({"tcpRoute": {"action": {"weightedTargets": [
        {"virtualNode": "db", "weight": 1, "port": 1},
        {"virtualNode": "db", "weight": 1, "port": 2},
        {"virtualNode": "db", "weight": 1, "port": 2}
    ]}}});
    let both = with(
        route(),
        "/tcpRoute",
        json!({"action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]}}),
    );
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            duplicate,
            vec![
                "spec.httpRoute.action.weightedTargets[1]: virtual node 'product-vn' is listed twice",
            ],
        ),
        (
            zero,
            vec!["spec.httpRoute.action.weightedTargets: all weights are zero"],
        ),
        (
            same_node_other_port,
            vec![
                "spec.tcpRoute.action.weightedTargets[2]: virtual node 'db' port 2 is listed twice",
            ],
        ),
        (
            both,
            vec![
                "spec: must set exactly one of: grpcRoute, http2Route, httpRoute, tcpRoute (found httpRoute, tcpRoute)",
            ],
        ),
        (
            json!({"priority": 1}),
            vec!["spec: must set exactly one of: grpcRoute, http2Route, httpRoute, tcpRoute"],
        ),
    ];
    for (spec, expected) in &cases {
        check(Kind::Route, spec, expected);
    }
    check(
        Kind::GatewayRoute,
        &json!({"priority": 3}),
        &["spec: must set exactly one of: grpcRoute, http2Route, httpRoute"],
    );
}

#[test]
fn shape_rules_apply_inside_specs() {
    let cases: Vec<(Kind, Value, Vec<&str>)> = vec![
        (
            Kind::Route,
            with(route(), &format!("{WT}/0/weigth"), json!(5)),
            vec![
                "spec.httpRoute.action.weightedTargets[0]: unknown field 'weigth' (did you mean 'weight'?)",
            ],
        ),
        (
            Kind::Route,
            with(route(), &format!("{WT}/0/weight"), json!("75")),
            vec![
                "spec.httpRoute.action.weightedTargets[0].weight: must be an integer, not a string",
            ],
        ),
        (
            Kind::Route,
            with(route(), &format!("{WT}/0/weight"), json!(7.5)),
            vec![
                "spec.httpRoute.action.weightedTargets[0].weight: must be an integer, not a number with a fraction",
            ],
        ),
        (
            Kind::Route,
            with(route(), "/httpRoute/match", Value::Null),
            vec!["spec.httpRoute.match: is required"],
        ),
        (
            Kind::VirtualService,
            with(
                virtual_service(),
                "/provider/virtualNode",
                json!({"virtualNodeName": "product-vn"}),
            ),
            vec![
                "spec.provider: must set exactly one of: virtualNode, virtualRouter (found virtualRouter, virtualNode)",
            ],
        ),
        (
            Kind::VirtualService,
            json!({"provider": {}}),
            vec!["spec.provider: must set exactly one of: virtualNode, virtualRouter"],
        ),
        (
            Kind::Mesh,
            json!({"egressFilter": {"type": "ALLOW_SOME"}}),
            vec!["spec.egressFilter.type: must be one of: ALLOW_ALL, DROP_ALL"],
        ),
        (
            Kind::VirtualRouter,
            with(
                virtual_router(),
                "/listeners/0/portMapping/port",
                json!(70000),
            ),
            vec!["spec.listeners[0].portMapping.port: must be at most 65535"],
        ),
        (
            Kind::VirtualNode,
            with(
                virtual_node(),
                "/listeners/0/healthCheck/intervalMillis",
                json!(100),
            ),
            vec!["spec.listeners[0].healthCheck.intervalMillis: must be at least 5000"],
        ),
        (
            Kind::VirtualGateway,
            json!({}),
            vec!["spec.listeners: is required"],
        ),
        (
            Kind::VirtualGateway,
            json!([]),
            vec!["spec: must be an object, not an array"],
        ),
    ];
    for (kind, spec, expected) in &cases {
        check(*kind, spec, expected);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let spec = json!({
        "httpRoute": {
            "match": {"prefix": "/", "method": "FETCH"},
            "action": {"weightedTargets": [
                {"virtualNode": "product-vn", "weight": 10001},
                {"virtualNode": "product-vn", "weight": "25", "colour": "blue"}
            ]}
        },
        "priority": 1001
    });
    let problems = validate_spec(Kind::Route, &spec);
    let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 6, "{rendered:#?}");
    assert_eq!(
        rendered,
        [
            "spec.httpRoute.match.method: must be one of: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH",
            "spec.httpRoute.action.weightedTargets[0].weight: must be at most 10000",
            "spec.httpRoute.action.weightedTargets[1].weight: must be an integer, not a string",
            "spec.httpRoute.action.weightedTargets[1]: unknown field 'colour'",
            "spec.priority: must be at most 1000",
            "spec.httpRoute.action.weightedTargets[1]: virtual node 'product-vn' is listed twice",
        ]
    );
}

#[test]
fn names_are_checked_wherever_they_appear() {
    let cases: Vec<(Kind, Value, Vec<&str>)> = vec![
        (
            Kind::Route,
            with(route(), &format!("{WT}/0/virtualNode"), json!("a/b")),
            vec![
                "spec.httpRoute.action.weightedTargets[0].virtualNode: must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
            ],
        ),
        // The model's length rule and the name rule say it once, not twice.
        (
            Kind::Route,
            with(route(), &format!("{WT}/0/virtualNode"), json!("")),
            vec![
                "spec.httpRoute.action.weightedTargets[0].virtualNode: must have at least 1 character",
            ],
        ),
        (
            Kind::VirtualNode,
            with(
                virtual_node(),
                "/backends/0/virtualService/virtualServiceName",
                json!("-x"),
            ),
            vec![
                "spec.backends[0].virtualService.virtualServiceName: must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
            ],
        ),
        (
            Kind::GatewayRoute,
            with(
                gateway_route(),
                "/httpRoute/action/target/virtualService/virtualServiceName",
                json!("order service"),
            ),
            vec![
                "spec.httpRoute.action.target.virtualService.virtualServiceName: must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
            ],
        ),
    ];
    for (kind, spec, expected) in &cases {
        check(*kind, spec, expected);
    }
}

#[test]
fn validate_name_rules() {
    let long_ok = "a".repeat(255);
    let too_long = "a".repeat(256);
    let pattern =
        "must start with a letter or digit and contain only letters, digits, '.', '_' and '-'";
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("product-v15-vn", vec![]),
        ("order.demomesh.local", vec![]),
        ("9lives_x", vec![]),
        (&long_ok, vec![]),
        ("", vec!["name: must have at least 1 character".into()]),
        (
            &too_long,
            vec!["name: must have at most 255 characters".into()],
        ),
        ("a/b", vec![format!("name: {pattern}")]),
        ("-x", vec![format!("name: {pattern}")]),
        (".x", vec![format!("name: {pattern}")]),
        ("prodüct", vec![format!("name: {pattern}")]),
    ];
    for (name, expected) in cases {
        let got: Vec<String> = validate_name("name", name)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected, "name {name:?}");
    }
}

#[test]
fn references_name_what_must_exist() {
    let two_routes = json!({
        "httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
            {"virtualNode": "a", "weight": 1}, {"virtualNode": "b", "weight": 1}, {"virtualNode": "a", "weight": 1, "port": 81}
        ]}},
        "tcpRoute": {"action": {"weightedTargets": [{"virtualNode": "c", "weight": 1}]}}
    });
    let node = |n: &str| (Kind::VirtualNode, n.to_owned());
    type Refs = Vec<(Kind, String)>;
    let cases: Vec<(Kind, Value, Refs)> = vec![
        (
            Kind::Route,
            route(),
            vec![node("product-vn"), node("product-v15-vn")],
        ),
        (
            Kind::Route,
            two_routes,
            vec![node("a"), node("b"), node("c")],
        ),
        (
            Kind::VirtualService,
            virtual_service(),
            vec![(Kind::VirtualRouter, "product-vr".into())],
        ),
        (
            Kind::VirtualService,
            json!({"provider": {"virtualNode": {"virtualNodeName": "product-vn"}}}),
            vec![node("product-vn")],
        ),
        (
            Kind::GatewayRoute,
            gateway_route(),
            vec![(Kind::VirtualService, "order.demomesh.local".into())],
        ),
        // Backends may name services that do not exist yet.
        (Kind::VirtualNode, virtual_node(), vec![]),
        (Kind::Mesh, mesh(), vec![]),
        (Kind::Route, json!("not a spec"), vec![]),
    ];
    for (kind, spec, expected) in cases {
        assert_eq!(references(kind, &spec), expected, "{kind} {spec}");
    }
}

#[test]
fn reference_sites_say_where_each_reference_is() {
    let paths = |kind: Kind, spec: &Value| -> Vec<(String, String)> {
        reference_sites(kind, spec)
            .into_iter()
            .map(|r| (r.path, r.name))
            .collect()
    };
    let pair = |p: &str, n: &str| (p.to_owned(), n.to_owned());
    assert_eq!(
        paths(Kind::Route, &route()),
        [
            pair(
                "spec.httpRoute.action.weightedTargets[0].virtualNode",
                "product-vn"
            ),
            pair(
                "spec.httpRoute.action.weightedTargets[1].virtualNode",
                "product-v15-vn"
            ),
        ]
    );
    assert_eq!(
        paths(Kind::VirtualService, &virtual_service()),
        [pair(
            "spec.provider.virtualRouter.virtualRouterName",
            "product-vr"
        )]
    );
    assert_eq!(
        paths(Kind::GatewayRoute, &gateway_route()),
        [pair(
            "spec.httpRoute.action.target.virtualService.virtualServiceName",
            "order.demomesh.local"
        )]
    );
}

#[test]
fn kind_parse_accepts_aliases() {
    let cases: Vec<(&str, Option<Kind>)> = vec![
        ("Mesh", Some(Kind::Mesh)),
        ("meshes", Some(Kind::Mesh)),
        ("VirtualNode", Some(Kind::VirtualNode)),
        ("virtualnode", Some(Kind::VirtualNode)),
        ("virtual-node", Some(Kind::VirtualNode)),
        ("virtual_nodes", Some(Kind::VirtualNode)),
        ("vn", Some(Kind::VirtualNode)),
        ("VNs", Some(Kind::VirtualNode)),
        ("vr", Some(Kind::VirtualRouter)),
        ("virtual-routers", Some(Kind::VirtualRouter)),
        ("route", Some(Kind::Route)),
        ("Routes", Some(Kind::Route)),
        ("vs", Some(Kind::VirtualService)),
        ("virtualservices", Some(Kind::VirtualService)),
        ("vg", Some(Kind::VirtualGateway)),
        ("virtual-gateways", Some(Kind::VirtualGateway)),
        ("gr", Some(Kind::GatewayRoute)),
        ("gateway-routes", Some(Kind::GatewayRoute)),
        ("", None),
        ("node", None),
        ("virtualnodez", None),
    ];
    for (text, expected) in cases {
        assert_eq!(Kind::parse(text), expected, "{text:?}");
    }
    assert_eq!(
        "nope".parse::<Kind>().unwrap_err().to_string(),
        "unknown kind 'nope'; expected one of: Mesh, VirtualNode, VirtualRouter, Route, VirtualService, VirtualGateway, GatewayRoute"
    );
}

#[test]
fn kind_names_agree_with_the_service_model() {
    let model = service_model();
    for kind in Kind::ALL {
        assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
        for shape in [kind.spec_shape(), kind.data_shape()] {
            assert!(model.shape(shape).is_some(), "{kind}: no shape {shape}");
        }
        let create = model
            .shape(&format!("Create{kind}Input"))
            .unwrap_or_else(|| panic!("no Create{kind}Input"));
        assert!(
            create.required.iter().any(|r| r == kind.name_field()),
            "{kind}: Create{kind}Input does not require {}",
            kind.name_field()
        );
        let list = model.operation(&kind.operation("List"));
        let list = list.unwrap_or_else(|| panic!("{kind}: no List operation"));
        let list_output = model.shape(list.output.as_deref().unwrap()).unwrap();
        assert!(list_output.members.contains_key(kind.plural()), "{kind}");
        let create_output = model.shape(&format!("Create{kind}Output")).unwrap();
        assert_eq!(
            create_output.payload.as_deref(),
            Some(kind.camel()),
            "{kind}"
        );
        assert!(
            kind.human()
                .replace(' ', "")
                .eq_ignore_ascii_case(kind.as_str()),
            "{kind}: {}",
            kind.human()
        );
        assert!(
            list.request_uri.ends_with(&format!("/{}", kind.plural())),
            "{kind}: {} does not end with {}",
            list.request_uri,
            kind.plural()
        );
        match kind.parent() {
            None if kind == Kind::Mesh => assert_eq!(list.request_uri, "/v20190125/meshes"),
            Some(parent) => assert!(
                list.request_uri
                    .contains(&format!("{{{}}}", parent.name_field())),
                "{kind}: {} does not name its parent",
                list.request_uri
            ),
            None => assert!(
                list.request_uri
                    .starts_with("/v20190125/meshes/{meshName}/")
            ),
        }
    }
    assert_eq!(Kind::Route.parent(), Some(Kind::VirtualRouter));
    assert_eq!(Kind::GatewayRoute.parent(), Some(Kind::VirtualGateway));
    assert_eq!(Kind::VirtualService.parent(), None);
    assert_eq!(Kind::Mesh.parent(), None);
}

#[test]
fn a_spec_is_at_most_64_kib_of_json() {
    // A JSON string of n characters is n + 2 bytes with its quotes.
    let exactly = json!("x".repeat(MAX_SPEC_BYTES - 2));
    assert_eq!(size_problem("spec", &exactly), None);
    let over = json!("x".repeat(MAX_SPEC_BYTES - 1));
    let problem = size_problem("spec", &over).expect("one byte over");
    assert_eq!(
        problem.to_string(),
        "spec: is 65537 bytes as JSON, over the limit of 65536 bytes (64 KiB)"
    );

    // Thousands of backends, each fine on its own: the size is the only problem named.
    let backends: Vec<Value> = (0..3000)
        .map(|i| json!({"virtualService": {"virtualServiceName": format!("svc-{i}.demomesh.local")}}))
        .collect();
    let spec = json!({"backends": backends, "listeners": []});
    let problems: Vec<String> = validate_spec(Kind::VirtualNode, &spec)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("spec: is ") && problems[0].contains("limit of 65536 bytes"),
        "{problems:?}"
    );
}
