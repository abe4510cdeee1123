//! Timeouts and retries per the route: a canary that fails every request is invisible to
//! idempotent callers with a retry policy, bodies too large to replay are not retried, and a
//! slow upstream meets the route's timeout.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use crate::*;

fn retry_policy() -> serde_json::Value {
    json!({"retryPolicy": {
        "maxRetries": 2,
        "perRetryTimeout": {"unit": "s", "value": 2},
        "httpRetryEvents": ["server-error"],
        "tcpRetryEvents": ["connection-error"]
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_hide_a_canary_that_fails_everything() {
    let cp = ControlPlane::start().await;
    let stable = Upstream::start("stable", Behaviour::ok()).await;
    let canary = Upstream::start("canary", Behaviour::status(500)).await;
    mesh_with_router(
        &cp,
        &[("stable", &stable), ("canary", &canary)],
        &[("stable", 50), ("canary", 50)],
        retry_policy(),
    )
    .await;
    let proxy = RunningProxy::node(&cp, None).await;
    let caller = Caller::new();
    for i in 0..500 {
        let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "stable"),
            "request {i}"
        );
    }
    // Half the first picks went to the canary and were retried on the stable node.
    let tried = canary.hits();
    assert!((200..=300).contains(&tried), "canary tried {tried} times");
    assert_eq!(stable.hits(), 500);
    let metrics = proxy.handle.metrics();
    let canary_series = metrics
        .iter()
        .find(|(k, _)| k.target_node == "canary")
        .map(|(_, c)| c.clone())
        .expect("the canary has a series");
    assert_eq!(
        canary_series.by_class[4], tried,
        "every canary 5xx is counted"
    );
    assert_eq!(canary_series.retries, tried, "and each was retried");
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_retry_policy_canary_failures_reach_callers() {
    let cp = ControlPlane::start().await;
    let stable = Upstream::start("stable", Behaviour::ok()).await;
    let canary = Upstream::start("canary", Behaviour::status(500)).await;
    mesh_with_router(
        &cp,
        &[("stable", &stable), ("canary", &canary)],
        &[("stable", 50), ("canary", 50)],
        json!({}),
    )
    .await;
    let proxy = RunningProxy::node(&cp, None).await;
    let caller = Caller::new();
    let mut failed = 0;
    for _ in 0..100 {
        let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
        if answer.status == 500 {
            assert_eq!(
                answer.body, "canary",
                "the upstream's own answer is passed on"
            );
            failed += 1;
        }
    }
    // App Mesh's default policy retries gateway errors and connection errors, not a 500.
    assert!((40..=60).contains(&failed), "{failed} of 100 failed");
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_the_replay_buffer_is_not_retried() {
    let cp = ControlPlane::start().await;
    let stable = Upstream::start("stable", Behaviour::ok()).await;
    let canary = Upstream::start("canary", Behaviour::status(500)).await;
    mesh_with_router(
        &cp,
        &[("stable", &stable), ("canary", &canary)],
        &[("stable", 50), ("canary", 50)],
        retry_policy(),
    )
    .await;
    let proxy = RunningProxy::node(&cp, None).await;
    let caller = Caller::new();
    let send = |size: usize| {
        let caller = caller.clone();
        let egress = proxy.egress();
        async move {
            let body = Bytes::from(vec![b'x'; size]);
            caller
                .send("PUT", egress, "svc.local", "/", &[], body)
                .await
                .status
        }
    };
    let mut small_failed = 0;
    let mut large_failed = 0;
    for _ in 0..40 {
        small_failed += u32::from(send(60 * 1024).await != 200);
        large_failed += u32::from(send(100 * 1024).await != 200);
    }
    assert_eq!(
        small_failed, 0,
        "60 KiB bodies are replayed on the stable node"
    );
    assert!(
        (10..=30).contains(&large_failed),
        "100 KiB bodies that met the canary fail: {large_failed} of 40"
    );
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_meets_the_route_timeout_with_504() {
    let cp = ControlPlane::start().await;
    let slow = Upstream::start(
        "slow",
        Behaviour {
            delay: Duration::from_secs(3),
            ..Behaviour::ok()
        },
    )
    .await;
    mesh_with_router(
        &cp,
        &[("slow", &slow)],
        &[("slow", 1)],
        json!({"timeout": {"perRequest": {"unit": "ms", "value": 300}}}),
    )
    .await;
    let proxy = RunningProxy::node(&cp, None).await;
    let started = Instant::now();
    let answer = Caller::new()
        .get(proxy.egress(), "svc.local", "/", &[])
        .await;
    let took = started.elapsed();
    assert_eq!(answer.status, 504, "{}", answer.body);
    assert_eq!(
        answer.body,
        "virtual node 'slow' did not answer within 300ms\n"
    );
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    proxy.stop().await;
    cp.stop().await;
}
