//! Timeouts and retries per the route: a canary that fails every request is invisible to
//! idempotent callers with a retry policy, bodies too large to replay are not retried, a slow
//! upstream meets the route's timeout, and a stalled response body its idle timeout.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use model::Kind;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

/// An upstream that answers every request with a chunked body: one `x` after each of `gaps`,
/// then the end of the body.
async fn trickling_upstream(gaps: Vec<Duration>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let gaps = gaps.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head).await.is_err() {
                    return;
                }
                for gap in gaps {
                    tokio::time::sleep(gap).await;
                    if stream.write_all(b"1\r\nx\r\n").await.is_err() {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    port
}

/// Sends `raw` and reads until the proxy closes, keeping what came if the close is abrupt.
async fn read_answer(addr: SocketAddr, raw: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            Ok(_) => break,
            Err(_) => panic!("no end of the answer within 10 s"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_idle_longer_than_the_route_allows_is_cut() {
    let cp = ControlPlane::start().await;
    // Each gap is under the idle timeout though the whole body takes longer than it.
    let trickle = trickling_upstream(vec![Duration::from_millis(150); 4]).await;
    let stall = trickling_upstream(vec![Duration::ZERO, Duration::from_secs(4)]).await;
    cp.create(Kind::Mesh, None, MESH, json!({})).await;
    for (name, port) in [("trickle", trickle), ("stall", stall)] {
        cp.create(Kind::VirtualNode, None, name, node_spec(port, "http", &[]))
            .await;
    }
    cp.create(
        Kind::VirtualNode,
        None,
        "client",
        json!({"backends": [{"virtualService": {"virtualServiceName": "svc.local"}}]}),
    )
    .await;
    cp.create(
        Kind::VirtualRouter,
        None,
        "svc-router",
        json!({"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}]}),
    )
    .await;
    for node in ["trickle", "stall"] {
        let route = json!({"httpRoute": {
            "match": {"prefix": format!("/{node}")},
            "action": {"weightedTargets": weighted(&[(node, 1)])},
            "timeout": {"idle": {"unit": "ms", "value": 500}},
        }});
        cp.create(Kind::Route, Some("svc-router"), node, route)
            .await;
    }
    cp.create(
        Kind::VirtualService,
        None,
        "svc.local",
        json!({"provider": {"virtualRouter": {"virtualRouterName": "svc-router"}}}),
    )
    .await;
    let proxy = RunningProxy::node(&cp, None).await;
    let request =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: svc.local\r\nConnection: close\r\n\r\n");

    let answer = read_answer(proxy.egress(), &request("/trickle")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("\r\nx\r\n").count(), 4, "{answer}");
    assert!(answer.ends_with("0\r\n\r\n"), "the whole body: {answer}");

    let started = Instant::now();
    let answer = read_answer(proxy.egress(), &request("/stall")).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("\r\nx\r\n").count(), 1, "{answer}");
    assert!(!answer.ends_with("0\r\n\r\n"), "a cut body: {answer}");
    assert!(
        (Duration::from_millis(400)..Duration::from_secs(3)).contains(&took),
        "cut after {took:?}"
    );
    proxy.stop().await;
    cp.stop().await;
}
