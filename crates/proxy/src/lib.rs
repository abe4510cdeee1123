//! aviary's data plane: the proxy every request of the mesh goes through. In the gateway role
//! it serves a virtual gateway's listeners and routes by its gateway routes; in the mesh role
//! it is a node's egress listener, reached by virtual service name (`HTTP_PROXY` absolute-form
//! requests or the `Host` header). Either way a request resolves through its virtual service's
//! provider (router routes by match and priority, or a node) to weighted target nodes and a
//! healthy endpoint, and is forwarded with keep-alive pools, the route's timeouts and retries.
//!
//! It owns request matching, weighted choice, load balancing, outlier detection, forwarding,
//! its configuration copy (snapshot + watch stream, swapped atomically, saved for static
//! stability) and its metrics. It speaks to the control plane only through `client` and the
//! `/v1` wire contract: it never opens the store and never depends on `control` (except as a
//! dev-dependency, to run a real control plane in tests).

mod admin;
mod agent;
mod body;
mod canary;
mod endpoints;
mod error;
mod forward;
mod headers;
mod inbound;
mod matching;
mod mesh_tls;
mod outlier;
mod pool;
mod push;
mod retry;
mod server;
mod snapshot;
mod sync;
mod table;
mod telemetry;
mod tls;
mod trace;
mod weighted;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use endpoints::{BoxFuture, DnsSource, EndpointSource, RegisteredSource};
pub use error::{Delivery, Party, ProxyError, StartError};
pub use mesh_tls::MeshTlsConfig;
pub use snapshot::Snapshot;
pub use telemetry::{SeriesCounts, SeriesKey};
pub use trace::TraceConfig;
pub use weighted::WeightedChoice;

use forward::{Entry, Upstreams};
use server::Serves;
use table::RouteTable;
use telemetry::{ConfigSource, Telemetry};

/// What this proxy is in the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Serves the listeners of this virtual gateway.
    Gateway(String),
    /// The egress proxy of this virtual node.
    Node(String),
    /// An egress proxy shared by every local workload of the mesh: it reaches every virtual
    /// service, since it cannot tell which node a caller is, so no node's `backends` list is
    /// enforced.
    Mesh,
    /// The data plane of one host (`aviary agent`, `aviary up`): a shared outbound listener
    /// like `Mesh`'s, plus the outbound and inbound listeners its local replicas get through
    /// [`Handle::outbound`] and [`Handle::inbound`]. `host`: the machine's name, if it has one
    /// among several.
    Agent { host: Option<String> },
}

/// "gateway demo-gw" / "node order-vn": who reports stats and logs.
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Gateway(name) => write!(f, "gateway {name}"),
            Role::Node(name) => write!(f, "node {name}"),
            Role::Mesh => f.write_str("mesh egress"),
            Role::Agent { host: Some(host) } => write!(f, "agent {host}"),
            Role::Agent { host: None } => f.write_str("agent"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the control plane, or a comma-separated list of its replicas' URLs: every
    /// request (snapshot, watch, stats push) goes to the one that answered last and fails over
    /// to the next (`client::Client`).
    pub control: String,
    pub mesh: String,
    pub role: Role,
    /// Address the gateway's listener ports are bound on, and an agent's inbound listeners:
    /// the host's address, which other hosts reach it at.
    pub bind: IpAddr,
    /// The egress listener (node, mesh and agent roles); an agent's per-node outbound
    /// listeners bind on its address too.
    pub egress_listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    /// Where the last snapshot is saved, to start from when the control plane is down.
    pub state_dir: Option<PathBuf>,
    /// A `proxy` token of the mesh (or an admin token), for the control plane.
    pub token: Option<String>,
    /// For an `https://` control plane: the CA file (PEM) to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// Open connections at most on each listener; one more is answered 503 and closed, so a
    /// flood meets a clear refusal instead of the file-descriptor limit.
    pub max_connections: usize,
    /// Take part in the mesh's mutual TLS: certificates from the control plane's CA for this
    /// gateway, or for each local node of an agent, presented to endpoints that take mesh TLS
    /// (`meshTls`) and, on an agent, required of nothing but offered by its inbound listeners.
    pub mesh_tls: Option<MeshTlsConfig>,
    /// Where to export spans, and how many new traces to sample; `None`: no spans, and the
    /// trace headers pass through untouched.
    pub trace: Option<TraceConfig>,
}

impl Config {
    /// Far above what one proxy serves in the mesh, far below the hard file limits of a host.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

    /// A configuration with the defaults: bind 127.0.0.1, egress on 127.0.0.1:15001, no admin
    /// listener, no state directory, the system's TLS roots, 10,000 connections per listener.
    pub fn new(control: impl Into<String>, mesh: impl Into<String>, role: Role) -> Config {
        Config {
            control: control.into(),
            mesh: mesh.into(),
            role,
            bind: IpAddr::from([127, 0, 0, 1]),
            egress_listen: SocketAddr::from(([127, 0, 0, 1], 15001)),
            admin_listen: None,
            state_dir: None,
            token: None,
            ca: None,
            max_connections: Config::DEFAULT_MAX_CONNECTIONS,
            mesh_tls: None,
            trace: None,
        }
    }
}

/// What a bound listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Gateway,
    Egress,
    Admin,
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerKind::Gateway => "gateway",
            ListenerKind::Egress => "egress",
            ListenerKind::Admin => "admin",
        })
    }
}

/// State every request and task shares.
pub(crate) struct Shared {
    mesh: String,
    role: Role,
    table: ArcSwap<RouteTable>,
    /// The revision of the table in use, for whoever waits for a change.
    applied: watch::Sender<u64>,
    /// When the table in use was installed, in microseconds since the Unix epoch.
    applied_at: std::sync::atomic::AtomicU64,
    telemetry: Telemetry,
    upstreams: Upstreams,
    /// Starts each request's span; `None` without a collector.
    tracer: Option<trace::Tracer>,
    /// This proxy's mesh identities; `None` without `Config::mesh_tls`.
    mesh_tls: Option<mesh_tls::MeshTls>,
    /// Copies of requests on their way to canaries (the mirror step), and their bound.
    mirrors: forward::Mirrors,
}

/// A poisoned lock only means another task panicked while holding it; the maps behind these
/// locks are updated in one step, so they are still sound.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A view of a running proxy, for tests and embedding, and an agent's way to open and close
/// the listeners of its local replicas.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    dynamic: Arc<agent::Dynamic>,
}

impl Handle {
    /// The outbound listener of local virtual node `node` (bound on first use, on the egress
    /// address's IP): its replicas' `HTTP_PROXY`, under which the node's `backends` apply.
    pub async fn outbound(&self, node: &str) -> Result<SocketAddr, StartError> {
        self.dynamic.outbound(&self.shared, node).await
    }

    /// Opens the inbound listener (on [`Config::bind`], a free port) for replica `id` of
    /// `node`, which passes every request to `local`; the same one while `local` is the same.
    pub async fn inbound(
        &self,
        node: &str,
        id: &str,
        local: SocketAddr,
    ) -> Result<SocketAddr, StartError> {
        self.dynamic.inbound(&self.shared, node, id, local).await
    }

    /// Closes replica `id`'s inbound listener; its open connections drain.
    pub fn close_inbound(&self, id: &str) {
        self.dynamic.close_inbound(id);
    }

    /// The store revision of the configuration in use (0 before any).
    pub fn revision(&self) -> u64 {
        self.shared.table.load().revision
    }

    /// Changes whenever a new configuration is in use; the value is its revision.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }

    /// Request counters per (virtual service, route, target node).
    pub fn metrics(&self) -> Vec<(SeriesKey, SeriesCounts)> {
        self.shared.telemetry.snapshot()
    }
}

/// A proxy whose listeners are bound and whose first configuration is loaded; `run` serves.
pub struct Proxy {
    shared: Arc<Shared>,
    config: Config,
    client: client::Client,
    /// The first configuration came from the control plane (else: state directory or none).
    initial: Option<snapshot::Snapshot>,
    listeners: Vec<(ListenerKind, TcpListener)>,
    gateway_ports: Vec<u16>,
    /// Drains the tracer's queue once `run` spawns it.
    exporter: Option<trace::Exporter>,
    shutdown: CancellationToken,
    dynamic: Arc<agent::Dynamic>,
}

pub(crate) async fn bind_listener(
    addr: SocketAddr,
    what: &'static str,
) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, what, source })
}

impl Proxy {
    /// Loads the first configuration (control plane, else state directory) and binds every
    /// listener it needs; serving starts with [`run`](Proxy::run).
    pub async fn bind(config: Config, shutdown: CancellationToken) -> Result<Proxy, StartError> {
        if config.mesh.is_empty() {
            return Err(StartError::Config("the mesh name is empty".into()));
        }
        if config.max_connections == 0 {
            return Err(StartError::Config(
                "max_connections must be at least 1".into(),
            ));
        }
        let (tracer, exporter) = match &config.trace {
            Some(trace) => {
                let (tracer, exporter) = trace::Tracer::new(trace, &config.role.to_string())
                    .map_err(StartError::Config)?;
                (Some(tracer), Some(exporter))
            }
            None => (None, None),
        };
        let options = client::ClientOptions {
            ca: config.ca.clone(),
        };
        let client = client::Client::with_options(&config.control, &options)
            .map_err(StartError::Client)?
            .with_token(config.token.clone());
        let tracker = TaskTracker::new();
        let telemetry = Telemetry::new(&config.mesh);
        let mesh_tls = config.mesh_tls.as_ref().map(|mesh_tls| {
            mesh_tls::MeshTls::new(
                client.clone(),
                &config.mesh,
                mesh_tls,
                telemetry.tls.clone(),
                tracker.clone(),
                shutdown.clone(),
            )
        });
        let shared = Arc::new(Shared {
            mesh: config.mesh.clone(),
            role: config.role.clone(),
            table: ArcSwap::from_pointee(RouteTable::empty(&config.mesh)),
            applied: watch::Sender::new(0),
            applied_at: Default::default(),
            telemetry,
            upstreams: Upstreams::new(),
            tracer,
            mesh_tls,
            mirrors: forward::Mirrors::new(tracker.clone()),
        });
        let mut initial = None;
        if let Some((snapshot, source)) =
            sync::initial(&client, &shared, config.state_dir.as_ref()).await
        {
            let snapshot_arc = Arc::new(snapshot.clone());
            sync::install(&shared, snapshot_arc.clone(), source);
            if source == ConfigSource::Control {
                if let Some(dir) = &config.state_dir {
                    sync::save(dir.clone(), config.mesh.clone(), snapshot_arc).await;
                }
                initial = Some(snapshot);
            }
        }
        let mut listeners = Vec::new();
        let mut gateway_ports = Vec::new();
        match &config.role {
            Role::Node(_) | Role::Mesh | Role::Agent { .. } => {
                let listener = bind_listener(config.egress_listen, "egress").await?;
                listeners.push((ListenerKind::Egress, listener));
            }
            Role::Gateway(_) => {
                for port in shared.table.load().gateway_ports() {
                    let addr = SocketAddr::new(config.bind, port);
                    listeners.push((ListenerKind::Gateway, bind_listener(addr, "gateway").await?));
                    gateway_ports.push(port);
                }
            }
        }
        if let Some(addr) = config.admin_listen {
            listeners.push((ListenerKind::Admin, bind_listener(addr, "admin").await?));
        }
        let dynamic = Arc::new(agent::Dynamic::new(
            tracker,
            shutdown.clone(),
            config.max_connections,
            config.egress_listen.ip(),
            config.bind,
        ));
        Ok(Proxy {
            shared,
            config,
            client,
            initial,
            listeners,
            gateway_ports,
            exporter,
            shutdown,
            dynamic,
        })
    }

    /// Every bound listener and what it serves. A gateway listener added to the virtual
    /// gateway later is bound while running and logged.
    pub fn listeners(&self) -> Vec<(ListenerKind, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(kind, l)| l.local_addr().ok().map(|a| (*kind, a)))
            .collect()
    }

    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
            dynamic: self.dynamic.clone(),
        }
    }

    /// Serves until the shutdown token is cancelled, then drains connections (bounded).
    pub async fn run(self) -> Result<(), StartError> {
        let tracker = self.dynamic.tracker.clone();
        let shutdown = self.shutdown.clone();
        let mut gateway_stops: HashMap<u16, CancellationToken> = HashMap::new();
        let mut gateway_ports = self.gateway_ports.into_iter();
        for (kind, listener) in self.listeners {
            let (serves, stop) = match kind {
                ListenerKind::Egress => {
                    // A node's own egress listener knows its caller; a shared one does not.
                    let node = match &self.config.role {
                        Role::Node(name) => Some(Arc::from(name.as_str())),
                        _ => None,
                    };
                    (Serves::Proxy(Entry::Egress { node }), shutdown.clone())
                }
                ListenerKind::Admin => (Serves::Admin, shutdown.clone()),
                ListenerKind::Gateway => {
                    let port = gateway_ports.next().expect("one port per gateway listener");
                    let stop = shutdown.child_token();
                    gateway_stops.insert(port, stop.clone());
                    (Serves::Proxy(Entry::Gateway { port }), stop)
                }
            };
            tracker.spawn(server::serve(
                listener,
                self.shared.clone(),
                serves,
                self.config.max_connections,
                stop,
                tracker.clone(),
            ));
        }
        let saved = self.config.state_dir.clone().map(|dir| {
            let (tx, rx) = watch::channel(None);
            tracker.spawn(sync::saver(
                dir,
                self.config.mesh.clone(),
                rx,
                shutdown.clone(),
            ));
            tx
        });
        let syncer = sync::Syncer {
            shared: self.shared.clone(),
            client: self.client.clone(),
            saved,
        };
        tracker.spawn(syncer.run(self.initial, shutdown.clone()));
        let shared = self.shared.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move { shared.upstreams.expire_idle(stop).await });
        if let Some(exporter) = self.exporter {
            let shared = self.shared.clone();
            let stop = shutdown.clone();
            tracker.spawn(async move { exporter.run(&shared.telemetry, stop).await });
        }
        tracker.spawn(push::run(
            self.shared.clone(),
            self.client,
            self.config.role.to_string(),
            shutdown.clone(),
        ));
        if matches!(self.config.role, Role::Gateway(_)) {
            let mut applied = self.shared.applied.subscribe();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    changed = applied.changed() => if changed.is_err() { break },
                }
                let wanted = self.shared.table.load().gateway_ports();
                gateway_stops.retain(|port, stop| {
                    let keep = wanted.contains(port);
                    if !keep {
                        tracing::info!(port, "gateway listener removed");
                        stop.cancel();
                    }
                    keep
                });
                for port in wanted {
                    if gateway_stops.contains_key(&port) {
                        continue;
                    }
                    let addr = SocketAddr::new(self.config.bind, port);
                    match bind_listener(addr, "gateway").await {
                        Ok(listener) => {
                            tracing::info!(%addr, "aviary proxy listening (gateway)");
                            let stop = shutdown.child_token();
                            gateway_stops.insert(port, stop.clone());
                            tracker.spawn(server::serve(
                                listener,
                                self.shared.clone(),
                                Serves::Proxy(Entry::Gateway { port }),
                                self.config.max_connections,
                                stop,
                                tracker.clone(),
                            ));
                        }
                        Err(error) => tracing::warn!(%error, "gateway listener not bound"),
                    }
                }
            }
        }
        shutdown.cancelled().await;
        tracker.close();
        // Requests in flight get a moment to finish; a stuck upstream does not hold shutdown.
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        Ok(())
    }
}

/// Binds and serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    Proxy::bind(config, shutdown).await?.run().await
}
