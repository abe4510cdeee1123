//! Integration tests of the supervisor's public surface: a real control plane in-process, real
//! child processes (`python3 -m http.server` and `sh`), real sockets on 127.0.0.1. Every wait is
//! bounded. Shared helpers live here; each module is one area.

mod control_down;
mod crashes;
mod health;
mod replicas;
mod running;
mod scaling;
mod shutdown;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use model::wire::Endpoint;
use model::{Kind, ResourcePath};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use workloads::{ReplicaStatus, Supervisor, SupervisorConfig};

pub const MESH: &str = "m";
/// Health checks every 200 ms (App Mesh's minimum is 5 s; see `SupervisorConfig::health_interval`).
pub const FAST_CHECKS: Duration = Duration::from_millis(200);
pub const PROXY: &str = "http://127.0.0.1:15001";

/// A control plane running in this process, on an in-memory store.
pub struct ControlPlane {
    pub url: String,
    pub api: client::Client,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl ControlPlane {
    pub async fn start() -> ControlPlane {
        ControlPlane::start_at("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_at(listen: SocketAddr) -> ControlPlane {
        ControlPlane::start_on(listen, None).await
    }

    /// On `listen`, over `store` when given (control planes over one store are replicas).
    pub async fn start_on(listen: SocketAddr, store: Option<control::SharedStore>) -> ControlPlane {
        let token = CancellationToken::new();
        let config = control::Config {
            listen,
            data_dir: None,
            store,
            identity: control::Identity {
                account: "000000000000".into(),
                region: "local".into(),
            },
            // The data plane is what these tests are about; authentication has its own tests
            // (crates/cli/tests/it/auth.rs), and `aviary up` runs proxies with proxy tokens.
            auth: control::auth::AuthConfig {
                enabled: false,
                ..Default::default()
            },
            ..control::Config::default()
        };
        let control = control::Control::bind(config, token.clone())
            .await
            .expect("the control plane binds");
        let url = format!("http://{}", control.local_addr());
        let task = tokio::spawn(async move {
            control.run().await.expect("the control plane serves");
        });
        ControlPlane {
            api: client::Client::new(&url),
            url,
            token,
            task,
        }
    }

    /// A control plane with mesh `m`.
    pub async fn with_mesh() -> ControlPlane {
        let cp = ControlPlane::start().await;
        cp.create_mesh().await;
        cp
    }

    pub async fn create_mesh(&self) {
        self.api
            .create(&ResourcePath::mesh(MESH), &json!({}), None)
            .await
            .expect("creating the mesh");
    }

    /// A node with one http listener on 8080 and the given `healthCheck` (none if `Null`).
    pub async fn node(&self, name: &str, health_check: Value) {
        let mut listener = json!({ "portMapping": { "port": 8080, "protocol": "http" } });
        if !health_check.is_null() {
            listener["healthCheck"] = health_check;
        }
        let spec = json!({
            "listeners": [listener],
            "serviceDiscovery": { "dns": { "hostname": format!("{name}.local") } },
        });
        let path = ResourcePath::new(Kind::VirtualNode, MESH, None, name);
        self.api
            .create(&path, &spec, None)
            .await
            .unwrap_or_else(|e| panic!("creating node {name}: {e}"));
    }

    pub async fn put_workload(
        &self,
        name: &str,
        node: &str,
        command: &[&str],
        env: Value,
        replicas: u32,
    ) {
        let body = json!({ "name": name, "virtualNode": node, "command": command, "env": env, "replicas": replicas });
        self.api
            .put_object(MESH, "workloads", name, &body)
            .await
            .unwrap_or_else(|e| panic!("putting workload {name}: {e}"));
    }

    pub async fn delete_workload(&self, name: &str) {
        self.api
            .delete_object(MESH, "workloads", name)
            .await
            .unwrap_or_else(|e| panic!("deleting workload {name}: {e}"));
    }

    /// Every registered endpoint of the mesh, by id.
    pub async fn endpoints(&self) -> Vec<Endpoint> {
        let mut endpoints = self.api.endpoints(MESH).await.expect("listing endpoints");
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        endpoints
    }

    pub async fn endpoint_ids(&self) -> Vec<String> {
        self.endpoints().await.into_iter().map(|e| e.id).collect()
    }

    pub async fn revision(&self) -> u64 {
        self.api.snapshot(MESH).await.expect("a snapshot").revision
    }

    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the control plane stops within 10 s")
            .expect("the control plane task ends cleanly");
    }
}

/// An http health check of `path`, every `FAST_CHECKS` once the interval override applies.
pub fn http_check(path: &str) -> Value {
    json!({ "protocol": "http", "path": path, "intervalMillis": 5000, "timeoutMillis": 2000,
            "healthyThreshold": 2, "unhealthyThreshold": 2 })
}

/// A python web server on `$PORT` serving `$DIR` (the current directory if unset).
pub fn web_server() -> Vec<&'static str> {
    vec![
        "sh",
        "-c",
        "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1 --directory \"${DIR:-.}\"",
    ]
}

/// The supervisor's config for tests: fast health checks, a short grace period.
pub fn config(cp: &ControlPlane, data_dir: &Path) -> SupervisorConfig {
    let mut config = SupervisorConfig::new(&cp.url, MESH, data_dir.to_path_buf());
    config.http_proxy = Some(PROXY.into());
    config.grace = Duration::from_secs(2);
    config.health_interval = Some(FAST_CHECKS);
    config
}

/// Polls `probe` every 50 ms until it gives `Some`, or panics after `within` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The status of one replica, if the supervisor owns it.
pub fn replica(supervisor: &Supervisor, workload: &str, index: u32) -> Option<ReplicaStatus> {
    supervisor
        .status()
        .into_iter()
        .find(|s| s.workload == workload && s.replica == index)
}

/// Waits until `count` replicas of `workload` are healthy and registered; returns them.
pub async fn healthy(supervisor: &Supervisor, workload: &str, count: usize) -> Vec<ReplicaStatus> {
    eventually(
        &format!("{count} healthy, registered replicas of {workload}"),
        Duration::from_secs(15),
        || async {
            let ready: Vec<ReplicaStatus> = supervisor
                .status()
                .into_iter()
                .filter(|s| s.workload == workload)
                .filter(|s| s.state == workloads::ReplicaState::Healthy && s.registered)
                .collect();
            (ready.len() == count).then_some(ready)
        },
    )
    .await
}

/// Whether a process exists and is not a zombie (this machine's init may not reap orphans, so
/// a killed grandchild can linger as a zombie: it holds no port and runs no code).
pub fn alive(pid: u32) -> bool {
    let exists = !matches!(kill(Pid::from_raw(pid as i32), None), Err(Errno::ESRCH));
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(false);
    exists && !zombie
}

/// GET `http://127.0.0.1:{port}/` without any proxy; the status, or `None` if nothing answers.
pub async fn get_status(port: u16) -> Option<u16> {
    client::install_crypto_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        http.get(format!("http://127.0.0.1:{port}/")).send(),
    )
    .await;
    match answer {
        Ok(Ok(response)) => Some(response.status().as_u16()),
        _ => None,
    }
}

/// A replica's log file, which lives in the directory of mesh `MESH`.
pub fn log_text(data_dir: &Path, workload: &str, index: u32) -> String {
    let path = workloads::logs::log_path(data_dir, MESH, workload, index);
    assert!(
        path.starts_with(data_dir.join("logs").join(MESH)),
        "{}",
        path.display()
    );
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A directory with an executable script `name` whose body is `script` (for `extra_path`).
pub fn script_dir(name: &str, script: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().to_path_buf();
    (dir, bin)
}

/// Stops the supervisor within a bound and checks that it reports success.
pub async fn stop(supervisor: Supervisor) {
    tokio::time::timeout(Duration::from_secs(15), supervisor.shutdown())
        .await
        .expect("the supervisor stops within 15 s")
        .expect("the supervisor stops cleanly");
}
