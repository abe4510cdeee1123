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
