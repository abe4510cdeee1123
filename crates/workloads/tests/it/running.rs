//! Replicas run, pass their health check, register as endpoints and log their output.

use serde_json::json;
use workloads::Supervisor;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_register_distinct_ports_that_answer_http_with_env_and_logs() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("web-vn", http_check("/")).await;
    // Found only through `extra_path`: the supervisor puts it first on the children's PATH.
    let (_bin, bin_dir) = script_dir(
        "aviary-test-server",
        "echo \"env PORT=$PORT HTTP_PROXY=$HTTP_PROXY http_proxy=$http_proxy GREETING=$GREETING\"\n\
         exec python3 -m http.server \"$PORT\" --bind 127.0.0.1",
    );
    cp.put_workload(
        "web",
        "web-vn",
        &["aviary-test-server"],
        json!({ "GREETING": "hello" }),
        2,
    )
    .await;
    let data = tempfile::tempdir().unwrap();
    let mut config = config(&cp, data.path());
    config.extra_path = vec![bin_dir];
    let supervisor = Supervisor::start(config).unwrap();

    let replicas = healthy(&supervisor, "web", 2).await;
    let endpoints = cp.endpoints().await;
    assert_eq!(
        endpoints.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["web-0", "web-1"]
    );
    assert!(
        endpoints
            .iter()
            .all(|e| e.virtual_node == "web-vn" && e.address == "127.0.0.1" && e.healthy)
    );
    assert_ne!(
        endpoints[0].port, endpoints[1].port,
        "each replica has its own port"
    );
    for (endpoint, replica) in endpoints.iter().zip(&replicas) {
        assert_eq!(
            Some(endpoint.port),
            replica.port,
            "the endpoint is the replica's PORT"
        );
        assert_eq!(
            get_status(endpoint.port).await,
            Some(200),
            "{} answers HTTP",
            endpoint.id
        );
        assert!(replica.pid.is_some_and(alive));
        assert_eq!(replica.restarts, 0);
    }

    for replica in &replicas {
        let log = log_text(data.path(), "web", replica.replica);
        let port = replica.port.unwrap();
        assert!(
            log.contains(&format!(
                "env PORT={port} HTTP_PROXY={PROXY} http_proxy={PROXY} GREETING=hello"
            )),
            "the child's stdout shows its environment:\n{log}"
        );
        // python logs requests on stderr: the health checks are in the same file.
        assert!(
            log.contains("\"GET / HTTP/1.1\" 200"),
            "the child's stderr is logged too:\n{log}"
        );
        assert!(
            log.contains(&format!("[aviary] web-{} started: pid", replica.replica)),
            "{log}"
        );
    }
    stop(supervisor).await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_without_health_check_is_registered_once_its_port_accepts() {
    let cp = ControlPlane::with_mesh().await;
    cp.node("plain-vn", serde_json::Value::Null).await;
    cp.put_workload("plain", "plain-vn", &web_server(), json!({}), 1)
        .await;
    let data = tempfile::tempdir().unwrap();
    let mut config = config(&cp, data.path());
    // The default for nodes without a health check is a 1 s TCP check; keep it.
    config.health_interval = None;
    let supervisor = Supervisor::start(config).unwrap();
    let replicas = healthy(&supervisor, "plain", 1).await;
    assert_eq!(cp.endpoint_ids().await, ["plain-0"]);
    assert_eq!(get_status(replicas[0].port.unwrap()).await, Some(200));
    stop(supervisor).await;
    assert!(cp.endpoints().await.is_empty(), "stopping deregisters");
    cp.stop().await;
}
