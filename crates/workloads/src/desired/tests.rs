//! Unit tests of the desired state: snapshot parsing and watch events.

use serde_json::{Value, json};

use super::*;

fn node(name: &str, health_check: Option<Value>) -> Value {
    let mut listener = json!({ "portMapping": { "port": 8080, "protocol": "http" } });
    if let Some(check) = health_check {
        listener["healthCheck"] = check;
    }
    json!({ "virtualNodeName": name, "spec": { "listeners": [listener] } })
}

fn workload(name: &str, replicas: u32) -> Value {
    json!({ "name": name, "virtualNode": "web-vn", "command": ["web"], "replicas": replicas })
}

fn http_check() -> Value {
    json!({ "protocol": "http", "path": "/health", "intervalMillis": 5000, "timeoutMillis": 2000,
            "healthyThreshold": 2, "unhealthyThreshold": 3 })
}

/// What the client hands over for a snapshot's JSON.
fn wire(snapshot: Value) -> Result<MeshSnapshot, String> {
    serde_json::from_value(snapshot).map_err(|e| e.to_string())
}

fn desired(snapshot: Value) -> Result<Desired, String> {
    Desired::from_snapshot(&wire(snapshot)?)
}

fn snapshot() -> Value {
    json!({
        "revision": 7,
        "mesh": { "meshName": "m" },
        "virtualNodes": [node("web-vn", Some(http_check())), node("bare-vn", None)],
        "workloads": [workload("web", 2)],
        "endpoints": [],
    })
}

fn change(kind: &str, kind_of_change: &str, name: &str, resource: Value, revision: u64) -> Change {
    let data = json!({ "revision": revision, "type": kind_of_change, "kind": kind, "mesh": "m",
            "name": name, "resource": resource });
    serde_json::from_value(data).expect("a well-formed change")
}

#[test]
fn a_snapshot_gives_workloads_and_first_listener_health_checks() {
    let desired = desired(snapshot()).unwrap();
    assert_eq!(desired.revision, 7);
    assert_eq!(desired.workloads["web"].replicas, 2);
    assert_eq!(desired.workloads["web"].command, ["web"]);
    let web = &desired.nodes["web-vn"];
    assert_eq!(web.listener_port, Some(8080));
    let check = web.check.as_ref().unwrap();
    assert_eq!(
        (check.protocol.as_str(), check.path.as_deref()),
        ("http", Some("/health"))
    );
    assert_eq!((check.healthy_threshold, check.unhealthy_threshold), (2, 3));
    assert_eq!(desired.nodes["bare-vn"].check, None);
}

#[test]
fn a_snapshot_without_revision_or_with_a_broken_workload_is_refused() {
    assert!(desired(json!({ "workloads": [] })).is_err());
    let mut broken = snapshot();
    broken["workloads"] = json!([{ "name": "web" }]);
    let error = desired(broken).unwrap_err();
    assert!(error.contains("missing field `virtualNode`"), "{error}");
    let mut nameless = snapshot();
    nameless["virtualNodes"] = json!([{ "spec": {} }]);
    assert!(desired(nameless).unwrap_err().contains("virtualNodeName"));
}

#[test]
fn workload_events_add_change_and_remove() {
    let mut desired = desired(snapshot()).unwrap();
    assert!(
        desired
            .apply(&change("Workload", "put", "api", workload("api", 1), 8))
            .unwrap()
    );
    assert_eq!(desired.workloads.len(), 2);
    assert!(
        !desired
            .apply(&change("Workload", "put", "api", workload("api", 1), 9))
            .unwrap(),
        "the same spec again changes nothing"
    );
    assert!(
        desired
            .apply(&change("Workload", "put", "api", workload("api", 3), 10))
            .unwrap()
    );
    assert_eq!(desired.workloads["api"].replicas, 3);
    assert!(
        desired
            .apply(&change("Workload", "delete", "api", Value::Null, 11))
            .unwrap()
    );
    assert!(!desired.workloads.contains_key("api"));
    assert_eq!(desired.revision, 11);
}

#[test]
fn node_events_change_health_checks_and_other_kinds_only_move_the_revision() {
    let mut desired = desired(snapshot()).unwrap();
    let tcp = json!({ "protocol": "tcp", "intervalMillis": 5000, "timeoutMillis": 2000,
                      "healthyThreshold": 2, "unhealthyThreshold": 2 });
    assert!(
        desired
            .apply(&change(
                "VirtualNode",
                "put",
                "web-vn",
                node("web-vn", Some(tcp)),
                8
            ))
            .unwrap()
    );
    assert_eq!(
        desired.nodes["web-vn"].check.as_ref().unwrap().protocol,
        "tcp"
    );
    let endpoint =
        json!({ "virtualNode": "web-vn", "id": "web-0", "address": "127.0.0.1", "port": 1 });
    assert!(
        !desired
            .apply(&change("Endpoint", "put", "web-0", endpoint, 9))
            .unwrap()
    );
    assert!(
        !desired
            .apply(&change("Route", "delete", "r", Value::Null, 10))
            .unwrap()
    );
    assert_eq!(desired.revision, 10);
    assert!(
        desired
            .apply(&change("VirtualNode", "delete", "bare-vn", Value::Null, 11))
            .unwrap()
    );
    assert!(!desired.nodes.contains_key("bare-vn"));
}

#[test]
fn a_deleted_mesh_wants_nothing() {
    let mut desired = desired(snapshot()).unwrap();
    assert!(
        desired
            .apply(&change("Mesh", "delete", "m", Value::Null, 8))
            .unwrap()
    );
    assert!(desired.workloads.is_empty() && desired.nodes.is_empty());
}

#[test]
fn an_unknown_change_type_does_not_read() {
    let data = json!({ "revision": 1, "type": "patch", "kind": "Workload", "mesh": "m",
        "name": "web", "resource": workload("web", 1) });
    assert!(serde_json::from_value::<Change>(data).is_err());
}
