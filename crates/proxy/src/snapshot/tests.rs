//! Parsing, applying watch events, and the saved state file.

use serde_json::json;

use super::*;

/// A watch event's data as the client hands it over.
fn change(data: Value) -> Change {
    serde_json::from_value(data).expect("a well-formed change")
}

fn sample() -> Value {
    json!({
        "revision": 7,
        "mesh": {"meshName": "m", "spec": {}},
        "virtualNodes": [{"meshName": "m", "virtualNodeName": "a", "spec": {}}],
        "virtualRouters": [{"meshName": "m", "virtualRouterName": "r", "spec": {}}],
        "routes": [{"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {}}],
        "virtualServices": [],
        "virtualGateways": [],
        "gatewayRoutes": [],
        "endpoints": [{"virtualNode": "a", "id": "a-1", "address": "127.0.0.1", "port": 9000,
            "healthy": true}]
    })
}

#[test]
fn parses_and_renders_the_control_plane_shape() {
    let snapshot = Snapshot::from_json(&sample()).unwrap();
    assert_eq!(snapshot.revision, 7);
    assert!(snapshot.get(Kind::Route, Some("r"), "x").is_some());
    assert!(snapshot.get(Kind::Route, None, "x").is_none());
    assert_eq!(snapshot.of_kind(Kind::VirtualNode).count(), 1);
    let mut written = sample();
    written["workloads"] = json!([]);
    written["canaries"] = json!([]);
    assert_eq!(serde_json::to_value(snapshot.to_wire()).unwrap(), written);
    assert!(Snapshot::from_json(&json!({"mesh": {}})).is_err());
}

#[test]
fn watch_events_put_and_delete_resources_and_advance_the_revision() {
    let mut snapshot = Snapshot::from_json(&sample()).unwrap();
    let put = json!({"revision": 8, "type": "put", "kind": "VirtualNode", "mesh": "m",
        "name": "b", "resource": {"meshName": "m", "virtualNodeName": "b", "spec": {}}});
    assert_eq!(snapshot.apply(&change(put.clone())), Ok(Applied::Changed));
    assert!(snapshot.get(Kind::VirtualNode, None, "b").is_some());
    let delete = json!({"revision": 9, "type": "delete", "kind": "Route", "mesh": "m",
        "name": "x", "parent": "r", "resource": null});
    assert_eq!(
        snapshot.apply(&change(delete.clone())),
        Ok(Applied::Changed)
    );
    assert!(snapshot.get(Kind::Route, Some("r"), "x").is_none());
    assert_eq!(snapshot.revision, 9);
    let mesh_gone = json!({"revision": 10, "type": "delete", "kind": "Mesh", "mesh": "m",
        "name": "m", "resource": null});
    snapshot.apply(&change(mesh_gone.clone())).unwrap();
    assert_eq!(snapshot.mesh, None);
    let unknown = json!({"revision": 11, "type": "put", "kind": "Workload", "mesh": "m",
        "name": "w", "resource": {"name": "w", "virtualNode": "a", "command": ["x"]}});
    assert_eq!(
        snapshot.apply(&change(unknown.clone())),
        Ok(Applied::Ignored)
    );
    assert_eq!(snapshot.revision, 11);
    let newer = json!({"revision": 12, "type": "put", "kind": "Job", "mesh": "m",
        "name": "j", "resource": {}});
    assert_eq!(snapshot.apply(&change(newer)), Ok(Applied::Ignored));
    assert_eq!(snapshot.revision, 12);
    assert!(serde_json::from_value::<Change>(json!({"revision": 13, "kind": "Route"})).is_err());
}

#[test]
fn saved_state_loads_back_and_a_missing_file_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Snapshot::load(dir.path(), "m").unwrap(), None);
    let snapshot = Snapshot::from_json(&sample()).unwrap();
    snapshot.save(dir.path(), "m").unwrap();
    assert_eq!(Snapshot::load(dir.path(), "m").unwrap(), Some(snapshot));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(leftovers, ["snapshot-m.json"], "no temporary file is left");
    std::fs::write(Snapshot::state_file(dir.path(), "m"), "{").unwrap();
    assert!(Snapshot::load(dir.path(), "m").is_err());
}

#[test]
fn endpoint_events_replace_and_remove_registered_endpoints() {
    let mut snapshot = Snapshot::from_json(&sample()).unwrap();
    let endpoint = |port: u16, healthy: bool| {
        json!({"virtualNode": "a", "id": "a-1", "address": "127.0.0.1", "port": port,
            "healthy": healthy})
    };
    let put = json!({"revision": 8, "type": "put", "kind": "Endpoint", "mesh": "m",
        "name": "a-1", "parent": "a", "resource": endpoint(9001, false)});
    assert_eq!(snapshot.apply(&change(put.clone())), Ok(Applied::Changed));
    let expected: Endpoint = serde_json::from_value(endpoint(9001, false)).unwrap();
    assert_eq!(snapshot.endpoints, [expected], "replaced, not added");
    let other = json!({"revision": 9, "type": "put", "kind": "Endpoint", "mesh": "m",
        "name": "a-2", "parent": "a", "resource": {"virtualNode": "a", "id": "a-2",
        "address": "127.0.0.1", "port": 9002, "healthy": true}});
    snapshot.apply(&change(other.clone())).unwrap();
    assert_eq!(snapshot.endpoints.len(), 2);
    let delete = json!({"revision": 10, "type": "delete", "kind": "Endpoint", "mesh": "m",
        "name": "a-1", "parent": "a", "resource": null});
    snapshot.apply(&change(delete.clone())).unwrap();
    assert_eq!(snapshot.endpoints.len(), 1);
    assert_eq!(snapshot.endpoints[0].id, "a-2");
    assert_eq!(snapshot.revision, 10);
}

/// A canary record of route `x` of router `r` (stable `a`, canary `b`) at step `step`: 0 the
/// mirror step, 1 the match step, 2 the first weighted one.
fn canary(step: usize, acted: usize) -> Value {
    let spec: rollout::CanarySpec = serde_json::from_value(json!({
        "mesh": "m", "router": "r", "route": "x", "stableNode": "a", "canaryNode": "b",
        "strategy": {"type": "steps", "stepWeight": 50, "interval": "5m"},
        "mirror": {"percent": 10},
        "match": [{"header": "x-canary", "exact": "yes"}],
    }))
    .unwrap();
    let (mut state, _) = rollout::start(&spec, 0);
    state.step = step;
    let record = model::wire::CanaryRecord {
        name: "c".into(),
        spec,
        state,
        acted,
        notes: Vec::new(),
    };
    serde_json::to_value(record).unwrap()
}

fn canary_put(revision: u64, record: Value) -> Change {
    change(
        json!({"revision": revision, "type": "put", "kind": "Canary", "mesh": "m",
        "name": "c", "resource": record}),
    )
}

#[test]
fn canary_events_change_the_snapshot_only_when_the_exposure_moves() {
    let mut with = sample();
    with["canaries"] = json!([canary(0, 0)]);
    let mut snapshot = Snapshot::from_json(&with).unwrap();
    let exposures: Vec<_> = snapshot.exposures().collect();
    assert_eq!(exposures.len(), 1);
    assert_eq!(exposures[0].mirror_percent, Some(10));
    assert_eq!(
        serde_json::to_value(snapshot.to_wire()).unwrap()["canaries"],
        json!([canary(0, 0)]),
        "saved as received"
    );
    // The record rewritten, its exposure the same (acted on, say): nothing to compile.
    let same = snapshot.apply(&canary_put(8, canary(0, 1)));
    assert_eq!(same, Ok(Applied::Ignored));
    assert_eq!(snapshot.revision, 8);
    assert_eq!(
        serde_json::to_value(snapshot.to_wire()).unwrap()["canaries"][0]["acted"],
        1,
        "the newest record is kept"
    );
    // Mirror step to match step.
    assert_eq!(
        snapshot.apply(&canary_put(9, canary(1, 1))),
        Ok(Applied::Changed)
    );
    let now: Vec<_> = snapshot.exposures().collect();
    assert_eq!((now[0].mirror_percent, now[0].matches.len()), (None, 1));
    // A record this build cannot read is dropped, with what it exposed.
    let mut unreadable = canary(1, 1);
    unreadable["spec"]["newOption"] = json!(true);
    assert_eq!(
        snapshot.apply(&canary_put(10, unreadable.clone())),
        Ok(Applied::Changed)
    );
    assert_eq!(snapshot.exposures().count(), 0);
    assert_eq!(
        snapshot.apply(&canary_put(11, unreadable)),
        Ok(Applied::Ignored)
    );
    assert_eq!(
        snapshot.apply(&canary_put(12, canary(1, 1))),
        Ok(Applied::Changed)
    );
    let delete = change(
        json!({"revision": 13, "type": "delete", "kind": "Canary", "mesh": "m",
        "name": "c", "resource": null}),
    );
    assert_eq!(snapshot.apply(&delete), Ok(Applied::Changed));
    assert_eq!(snapshot.apply(&delete), Ok(Applied::Ignored));
    assert_eq!(snapshot.exposures().count(), 0);
}

#[test]
fn a_snapshot_with_an_unreadable_canary_still_loads() {
    let mut with = sample();
    let mut unreadable = canary(0, 0);
    unreadable["name"] = json!("d");
    unreadable["state"] = json!("garbage");
    with["canaries"] = json!([unreadable, canary(1, 0)]);
    let snapshot = Snapshot::from_json(&with).unwrap();
    assert_eq!(snapshot.exposures().count(), 1);
    assert!(snapshot.get(Kind::Route, Some("r"), "x").is_some());
}
