//! Health checks decide registration: failing replicas are never registered, and a replica that
//! turns unhealthy is deregistered until it passes again.

use std::time::Duration;

use client::WatchEvent;
use model::wire::ChangeType;
use serde_json::json;
use tokio::time::Instant;
use workloads::{ReplicaState, Supervisor};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_failing_its_health_check_is_never_registered() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("good-vn", http_check("/")).await;
    cp.node("bad-vn", http_check("/missing")).await;
    cp.put_workload("good", "good-vn", &web_server(), json!({}), 1)
        .await;
    cp.put_workload("bad", "bad-vn", &web_server(), json!({}), 1)
        .await;
    let mut stream = cp.api.watch(MESH, cp.revision().await).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::start(config(&cp, data.path())).unwrap();

    healthy(&supervisor, "good", 1).await;
    // Every endpoint registration from the start until 1.5 s (7 checks) after good-0's.
    let mut registered: Vec<String> = Vec::new();
    let mut until = Instant::now() + Duration::from_secs(10);
    while let Ok(next) = tokio::time::timeout_at(until, stream.next()).await {
        match next.unwrap() {
            Some(WatchEvent::Change(change))
                if change.kind_name() == "Endpoint" && change.change_type() == ChangeType::Put =>
            {
                let name = change.name;
                if name == "good-0" {
                    until = Instant::now() + Duration::from_millis(1500);
                }
                registered.push(name);
            }
            Some(_) => {}
            None => panic!("the watch stream ended"),
        }
    }
    assert_eq!(registered, ["good-0"]);

    let bad = replica(&supervisor, "bad", 0).unwrap();
    assert_eq!(bad.state, ReplicaState::Unhealthy);
    assert!(!bad.registered);
    assert!(
        bad.pid.is_some_and(alive),
        "a failing replica keeps running and being checked"
    );
    assert_eq!(bad.restarts, 0);
    assert!(
        log_text(data.path(), "bad", 0).contains("\"GET /missing HTTP/1.1\" 404"),
        "the checks reach it"
    );
    assert_eq!(cp.endpoint_ids().await, ["good-0"]);
    stop(supervisor).await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_turns_unhealthy_is_deregistered_until_it_passes_again() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("web-vn", http_check("/ok")).await;
    let served = tempfile::tempdir().unwrap();
    let ok = served.path().join("ok");
    std::fs::write(&ok, "ok").unwrap();
    let dir = served.path().to_str().unwrap();
    cp.put_workload("web", "web-vn", &web_server(), json!({ "DIR": dir }), 1)
        .await;
    let data = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::start(config(&cp, data.path())).unwrap();
    let pid = healthy(&supervisor, "web", 1).await[0].pid;
    assert_eq!(cp.endpoint_ids().await, ["web-0"]);

    std::fs::remove_file(&ok).unwrap();
    eventually(
        "web-0 to be deregistered",
        Duration::from_secs(10),
        || async { cp.endpoints().await.is_empty().then_some(()) },
    )
    .await;
    let status = replica(&supervisor, "web", 0).unwrap();
    assert_eq!(status.state, ReplicaState::Unhealthy);
    assert_eq!(
        (status.pid, status.restarts),
        (pid, 0),
        "unhealthy is not restarted"
    );

    std::fs::write(&ok, "ok").unwrap();
    healthy(&supervisor, "web", 1).await;
    assert_eq!(cp.endpoint_ids().await, ["web-0"]);
    assert!(log_text(data.path(), "web", 0).contains("web-0 unhealthy: GET"));
    stop(supervisor).await;
    cp.stop().await;
}
