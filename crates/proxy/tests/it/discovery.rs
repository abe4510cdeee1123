//! Endpoints: registered in the control plane's `/v1` API they win over DNS discovery, only
//! healthy ones serve, and passive outlier detection ejects an endpoint that keeps failing.

use bytes::Bytes;
use model::Kind;
use serde_json::json;

use crate::*;

async fn register(cp: &ControlPlane, node: &str, id: &str, port: u16, healthy: bool) {
    let body = json!({"address": "127.0.0.1", "port": port, "healthy": healthy});
    let path = format!("/v1/meshes/{MESH}/endpoints/{node}/{id}");
    let answer = Caller::new()
        .send(
            "PUT",
            cp.addr,
            "127.0.0.1",
            &path,
            &[("content-type", "application/json")],
            Bytes::from(body.to_string()),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_endpoints_win_over_dns_and_only_healthy_ones_serve() {
    let cp = ControlPlane::start().await;
    let gone = Upstream::start("gone", Behaviour::ok()).await;
    mesh_with_router(&cp, &[("a", &gone)], &[("a", 1)], json!({})).await;
    drop(gone);
    let a = Upstream::start("a", Behaviour::ok()).await;
    let proxy = RunningProxy::node(&cp, None).await;
    let caller = Caller::new();
    let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
    assert_eq!(
        answer.status, 503,
        "DNS names a closed port: {}",
        answer.body
    );

    register(&cp, "a", "a-1", a.addr.port(), true).await;
    proxy.wait_for_revision(cp.revision().await).await;
    let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "a"));

    register(&cp, "a", "a-1", a.addr.port(), false).await;
    proxy.wait_for_revision(cp.revision().await).await;
    let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.body,
        "no healthy endpoint of virtual node 'a': registered [] found no endpoint\n"
    );
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_an_endpoint_that_keeps_failing() {
    let cp = ControlPlane::start().await;
    let good = Upstream::start("good", Behaviour::ok()).await;
    let bad = Upstream::start("bad", Behaviour::status(500)).await;
    cp.create(
        Kind::Mesh,
        None,
        MESH,
        json!({"egressFilter": {"type": "ALLOW_ALL"}}),
    )
    .await;
    cp.create(
        Kind::VirtualNode,
        None,
        "n",
        json!({"listeners": [{
            "portMapping": {"port": 8080, "protocol": "http"},
            "outlierDetection": {
                "maxServerErrors": 2,
                "interval": {"unit": "s", "value": 10},
                "baseEjectionDuration": {"unit": "s", "value": 30},
                "maxEjectionPercent": 50
            }
        }]}),
    )
    .await;
    cp.create(Kind::VirtualNode, None, "client", json!({}))
        .await;
    cp.create(
        Kind::VirtualService,
        None,
        "n.local",
        json!({"provider": {"virtualNode": {"virtualNodeName": "n"}}}),
    )
    .await;
    register(&cp, "n", "good", good.addr.port(), true).await;
    register(&cp, "n", "bad", bad.addr.port(), true).await;
    let proxy = RunningProxy::node(&cp, None).await;
    let caller = Caller::new();
    let mut failed = 0;
    for _ in 0..60 {
        let answer = caller.get(proxy.egress(), "n.local", "/", &[]).await;
        failed += u32::from(answer.status != 200);
    }
    assert_eq!(bad.hits(), 2, "ejected after its second server error");
    assert_eq!(failed, 2);
    assert_eq!(good.hits(), 58);
    let metrics = caller
        .get(
            proxy.addr(proxy::ListenerKind::Admin),
            "admin",
            "/metrics",
            &[],
        )
        .await
        .body;
    assert!(
        metrics.contains(r#"aviary_proxy_ejections_total{target_node="n"} 1"#),
        "{metrics}"
    );
    proxy.stop().await;
    cp.stop().await;
}
