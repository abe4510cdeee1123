//! The HTTP server all three services share: `GET /` with fault injection, `GET /health`, and
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Service};
use crate::error::DemoError;
use crate::faults::Faults;
use crate::order::Order;

/// How long in-flight requests get to finish after shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound, not yet serving, demo service: binding first lets callers learn the address (port 0).
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    service: Service,
    version: String,
    app: Router,
}

struct Shared {
    service: Service,
    /// `{"service":...,"version":...}`, rendered once.
    identity: String,
    version: String,
    faults: Faults,
    unhealthy: bool,
    /// Requests to `GET /` so far: drives error rate and fail-after.
    served: AtomicU64,
    order: Option<Order>,
}

impl Server {
    pub async fn bind(config: Config) -> Result<Server, DemoError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| DemoError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| DemoError::Bind {
            addr: config.listen,
            source,
        })?;
        let order = match config.service {
            Service::Order => Some(Order::new(&config.backends)?),
            Service::Product | Service::Customer => None,
        };
        let shared = Shared {
            service: config.service,
            identity: identity_line(config.service, &config.version),
            version: config.version.clone(),
            faults: config.faults,
            unhealthy: config.unhealthy,
            served: AtomicU64::new(0),
            order,
        };
        let app = Router::new()
            .route("/", get(root))
            .route("/health", get(health))
            .with_state(Arc::new(shared));
        Ok(Server {
            listener,
            addr,
            service: config.service,
            version: config.version,
            app,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service(&self) -> Service {
        self.service
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish for at most
    /// `SHUTDOWN_GRACE`.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), DemoError> {
        let serving = axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace_over = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            result = std::future::IntoFuture::into_future(serving) => result.map_err(DemoError::Serve),
            () = grace_over => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still in flight at shutdown, dropped");
                Ok(())
            }
        }
    }
}

#[derive(Serialize)]
struct Identity<'a> {
    service: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct Failure<'a> {
    service: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    error: &'a str,
}

fn identity_line(service: Service, version: &str) -> String {
    serde_json::to_string(&Identity {
        service: service.name(),
        version,
    })
    .expect("a struct of strings serializes")
}

/// `{"service":"Product","error":"..."}`, with the version when the failing service knows it.
pub(crate) fn failure_line(service: Service, version: Option<&str>, error: &str) -> String {
    serde_json::to_string(&Failure {
        service: service.name(),
        version,
        error,
    })
    .expect("a struct of strings serializes")
}

async fn root(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let n = shared.served.fetch_add(1, Ordering::Relaxed) + 1;
    if !shared.faults.latency.is_zero() {
        tokio::time::sleep(shared.faults.latency).await;
    }
    if let Some(reason) = shared.faults.failure(n) {
        let line = failure_line(shared.service, Some(&shared.version), &reason);
        return json(StatusCode::INTERNAL_SERVER_ERROR, line);
    }
    match &shared.order {
        None => json(StatusCode::OK, shared.identity.clone()),
        Some(order) => {
            let (status, body) = order.answer(&shared.identity, &headers).await;
            // Three JSON documents, one per line: not one JSON document.
            let content_type = HeaderValue::from_static("application/x-ndjson");
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    if shared.unhealthy {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"unhealthy"}"#.to_owned(),
        )
    } else {
        json(StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
    }
}

fn json(status: StatusCode, line: String) -> Response {
    let content_type = HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, content_type)], line).into_response()
}
