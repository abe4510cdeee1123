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

fn snapshot() -> Value {
    json!({
        "revision": 7,
        "mesh": { "meshName": "m" },
        "virtualNodes": [node("web-vn", Some(http_check())), node("bare-vn", None)],
        "workloads": [workload("web", 2)],
        "endpoints": [],
    })
}

fn change(kind: &str, kind_of_change: &str, name: &str, resource: Value, revision: u64) -> Value {
    json!({ "revision": revision, "type": kind_of_change, "kind": kind, "mesh": "m",
            "name": name, "resource": resource })
}

#[test]
fn a_snapshot_gives_workloads_and_first_listener_health_checks() {
    let desired = Desired::from_snapshot(&snapshot()).unwrap();
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
    assert!(Desired::from_snapshot(&json!({ "workloads": [] })).is_err());
    let mut broken = snapshot();
    broken["workloads"] = json!([{ "name": "web" }]);
    let error = Desired::from_snapshot(&broken).unwrap_err();
    assert!(error.contains("workload"), "{error}");
}

#[test]
fn workload_events_add_change_and_remove() {
    let mut desired = Desired::from_snapshot(&snapshot()).unwrap();
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
    let mut desired = Desired::from_snapshot(&snapshot()).unwrap();
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
    let mut desired = Desired::from_snapshot(&snapshot()).unwrap();
    assert!(
        desired
            .apply(&change("Mesh", "delete", "m", Value::Null, 8))
            .unwrap()
    );
    assert!(desired.workloads.is_empty() && desired.nodes.is_empty());
}

#[test]
fn an_unknown_change_type_is_an_error() {
    let mut desired = Desired::default();
    assert!(
        desired
            .apply(&change("Workload", "patch", "web", workload("web", 1), 1))
            .is_err()
    );
}
