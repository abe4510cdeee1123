//! Changing a workload: fewer replicas, a new spec, deletion.

use std::time::Duration;

use serde_json::json;
use workloads::Supervisor;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_replicas_stops_the_extra_one_and_deleting_stops_all() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("web-vn", http_check("/")).await;
    cp.put_workload("web", "web-vn", &web_server(), json!({}), 2)
        .await;
    let data = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::start(config(&cp, data.path())).unwrap();
    let both = healthy(&supervisor, "web", 2).await;
    let pids: Vec<u32> = both.iter().map(|r| r.pid.unwrap()).collect();

    cp.put_workload("web", "web-vn", &web_server(), json!({}), 1)
        .await;
    eventually("web-1 to stop", Duration::from_secs(10), || async {
        (replica(&supervisor, "web", 1).is_none() && !alive(pids[1])).then_some(())
    })
    .await;
    assert_eq!(cp.endpoint_ids().await, ["web-0"]);
    let kept = replica(&supervisor, "web", 0).unwrap();
    assert_eq!(
        kept.pid,
        Some(pids[0]),
        "the remaining replica was not restarted"
    );
    assert!(alive(pids[0]));
    assert!(log_text(data.path(), "web", 1).contains("web-1 stopped"));

    cp.delete_workload("web").await;
    eventually("every replica to stop", Duration::from_secs(10), || async {
        (supervisor.status().is_empty() && !alive(pids[0])).then_some(())
    })
    .await;
    assert!(cp.endpoints().await.is_empty());
    stop(supervisor).await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_env_replaces_every_replica() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("web-vn", http_check("/")).await;
    let command = [
        "sh",
        "-c",
        "echo \"version $VERSION\"; exec python3 -m http.server \"$PORT\" --bind 127.0.0.1",
    ];
    cp.put_workload("web", "web-vn", &command, json!({ "VERSION": "1" }), 2)
        .await;
    let data = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::start(config(&cp, data.path())).unwrap();
    let old: Vec<u32> = healthy(&supervisor, "web", 2)
        .await
        .iter()
        .map(|r| r.pid.unwrap())
        .collect();

    cp.put_workload("web", "web-vn", &command, json!({ "VERSION": "2" }), 2)
        .await;
    let new = eventually(
        "two new healthy replicas",
        Duration::from_secs(15),
        || async {
            let status = supervisor.status();
            let fresh = status.len() == 2
                && status
                    .iter()
                    .all(|r| r.registered && r.pid.is_some_and(|pid| !old.contains(&pid)));
            fresh.then_some(status)
        },
    )
    .await;
    for pid in &old {
        assert!(!alive(*pid), "old replica {pid} is stopped");
    }
    for replica in &new {
        let log = log_text(data.path(), "web", replica.replica);
        assert!(
            log.contains("version 1") && log.contains("version 2"),
            "{log}"
        );
        assert_eq!(
            replica.restarts, 0,
            "a replacement is a new replica, not a restart"
        );
    }
    assert_eq!(cp.endpoint_ids().await, ["web-0", "web-1"]);
    let ports: Vec<u16> = cp.endpoints().await.iter().map(|e| e.port).collect();
    assert_eq!(
        ports,
        new.iter().map(|r| r.port.unwrap()).collect::<Vec<_>>()
    );
    stop(supervisor).await;
    cp.stop().await;
}
