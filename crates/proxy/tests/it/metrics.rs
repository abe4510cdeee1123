//! The admin listener: Prometheus metrics by mesh, service, route, node and status class;
//! health; and the configuration in use.

use serde_json::{Value, json};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_serves_metrics_health_and_config() {
    let cp = ControlPlane::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    mesh_with_router(&cp, &[("a", &a)], &[("a", 1)], json!({})).await;
    let proxy = RunningProxy::node(&cp, None).await;
    let admin = proxy.addr(proxy::ListenerKind::Admin);
    let caller = Caller::new();
    for _ in 0..7 {
        assert_eq!(
            caller
                .get(proxy.egress(), "svc.local", "/", &[])
                .await
                .status,
            200
        );
    }
    assert_eq!(
        caller
            .get(proxy.egress(), "nope.local", "/", &[])
            .await
            .status,
        404
    );

    let metrics = caller.get(admin, "admin", "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body;
    for line in [
        r#"aviary_proxy_requests_total{mesh="m",virtual_service="svc.local",route="svc-route",target_node="a",status_class="2xx"} 7"#,
        r#"aviary_proxy_requests_total{mesh="m",virtual_service="nope.local",route="",target_node="",status_class="4xx"} 1"#,
        r#"aviary_proxy_request_duration_seconds_count{mesh="m",virtual_service="svc.local",route="svc-route",target_node="a"} 7"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }

    let health = caller.get(admin, "admin", "/healthz", &[]).await;
    assert_eq!(
        (health.status.as_u16(), health.body.as_str()),
        (200, "ok\n")
    );

    let config: Value =
        serde_json::from_str(&caller.get(admin, "admin", "/config", &[]).await.body)
            .expect("/config is JSON");
    assert_eq!(config["revision"], cp.revision().await);
    assert_eq!(config["source"], "control");
    assert_eq!(config["role"], json!({"virtualNode": "client"}));
    assert_eq!(config["snapshot"]["routes"][0]["routeName"], "svc-route");
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_reach_the_control_plane_stats() {
    let cp = ControlPlane::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    let b = Upstream::start("b", Behaviour::status(500)).await;
    // No retry policy: b's 500s reach the caller and the stats alike.
    mesh_with_router(
        &cp,
        &[("a", &a), ("b", &b)],
        &[("a", 1), ("b", 1)],
        json!({}),
    )
    .await;
    let proxy = RunningProxy::node(&cp, None).await;
    let caller = Caller::new();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(
            caller
                .get(proxy.egress(), "svc.local", "/", &[])
                .await
                .status,
        );
    }
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let sent = tokio::time::Instant::now();
    let mut seen = Value::Null;
    while sent.elapsed() < std::time::Duration::from_secs(5) {
        let answer = caller
            .get(cp.addr, "127.0.0.1", "/v1/meshes/m/stats?window=10s", &[])
            .await;
        seen = serde_json::from_str(&answer.body).unwrap();
        let total: u64 = seen["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["requests"].as_u64().unwrap())
            .sum();
        if total == 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let node = |name: &str| {
        seen["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["virtualNode"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(node("a")["status2xx"].as_u64(), Some(ok), "{seen}");
    assert_eq!(node("b")["status5xx"].as_u64(), Some(40 - ok), "{seen}");
    assert_eq!(node("b")["errorRate"], 1.0);
    assert!(node("a")["p99Ms"].as_f64().is_some(), "{seen}");
}
