//! Several control-plane URLs: registrations and the watch go to whichever replica answers.

use std::sync::Arc;

use serde_json::json;
use workloads::Supervisor;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_land_through_the_second_url_when_the_first_is_dead() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("web-vn", http_check("/")).await;
    cp.put_workload("web", "web-vn", &web_server(), json!({}), 1)
        .await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = config(&cp, data.path());
    config.control = format!("http://{dead},{}", cp.url);
    let supervisor = Supervisor::start(config).unwrap();
    healthy(&supervisor, "web", 1).await;
    assert_eq!(cp.endpoint_ids().await, ["web-0"]);
    stop(supervisor).await;
    assert!(cp.endpoint_ids().await.is_empty(), "deregistered on stop");
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_replica_leaves_the_supervisor_following_the_other() {
    let store = control::SharedStore(Arc::new(store::MemoryStore::new()) as Arc<dyn store::Store>);
    let any = "127.0.0.1:0".parse().unwrap();
    let a = ControlPlane::start_on(any, Some(store.clone())).await;
    let b = ControlPlane::start_on(any, Some(store)).await;
    a.create_mesh().await;
    a.node("web-vn", http_check("/")).await;
    a.put_workload("web", "web-vn", &web_server(), json!({}), 1)
        .await;
    let data = tempfile::tempdir().unwrap();
    let mut config = config(&a, data.path());
    config.control = format!("{},{}", a.url, b.url);
    let supervisor = Supervisor::start(config).unwrap();
    healthy(&supervisor, "web", 1).await;

    a.stop().await;
    // Through the other replica: the watch carries it here, the registration goes back there.
    b.put_workload("web", "web-vn", &web_server(), json!({}), 2)
        .await;
    healthy(&supervisor, "web", 2).await;
    eventually(
        "both endpoints registered",
        Duration::from_secs(10),
        || async { (b.endpoint_ids().await == ["web-0", "web-1"]).then_some(()) },
    )
    .await;
    stop(supervisor).await;
    b.stop().await;
}
