//! Upstream protocols: HTTP/1.1 for http listeners, HTTP/2 with prior knowledge for http2.

use serde_json::json;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_nodes_are_called_over_http2() {
    let cp = ControlPlane::start().await;
    let h1 = Upstream::start("h1", Behaviour::ok()).await;
    let h2 = Upstream::start(
        "h2",
        Behaviour {
            http2: true,
            ..Behaviour::ok()
        },
    )
    .await;
    mesh_with_router(
        &cp,
        &[("h1", &h1), ("h2", &h2)],
        &[("h1", 1), ("h2", 0)],
        json!({}),
    )
    .await;
    let proxy = RunningProxy::node(&cp, None).await;
    let caller = Caller::new();
    let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
    assert_eq!(answer.body, "h1");
    assert_eq!(answer.headers["x-version"], "HTTP/1.1");

    cp.set_weights("svc-router", "svc-route", &[("h1", 0), ("h2", 1)])
        .await;
    proxy.wait_for_revision(cp.revision().await).await;
    for _ in 0..3 {
        let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
        assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "h2"));
        assert_eq!(answer.headers["x-version"], "HTTP/2.0");
    }
    // Host travels as :authority on HTTP/2, never as a header.
    let seen = h2.last_headers.lock().unwrap().clone().unwrap();
    assert!(seen.get("host").is_none());
    proxy.stop().await;
    cp.stop().await;
}
