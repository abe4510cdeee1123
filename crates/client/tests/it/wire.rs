//! The `/v1` views of a real control plane, captured raw and read through `model::wire`: every field kept, the shapes as documented.

use model::wire::{
    CanaryCommand, Change, Endpoint, MeshSnapshot, NodeStats, Object, Op, StatsReport, StatsView,
    WatchEvent,
};
use model::{Kind, ResourcePath};
use serde_json::{Value, json};

use crate::{Client, Replica, memory_store};

/// The raw JSON of a GET, as a dashboard would read it.
async fn raw(url: &str, path: &str) -> Value {
    let answer = reqwest::get(format!("{url}{path}")).await.unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.unwrap()
}

/// `raw` read as a `T` and written back: nothing the server sent is lost or renamed.
#[track_caller]
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(raw: &Value) -> T {
    let typed: T = serde_json::from_value(raw.clone()).expect("the view reads");
    assert_eq!(&serde_json::to_value(&typed).unwrap(), raw);
    typed
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// A mesh with two versions of a node behind a route, an endpoint, a workload and a canary.
async fn demo(client: &Client) {
    client
        .create(&ResourcePath::mesh("m"), &json!({}), None)
        .await
        .unwrap();
    let listener = json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]});
    for node in ["v1", "v2"] {
        let path = ResourcePath::new(Kind::VirtualNode, "m", None, node);
        client.create(&path, &listener, None).await.unwrap();
    }
    let router = ResourcePath::new(Kind::VirtualRouter, "m", None, "vr");
    client.create(&router, &listener, None).await.unwrap();
    let route = ResourcePath::new(Kind::Route, "m", Some("vr".into()), "r");
    let spec = json!({"httpRoute": {"match": {"prefix": "/"},
        "action": {"weightedTargets": [{"virtualNode": "v1", "weight": 100}]}}});
    client.create(&route, &spec, None).await.unwrap();
    let endpoint = json!({"address": "127.0.0.1", "port": 9000, "healthy": false});
    client
        .put_object("m", "endpoints/v1", "e1", &endpoint)
        .await
        .unwrap();
    let workload = json!({"virtualNode": "v2", "command": ["run"], "env": {"TOKEN": "s"}});
    client
        .put_object("m", "workloads", "w2", &workload)
        .await
        .unwrap();
    let canary = json!({"mesh": "m", "router": "vr", "route": "r", "stableNode": "v1",
        "canaryNode": "v2", "strategy": {"type": "steps", "stepWeight": 25, "interval": "1m"},
        "analysis": {"minRequests": 2}});
    client.create_canary("m", "c1", &canary).await.unwrap();
}

#[tokio::test]
async fn snapshots_watch_events_stats_and_canaries_read_through_the_wire_types() {
    let store = memory_store();
    let replica = Replica::start(&store).await;
    let client = Client::new(&replica.url);
    demo(&client).await;

    let snapshot = raw(&replica.url, "/v1/meshes/m/snapshot").await;
    assert_eq!(
        keys(&snapshot),
        [
            "revision",
            "virtualNodes",
            "virtualRouters",
            "routes",
            "virtualServices",
            "virtualGateways",
            "gatewayRoutes",
            "endpoints",
            "workloads",
            "canaries",
            "mesh"
        ]
    );
    let typed: MeshSnapshot = round_trips(&snapshot);
    assert_eq!(typed.resources(Kind::VirtualNode).len(), 2);
    assert_eq!(
        typed.endpoints,
        [Endpoint {
            virtual_node: "v1".into(),
            id: "e1".into(),
            address: "127.0.0.1".into(),
            port: 9000,
            healthy: false,
            mesh_tls: false,
            workload: None,
        }]
    );
    assert_eq!(
        typed.workloads[0].env["TOKEN"], "s",
        "no auth here: an admin's view"
    );
    let canary = typed.canaries[0].decode().unwrap();
    assert_eq!(
        (canary.name.as_str(), canary.state.canary_weight),
        ("c1", 25)
    );
    assert_eq!(client.snapshot("m").await.unwrap(), typed);

    // Every change so far, each as its kind's variant, the canary's weight write included.
    let mut stream = client.watch("m", 0).await.unwrap();
    let mut kinds = Vec::new();
    while let Ok(Ok(Some(event))) =
        tokio::time::timeout(std::time::Duration::from_millis(500), stream.next()).await
    {
        let WatchEvent::Change(Change {
            op: Op::Put(object),
            ..
        }) = event
        else {
            panic!("only puts so far: {event:?}");
        };
        kinds.push(object.kind().as_str());
        if let Object::Endpoint(endpoint) = object {
            assert_eq!(endpoint.port, 9000);
        }
    }
    assert_eq!(
        kinds,
        [
            "Mesh",
            "VirtualNode",
            "VirtualNode",
            "VirtualRouter",
            "Route",
            "Endpoint",
            "Workload",
            "Canary",
            "Route",
            "Canary"
        ],
        "the canary is stored, its weights written, then its actions recorded"
    );

    let report = StatsReport {
        proxy: "test".into(),
        nodes: vec![
            NodeStats {
                virtual_node: "v1".into(),
                requests: 4,
                status_2xx: 3,
                status_5xx: 1,
                ..NodeStats::default()
            },
            NodeStats {
                virtual_node: "v2".into(),
                requests: 1,
                status_2xx: 1,
                ..NodeStats::default()
            },
        ],
    };
    client.post_stats("m", &report).await.unwrap();
    let stats = raw(&replica.url, "/v1/meshes/m/stats?window=10s").await;
    assert_eq!(
        keys(&stats["nodes"][0]),
        [
            "virtualNode",
            "requests",
            "requestsPerSecond",
            "status2xx",
            "status4xx",
            "status5xx",
            "failures",
            "errorRate",
            "p50Ms",
            "p99Ms"
        ]
    );
    let typed: StatsView = round_trips(&stats);
    assert_eq!(typed.node("v1").unwrap().error_rate, 0.25);

    let one = raw(&replica.url, "/v1/meshes/m/canaries/c1").await;
    let view: model::wire::CanaryView = round_trips(&one);
    assert_eq!((view.status.step, view.status.steps), (1, 3));
    let summary = one["status"]["summary"].as_str().unwrap();
    // The step's one canary request, from the stats pushed just now.
    assert!(
        summary.starts_with("step 1 of 3 (25% to canary): analysis interval")
            && summary.contains("; waiting for traffic: 1 of 2 canary requests in this step"),
        "{summary}"
    );
    let list = raw(&replica.url, "/v1/meshes/m/canaries").await;
    let listed: model::wire::CanaryList = round_trips(&list);
    assert_eq!(listed.canaries[0].record, view.record);

    let paused = client
        .command_canary("m", "c1", CanaryCommand::Pause, None)
        .await
        .unwrap();
    assert_eq!(
        paused.status.waiting[0].text, "paused",
        "{:?}",
        paused.status
    );
    replica.stop().await;
}
