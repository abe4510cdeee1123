//! The supervisor does not need the control plane to be up first: it retries, bounded.

use std::time::Duration;

use serde_json::json;
use workloads::{Supervisor, SupervisorConfig};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_picks_up_a_control_plane_that_starts_late() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config =
        SupervisorConfig::new(format!("http://{free}"), MESH, data.path().to_path_buf());
    config.health_interval = Some(FAST_CHECKS);
    let supervisor = Supervisor::start(config).unwrap();
    // Long enough for the retry delay to reach its 2 s ceiling.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(supervisor.status().is_empty());

    let cp = ControlPlane::start_at(free).await;
    cp.create_mesh().await;
    cp.node("web-vn", http_check("/")).await;
    cp.put_workload("web", "web-vn", &web_server(), json!({}), 1)
        .await;
    let replicas = healthy(&supervisor, "web", 1).await;
    assert_eq!(cp.endpoint_ids().await, ["web-0"]);
    assert_eq!(get_status(replicas[0].port.unwrap()).await, Some(200));
    stop(supervisor).await;
    cp.stop().await;
}
