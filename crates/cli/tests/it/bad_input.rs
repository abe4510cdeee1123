//! Invalid requests get a 4xx in App Mesh's error shape naming the problem, and change nothing.

use serde_json::{Value, json};
use testkit::{aws, http, http_json, http_raw};

use crate::{Write, create_step1_raw, example, rest_call, route_spec, snapshot, start};

const NODES: &str = "/v20190125/meshes/demomesh/virtualNodes";
const PRODUCT_R: &str = "/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r";

/// Everything a bad request might have touched: the whole mesh at its store revision, and the
/// list of meshes.
fn state(url: &str) -> Value {
    let (status, _, meshes) = http_json("GET", &format!("{url}/v20190125/meshes"), None);
    assert_eq!(status, 200, "{meshes}");
    json!({ "snapshot": snapshot(url, "demomesh"), "meshes": meshes })
}

/// A create-virtual-node body that is valid, for cases to break one thing in.
fn node_body(name: &str) -> Value {
    let mut body = example("product-vn");
    body.as_object_mut().unwrap().remove("meshName");
    body["virtualNodeName"] = json!(name);
    body
}

fn route_body(targets: &[(&str, i64)]) -> String {
    json!({ "spec": route_spec(targets) }).to_string()
}

struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    body: Option<String>,
    /// Acceptable statuses.
    status: &'static [u16],
    /// Acceptable `x-amzn-ErrorType` values; empty means any, as long as there is one.
    types: &'static [&'static str],
    /// Words the message must contain (case-insensitively): the field, or the missing name.
    mentions: Vec<String>,
}

fn case(what: &'static str, method: &'static str, path: &str, body: Option<String>) -> Case {
    Case {
        what,
        method,
        path: path.to_string(),
        body,
        status: &[400],
        types: &["BadRequestException"],
        mentions: Vec::new(),
    }
}

impl Case {
    fn status(mut self, status: &'static [u16], types: &'static [&'static str]) -> Case {
        self.status = status;
        self.types = types;
        self
    }

    fn mentions(mut self, words: &[&str]) -> Case {
        self.mentions = words.iter().map(|w| w.to_string()).collect();
        self
    }
}

fn check(url: &str, c: &Case) {
    let before = state(url);
    let (status, headers, body) = http(c.method, &format!("{url}{}", c.path), c.body.as_deref());
    let what = c.what;
    assert!(
        c.status.contains(&status),
        "{what}: status {status}, want one of {:?}: {body}",
        c.status
    );
    let error_type = headers
        .get("x-amzn-ErrorType")
        .unwrap_or_else(|| panic!("{what}: no x-amzn-ErrorType header ({status}): {body}"));
    // The CLI and SDKs take the part before any ':' as the error code.
    let error_type = error_type.split(':').next().unwrap();
    assert!(
        (c.types.is_empty() && !error_type.is_empty()) || c.types.contains(&error_type),
        "{what}: x-amzn-ErrorType {error_type}, want one of {:?}",
        c.types
    );
    let json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {body}"));
    let message = json["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no string `message` in {json}"));
    assert!(!message.trim().is_empty(), "{what}: empty message");
    for word in &c.mentions {
        assert!(
            message.to_lowercase().contains(&word.to_lowercase()),
            "{what}: message does not name `{word}`: {message}"
        );
    }
    assert_eq!(
        state(url),
        before,
        "{what}: a rejected request changed something"
    );
}

#[test]
fn invalid_requests_are_rejected_with_a_clear_error_and_change_nothing() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);

    let mut unknown_nested = node_body("new-vn");
    unknown_nested["spec"]["listeners"][0]["portMaping"] = json!({"port": 1, "protocol": "http"});
    let mut unknown_top = node_body("new-vn");
    unknown_top["colour"] = json!("blue");
    let mut no_spec = node_body("new-vn");
    no_spec.as_object_mut().unwrap().remove("spec");
    let mut slow_check = node_body("new-vn");
    slow_check["spec"]["listeners"][0]["healthCheck"]["intervalMillis"] = json!(10);
    let mut port_zero = node_body("new-vn");
    port_zero["spec"]["listeners"][0]["portMapping"]["port"] = json!(0);
    let mut port_huge = node_body("new-vn");
    port_huge["spec"]["listeners"][0]["portMapping"]["port"] = json!(70000);
    let mut oversized = node_body("big-vn");
    oversized["tags"] = json!([{"key": "padding", "value": "x".repeat(1 << 20)}]);
    let mut big_spec = node_body("big-vn");
    big_spec["spec"]["backends"] = json!((0..2000)
        .map(|i| json!({"virtualService": {"virtualServiceName": format!("svc-{i}.demomesh.local")}}))
        .collect::<Vec<_>>());
    let mut null_spec = node_body("new-vn");
    null_spec["spec"] = Value::Null;
    let many: Vec<String> = (0..101).map(|i| format!("n{i}")).collect();
    let many: Vec<(&str, i64)> = many.iter().map(|n| (n.as_str(), 1)).collect();
    let mesh_route = "/v20190125/meshes/demomesh/virtualRouter";

    let cases = [
        case("malformed JSON", "PUT", NODES, Some(r#"{"virtualNodeName": "new-vn", "spec": {"#.into()))
            .mentions(&["JSON"]),
        case("a JSON array body", "PUT", NODES, Some("[]".into())),
        case("an unknown top-level field", "PUT", NODES, Some(unknown_top.to_string()))
            .mentions(&["colour"]),
        case("an unknown nested field", "PUT", NODES, Some(unknown_nested.to_string()))
            .mentions(&["portMaping"]),
        case("no spec", "PUT", NODES, Some(no_spec.to_string())).mentions(&["spec"]),
        // A null member counts as absent: one problem, not "required" and "not null" at once.
        case("a null spec", "PUT", NODES, Some(null_spec.to_string())).mentions(&["1 validation error detected: spec: is required"]),
        case("a mesh named a/b", "PUT", "/v20190125/meshes", Some(r#"{"meshName": "a/b"}"#.into()))
            .mentions(&["meshName"]),
        case("a node named a/b", "PUT", NODES, Some(node_body("a/b").to_string()))
            .mentions(&["virtualNodeName"]),
        case("a 256-character name", "PUT", NODES, Some(node_body(&"n".repeat(256)).to_string()))
            .mentions(&["virtualNodeName"]),
        case("an empty name", "PUT", NODES, Some(node_body("").to_string()))
            .mentions(&["virtualNodeName"]),
        case("a health check every 10 ms", "PUT", NODES, Some(slow_check.to_string()))
            .mentions(&["intervalMillis"]),
        case("port 0", "PUT", NODES, Some(port_zero.to_string())).mentions(&["port"]),
        case("port 70000", "PUT", NODES, Some(port_huge.to_string())).mentions(&["port"]),
        case("weight 10001", "PUT", PRODUCT_R, Some(route_body(&[("product-vn", 10001)])))
            .mentions(&["weight"]),
        case("weight -1", "PUT", PRODUCT_R, Some(route_body(&[("product-vn", -1)])))
            .mentions(&["weight"]),
        case(
            "a weight that is a string",
            "PUT",
            PRODUCT_R,
            Some(r#"{"spec": {"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "product-vn", "weight": "ten"}]}}}}"#.into()),
        )
        .mentions(&["weight"]),
        case("101 targets", "PUT", PRODUCT_R, Some(route_body(&many))).mentions(&["weightedTargets"]),
        case("no targets", "PUT", PRODUCT_R, Some(route_body(&[]))).mentions(&["weightedTargets"]),
        case(
            "the same target twice",
            "PUT",
            PRODUCT_R,
            Some(route_body(&[("product-vn", 50), ("product-vn", 50)])),
        )
        .mentions(&["weightedTargets"]),
        case("a target node that does not exist", "PUT", PRODUCT_R, Some(route_body(&[("ghost-vn", 100)])))
            .status(&[404], &["NotFoundException"])
            .mentions(&["ghost-vn"]),
        case("a body over 1 MiB", "PUT", NODES, Some(oversized.to_string()))
            .status(&[413], &["BadRequestException"])
            .mentions(&["1048576"]),
        case("a spec over 64 KiB", "PUT", NODES, Some(big_spec.to_string()))
            .mentions(&["spec", "65536"]),
        case(
            "an update to a spec over 64 KiB",
            "PUT",
            PRODUCT_R,
            Some(json!({"spec": {"httpRoute": {"match": {"prefix": "/".repeat(70_000)}}}}).to_string()),
        )
        .mentions(&["spec", "65536"]),
        case(
            "a workload over 64 KiB",
            "PUT",
            "/v1/meshes/demomesh/workloads/big",
            Some(json!({"virtualNode": "product-vn", "command": ["x"], "env": {"PAD": "x".repeat(70_000)}}).to_string()),
        )
        .mentions(&["workload", "65536"]),
        case(
            "a canary spec over 64 KiB",
            "POST",
            "/v1/meshes/demomesh/canaries",
            Some(json!({"name": "big", "spec": {"router": "x".repeat(70_000)}}).to_string()),
        )
        .mentions(&["spec", "65536"]),
        case("limit=0", "GET", "/v20190125/meshes?limit=0", None).mentions(&["limit"]),
        case("limit=abc", "GET", "/v20190125/meshes?limit=abc", None).mentions(&["limit"]),
        // Found by the fuzz test: slicing this token by bytes used to panic mid-character.
        case("a nextToken that is not ASCII", "GET", "/v20190125/meshes?nextToken=%E2%82%AC1", None)
            .mentions(&["nextToken"]),
        case("PATCH on a mesh", "PATCH", "/v20190125/meshes/demomesh", Some("{}".into())).status(&[405], &[]),
        case("POST on meshes", "POST", "/v20190125/meshes", Some(r#"{"meshName": "m"}"#.into()))
            .status(&[405], &[]),
        case("DELETE on the node collection", "DELETE", NODES, None).status(&[405], &[]),
        case("an unknown path", "GET", "/v20190125/nothing/here", None)
            .status(&[404], &["NotFoundException"]),
        case("an unknown collection", "PUT", "/v20190125/meshes/demomesh/virtualNodez", Some("{}".into()))
            .status(&[404], &["NotFoundException"]),
        case("a node name with an encoded slash", "GET", &format!("{NODES}/a%2Fb"), None)
            .status(&[400, 404], &["BadRequestException", "NotFoundException"]),
        case("describing a missing node", "GET", &format!("{NODES}/ghost-vn"), None)
            .status(&[404], &["NotFoundException"])
            .mentions(&["ghost-vn"]),
        case("a node in a missing mesh", "PUT", "/v20190125/meshes/ghostmesh/virtualNodes", Some(node_body("new-vn").to_string()))
            .status(&[404], &["NotFoundException"])
            .mentions(&["ghostmesh"]),
        case(
            "a route in a missing router",
            "PUT",
            &format!("{mesh_route}/ghost-vr/routes"),
            Some(json!({"routeName": "r", "spec": route_spec(&[("product-vn", 1)])}).to_string()),
        )
        .status(&[404], &["NotFoundException"])
        .mentions(&["ghost-vr"]),
        case(
            "updating a missing route",
            "PUT",
            &format!("{mesh_route}/product-vr/routes/ghost-r"),
            Some(route_body(&[("product-vn", 1)])),
        )
        .status(&[404], &["NotFoundException"])
        .mentions(&["ghost-r"]),
    ];
    for c in &cases {
        check(url, c);
    }

    // After all that, the server still answers ordinary requests.
    let (status, _, body) = http("GET", &format!("{url}/v20190125/meshes/demomesh"), None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_service_model_limits_themselves_are_accepted() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let long = "n".repeat(255);
    let (status, _, body) = http(
        "PUT",
        &format!("{url}{NODES}"),
        Some(&node_body(&long).to_string()),
    );
    assert_eq!(status, 200, "a 255-character name: {body}");
    let (status, _, body) = http("GET", &format!("{url}{NODES}/{long}"), None);
    assert_eq!(status, 200, "{body}");

    let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    for name in &names {
        let (status, _, body) = http(
            "PUT",
            &format!("{url}{NODES}"),
            Some(&node_body(name).to_string()),
        );
        assert_eq!(status, 200, "{name}: {body}");
    }
    let ten: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), 10)).collect();
    let (status, _, body) = http_json("PUT", &format!("{url}{PRODUCT_R}"), Some(&route_body(&ten)));
    assert_eq!(status, 200, "10 targets of weight 10: {body}");
    assert_eq!(
        body["spec"]["httpRoute"]["action"]["weightedTargets"]
            .as_array()
            .map(Vec::len),
        Some(10)
    );
    let (status, _, body) = http(
        "PUT",
        &format!("{url}{PRODUCT_R}"),
        Some(&route_body(&[("product-vn", 100), ("n0", 0)])),
    );
    assert_eq!(status, 200, "weights 100 and 0: {body}");
}

#[test]
fn garbage_on_the_socket_gets_a_400_and_the_server_keeps_serving() {
    let control = start();
    let reply = http_raw(control.addr(), b"HELLO THERE\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    let reply = http_raw(
        control.addr(),
        b"PUT /v20190125/meshes HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\nConnection: close\r\n\r\n{}",
    );
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    let (status, _, body) = http("GET", &format!("{}/healthz", control.url()), None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_aws_cli_shows_server_validation_errors() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let before = state(url);
    let route = [
        "update-route",
        "--mesh-name",
        "demomesh",
        "--virtual-router-name",
        "product-vr",
        "--route-name",
        "product-r",
    ];
    let with_spec = |spec: Value| -> Vec<String> {
        let mut args: Vec<String> = route.iter().map(|s| s.to_string()).collect();
        args.extend(["--spec".to_string(), spec.to_string()]);
        args
    };
    let run = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        aws(url, &args)
    };

    // (what, args, error types, a word stderr must contain)
    let long = "n".repeat(256);
    let cases: Vec<(&str, Vec<String>, &[&str], &str)> = vec![
        (
            "weight 10001",
            with_spec(route_spec(&[("product-vn", 10001)])),
            &["BadRequestException"],
            "weight",
        ),
        (
            "the same target twice",
            with_spec(route_spec(&[("product-vn", 50), ("product-vn", 50)])),
            &["BadRequestException"],
            "weightedTargets",
        ),
        (
            "a missing node",
            with_spec(route_spec(&[("ghost-vn", 100)])),
            &["NotFoundException"],
            "ghost-vn",
        ),
        (
            "a 256-character name",
            [
                "create-virtual-node",
                "--mesh-name",
                "demomesh",
                "--virtual-node-name",
                &long,
                "--spec",
                "{}",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            &["BadRequestException"],
            "virtualNodeName",
        ),
    ];
    for (what, args, types, word) in &cases {
        let out = run(args);
        assert!(!out.success(), "{what}: accepted:\n{}", out.stdout);
        let code = out
            .error_code()
            .unwrap_or_else(|| panic!("{what}: no service error in {}", out.stderr));
        assert!(types.contains(&code), "{what}: {code}");
        assert!(
            out.stderr.to_lowercase().contains(&word.to_lowercase()),
            "{what}: {}",
            out.stderr
        );
    }

    // The CLI checks minimums itself (never maximums): weight -1 never leaves the machine.
    let out = run(&with_spec(route_spec(&[("product-vn", -1)])));
    assert!(!out.success());
    assert!(out.stderr.contains("valid min value: 0"), "{}", out.stderr);

    assert_eq!(state(url), before, "rejected CLI calls changed something");
}

/// The create call of an example file with its own name replaced by `name`.
fn create_named(example_name: &str, field: &str, name: &str) -> (String, Value) {
    let (path, mut body) = rest_call(&example(example_name), Write::Create);
    body[field] = json!(name);
    (path, body)
}

#[test]
fn empty_names_in_paths_and_bodies_are_400s_naming_the_field() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let mesh = "/v20190125/meshes/demomesh";
    let mut cases = Vec::new();

    // A trailing slash leaves an empty name in the Describe/Update/Delete path of every kind:
    // it names the field, and never reaches a resource '' (nor creates one).
    let items = [
        ("mesh", "/v20190125/meshes/".to_string(), "meshName"),
        (
            "product-vn",
            format!("{mesh}/virtualNodes/"),
            "virtualNodeName",
        ),
        (
            "product-vr",
            format!("{mesh}/virtualRouters/"),
            "virtualRouterName",
        ),
        (
            "product-r",
            format!("{mesh}/virtualRouter/product-vr/routes/"),
            "routeName",
        ),
        (
            "vs-product",
            format!("{mesh}/virtualServices/"),
            "virtualServiceName",
        ),
        (
            "demo-gw",
            format!("{mesh}/virtualGateways/"),
            "virtualGatewayName",
        ),
        (
            "order-gr",
            format!("{mesh}/virtualGateway/demo-gw/gatewayRoutes/"),
            "gatewayRouteName",
        ),
    ];
    for (example_name, path, field) in &items {
        let (_, create_body) = rest_call(&example(example_name), Write::Create);
        cases.push(case("GET with a trailing slash", "GET", path, None).mentions(&[field]));
        cases.push(case("DELETE with a trailing slash", "DELETE", path, None).mentions(&[field]));
        cases.push(
            case(
                "PUT of a create body with a trailing slash",
                "PUT",
                path,
                Some(create_body.to_string()),
            )
            .mentions(&[field]),
        );
    }

    // An empty own name in a create body, for every kind; virtualServiceName's shape
    // (ServiceName) has no length limit of its own in the service model.
    let fields = [
        ("mesh", "meshName"),
        ("product-vn", "virtualNodeName"),
        ("product-vr", "virtualRouterName"),
        ("product-r", "routeName"),
        ("vs-product", "virtualServiceName"),
        ("demo-gw", "virtualGatewayName"),
        ("order-gr", "gatewayRouteName"),
    ];
    for (example_name, field) in fields {
        let (path, body) = create_named(example_name, field, "");
        cases.push(
            case(
                "an empty name in a create body",
                "PUT",
                &path,
                Some(body.to_string()),
            )
            .mentions(&[field]),
        );
    }

    // Empty names of the scope, and empty names a spec refers to.
    let (vs_path, mut empty_provider) =
        create_named("vs-product", "virtualServiceName", "new.local");
    empty_provider["spec"]["provider"]["virtualRouter"]["virtualRouterName"] = json!("");
    let (gr_path, mut empty_target) = create_named("order-gr", "gatewayRouteName", "new-gr");
    empty_target["spec"]["httpRoute"]["action"]["target"]["virtualService"]["virtualServiceName"] =
        json!("");
    let mut empty_backend = node_body("new-vn");
    empty_backend["spec"]["backends"] = json!([{"virtualService": {"virtualServiceName": ""}}]);
    cases.extend([
        case(
            "an empty mesh in a list path",
            "GET",
            "/v20190125/meshes//virtualNodes",
            None,
        )
        .mentions(&["meshName"]),
        case(
            "an empty router in a list path",
            "GET",
            &format!("{mesh}/virtualRouter//routes"),
            None,
        )
        .mentions(&["virtualRouterName"]),
        case(
            "an empty gateway in an item path",
            "GET",
            &format!("{mesh}/virtualGateway//gatewayRoutes/order-gr"),
            None,
        )
        .mentions(&["virtualGatewayName"]),
        case(
            "an empty route target",
            "PUT",
            PRODUCT_R,
            Some(route_body(&[("", 1)])),
        )
        .mentions(&["weightedTargets[0].virtualNode"]),
        case(
            "an empty provider",
            "PUT",
            &vs_path,
            Some(empty_provider.to_string()),
        )
        .mentions(&["virtualRouterName"]),
        case(
            "an empty gateway route target",
            "PUT",
            &gr_path,
            Some(empty_target.to_string()),
        )
        .mentions(&["virtualServiceName"]),
        case(
            "an empty backend",
            "PUT",
            NODES,
            Some(empty_backend.to_string()),
        )
        .mentions(&["backends[0]"]),
    ]);

    // aviary's /v1 paths and bodies: names there are names too.
    let workload = json!({"virtualNode": "product-vn", "command": ["x"]}).to_string();
    let endpoint = json!({"address": "127.0.0.1", "port": 1}).to_string();
    cases.extend([
        case(
            "an empty mesh in a snapshot path",
            "GET",
            "/v1/meshes//snapshot",
            None,
        )
        .mentions(&["meshName"]),
        case(
            "an empty mesh in a workload path",
            "PUT",
            "/v1/meshes//workloads/w",
            Some(workload.clone()),
        )
        .mentions(&["meshName"]),
        case(
            "an empty node in an endpoint path",
            "PUT",
            "/v1/meshes/demomesh/endpoints//e1",
            Some(endpoint.clone()),
        )
        .mentions(&["virtualNodeName"]),
        // Found by the fuzz test: axum's own answer here was plain text without an error type.
        case(
            "a /v1 node name that is not UTF-8",
            "PUT",
            "/v1/meshes/demomesh/endpoints/%C3%28/e1",
            Some(endpoint),
        )
        .mentions(&["node: is not valid UTF-8"]),
        case(
            "a token id that is not UTF-8",
            "DELETE",
            "/v1/tokens/%C3%28",
            None,
        )
        .mentions(&["is not valid UTF-8"]),
        case(
            "a workload of an empty node",
            "PUT",
            "/v1/meshes/demomesh/workloads/w",
            Some(json!({"virtualNode": "", "command": ["x"]}).to_string()),
        )
        .mentions(&["virtualNode"]),
        case(
            "a canary named ''",
            "POST",
            "/v1/meshes/demomesh/canaries",
            Some(json!({"name": "", "spec": {}}).to_string()),
        )
        .mentions(&["name"]),
        case(
            "a trailing slash on a /v1 item",
            "PUT",
            "/v1/meshes/demomesh/workloads/",
            Some(workload),
        )
        .status(&[404], &["NotFoundException"])
        .mentions(&["/v1/meshes/demomesh/workloads/"]),
        case(
            "GET where only PUT and DELETE are",
            "GET",
            "/v1/meshes/demomesh/endpoints/product-vn/e1",
            None,
        )
        .status(&[405], &["BadRequestException"])
        .mentions(&["GET"]),
    ]);
    for c in &cases {
        check(url, c);
    }
    println!("{} empty-name cases", cases.len());
}

#[test]
fn references_to_missing_resources_are_404s_naming_them() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let not_found = |c: Case| c.status(&[404], &["NotFoundException"]);

    let (vs_path, mut ghost_router) = create_named("vs-product", "virtualServiceName", "new.local");
    ghost_router["spec"]["provider"]["virtualRouter"]["virtualRouterName"] = json!("ghost-vr");
    let mut ghost_node = ghost_router.clone();
    ghost_node["spec"]["provider"] = json!({"virtualNode": {"virtualNodeName": "ghost-vn"}});
    let vs_item = "/v20190125/meshes/demomesh/virtualServices/product.demomesh.local";
    let update_vs =
        json!({"spec": {"provider": {"virtualRouter": {"virtualRouterName": "ghost-vr"}}}});
    let (gr_path, mut ghost_service) = create_named("order-gr", "gatewayRouteName", "new-gr");
    ghost_service["spec"]["httpRoute"]["action"]["target"]["virtualService"]["virtualServiceName"] =
        json!("ghost.demomesh.local");
    let (route_path, mut new_route) = create_named("product-r", "routeName", "new-r");
    new_route["spec"] = route_spec(&[("ghost-vn", 1), ("product-vn", 1), ("other-ghost-vn", 1)]);
    let mut shape_and_reference = new_route.clone();
    shape_and_reference["spec"]["httpRoute"]["action"]["weightedTargets"][1]["weight"] =
        json!(10001);
    let (_, ghost_mesh_node) = create_named("product-vn", "virtualNodeName", "new-vn");
    let ghost_mesh = "/v20190125/meshes/ghostmesh";

    let cases = [
        not_found(case(
            "a route target node that does not exist",
            "PUT",
            PRODUCT_R,
            Some(route_body(&[("ghost-vn", 1)])),
        ))
        .mentions(&[
            "ghost-vn",
            "spec.httpRoute.action.weightedTargets[0].virtualNode",
        ]),
        not_found(case(
            "a new route with two missing targets",
            "PUT",
            &route_path,
            Some(new_route.to_string()),
        ))
        .mentions(&[
            "ghost-vn",
            "other-ghost-vn",
            "weightedTargets[2].virtualNode",
        ]),
        not_found(case(
            "a service provided by a missing router",
            "PUT",
            &vs_path,
            Some(ghost_router.to_string()),
        ))
        .mentions(&["ghost-vr", "virtualRouterName"]),
        not_found(case(
            "a service provided by a missing node",
            "PUT",
            &vs_path,
            Some(ghost_node.to_string()),
        ))
        .mentions(&["ghost-vn", "virtualNodeName"]),
        not_found(case(
            "a service updated to a missing router",
            "PUT",
            vs_item,
            Some(update_vs.to_string()),
        ))
        .mentions(&["ghost-vr"]),
        not_found(case(
            "a gateway route to a missing service",
            "PUT",
            &gr_path,
            Some(ghost_service.to_string()),
        ))
        .mentions(&["ghost.demomesh.local"]),
        not_found(case(
            "a route under a missing router",
            "PUT",
            "/v20190125/meshes/demomesh/virtualRouter/ghost-vr/routes",
            Some(json!({"routeName": "r", "spec": route_spec(&[("product-vn", 1)])}).to_string()),
        ))
        .mentions(&["ghost-vr"]),
        not_found(case(
            "a gateway route under a missing gateway",
            "GET",
            "/v20190125/meshes/demomesh/virtualGateway/ghost-gw/gatewayRoutes",
            None,
        ))
        .mentions(&["ghost-gw"]),
        not_found(case(
            "a node in a missing mesh",
            "PUT",
            &format!("{ghost_mesh}/virtualNodes"),
            Some(ghost_mesh_node.to_string()),
        ))
        .mentions(&["ghostmesh"]),
        not_found(case(
            "routers of a missing mesh",
            "GET",
            &format!("{ghost_mesh}/virtualRouters"),
            None,
        ))
        .mentions(&["ghostmesh"]),
        not_found(case(
            "a service of a missing mesh",
            "GET",
            &format!("{ghost_mesh}/virtualServices/x.local"),
            None,
        ))
        .mentions(&["ghostmesh"]),
        not_found(case(
            "a snapshot of a missing mesh",
            "GET",
            "/v1/meshes/ghostmesh/snapshot",
            None,
        ))
        .mentions(&["ghostmesh"]),
        not_found(case(
            "a workload of a missing node",
            "PUT",
            "/v1/meshes/demomesh/workloads/w",
            Some(json!({"virtualNode": "ghost-vn", "command": ["x"]}).to_string()),
        ))
        .mentions(&["ghost-vn", "virtualNode"]),
        // Shape errors come first, as 400s, even when a reference is missing too.
        case(
            "a bad weight and missing targets",
            "PUT",
            &route_path,
            Some(shape_and_reference.to_string()),
        )
        .mentions(&["weightedTargets[1].weight"]),
    ];
    for c in &cases {
        check(url, c);
    }
}
