//! Deploy planning without IO: the version counter and which ended deploys are forgotten.

use model::wire::{DeployPhase, DeployRecord};

use super::{KEPT_DEPLOYS, next_version, to_forget};

#[test]
fn the_next_version_follows_the_highest_that_exists() {
    let nodes: Vec<String> = [
        "product-1",
        "product-3",
        "product-x",
        "productive-9",
        "other-7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(next_version("product", &nodes), 4);
    assert_eq!(next_version("customer", &nodes), 1);
}

fn deploy(name: &str, created_at: u64, phase: DeployPhase) -> (DeployRecord, u64) {
    let record = serde_json::from_value(serde_json::json!({
        "name": name, "mesh": "m", "phase": phase, "version": 1, "node": "svc-1",
        "service": "svc.m.local", "router": "r", "route": "rt", "createdAt": created_at,
        "updatedAt": created_at,
        "spec": {"microservice_name": "svc", "percentage_step": 10, "wait_time": 1, "command": ["x"]},
    }))
    .unwrap();
    (record, created_at + 1000)
}

#[test]
fn the_oldest_ended_deploys_go_past_the_bound_and_running_ones_stay() {
    let mut existing: Vec<_> = (0..KEPT_DEPLOYS as u64)
        .map(|i| deploy(&format!("d{i}"), 100 - i, DeployPhase::Failed))
        .collect();
    existing.push(deploy("running", 1, DeployPhase::Canary));
    // 50 ended and one more coming: the oldest ended one goes, the running one stays.
    assert_eq!(to_forget(existing.clone()), [("d49".to_string(), 1051)]);
    existing.truncate(KEPT_DEPLOYS - 1);
    assert!(
        to_forget(existing).is_empty(),
        "under the bound nothing goes"
    );
}
