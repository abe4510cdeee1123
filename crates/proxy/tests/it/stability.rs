//! Static stability: with the control plane down the proxy keeps serving its last snapshot, a
//! proxy started while it is down serves from the state directory, and when the control plane
//! returns both catch up by themselves.

use std::time::Duration;

use serde_json::{Value, json};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_serve_through_a_control_plane_outage_and_catch_up() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start_at("127.0.0.1:0".parse().unwrap(), Some(data.path().into())).await;
    let control_addr = cp.addr;
    let a = Upstream::start("a", Behaviour::ok()).await;
    let b = Upstream::start("b", Behaviour::ok()).await;
    mesh_with_router(
        &cp,
        &[("a", &a), ("b", &b)],
        &[("a", 1), ("b", 0)],
        json!({}),
    )
    .await;
    let first = RunningProxy::node(&cp, Some(state.path().into())).await;
    let caller = Caller::new();
    assert_eq!(
        caller.get(first.egress(), "svc.local", "/", &[]).await.body,
        "a"
    );

    cp.stop().await;
    for _ in 0..20 {
        let answer = caller.get(first.egress(), "svc.local", "/", &[]).await;
        assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "a"));
    }

    // A new proxy while the control plane is down starts from the saved snapshot.
    let second = RunningProxy::start(node_config(
        &format!("http://{control_addr}"),
        Some(state.path().into()),
    ))
    .await;
    let answer = caller.get(second.egress(), "svc.local", "/", &[]).await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "a"));
    let admin = second.addr(proxy::ListenerKind::Admin);
    let config: Value =
        serde_json::from_str(&caller.get(admin, "admin", "/config", &[]).await.body).unwrap();
    assert_eq!(config["source"], "state-dir");

    // The control plane comes back where it was, and a change reaches both proxies.
    let cp = ControlPlane::start_at(control_addr, Some(data.path().into())).await;
    cp.set_weights("svc-router", "svc-route", &[("a", 0), ("b", 1)])
        .await;
    let revision = cp.revision().await;
    for proxy in [&first, &second] {
        proxy.wait_for_revision(revision).await;
        let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
        assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "b"));
    }
    // The state directory follows: a third proxy started now would route to b.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let saved = proxy::Snapshot::load(state.path(), MESH).unwrap().unwrap();
    assert_eq!(saved.revision, revision);
    first.stop().await;
    second.stop().await;
    cp.stop().await;
}
