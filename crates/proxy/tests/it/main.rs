//! Integration tests of the proxy's public surface: a real control plane in-process, real
//! upstream HTTP servers and real proxies, all on 127.0.0.1:0, driven over HTTP. Shared helpers
//! live here; each module is one area.

mod agent;
mod canary_exposure;
mod discovery;
mod failures;
mod gateway;
mod hot_config;
mod limits;
mod metrics;
mod protocols;
mod replicas;
mod retries;
mod split;
mod stability;
mod stale;
mod tls;
mod tracing;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use model::{Kind, ResourcePath};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const MESH: &str = "m";

/// A control plane running in this process.
pub struct ControlPlane {
    pub url: String,
    pub addr: SocketAddr,
    pub api: client::Client,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl ControlPlane {
    pub async fn start() -> ControlPlane {
        ControlPlane::start_at("127.0.0.1:0".parse().unwrap(), None).await
    }

    /// On a given address (to come back where it was) and data directory (to keep the mesh).
    pub async fn start_at(listen: SocketAddr, data_dir: Option<PathBuf>) -> ControlPlane {
        let config = control::Config {
            listen,
            data_dir,
            ..ControlPlane::config()
        };
        ControlPlane::start_with(config, None).await
    }

    /// In memory, on 127.0.0.1:0.
    pub fn config() -> control::Config {
        control::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: None,
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
        }
    }

    /// With any configuration (TLS, say); `api` trusts `ca` for https.
    pub async fn start_with(config: control::Config, ca: Option<PathBuf>) -> ControlPlane {
        let token = CancellationToken::new();
        let control = control::Control::bind(config, token.clone())
            .await
            .expect("the control plane binds");
        let addr = control.local_addr();
        let url = control.url();
        let task = tokio::spawn(async move {
            control.run().await.expect("the control plane serves");
        });
        let api = client::Client::with_options(&url, &client::ClientOptions { ca })
            .expect("the test CA is usable");
        ControlPlane {
            api,
            url,
            addr,
            token,
            task,
        }
    }

    /// Stops serving and waits until the port is closed.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the control plane stops within 10 s")
            .expect("the control plane task ends cleanly");
    }

    pub async fn create(&self, kind: Kind, parent: Option<&str>, name: &str, spec: Value) {
        let path = match kind {
            Kind::Mesh => ResourcePath::mesh(name),
            _ => ResourcePath::new(kind, MESH, parent.map(str::to_string), name),
        };
        self.api
            .create(&path, &spec, None)
            .await
            .unwrap_or_else(|e| panic!("creating {path}: {e}"));
    }

    /// A virtual node `name` served by `upstream`, with no backends.
    pub async fn add_node(&self, name: &str, upstream: &Upstream) {
        let spec = node_spec(upstream.addr.port(), upstream.protocol(), &[]);
        self.create(Kind::VirtualNode, None, name, spec).await;
    }

    /// Requests the mesh's stats count over `window` (e.g. `"10s"`), summed over its nodes.
    pub async fn requests_counted(&self, window: &str) -> u64 {
        let stats = self.api.stats(MESH, window).await.unwrap();
        stats.nodes.iter().map(|n| n.requests).sum()
    }

    /// Sets a route's weighted targets: `[("a", 90), ("b", 10)]`.
    pub async fn set_weights(&self, router: &str, route: &str, targets: &[(&str, u32)]) -> Value {
        let path = ResourcePath::new(Kind::Route, MESH, Some(router.into()), route);
        let current = self
            .api
            .describe(&path)
            .await
            .unwrap()
            .expect("route exists");
        let mut spec = current["spec"].clone();
        spec["httpRoute"]["action"]["weightedTargets"] = weighted(targets);
        self.api
            .update(&path, &spec)
            .await
            .unwrap_or_else(|e| panic!("updating {path}: {e}"))
    }

    /// The store revision now (from a snapshot).
    pub async fn revision(&self) -> u64 {
        self.api.snapshot(MESH).await.unwrap().revision
    }
}

pub fn weighted(targets: &[(&str, u32)]) -> Value {
    Value::Array(
        targets
            .iter()
            .map(|(node, weight)| json!({"virtualNode": node, "weight": weight}))
            .collect(),
    )
}

/// A virtual node spec: one listener, DNS discovery on 127.0.0.1, the given backends.
pub fn node_spec(port: u16, protocol: &str, backends: &[&str]) -> Value {
    let backends: Vec<Value> = backends
        .iter()
        .map(|b| json!({"virtualService": {"virtualServiceName": b}}))
        .collect();
    json!({
        "listeners": [{"portMapping": {"port": port, "protocol": protocol}}],
        "serviceDiscovery": {"dns": {"hostname": "127.0.0.1"}},
        "backends": backends,
    })
}

/// A mesh `m` where node `client` may call `svc.local`, served by router `svc-router`, whose
/// route `svc-route` (prefix `/`, `route_extra` merged into `httpRoute`) splits between the
/// upstreams by `weights`.
pub async fn mesh_with_router(
    cp: &ControlPlane,
    upstreams: &[(&str, &Upstream)],
    weights: &[(&str, u32)],
    route_extra: Value,
) {
    cp.create(Kind::Mesh, None, MESH, json!({})).await;
    for (name, upstream) in upstreams {
        cp.add_node(name, upstream).await;
    }
    router_to(cp, weights, route_extra).await;
}

/// The rest of [`mesh_with_router`]'s mesh, for target nodes that exist already: node `client`
/// (a backend of `svc.local`), router `svc-router` with route `svc-route` (prefix `/`,
/// `route_extra` merged into `httpRoute`) splitting by `weights`, and virtual service
/// `svc.local`.
pub async fn router_to(cp: &ControlPlane, weights: &[(&str, u32)], route_extra: Value) {
    cp.create(
        Kind::VirtualNode,
        None,
        "client",
        json!({"backends": [{"virtualService": {"virtualServiceName": "svc.local"}}]}),
    )
    .await;
    cp.create(
        Kind::VirtualRouter,
        None,
        "svc-router",
        json!({"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}]}),
    )
    .await;
    let mut http_route =
        json!({"match": {"prefix": "/"}, "action": {"weightedTargets": weighted(weights)}});
    if let Value::Object(extra) = route_extra {
        for (k, v) in extra {
            http_route[k] = v;
        }
    }
    cp.create(
        Kind::Route,
        Some("svc-router"),
        "svc-route",
        json!({"httpRoute": http_route}),
    )
    .await;
    cp.create(
        Kind::VirtualService,
        None,
        "svc.local",
        json!({"provider": {"virtualRouter": {"virtualRouterName": "svc-router"}}}),
    )
    .await;
}

/// How a test upstream answers.
#[derive(Clone)]
pub struct Behaviour {
    /// Status of every answer (changeable while running).
    pub status: Arc<AtomicU16>,
    pub delay: Duration,
    pub http2: bool,
}

impl Behaviour {
    pub fn ok() -> Behaviour {
        Behaviour {
            status: Arc::new(AtomicU16::new(200)),
            delay: Duration::ZERO,
            http2: false,
        }
    }

    pub fn status(status: u16) -> Behaviour {
        Behaviour {
            status: Arc::new(AtomicU16::new(status)),
            ..Behaviour::ok()
        }
    }
}

/// A tiny HTTP server that answers its own name and records what it saw.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub behaviour: Behaviour,
    pub hits: Arc<AtomicU64>,
    /// When each request arrived.
    pub arrivals: Arc<Mutex<Vec<Instant>>>,
    /// Headers of the last request.
    pub last_headers: Arc<Mutex<Option<HeaderMap>>>,
    /// Path and query of the last request.
    pub last_uri: Arc<Mutex<Option<String>>>,
    /// Every request body that was not empty, in arrival order.
    pub bodies: Arc<Mutex<Vec<Bytes>>>,
    token: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Upstream {
    pub async fn start(name: &str, behaviour: Behaviour) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Upstream {
            name: name.to_string(),
            addr,
            behaviour: behaviour.clone(),
            hits: Arc::default(),
            arrivals: Arc::default(),
            last_headers: Arc::default(),
            last_uri: Arc::default(),
            bodies: Arc::default(),
            token: CancellationToken::new(),
        };
        let (hits, arrivals, headers, uri, bodies, token) = (
            upstream.hits.clone(),
            upstream.arrivals.clone(),
            upstream.last_headers.clone(),
            upstream.last_uri.clone(),
            upstream.bodies.clone(),
            upstream.token.clone(),
        );
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let (hits, arrivals, headers, uri, bodies, name, behaviour) = (
                    hits.clone(),
                    arrivals.clone(),
                    headers.clone(),
                    uri.clone(),
                    bodies.clone(),
                    name.clone(),
                    behaviour.clone(),
                );
                let token = token.clone();
                let http2 = behaviour.http2;
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (hits, arrivals, headers, uri, bodies, name, behaviour) = (
                            hits.clone(),
                            arrivals.clone(),
                            headers.clone(),
                            uri.clone(),
                            bodies.clone(),
                            name.clone(),
                            behaviour.clone(),
                        );
                        async move {
                            arrivals.lock().unwrap().push(Instant::now());
                            hits.fetch_add(1, Ordering::SeqCst);
                            *headers.lock().unwrap() = Some(request.headers().clone());
                            *uri.lock().unwrap() = request
                                .uri()
                                .path_and_query()
                                .map(|pq| pq.as_str().to_string());
                            let version = format!("{:?}", request.version());
                            if let Ok(body) = request.into_body().collect().await {
                                let body = body.to_bytes();
                                if !body.is_empty() {
                                    bodies.lock().unwrap().push(body);
                                }
                            }
                            if !behaviour.delay.is_zero() {
                                tokio::time::sleep(behaviour.delay).await;
                            }
                            let status = behaviour.status.load(Ordering::SeqCst);
                            let mut response = Response::new(Full::new(Bytes::from(name)));
                            *response.status_mut() = StatusCode::from_u16(status).unwrap();
                            let headers = response.headers_mut();
                            headers.insert("x-version", version.parse().unwrap());
                            headers.insert(
                                "connection",
                                "keep-alive, x-upstream-secret".parse().unwrap(),
                            );
                            headers.insert("x-upstream-secret", "1".parse().unwrap());
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let io = TokioIo::new(stream);
                    if http2 {
                        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service);
                        tokio::select! { _ = conn => {}, _ = token.cancelled() => {} }
                    } else {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service);
                        tokio::select! { _ = conn => {}, _ = token.cancelled() => {} }
                    }
                });
            }
        });
        upstream
    }

    pub fn protocol(&self) -> &'static str {
        if self.behaviour.http2 {
            "http2"
        } else {
            "http"
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A proxy running in this process.
pub struct RunningProxy {
    pub listeners: Vec<(proxy::ListenerKind, SocketAddr)>,
    pub handle: proxy::Handle,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningProxy {
    pub async fn start(config: proxy::Config) -> RunningProxy {
        let token = CancellationToken::new();
        let proxy = proxy::Proxy::bind(config, token.clone())
            .await
            .expect("the proxy binds");
        let listeners = proxy.listeners();
        let handle = proxy.handle();
        let task = tokio::spawn(async move {
            proxy.run().await.expect("the proxy serves");
        });
        RunningProxy {
            listeners,
            handle,
            token,
            task,
        }
    }

    /// The egress proxy of node `client` in mesh `m`, with an admin listener.
    pub async fn node(cp: &ControlPlane, state_dir: Option<PathBuf>) -> RunningProxy {
        RunningProxy::start(node_config(&cp.url, state_dir)).await
    }

    pub fn addr(&self, kind: proxy::ListenerKind) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {kind} listener in {:?}", self.listeners))
    }

    pub fn egress(&self) -> SocketAddr {
        self.addr(proxy::ListenerKind::Egress)
    }

    /// The value of one series in the admin listener's `/metrics`, named as exposed: e.g.
    /// `aviary_proxy_control_snapshots_total` or `…_refused_total{listener="egress"}`.
    pub async fn metric(&self, series: &str) -> u64 {
        let admin = self.addr(proxy::ListenerKind::Admin);
        let text = Caller::new()
            .get(admin, "admin", "/metrics", &[])
            .await
            .body;
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
    }

    /// Waits until the proxy uses a configuration of at least `revision`.
    pub async fn wait_for_revision(&self, revision: u64) {
        let mut applied = self.handle.applied();
        tokio::time::timeout(
            Duration::from_secs(10),
            applied.wait_for(|r| *r >= revision),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the proxy did not reach revision {revision} within 10 s (it has {})",
                self.handle.revision()
            )
        })
        .unwrap();
    }

    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the proxy stops within 10 s")
            .unwrap();
    }
}

pub fn node_config(control: &str, state_dir: Option<PathBuf>) -> proxy::Config {
    let mut config = proxy::Config::new(control, MESH, proxy::Role::Node("client".into()));
    config.egress_listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    config.state_dir = state_dir;
    config
}

/// A keep-alive HTTP/1.1 client for driving proxies.
#[derive(Clone)]
pub struct Caller {
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Default for Caller {
    fn default() -> Self {
        Caller::new()
    }
}

impl Caller {
    pub fn new() -> Caller {
        Caller {
            client: Client::builder(TokioExecutor::new())
                .set_host(false)
                .build(HttpConnector::new()),
        }
    }

    /// GET `path` at `addr` with `Host: host` and extra headers.
    pub async fn get(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.send("GET", addr, host, path, headers, Bytes::new())
            .await
    }

    pub async fn send(
        &self,
        method: &str,
        addr: SocketAddr,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(20), self.client.request(request))
            .await
            .expect("an answer within 20 s")
            .expect("the proxy answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a whole body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// Writes `raw` to `addr` on a fresh connection and reads the whole answer (the proxy closes
/// after it because the request says `Connection: close`).
pub async fn raw_http(addr: SocketAddr, raw: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the proxy answers and closes within 10 s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A port that was free a moment ago (for virtual gateway listeners, which name their port).
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Shares of each name among `answers`' bodies.
pub fn shares<'a>(
    bodies: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, f64> {
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    let mut total = 0u32;
    for body in bodies {
        *counts.entry(body.to_string()).or_default() += 1;
        total += 1;
    }
    counts
        .into_iter()
        .map(|(k, v)| (k, f64::from(v) / f64::from(total)))
        .collect()
}
