//! A replica whose process dies is deregistered and restarted, with growing backoff.

use std::time::Duration;

use client::WatchEvent;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::time::Instant;
use workloads::Supervisor;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_deregistered_restarted_and_registered_again() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("web-vn", http_check("/")).await;
    cp.put_workload("web", "web-vn", &web_server(), json!({}), 2)
        .await;
    let data = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::start(config(&cp, data.path())).unwrap();
    let before = healthy(&supervisor, "web", 2).await;
    let (survivor, victim) = (&before[0], &before[1]);
    let victim_pid = victim.pid.unwrap();

    let mut stream = cp.api.watch(MESH, cp.revision().await).await.unwrap();
    kill(Pid::from_raw(victim_pid as i32), Signal::SIGKILL).unwrap();

    // The watch stream shows what proxies see: web-1 removed, then back.
    let mut seen: Vec<String> = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        while seen.last().map(String::as_str) != Some("put web-1") {
            match stream.next().await.unwrap() {
                Some(WatchEvent::Change(change)) if change.kind_name() == "Endpoint" => {
                    seen.push(format!("{} {}", change.change_type().as_str(), change.name));
                }
                Some(_) => {}
                None => panic!("the watch stream ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("no re-registration of web-1 within 15 s; endpoint events: {seen:?}")
    });
    assert_eq!(seen, ["delete web-1", "put web-1"], "web-0 is untouched");

    // The status says so once the supervisor has the control plane's answer.
    healthy(&supervisor, "web", 2).await;
    let after = replica(&supervisor, "web", 1).unwrap();
    assert_eq!(after.restarts, 1);
    assert_ne!(after.pid, Some(victim_pid));
    assert!(!alive(victim_pid));
    assert!(
        after
            .last_exit
            .as_deref()
            .unwrap_or("")
            .contains("signal: 9"),
        "{:?}",
        after.last_exit
    );
    let endpoint = cp
        .endpoints()
        .await
        .into_iter()
        .find(|e| e.id == "web-1")
        .unwrap();
    assert_eq!(Some(endpoint.port), after.port);
    assert_eq!(get_status(endpoint.port).await, Some(200));

    let untouched = replica(&supervisor, "web", 0).unwrap();
    assert_eq!((untouched.pid, untouched.restarts), (survivor.pid, 0));
    assert!(log_text(data.path(), "web", 1).contains("web-1 ended (signal: 9"));
    stop(supervisor).await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_exits_at_once_restarts_with_growing_backoff() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("crash-vn", Value::Null).await;
    cp.put_workload(
        "crash",
        "crash-vn",
        &["sh", "-c", "echo crashing; exit 3"],
        json!({}),
        1,
    )
    .await;
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let supervisor = Supervisor::start(config(&cp, data.path())).unwrap();

    // When each restart happened, by polling the status (restarts count up after each delay).
    let mut restarted_at: Vec<Duration> = Vec::new();
    let deadline = started + Duration::from_secs(20);
    while restarted_at.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "only {} restarts within 20 s",
            restarted_at.len()
        );
        // None until the supervisor has read its first snapshot.
        if let Some(status) = replica(&supervisor, "crash", 0) {
            assert!(
                !status.registered,
                "a replica that never listens is never registered"
            );
            while restarted_at.len() < status.restarts as usize {
                restarted_at.push(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gaps = [
        restarted_at[0],
        restarted_at[1] - restarted_at[0],
        restarted_at[2] - restarted_at[1],
    ];
    // 1 s, 2 s, 4 s, plus process start-up and polling slack.
    for (gap, expected) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        let seconds = gap.as_secs_f64();
        assert!(
            seconds >= expected * 0.95 && seconds < expected + 1.0,
            "restart delays {gaps:?} should be about 1 s, 2 s, 4 s"
        );
    }
    let status = replica(&supervisor, "crash", 0).unwrap();
    assert_eq!(status.last_exit.as_deref(), Some("exit status: 3"));
    assert!(
        log_text(data.path(), "crash", 0)
            .matches("crashing")
            .count()
            >= 3
    );
    assert!(cp.endpoints().await.is_empty());
    stop(supervisor).await;
    cp.stop().await;
}
