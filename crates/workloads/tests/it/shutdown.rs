//! Stopping: deregistered first, SIGTERM to the whole process group, SIGKILL after the grace
//! period, and nothing left behind.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use workloads::Supervisor;

use crate::*;

/// The pid a replica's log announces as `grandchild=<pid>`. The log is written by the supervisor
/// from the replica's pipe, so a replica can pass its health check before its first line is
/// there: wait for it (at most 5 s).
async fn grandchild(data_dir: &std::path::Path, workload: &str, index: u32) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = log_text(data_dir, workload, index);
        let pid = log
            .lines()
            .find_map(|line| line.strip_prefix("grandchild="))
            .and_then(|line| line.trim().parse().ok());
        if pid.is_some() || Instant::now() > deadline {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_process_behind_even_one_that_ignores_sigterm() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("web-vn", http_check("/")).await;
    // A background child in the same process group, and a server that ignores SIGTERM
    // (ignored signals stay ignored across exec).
    let stubborn = [
        "sh",
        "-c",
        "sleep 300 & echo \"grandchild=$!\"; trap '' TERM; exec python3 -m http.server \"$PORT\" --bind 127.0.0.1",
    ];
    let polite = [
        "sh",
        "-c",
        "sleep 300 & echo \"grandchild=$!\"; exec python3 -m http.server \"$PORT\" --bind 127.0.0.1",
    ];
    cp.put_workload("stubborn", "web-vn", &stubborn, json!({}), 1)
        .await;
    cp.put_workload("polite", "web-vn", &polite, json!({}), 2)
        .await;
    let data = tempfile::tempdir().unwrap();
    let config = config(&cp, data.path());
    let grace = config.grace;
    let supervisor = Supervisor::start(config).unwrap();
    let mut pids: Vec<u32> = Vec::new();
    for (workload, count) in [("stubborn", 1), ("polite", 2)] {
        for replica in healthy(&supervisor, workload, count).await {
            pids.push(replica.pid.unwrap());
            pids.push(
                grandchild(data.path(), workload, replica.replica)
                    .await
                    .expect("the log names the grandchild"),
            );
        }
    }
    assert_eq!(pids.len(), 6);
    assert!(pids.iter().all(|pid| alive(*pid)));
    assert_eq!(cp.endpoints().await.len(), 3);

    let stopping = Instant::now();
    stop(supervisor).await;
    let took = stopping.elapsed();
    for pid in &pids {
        assert!(!alive(*pid), "process {pid} survived the shutdown");
    }
    assert!(
        took >= grace,
        "the stubborn replica got its grace period ({took:?})"
    );
    assert!(
        took < grace + Duration::from_secs(3),
        "then SIGKILL ({took:?})"
    );
    assert!(
        cp.endpoints().await.is_empty(),
        "every replica was deregistered"
    );
    let stubborn_log = log_text(data.path(), "stubborn", 0);
    assert!(stubborn_log.contains("after 2s of grace"), "{stubborn_log}");
    assert!(
        !log_text(data.path(), "polite", 0).contains("of grace"),
        "SIGTERM was enough"
    );
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_after_its_token_is_cancelled_with_every_replica_stopped() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("web-vn", http_check("/")).await;
    cp.put_workload("web", "web-vn", &web_server(), json!({}), 1)
        .await;
    let data = tempfile::tempdir().unwrap();
    let token = CancellationToken::new();
    let running = tokio::spawn(workloads::run(config(&cp, data.path()), token.clone()));
    let endpoint = eventually("web-0 to register", Duration::from_secs(15), || async {
        cp.endpoints().await.into_iter().next()
    })
    .await;
    assert_eq!(get_status(endpoint.port).await, Some(200));
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(get_status(endpoint.port).await, None, "the server is gone");
    assert!(cp.endpoints().await.is_empty());
    cp.stop().await;
}
