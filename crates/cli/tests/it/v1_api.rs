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
    let stats = format!("{url}/v1/meshes/demomesh/stats");
    let report = |proxy: &str, node: &str, ok: u64, errors: u64| {
        json!({"proxy": proxy, "nodes": [{"virtualNode": node, "requests": ok + errors,
            "status2xx": ok, "status4xx": 0, "status5xx": errors, "latencyBuckets": [0, 0, 0, 0, 0, 0, 0, 0, ok + errors]}]})
        .to_string()
    };
    assert_eq!(
        http("POST", &stats, Some(&report("gw", "product-vn", 90, 0))).0,
        204
    );
    assert_eq!(
        http("POST", &stats, Some(&report("order", "product-vn", 10, 0))).0,
        204
    );
    assert_eq!(
        http("POST", &stats, Some(&report("gw", "product-v2-vn", 5, 5))).0,
        204
    );

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
        (Some("product-v2-vn"), Some(10))
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

    for bad in ["?window=forever", "?window=61s", "?window=0s"] {
        let (status, _, body) = http("GET", &format!("{stats}{bad}"), None);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("window"), "{body}");
    }
    let (status, _, body) = http(
        "POST",
        &stats,
        Some(r#"{"proxy":"x","nodes":[{"virtualNode":"a","requests":"many"}]}"#),
    );
    assert_eq!(status, 400, "{body}");
}
