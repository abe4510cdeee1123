//! The aviary control plane: the App Mesh 2019-01-25 REST API (`/v20190125/...`), aviary's own
//! `/v1` API (mesh snapshot and watch stream for proxies), `/healthz` and `/metrics`, all over a
//! revisioned `store`, served over HTTP/1.1 or HTTPS (rustls) with bounded connections.
//!
//! It owns the HTTP surface (its accept loop, TLS, connection limits and timeouts), request validation (through `model`), the resource records' key
//! layout in the store, and the rules that keep a mesh consistent: parents exist before children,
//! references point at existing resources, nothing in use is deleted. It must not know the
//! proxy's internals or how workloads run.

mod activity;
mod appmesh;
pub mod auth;
mod body;
pub mod ca;
mod canaries;
pub mod clock;
mod consistency;
mod deploys;
mod endpoints;
mod error;
mod leader;
mod live;
mod objects;
mod pipelines;
mod records;
mod resources;
mod server;
mod stats;
mod telemetry;
mod tls;
mod ui;
mod v1;
mod webhooks;
mod workloads;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, put};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use live::{LogSource, Logs};
pub use resources::Identity;
pub use server::Limits;
pub use tls::{TlsError, TlsFiles};

use resources::Resources;
use telemetry::Telemetry;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the redb store lives; `None` keeps everything in memory (tests only).
    pub data_dir: Option<PathBuf>,
    /// A store opened by the caller, used instead of `data_dir`: several control planes in one
    /// process over one store stand for replicas in tests.
    pub store: Option<SharedStore>,
    /// Keep the store in etcd (then `data_dir` is not opened): several replicas, one leader.
    pub etcd: Option<store::EtcdConfig>,
    /// The URL other replicas reach this one at; default `url()`.
    pub advertise_url: Option<String>,
    pub identity: Identity,
    pub auth: auth::AuthConfig,
    /// How much watch history the store keeps for `/v1` watchers; a watcher further behind is
    /// told to re-list.
    pub watch_history: store::HistoryLimits,
    /// URL prefixes canary webhooks may call (`--webhook-allow`); empty: any http(s) URL.
    pub webhook_allow: Vec<String>,
    /// Serve HTTPS with this certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    /// How long certificates of the mesh CAs are valid (`--cert-ttl`); from
    /// `ca::MIN_CERT_TTL` to `ca::MAX_CERT_TTL`, checked at `bind`.
    pub cert_ttl: std::time::Duration,
    /// Where the console reads workloads' logs: the supervisor's files when this process runs
    /// the workloads (`aviary up`); `None` answers that logs are kept on the agents' hosts.
    pub logs: Option<Logs>,
    /// Where pipeline runs check out and build (`--builds-dir`); `None`: `data_dir/builds`,
    /// and with neither, pipelines are refused.
    pub builds_dir: Option<PathBuf>,
    /// Where canaries' time comes from: the wall clock, or in tests tokio's (see [`clock`]).
    pub clock: clock::Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: Some(PathBuf::from(".aviary")),
            store: None,
            etcd: None,
            advertise_url: None,
            identity: Identity {
                account: "000000000000".into(),
                region: "local".into(),
            },
            auth: auth::AuthConfig::default(),
            watch_history: store::HistoryLimits::default(),
            webhook_allow: Vec::new(),
            tls: None,
            limits: Limits::default(),
            cert_ttl: ca::DEFAULT_CERT_TTL,
            logs: None,
            builds_dir: None,
            clock: clock::Clock::System,
        }
    }
}

/// A store shared by reference; see [`Config::store`].
#[derive(Clone)]
pub struct SharedStore(pub Arc<dyn store::Store>);

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStore")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up authentication: {0}")]
    Secrets(#[from] auth::SecretsError),
    #[error(
        "refusing to listen on {0} with authentication off: --no-auth is for loopback addresses only"
    )]
    OpenWithoutAuth(SocketAddr),
    #[error(transparent)]
    WebhookAllow(#[from] webhooks::InvalidPrefix),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("invalid limits: {0}")]
    Limits(String),
    #[error(transparent)]
    CertTtl(#[from] ca::InvalidTtl),
    #[error("cannot build the client that forwards stats to the leader: {0}")]
    Forwarder(#[from] reqwest::Error),
}

/// What every handler shares.
pub struct App {
    resources: Resources,
    telemetry: Telemetry,
    stats: stats::StatsWindow,
    /// Which nodes each mesh has, for checking stats pushes without a store read each.
    known_nodes: stats::KnownNodes,
    /// Held across read, step, store and act of one canary, so API commands and the driver
    /// never interleave on it.
    canary_lock: tokio::sync::Mutex<()>,
    /// Held across read, decide and store of deploys, so a create never races the driver.
    deploy_lock: tokio::sync::Mutex<()>,
    /// Whether this replica drives canaries, and the fence of its writes.
    leadership: Arc<leader::Leadership>,
    /// Where other replicas reach this one: what it writes into the leader key.
    advertise_url: String,
    /// Forwards proxies' stats from a follower to the leader.
    peers: stats::Forwarder,
    auth: auth::Auth,
    /// Where webhooks may go, and the client that calls them.
    webhook_policy: Arc<webhooks::WebhookPolicy>,
    /// Cancelled at shutdown; long-lived streams end on it so shutdown never waits on a peer.
    shutdown: CancellationToken,
    /// Validity of the certificates the mesh CAs issue.
    cert_ttl: std::time::Duration,
    /// The console reads logs here; see [`Config::logs`].
    logs: Option<Logs>,
    /// Served over HTTPS: the console's cookie is then `Secure`.
    serves_tls: bool,
    /// The pipelines' builds on this replica's host.
    pipelines: pipelines::Runner,
    /// The canaries' time.
    clock: clock::Clock,
    /// The latest values of the canaries' Prometheus checks.
    metrics: Arc<canaries::Metrics>,
    /// The synthetic load generators of live canaries (`analysis.load`).
    loads: Arc<canaries::Loads>,
}

/// A bound, not yet serving, control plane: tests read `local_addr` before `run`.
pub struct Control {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    app: Arc<App>,
}

impl Control {
    pub async fn bind(
        config: Config,
        shutdown: CancellationToken,
    ) -> Result<Control, ControlError> {
        if !config.auth.enabled && !config.listen.ip().is_loopback() {
            return Err(ControlError::OpenWithoutAuth(config.listen));
        }
        let webhook_policy = Arc::new(webhooks::WebhookPolicy::new(&config.webhook_allow)?);
        if config.limits.max_connections == 0 {
            return Err(ControlError::Limits(
                "max_connections must be at least 1".into(),
            ));
        }
        let cert_ttl = ca::check_ttl(config.cert_ttl)?;
        // Before the store and the port: a bad certificate path fails fast and binds nothing.
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let store: Arc<dyn store::Store> = match (&config.store, &config.etcd, &config.data_dir) {
            (Some(shared), _, _) => shared.0.clone(),
            (None, Some(etcd), _) => store::open_etcd(etcd)?,
            (None, None, Some(dir)) => {
                Arc::new(store::open_dir_with_history(dir, config.watch_history)?)
            }
            (None, None, None) => Arc::new(store::MemoryStore::with_history(config.watch_history)),
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ControlError::Bind {
                addr: config.listen,
                source,
            })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let bound = listener.local_addr().map_err(|source| ControlError::Bind {
            addr: config.listen,
            source,
        })?;
        let advertise_url = config
            .advertise_url
            .clone()
            .unwrap_or_else(|| default_advertise_url(scheme, bound));
        let mut auth_config = config.auth;
        if store.leases().is_some() && auth_config.replica.is_none() {
            auth_config.replica = Some(advertise_url.clone());
        }
        let auth = auth::Auth::load(auth_config, &store)?;
        // One process on its store leads from the start; replicas on etcd campaign (`run`).
        let leadership = Arc::new(match store.leases() {
            Some(_) => leader::Leadership::follower(),
            None => leader::Leadership::sole(config.clock.now()),
        });
        let builds_dir = config
            .builds_dir
            .clone()
            .or_else(|| config.data_dir.as_ref().map(|dir| dir.join("builds")));
        let app = Arc::new(App {
            auth,
            resources: Resources::new(store, config.identity),
            telemetry: Telemetry::default(),
            stats: stats::StatsWindow::default(),
            known_nodes: stats::KnownNodes::default(),
            canary_lock: tokio::sync::Mutex::new(()),
            deploy_lock: tokio::sync::Mutex::new(()),
            leadership,
            advertise_url,
            peers: stats::Forwarder::new()?,
            webhook_policy,
            shutdown,
            cert_ttl,
            logs: config.logs,
            serves_tls: tls.is_some(),
            pipelines: pipelines::Runner::new(builds_dir),
            clock: config.clock,
            metrics: Arc::default(),
            loads: Arc::default(),
        });
        Ok(Control {
            listener,
            tls,
            limits: config.limits,
            app,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bootstrap admin token (`admin.token`), for callers in the same process.
    pub fn admin_token(&self) -> &str {
        &self.app.auth.admin_token
    }

    /// A new token of `role` (a `proxy` token for `mesh`), as `aviary up` gives its proxies;
    /// tokens of the same name are revoked, so restarts do not pile tokens up.
    pub fn issue_token(
        &self,
        name: &str,
        role: auth::Role,
        mesh: Option<&str>,
    ) -> Result<String, ApiError> {
        let issued = auth::tokens::issue(
            self.app.resources.store(),
            name,
            role,
            mesh,
            auth::tokens::SameName::Replace,
        )?;
        Ok(issued.token)
    }

    /// `https://ADDR` with TLS, else `http://ADDR`: what clients should use.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Serves until the shutdown token passed to `bind` is cancelled.
    pub async fn run(self) -> Result<(), ControlError> {
        let shutdown = self.app.shutdown.clone();
        let me = leader::LeaderRecord {
            url: self.app.advertise_url.clone(),
        };
        tokio::spawn(leader::run(
            self.app.resources.store().clone(),
            self.app.leadership.clone(),
            me,
            shutdown.clone(),
        ));
        tokio::spawn(pipelines::drive(self.app.clone(), shutdown.clone()));
        tokio::spawn(canaries::drive(self.app.clone(), shutdown));
        server::serve(self.listener, self.tls, self.limits, self.app).await;
        Ok(())
    }
}

/// `scheme://ADDR`, with the machine's host name for an unspecified address (0.0.0.0), which
/// no other replica could reach.
fn default_advertise_url(scheme: &str, bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{scheme}://{host}:{}", bound.port())
    } else {
        format!("{scheme}://{bound}")
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(v1::healthz))
        .route("/metrics", get(v1::metrics))
        .route("/v1/meshes/{mesh}/snapshot", get(v1::snapshot))
        .route("/v1/meshes/{mesh}/watch", get(v1::watch))
        .route("/v1/meshes/{mesh}/endpoints", get(v1::list_endpoints))
        .route(
            "/v1/meshes/{mesh}/endpoints/{node}/{id}",
            put(v1::put_endpoint).delete(v1::delete_endpoint),
        )
        .route(
            "/v1/meshes/{mesh}/canaries",
            get(v1::list_canaries).post(v1::create_canary),
        )
        .route("/v1/meshes/{mesh}/canaries/{name}", get(v1::get_canary))
        .route(
            "/v1/meshes/{mesh}/canaries/{name}/{command}",
            axum::routing::post(v1::command_canary),
        )
        .route(
            "/v1/meshes/{mesh}/deploys",
            get(v1::list_deploys).post(v1::create_deploy),
        )
        .route("/v1/meshes/{mesh}/deploys/{name}", get(v1::get_deploy))
        .route(
            "/v1/meshes/{mesh}/pipelines",
            get(v1::list_pipelines).post(v1::create_pipeline),
        )
        .route(
            "/v1/meshes/{mesh}/pipelines/{name}",
            get(v1::get_pipeline).delete(v1::delete_pipeline),
        )
        .route(
            "/v1/meshes/{mesh}/pipelines/{name}/trigger",
            axum::routing::post(v1::trigger_pipeline),
        )
        .route(
            "/v1/meshes/{mesh}/pipelines/{name}/runs",
            get(v1::list_runs),
        )
        .route(
            "/v1/meshes/{mesh}/pipelines/{name}/runs/{number}",
            get(v1::get_run),
        )
        .route(
            "/v1/meshes/{mesh}/pipelines/{name}/runs/{number}/approve",
            axum::routing::post(v1::approve_run),
        )
        .route(
            "/v1/meshes/{mesh}/pipelines/{name}/runs/{number}/logs",
            get(v1::run_logs),
        )
        .route(
            "/v1/meshes/{mesh}/workloads/{name}/failures",
            get(v1::list_failures),
        )
        .route(
            "/v1/meshes/{mesh}/workloads/{name}/failures/{replica}",
            put(v1::put_failure),
        )
        .route("/v1/meshes/{mesh}/workloads", get(v1::list_workloads))
        .route(
            "/v1/meshes/{mesh}/workloads/{name}",
            put(v1::put_workload)
                .get(v1::get_workload)
                .delete(v1::delete_workload),
        )
        .route("/v1/meshes/{mesh}/ca", get(v1::trust_bundle))
        .route(
            "/v1/meshes/{mesh}/certificates",
            axum::routing::post(v1::issue_certificate),
        )
        .route(
            "/v1/meshes/{mesh}/stats",
            get(v1::get_stats).post(v1::post_stats),
        )
        .route("/v1/tokens", get(v1::list_tokens).post(v1::create_token))
        .route("/v1/tokens/{id}", axum::routing::delete(v1::revoke_token))
        .route("/v1/meshes/{mesh}/stats/stream", get(live::stats_stream))
        .route("/v1/meshes/{mesh}/stats/series", get(live::stats_series))
        .route(
            "/v1/meshes/{mesh}/workloads/{name}/logs",
            get(live::workload_logs),
        )
        .route("/ui", get(ui::root))
        .route("/ui/", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/app.css", get(ui::style))
        .route(
            "/ui/session",
            get(ui::current).post(ui::sign_in).delete(ui::sign_out),
        )
        .route("/v20190125/{*rest}", any(appmesh::handle))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::guard,
        ))
        .layer(axum::middleware::from_fn(error::answer_panics))
        .with_state(app)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no API at path {}", uri.path()))
}

/// axum's own 405 has no body; ours says what was refused, in App Mesh's error shape.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}
