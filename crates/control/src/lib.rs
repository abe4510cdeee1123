//! The aviary control plane: the App Mesh 2019-01-25 REST API (`/v20190125/...`), aviary's own
//! `/v1` API (mesh snapshot and watch stream for proxies), `/healthz` and `/metrics`, all over a
//! revisioned `store`.
//!
//! It owns the HTTP surface, request validation (through `model`), the resource records' key
//! layout in the store, and the rules that keep a mesh consistent: parents exist before children,
//! references point at existing resources, nothing in use is deleted. It must not know the
//! proxy's internals or how workloads run.

mod appmesh;
mod canaries;
mod endpoints;
mod error;
mod objects;
mod records;
mod resources;
mod stats;
mod telemetry;
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
pub use resources::Identity;

use resources::Resources;
use telemetry::Telemetry;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the redb store lives; `None` keeps everything in memory (tests only).
    pub data_dir: Option<PathBuf>,
    pub identity: Identity,
    /// URL prefixes canary webhooks may call (`--webhook-allow`); empty: any http(s) URL.
    pub webhook_allow: Vec<String>,
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
            webhook_allow: Vec::new(),
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
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    WebhookAllow(#[from] webhooks::InvalidPrefix),
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
    /// Where webhooks may go, and the client that calls them.
    webhook_policy: Arc<webhooks::WebhookPolicy>,
    /// Cancelled at shutdown; long-lived streams end on it so shutdown never waits on a peer.
    shutdown: CancellationToken,
}

/// A bound, not yet serving, control plane: tests read `local_addr` before `run`.
pub struct Control {
    listener: tokio::net::TcpListener,
    app: Arc<App>,
}

impl Control {
    pub async fn bind(
        config: Config,
        shutdown: CancellationToken,
    ) -> Result<Control, ControlError> {
        let webhook_policy = Arc::new(webhooks::WebhookPolicy::new(&config.webhook_allow)?);
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
            webhook_policy,
            shutdown,
        });
        Ok(Control { listener, app })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until the shutdown token passed to `bind` is cancelled.
    pub async fn run(self) -> Result<(), ControlError> {
        let shutdown = self.app.shutdown.clone();
        tokio::spawn(canaries::drive(self.app.clone(), shutdown.clone()));
        axum::serve(self.listener, router(self.app))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(ControlError::Serve)
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
        .method_not_allowed_fallback(method_not_allowed)
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
