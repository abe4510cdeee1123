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
mod canaries;
mod endpoints;
mod error;
mod objects;
mod records;
mod resources;
mod server;
mod stats;
mod telemetry;
mod tls;
mod v1;
mod workloads;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, put};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
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
    pub identity: Identity,
    /// Serve HTTPS with this certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: Some(PathBuf::from(".aviary")),
            identity: Identity {
                account: "000000000000".into(),
                region: "local".into(),
            },
            tls: None,
            limits: Limits::default(),
        }
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
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("invalid limits: {0}")]
    Limits(String),
}

/// What every handler shares.
pub struct App {
    resources: Resources,
    telemetry: Telemetry,
    stats: stats::StatsWindow,
    /// Held across read, step, store and act of one canary, so API commands and the driver
    /// never interleave on it.
    canary_lock: tokio::sync::Mutex<()>,
    webhooks: Arc<canaries::WebhookResults>,
    /// Cancelled at shutdown; long-lived streams end on it so shutdown never waits on a peer.
    shutdown: CancellationToken,
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
        if config.limits.max_connections == 0 {
            return Err(ControlError::Limits(
                "max_connections must be at least 1".into(),
            ));
        }
        tls::install_crypto_provider();
        // Before the store and the port: a bad certificate path fails fast and binds nothing.
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let store: Arc<dyn store::Store> = match &config.data_dir {
            Some(dir) => Arc::new(store::open_dir(dir)?),
            None => Arc::new(store::MemoryStore::new()),
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ControlError::Bind {
                addr: config.listen,
                source,
            })?;
        let app = Arc::new(App {
            resources: Resources::new(store, config.identity),
            telemetry: Telemetry::default(),
            stats: stats::StatsWindow::default(),
            canary_lock: tokio::sync::Mutex::new(()),
            webhooks: Arc::default(),
            shutdown,
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

    /// `https://ADDR` with TLS, else `http://ADDR`: what clients should use.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Serves until the shutdown token passed to `bind` is cancelled.
    pub async fn run(self) -> Result<(), ControlError> {
        let shutdown = self.app.shutdown.clone();
        tokio::spawn(canaries::drive(self.app.clone(), shutdown));
        server::serve(self.listener, self.tls, self.limits, self.app).await;
        Ok(())
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
        .route("/v1/meshes/{mesh}/workloads", get(v1::list_workloads))
        .route(
            "/v1/meshes/{mesh}/workloads/{name}",
            put(v1::put_workload)
                .get(v1::get_workload)
                .delete(v1::delete_workload),
        )
        .route(
            "/v1/meshes/{mesh}/stats",
            get(v1::get_stats).post(v1::post_stats),
        )
        .route("/v20190125/{*rest}", any(appmesh::handle))
        .fallback(not_found)
        .with_state(app)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no API at path {}", uri.path()))
}
