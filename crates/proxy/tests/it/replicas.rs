//! Several control-plane replicas (control planes in this process over one store): the proxy
//! follows one, and when it goes away resumes on the next from the revision it had, without a
//! re-list, while serving the configuration it has.

use std::sync::Arc;

use serde_json::json;

use crate::*;

/// Two control planes over one store: replicas of one control plane.
async fn replicas() -> (ControlPlane, ControlPlane) {
    let store = control::SharedStore(Arc::new(store::MemoryStore::new()) as Arc<dyn store::Store>);
    let config = || control::Config {
        store: Some(store.clone()),
        ..ControlPlane::config()
    };
    (
        ControlPlane::start_with(config(), None).await,
        ControlPlane::start_with(config(), None).await,
    )
}

/// Who answers ten requests through the proxy.
async fn answers(proxy: &RunningProxy) -> Vec<String> {
    let caller = Caller::new();
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        bodies.push(answer.body);
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_replica_costs_a_reconnect_not_a_relist() {
    let (a, b) = replicas().await;
    let x = Upstream::start("x", Behaviour::ok()).await;
    let y = Upstream::start("y", Behaviour::ok()).await;
    mesh_with_router(
        &a,
        &[("x", &x), ("y", &y)],
        &[("x", 100), ("y", 0)],
        json!({}),
    )
    .await;
    let proxy = RunningProxy::start(node_config(&format!("{},{}", a.url, b.url), None)).await;
    assert!(answers(&proxy).await.iter().all(|n| n == "x"));
    assert_eq!(
        proxy.metric("aviary_proxy_control_snapshots_total").await,
        1
    );
    assert_eq!(
        proxy.metric("aviary_proxy_control_reconnects_total").await,
        0
    );

    a.stop().await;
    b.set_weights("svc-router", "svc-route", &[("x", 0), ("y", 100)])
        .await;
    proxy.wait_for_revision(b.revision().await).await;
    assert!(answers(&proxy).await.iter().all(|n| n == "y"));
    assert!(proxy.metric("aviary_proxy_control_reconnects_total").await >= 1);
    assert_eq!(
        proxy.metric("aviary_proxy_control_snapshots_total").await,
        1,
        "the watch resumed on the other replica from its revision, without a re-list"
    );

    // No replica at all: the proxy keeps serving what it has.
    b.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(answers(&proxy).await.iter().all(|n| n == "y"));
    assert!(proxy.metric("aviary_proxy_control_reconnects_total").await >= 2);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_starts_and_pushes_stats_through_the_second_url_when_the_first_is_dead() {
    let b = ControlPlane::start().await;
    let x = Upstream::start("x", Behaviour::ok()).await;
    mesh_with_router(&b, &[("x", &x)], &[("x", 100)], json!({})).await;
    let dead = format!("http://127.0.0.1:{}", free_port().await);
    let proxy = RunningProxy::start(node_config(&format!("{dead},{}", b.url), None)).await;
    assert!(answers(&proxy).await.iter().all(|n| n == "x"));
    // The push (a POST) was never sent to the dead URL, so it went on to the live one.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let requests = b.requests_counted("1m").await;
        if requests == 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stats reached the live replica: {requests} requests counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.stop().await;
}
