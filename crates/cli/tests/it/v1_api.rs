//! aviary's own `/v1` API beyond snapshot and watch: endpoint registration (what the workload
//! supervisor and proxies use) and the stats proxies push for canary analysis.

use std::time::Duration;

use serde_json::json;
use testkit::{EventStream, http, http_json};

use crate::{create_step1_raw, snapshot, snapshot_revision, start};

#[test]
fn endpoints_register_show_in_snapshot_and_watch_and_go_with_their_node() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let revision = snapshot_revision(url, "demomesh");
    let mut events = EventStream::open(&format!(
        "{url}/v1/meshes/demomesh/watch?fromRevision={revision}"
    ));

    let endpoint = format!("{url}/v1/meshes/demomesh/endpoints/product-vn/r1");
    let body = json!({"address": "127.0.0.1", "port": 18080}).to_string();
    let (status, _, answer) = http_json("PUT", &endpoint, Some(&body));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"virtualNode": "product-vn", "id": "r1", "address": "127.0.0.1", "port": 18080, "healthy": true})
    );
    assert_eq!(snapshot(url, "demomesh")["endpoints"], json!([answer]));
    let event = events
        .next_event(Duration::from_secs(5))
        .expect("an event for the endpoint");
    let data = event.json();
    assert_eq!(
        (
            data["kind"].as_str(),
            data["parent"].as_str(),
            data["name"].as_str()
        ),
        (Some("Endpoint"), Some("product-vn"), Some("r1"))
    );
    assert_eq!(data["resource"]["port"], 18080);

    // Bad registrations answer 4xx naming the problem and change nothing.
    let before = snapshot(url, "demomesh");
    let cases = [
        (
            "product-vn/r2",
            json!({"address": "not-an-ip", "port": 1}),
            400,
            "address",
        ),
        (
            "product-vn/r2",
            json!({"address": "127.0.0.1", "port": 0}),
            400,
            "port",
        ),
        (
            "product-vn/r2",
            json!({"address": "127.0.0.1"}),
            400,
            "port",
        ),
        (
            "product-vn/r2",
            json!({"address": "127.0.0.1", "port": 1, "virtualNode": "other"}),
            400,
            "virtualNode",
        ),
        (
            "ghost-vn/r2",
            json!({"address": "127.0.0.1", "port": 1}),
            404,
            "ghost-vn",
        ),
        (
            "product-vn/a%2Fb",
            json!({"address": "127.0.0.1", "port": 1}),
            400,
            "id",
        ),
    ];
    for (path, body, expected, names) in cases {
        let (status, _, answer) = http(
            "PUT",
            &format!("{url}/v1/meshes/demomesh/endpoints/{path}"),
            Some(&body.to_string()),
        );
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert!(
            answer.contains(names),
            "{path} {body}: '{names}' not in {answer}"
        );
    }
    assert_eq!(snapshot(url, "demomesh"), before);

    // Deleting the node (after the routes stop using it) takes its endpoints along.
    let spec = crate::route_spec(&[("customer-vn", 1)]);
    let route =
        format!("{url}/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r");
    assert_eq!(
        http("PUT", &route, Some(&json!({"spec": spec}).to_string())).0,
        200
    );
    let vs = format!("{url}/v20190125/meshes/demomesh/virtualServices/product.demomesh.local");
    assert_eq!(http("DELETE", &vs, None).0, 200);
    assert_eq!(
        http(
            "DELETE",
            &format!("{url}/v20190125/meshes/demomesh/virtualNodes/product-vn"),
            None
        )
        .0,
        200
    );
    assert_eq!(snapshot(url, "demomesh")["endpoints"], json!([]));
    assert_eq!(http("DELETE", &endpoint, None).0, 404);
}

#[test]
fn stats_from_many_proxies_add_up_per_node() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let stats = format!("{url}/v1/meshes/demomesh/stats");
    let token = crate::proxy_token(url, "demomesh", "test-proxies");
    let push = |body: &str| crate::http_with("POST", &stats, Some(body), &token).0;
    let report = |proxy: &str, node: &str, ok: u64, errors: u64| {
        json!({"proxy": proxy, "nodes": [{"virtualNode": node, "requests": ok + errors,
            "status2xx": ok, "status4xx": 0, "status5xx": errors, "latencyBuckets": [0, 0, 0, 0, 0, 0, 0, 0, ok + errors]}]})
        .to_string()
    };
    assert_eq!(push(&report("gw", "product-vn", 90, 0)), 204);
    assert_eq!(push(&report("order", "product-vn", 10, 0)), 204);
    assert_eq!(push(&report("gw", "customer-vn", 5, 5)), 204);

    let (status, _, out) = http_json("GET", &format!("{stats}?window=5s"), None);
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["windowSeconds"], 5.0);
    let nodes = out["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{out}");
    assert_eq!(
        (
            nodes[0]["virtualNode"].as_str(),
            nodes[0]["requests"].as_u64()
        ),
        (Some("customer-vn"), Some(10))
    );
    assert_eq!(nodes[0]["errorRate"], 0.5);
    assert_eq!(
        (
            nodes[1]["virtualNode"].as_str(),
            nodes[1]["requests"].as_u64()
        ),
        (Some("product-vn"), Some(100))
    );
    let p99 = nodes[1]["p99Ms"].as_f64().unwrap();
    assert!((2.5..=4.0).contains(&p99), "p99 {p99} outside its bucket");

    for bad in [
        "?window=forever",
        "?window=11m",
        "?window=0s",
        "?window=999999999999999999m",
    ] {
        let (status, _, body) = http("GET", &format!("{stats}{bad}"), None);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("window"), "{body}");
    }
    let (status, _, body) = crate::http_with(
        "POST",
        &stats,
        Some(r#"{"proxy":"x","nodes":[{"virtualNode":"a","requests":"many"}]}"#),
        &token,
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn workloads_are_validated_stored_applied_and_keep_their_node_in_use() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let workload = format!("{url}/v1/meshes/demomesh/workloads/product-v1");
    let body = json!({"virtualNode": "product-vn", "command": ["aviary-demo", "product", "--version", "1.0"]});
    let (status, _, answer) = http_json("PUT", &workload, Some(&body.to_string()));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["replicas"], 1, "one replica by default: {answer}");
    assert_eq!(answer["env"], json!({}));
    assert_eq!(snapshot(url, "demomesh")["workloads"], json!([answer]));

    let before = snapshot(url, "demomesh");
    let cases = [
        (
            json!({"virtualNode": "product-vn", "command": []}),
            400,
            "command",
        ),
        (
            json!({"virtualNode": "product-vn", "command": ["x"], "replicas": 65}),
            400,
            "replicas",
        ),
        (
            json!({"virtualNode": "ghost-vn", "command": ["x"]}),
            404,
            "ghost-vn",
        ),
        (
            json!({"virtualNode": "product-vn", "command": ["x"], "name": "other"}),
            400,
            "name",
        ),
        (
            json!({"virtualNode": "product-vn", "command": ["x"], "env": {"A=B": "c"}}),
            400,
            "env.A=B",
        ),
        (
            json!({"virtualNode": "product-vn", "command": ["x"], "replica": 2}),
            400,
            "replica",
        ),
    ];
    for (body, expected, names) in cases {
        let (status, _, answer) = http("PUT", &workload, Some(&body.to_string()));
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer.contains(names), "{body}: '{names}' not in {answer}");
    }
    assert_eq!(snapshot(url, "demomesh"), before);

    // The node a workload runs cannot go away under it.
    let vs = format!("{url}/v20190125/meshes/demomesh/virtualServices/product.demomesh.local");
    let route =
        format!("{url}/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r");
    let spec = crate::route_spec(&[("customer-vn", 1)]);
    assert_eq!(
        http("PUT", &route, Some(&json!({"spec": spec}).to_string())).0,
        200
    );
    assert_eq!(http("DELETE", &vs, None).0, 200);
    let node = format!("{url}/v20190125/meshes/demomesh/virtualNodes/product-vn");
    let (status, _, answer) = http("DELETE", &node, None);
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("workload 'product-v1'"), "{answer}");
    assert_eq!(http("DELETE", &workload, None).0, 204);
    assert_eq!(http("GET", &workload, None).0, 404);
    assert_eq!(http("DELETE", &node, None).0, 200);
}

#[test]
fn aviary_apply_and_get_handle_workload_manifests() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let dir = testkit::temp_dir();
    let file = dir.path().join("workload.yaml");
    let manifest = |replicas: u32| {
        format!(
            "kind: Workload\nmetadata: {{name: product-v1, mesh: demomesh}}\nspec:\n  virtualNode: product-vn\n  command: [aviary-demo, product, --version, '1.0']\n  replicas: {replicas}\n"
        )
    };
    let apply = || {
        let mut cmd = crate::aviary_cmd();
        cmd.args(["apply", "-f", &file.display().to_string()])
            .env("AVIARY_CONTROL", url);
        testkit::run(&mut cmd, Duration::from_secs(30))
    };
    std::fs::write(&file, manifest(2)).unwrap();
    assert_eq!(apply().stdout.trim(), "workload/product-v1 created");
    assert_eq!(apply().stdout.trim(), "workload/product-v1 unchanged");
    std::fs::write(&file, manifest(3)).unwrap();
    assert_eq!(apply().stdout.trim(), "workload/product-v1 configured");

    let mut cmd = crate::aviary_cmd();
    cmd.args(["get", "workloads"]).env("AVIARY_CONTROL", url);
    let out = testkit::run(&mut cmd, Duration::from_secs(30));
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("product-v1"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        row.contains("product-vn")
            && row.contains(" 3 ")
            && row.contains("aviary-demo product --version 1.0"),
        "{row}"
    );
}
