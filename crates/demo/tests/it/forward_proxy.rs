//! A tiny HTTP forward proxy standing in for aviary's mesh proxy (which lives in another crate
//! the demo must not depend on): it takes absolute-form requests, maps the virtual service's
//! `host:port` to a real address, forwards, and records what it was sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

/// One request as the proxy received it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request target: absolute form (`http://product.demomesh.local:8080/`) if the client
    /// used the proxy as an HTTP proxy.
    pub target: String,
    pub headers: HeaderMap,
}

pub struct ForwardProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl ForwardProxy {
    /// `routes` maps `host:port` as the client addresses it to where it really is; an unknown
    /// one is answered like the mesh answers a node with no endpoint.
    pub async fn start(routes: &[(&str, SocketAddr)]) -> ForwardProxy {
        let shared = Arc::new(Shared {
            routes: routes
                .iter()
                .map(|(name, addr)| (name.to_string(), *addr))
                .collect(),
            seen: Arc::new(Mutex::new(Vec::new())),
            client: crate::client(),
        });
        let seen = shared.seen.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(forward).with_state(shared);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ForwardProxy { addr, seen, task }
    }

    pub fn url(&self) -> reqwest::Url {
        format!("http://{}", self.addr).parse().unwrap()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    routes: HashMap<String, SocketAddr>,
    seen: Arc<Mutex<Vec<Seen>>>,
    client: reqwest::Client,
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let uri = request.uri().clone();
    shared.seen.lock().unwrap().push(Seen {
        target: uri.to_string(),
        headers: request.headers().clone(),
    });
    let Some(authority) = uri.authority() else {
        return (StatusCode::BAD_REQUEST, "not an absolute-form request").into_response();
    };
    let Some(addr) = shared.routes.get(authority.as_str()) else {
        let message = format!("no healthy endpoint for {authority}");
        return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let upstream = shared
        .client
        .get(format!("http://{addr}{path}"))
        .headers(request.headers().clone())
        .send()
        .await;
    match upstream {
        Ok(response) => {
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            (status, Body::from(body)).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
