//! Black-box integration tests of `aviary control`: a real child process on 127.0.0.1:0, driven
//! by the real AWS CLI and by raw HTTP, checked against the App Mesh 2019-01-25 API contract and
//! aviary's own `/v1` snapshot and watch API. Shared helpers live here; each module is one area.

mod appmesh_cli;
mod auth;
mod aviary_cli;
mod bad_input;
mod bounds;
mod canary;
mod concurrency;
mod console;
mod durability;
mod examples;
mod exposure;
mod fuzz;
#[cfg(feature = "etcd")]
mod ha;
mod hosts;
mod import;
mod judgement;
mod limits;
mod mesh_ca;
mod observability;
mod pipeline;
mod replica_ratio;
mod replicas;
mod tls;
mod tracing;
mod v1_api;
mod walkthrough;
mod watch;
mod webhooks;
mod yelb;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{ControlProcess, aws_command, http_json, run};

/// The `aviary` binary Cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_aviary"))
}

/// `aviary` as the tests run it: as the seeded admin of testkit's control planes (never the
/// admin token of a `.aviary` that happens to be in the working directory).
pub fn aviary_cmd() -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.env("AVIARY_TOKEN", testkit::TEST_ADMIN_TOKEN)
        .env_remove("AVIARY_DATA_DIR");
    cmd
}

/// A new `proxy` token for `mesh` (named `name`), created by the seeded admin.
pub fn proxy_token(url: &str, mesh: &str, name: &str) -> String {
    new_token(url, &json!({"name": name, "role": "proxy", "mesh": mesh}))
}

/// A new token as `body` (`POST /v1/tokens`) asks, created by the seeded admin.
pub fn new_token(url: &str, body: &Value) -> String {
    let (status, _, out) = http_json("POST", &format!("{url}/v1/tokens"), Some(&body.to_string()));
    assert_eq!(status, 201, "{out}");
    out["token"].as_str().expect("a token").to_string()
}

/// [`testkit::http`] with `token` instead of the seeded admin's.
pub fn http_with(
    method: &str,
    url: &str,
    body: Option<&str>,
    token: &str,
) -> (u16, testkit::Headers, String) {
    let auth = format!("Bearer {token}");
    testkit::http_as(method, url, body, &[("Authorization", &auth)])
}

/// A fresh control plane on its own temporary data directory.
pub fn start() -> ControlProcess {
    ControlProcess::start(bin())
}

/// `examples/demomesh`: the reference walkthrough's files.
pub fn demomesh_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demomesh")
}

/// `file:///.../examples/demomesh/appmesh/NAME.json`, for `--cli-input-json`.
pub fn cli_input(name: &str) -> String {
    let path = demomesh_dir().join("appmesh").join(format!("{name}.json"));
    let path = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("file://{}", path.display())
}

/// `examples/demomesh/appmesh/NAME.json`, parsed.
pub fn example(name: &str) -> Value {
    let path = demomesh_dir().join("appmesh").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The step-1 files in an order that creates every resource after what it refers to; the same
/// order as `create.sh`.
pub const STEP1: [&str; 15] = [
    "mesh",
    "product-vn",
    "customer-vn",
    "product-vr",
    "customer-vr",
    "product-r",
    "customer-r",
    "vs-product",
    "vs-customer",
    "order-vn",
    "order-vr",
    "order-r",
    "vs-order",
    "demo-gw",
    "order-gr",
];

/// Builds step 1 by running `examples/demomesh/create.sh URL`, the AWS CLI way.
pub fn create_with_script(url: &str) -> String {
    let script = demomesh_dir().join("create.sh");
    let mut cmd = aws_command("bash");
    cmd.arg(&script).arg(url);
    let out = run(&mut cmd, Duration::from_secs(180));
    assert!(
        out.success(),
        "create.sh failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Builds step 1 over raw HTTP (much faster than 15 CLI runs), from the same files.
pub fn create_step1_raw(url: &str) {
    for name in STEP1 {
        let (status, body) = apply_raw(url, &example(name), Write::Create);
        assert_eq!(status, 200, "creating {name}: {body}");
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Write {
    Create,
    Update,
}

/// The REST call (path and body) that `aws appmesh create-*|update-*` makes for a CLI input file:
/// names that live in the URI leave the body, as the CLI does with the service model.
pub fn rest_call(input: &Value, write: Write) -> (String, Value) {
    let field = |key: &str| input.get(key).and_then(Value::as_str).map(str::to_string);
    let mesh = field("meshName").expect("every input names its mesh");
    let mut body = input.clone();
    let body_map = body.as_object_mut().expect("input is an object");
    body_map.remove("meshName");
    // (collection path, the field naming the resource)
    let (collection, name_key) = if let Some(gateway) =
        field("virtualGatewayName").filter(|_| input.get("gatewayRouteName").is_some())
    {
        body_map.remove("virtualGatewayName");
        (
            format!("meshes/{mesh}/virtualGateway/{gateway}/gatewayRoutes"),
            "gatewayRouteName",
        )
    } else if let Some(router) =
        field("virtualRouterName").filter(|_| input.get("routeName").is_some())
    {
        body_map.remove("virtualRouterName");
        (
            format!("meshes/{mesh}/virtualRouter/{router}/routes"),
            "routeName",
        )
    } else if input.get("virtualNodeName").is_some() {
        (format!("meshes/{mesh}/virtualNodes"), "virtualNodeName")
    } else if input.get("virtualRouterName").is_some() {
        (format!("meshes/{mesh}/virtualRouters"), "virtualRouterName")
    } else if input.get("virtualServiceName").is_some() {
        (
            format!("meshes/{mesh}/virtualServices"),
            "virtualServiceName",
        )
    } else if input.get("virtualGatewayName").is_some() {
        (
            format!("meshes/{mesh}/virtualGateways"),
            "virtualGatewayName",
        )
    } else {
        body_map.insert("meshName".into(), json!(mesh));
        ("meshes".to_string(), "meshName")
    };
    match write {
        Write::Create => (format!("/v20190125/{collection}"), body),
        Write::Update => {
            let name = field(name_key).expect("input names the resource");
            body.as_object_mut().unwrap().remove(name_key);
            let item = if name_key == "meshName" {
                format!("meshes/{name}")
            } else {
                format!("{collection}/{name}")
            };
            (format!("/v20190125/{item}"), body)
        }
    }
}

/// Sends the REST form of a CLI input file; returns status and parsed body.
pub fn apply_raw(url: &str, input: &Value, write: Write) -> (u16, Value) {
    let (path, body) = rest_call(input, write);
    let (status, _, json) = http_json("PUT", &format!("{url}{path}"), Some(&body.to_string()));
    (status, json)
}

/// `GET /v1/meshes/{mesh}/snapshot`, which must succeed.
pub fn snapshot(url: &str, mesh: &str) -> Value {
    let (status, _, body) = http_json("GET", &format!("{url}/v1/meshes/{mesh}/snapshot"), None);
    assert_eq!(status, 200, "snapshot of {mesh}: {body}");
    body
}

/// The store revision a mesh snapshot was taken at.
pub fn snapshot_revision(url: &str, mesh: &str) -> u64 {
    let body = snapshot(url, mesh);
    body["revision"]
        .as_u64()
        .unwrap_or_else(|| panic!("snapshot has no numeric revision: {body}"))
}

/// An httpRoute spec with prefix `/` and these targets.
pub fn route_spec(targets: &[(&str, i64)]) -> Value {
    let targets: Vec<Value> = targets
        .iter()
        .map(|(node, weight)| json!({"virtualNode": node, "weight": weight}))
        .collect();
    json!({"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": targets}}})
}

/// Panics unless every field of `expected` is in `actual` with the same value (recursively;
/// arrays must match element by element). The server may add defaults, never change or drop.
#[track_caller]
pub fn assert_contains(actual: &Value, expected: &Value) {
    fn walk(actual: &Value, expected: &Value, at: &str) -> Result<(), String> {
        match (actual, expected) {
            (Value::Object(a), Value::Object(e)) => e.iter().try_for_each(|(k, ev)| {
                let av = a.get(k).ok_or_else(|| format!("{at}.{k} is missing"))?;
                walk(av, ev, &format!("{at}.{k}"))
            }),
            (Value::Array(a), Value::Array(e)) if a.len() == e.len() => a
                .iter()
                .zip(e)
                .enumerate()
                .try_for_each(|(i, (av, ev))| walk(av, ev, &format!("{at}[{i}]"))),
            _ if actual == expected => Ok(()),
            _ => Err(format!("{at}: expected {expected}, got {actual}")),
        }
    }
    if let Err(problem) = walk(actual, expected, "") {
        panic!("{problem}\n--- actual\n{actual:#}\n--- expected\n{expected:#}");
    }
}
