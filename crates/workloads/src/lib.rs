//! The local workload supervisor: it runs the replicas of every `Workload` of one mesh as child
//! processes on this machine, checks their health the way the virtual node's `healthCheck` says,
//! and registers each healthy replica as an `Endpoint` of its node so that proxies send it
//! traffic.
//!
//! It owns the child processes (ports, environment, process groups, log files under
//! `data_dir/logs/<mesh>/`), health checking, restart with exponential backoff, and the stop sequence
//! (deregister, SIGTERM to the process group, SIGKILL after a grace period). It learns what to
//! run and talks back only through the control plane's `/v1` API, via `client`: a snapshot, then
//! the watch stream. It must never know routing (routes, weights, proxies) or the store.
//!
//! Where it deliberately differs from App Mesh: App Mesh's shortest health-check interval is 5 s;
//! [`SupervisorConfig::health_interval`] overrides every interval (and caps the timeout) so that
//! tests and local demos need not wait that long. The spec's thresholds are honoured as written.

mod backoff;
mod desired;
mod error;
mod health;
pub mod logs;
mod process;
mod replica;
mod supervisor;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::WorkloadsError;
pub use supervisor::Supervisor;

/// Everything the supervisor needs to know that is not in the control plane.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Base URL of the control plane, e.g. `http://127.0.0.1:7070`, or a comma-separated list
    /// of its replicas' URLs: snapshot, watch and endpoint registrations fail over between them
    /// (`client::Client`).
    pub control: String,
    /// The mesh whose workloads run here.
    pub mesh: String,
    /// Log files go to `data_dir/logs/<mesh>/<workload>-<replica>.log`.
    pub data_dir: PathBuf,
    /// The mesh proxy, set as `HTTP_PROXY` and `http_proxy` for every child.
    pub http_proxy: Option<String>,
    /// Prepended to the children's `PATH`, so that e.g. `aviary-demo` next to the `aviary`
    /// binary is found.
    pub extra_path: Vec<PathBuf>,
    /// How long a child may take to exit after SIGTERM before it gets SIGKILL.
    pub grace: Duration,
    /// Replaces every health check's interval (and caps its timeout at the same value). `None`
    /// honours the node's spec, whose App Mesh minimum is 5 s; tests use a few hundred ms.
    pub health_interval: Option<Duration>,
    /// A `proxy` token of the mesh (or an admin token), for the control plane.
    pub token: Option<String>,
    /// For an `https://` control plane: the CA file (PEM) to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// This machine's name among the mesh's hosts: only workloads that name it (or no host)
    /// run here, and endpoint ids end in `.<host>` so that hosts never collide. `None`: the
    /// only machine (`aviary up`), which runs every workload under plain `<workload>-<n>` ids.
    pub host: Option<String>,
    /// The agent's data plane, which gives each replica its outbound proxy and the address
    /// other hosts reach it at. `None`: replicas get `http_proxy` and register `127.0.0.1`.
    pub network: Option<Arc<dyn Network>>,
    /// The inbound listeners take mutual TLS with mesh certificates: endpoints are registered
    /// with `meshTls`, so callers with a mesh identity use it.
    pub mesh_tls: bool,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a replica meets the mesh on this host: implemented by the agent (`aviary agent`,
/// `aviary up`) over its proxy, so that this crate never knows routing.
pub trait Network: Send + Sync + 'static {
    /// The proxy URL a replica of `node` sends its mesh traffic to (its `HTTP_PROXY`): the
    /// node's own outbound listener, so the node's `backends` apply to it.
    fn outbound<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<String, String>>;

    /// Opens the inbound listener that other hosts reach replica `id` of `node` at, which
    /// passes its traffic to the replica's `127.0.0.1:port`; the address is what is registered.
    fn inbound<'a>(
        &'a self,
        node: &'a str,
        id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<SocketAddr, String>>;

    /// Closes replica `id`'s inbound listener (after its endpoint was deregistered).
    fn close_inbound(&self, id: &str);
}

impl std::fmt::Debug for dyn Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Network")
    }
}

impl SupervisorConfig {
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

    /// The defaults: no proxy, no extra PATH, a 5 s grace period, the nodes' own intervals, the
    /// system's TLS roots.
    pub fn new(control: impl Into<String>, mesh: impl Into<String>, data_dir: PathBuf) -> Self {
        SupervisorConfig {
            control: control.into(),
            mesh: mesh.into(),
            data_dir,
            http_proxy: None,
            extra_path: Vec::new(),
            grace: Self::DEFAULT_GRACE,
            health_interval: None,
            token: None,
            ca: None,
            host: None,
            network: None,
            mesh_tls: false,
        }
    }

    /// The endpoint id of a replica: `<workload>-<n>`, then `.<host>` on a named host.
    pub fn endpoint_id(&self, workload: &str, replica: u32) -> String {
        match &self.host {
            Some(host) => format!("{}.{host}", replica_id(workload, replica)),
            None => replica_id(workload, replica),
        }
    }
}

/// What one replica is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub workload: String,
    /// 0-based; the endpoint id and log file name are `<workload>-<replica>`.
    pub replica: u32,
    pub virtual_node: String,
    /// The running process (the leader of its process group), if any.
    pub pid: Option<u32>,
    /// The port the process was told to listen on (`PORT`), while it runs.
    pub port: Option<u16>,
    pub state: ReplicaState,
    /// How often the process was started again after it exited (or failed to start).
    pub restarts: u32,
    /// Whether the control plane holds this replica's endpoint right now.
    pub registered: bool,
    /// Why the process last ended, e.g. `exit status: 1` or `signal: 9 (SIGKILL)`.
    pub last_exit: Option<String>,
}

impl ReplicaStatus {
    /// The endpoint id and log file stem: `<workload>-<replica>`.
    pub fn id(&self) -> String {
        replica_id(&self.workload, self.replica)
    }
}

/// The life of a replica: `Starting` until its health check passes `healthyThreshold` times,
/// then `Healthy` (registered) and `Unhealthy` (deregistered) as checks pass and fail; `Backoff`
/// between an exit and the next start; `Stopping` while it is being shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    Starting,
    Healthy,
    Unhealthy,
    Backoff,
    Stopping,
    Stopped,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Starting => "starting",
            ReplicaState::Healthy => "healthy",
            ReplicaState::Unhealthy => "unhealthy",
            ReplicaState::Backoff => "backoff",
            ReplicaState::Stopping => "stopping",
            ReplicaState::Stopped => "stopped",
        }
    }
}

/// `<workload>-<replica>`: the endpoint id of a replica and the stem of its log file.
pub fn replica_id(workload: &str, replica: u32) -> String {
    format!("{workload}-{replica}")
}

/// Status and registries are only ever held for a few field updates, so a panic while one is held
/// leaves nothing half-done that matters: keep going with the data as it is.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the supervisor until `shutdown` is cancelled, then stops every replica (deregistered,
/// SIGTERM, SIGKILL after the grace period) before it returns. An unreachable control plane is
/// not an error: the supervisor keeps what runs and retries with a bounded backoff.
pub async fn run(
    config: SupervisorConfig,
    shutdown: CancellationToken,
) -> Result<(), WorkloadsError> {
    let supervisor = Supervisor::start(config)?;
    shutdown.cancelled().await;
    supervisor.shutdown().await
}
