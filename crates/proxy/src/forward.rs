//! The request path: find the virtual service a request is for (gateway route or Host), its
//! route, then try weighted targets under the route's timeout and retry policy, streaming the
//! answer back. It reads one immutable `RouteTable` per request and takes no lock.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::{self, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::Shared;
use crate::body::{self, Prepared, RequestBody, ResponseBody};
use crate::endpoints::{Endpoint, InFlight};
use crate::error::{Delivery, ProxyError};
use crate::headers::{append_forwarded_for, remove_hop_by_hop};
use crate::matching::RequestView;
use crate::pool::{CONNECT_TIMEOUT, Http1Pools, IDLE_TIMEOUT};
use crate::table::{RouteEntry, RouteTable};
use crate::telemetry::{Attempt, EndpointEjected, Rejected};

/// How a request entered the proxy.
#[derive(Debug, Clone, Copy)]
pub enum Entry {
    /// A virtual gateway listener on this port.
    Gateway { port: u16 },
    /// The egress listener of a mesh node.
    Egress,
}

/// Keep-alive connection pools to upstreams: HTTP/1.1 (the proxy's own, per endpoint), and
/// HTTP/2 with prior knowledge (hyper-util's, one multiplexed connection per address).
pub struct Upstreams {
    pub http1: Http1Pools,
    http2: Client<HttpConnector, RequestBody>,
}

impl Upstreams {
    pub fn new() -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let idle = Some(IDLE_TIMEOUT);
        let http2 = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(idle)
            .http2_only(true)
            .set_host(false)
            .build(connector);
        Upstreams {
            http1: Http1Pools::default(),
            http2,
        }
    }
}

/// An error answer, and whether the error was already counted as an upstream attempt.
struct Failure {
    service: String,
    error: ProxyError,
    counted: bool,
}

impl Failure {
    fn new(service: &str, error: ProxyError) -> Failure {
        Failure {
            service: service.to_string(),
            error,
            counted: false,
        }
    }
}

/// Serves one request; every failure becomes a short text answer naming what failed.
/// `forwarded_for` is the caller's `X-Forwarded-For` entry ([`headers::forwarded_for`]).
pub async fn handle(
    shared: &Shared,
    entry: Entry,
    forwarded_for: &HeaderValue,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let table = shared.table.load_full();
    match serve(shared, &table, entry, forwarded_for, request, start).await {
        Ok(response) => response,
        Err(failure) => {
            if !failure.counted {
                Rejected {
                    virtual_service: &failure.service,
                    error: &failure.error,
                    elapsed: start.elapsed(),
                }
                .emit(&shared.telemetry);
            }
            error_response(&failure.error)
        }
    }
}

pub fn error_response(error: &ProxyError) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::text(format!("{error}\n")));
    *response.status_mut() = error.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The host a request names (absolute-form URI first, then `Host`) and its port, if any.
fn requested_host(parts: &Parts) -> Result<(String, Option<u16>), ProxyError> {
    if let Some(authority) = parts.uri.authority() {
        return Ok((authority.host().to_string(), authority.port_u16()));
    }
    let value = parts
        .headers
        .get(header::HOST)
        .ok_or_else(|| ProxyError::BadRequest("no Host header names a virtual service".into()))?;
    let authority = value
        .to_str()
        .ok()
        .and_then(|v| v.parse::<http::uri::Authority>().ok())
        .ok_or_else(|| ProxyError::BadRequest(format!("Host header {value:?} is not a host")))?;
    Ok((authority.host().to_string(), authority.port_u16()))
}

async fn serve(
    shared: &Shared,
    table: &Arc<RouteTable>,
    entry: Entry,
    forwarded_for: &HeaderValue,
    request: Request<Incoming>,
    start: Instant,
) -> Result<Response<ResponseBody>, Failure> {
    let (parts, body) = request.into_parts();
    if parts.method == Method::CONNECT {
        return Err(Failure::new(
            "",
            ProxyError::BadRequest("CONNECT tunnels are not supported".into()),
        ));
    }
    if !table.is_configured() {
        return Err(Failure::new(
            "",
            ProxyError::NotConfigured {
                mesh: table.mesh().to_string(),
            },
        ));
    }
    let path = parts.uri.path();
    let query = parts.uri.query();
    // Owned (a reference count), so the path can be borrowed while `parts` moves on.
    let original = parts.uri.path_and_query().cloned();
    let original = original.as_ref();
    let (service_name, port, path_and_query, host): (Cow<'_, str>, _, Cow<'_, str>, _) = match entry
    {
        Entry::Egress => {
            let (host, port) = requested_host(&parts).map_err(|e| Failure::new("", e))?;
            let path_and_query = original.map_or("/", PathAndQuery::as_str);
            (Cow::Owned(host), port, Cow::Borrowed(path_and_query), None)
        }
        Entry::Gateway { port } => {
            // Only a hostname match reads the host; most gateways have none.
            let host = if table.gateway_matches_hostnames() {
                requested_host(&parts).map(|h| h.0).unwrap_or_default()
            } else {
                String::new()
            };
            let view = RequestView {
                method: &parts.method,
                path,
                query,
                headers: &parts.headers,
                host: &host,
                port: Some(port),
            };
            let route = table.gateway_route(&view).ok_or_else(|| {
                Failure::new(
                    "",
                    ProxyError::NoRoute {
                        provider: format!(
                            "virtual gateway '{}'",
                            table.gateway_name().unwrap_or_default()
                        ),
                        method: parts.method.to_string(),
                        path: path.to_string(),
                    },
                )
            })?;
            let rewritten = match original {
                Some(original)
                    if route.keeps_path(path) && is_path_and_query(original, path, query) =>
                {
                    Cow::Borrowed(original.as_str())
                }
                _ => Cow::Owned(route.rewrite_path(path, query)),
            };
            let host = route.host_rewrite().cloned();
            (
                Cow::Borrowed(route.service.as_str()),
                route.target_port,
                rewritten,
                host,
            )
        }
    };
    // The upstream request's target: the caller's own, parsed once already, when unchanged.
    let target = match original {
        Some(original) if original.as_str() == path_and_query => Some(original.clone()),
        None if path_and_query == "/" => Some(PathAndQuery::from_static("/")),
        _ => PathAndQuery::try_from(&*path_and_query).ok(),
    };
    let fail = |error| Failure::new(&service_name, error);
    let service = table.service(&service_name).map_err(fail)?;
    table.check_backend(&service_name).map_err(fail)?;
    let (route_path, route_query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*path_and_query, None),
    };
    let view = RequestView {
        method: &parts.method,
        path: route_path,
        query: route_query,
        headers: &parts.headers,
        host: &service_name,
        port,
    };
    let no_route = || {
        fail(ProxyError::NoRoute {
            provider: match &service.unavailable {
                Some(why) => format!("virtual service '{service_name}' ({why})"),
                None => service.provider.clone(),
            },
            method: parts.method.to_string(),
            path: route_path.to_string(),
        })
    };
    let route = service.route(&view).ok_or_else(no_route)?;
    let forward = Forward {
        shared,
        service: &service_name,
        route,
        forwarded_for,
        path_and_query: &path_and_query,
        target,
        host,
        start,
    };
    forward.run(parts, body).await
}

/// Whether `original` is exactly `path`, then `?query` if there is one.
fn is_path_and_query(original: &PathAndQuery, path: &str, query: Option<&str>) -> bool {
    let original = original.as_str();
    match query {
        None => original == path,
        Some(query) => {
            original.len() == path.len() + 1 + query.len()
                && original.starts_with(path)
                && original[path.len()..].starts_with('?')
                && original.ends_with(query)
        }
    }
}

/// One request on its way to a route's targets.
struct Forward<'a> {
    shared: &'a Shared,
    service: &'a str,
    route: &'a RouteEntry,
    forwarded_for: &'a HeaderValue,
    path_and_query: &'a str,
    /// `path_and_query` parsed; `None` when it does not parse (the attempt then fails).
    target: Option<PathAndQuery>,
    /// Replaces `Host` (a gateway's hostname rewrite).
    host: Option<HeaderValue>,
    start: Instant,
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

impl Forward<'_> {
    async fn run(self, parts: Parts, body: Incoming) -> Result<Response<ResponseBody>, Failure> {
        let route = self.route;
        let policy = &route.retry;
        let idempotent = is_idempotent(&parts.method);
        let fail = |error| Failure::new(self.service, error);
        let prepared = body::prepare(body, policy.max_retries > 0)
            .await
            .map_err(fail)?;
        let (replay, mut streaming) = match prepared {
            Prepared::Replayable(bytes) => (Some(bytes), None),
            Prepared::Streaming(body) => (None, Some(body)),
        };
        let te_trailers = parts
            .headers
            .get_all(header::TE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("trailers")));
        let mut headers = parts.headers;
        remove_hop_by_hop(&mut headers, false);
        append_forwarded_for(&mut headers, self.forwarded_for);
        if let Some(host) = &self.host {
            headers.insert(header::HOST, host.clone());
        } else if !headers.contains_key(header::HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            headers.insert(header::HOST, value);
        }
        let deadline = route.per_request.map(|d| self.start + d);
        let mut failed_targets: Vec<usize> = Vec::new();
        let mut avoid: Option<SocketAddr> = None;
        let mut retries = 0;
        loop {
            let picked = if failed_targets.is_empty() {
                route.choice.pick()
            } else {
                route.choice.pick_avoiding(|i| failed_targets.contains(&i))
            };
            let Some(index) = picked else {
                return Err(fail(ProxyError::NoRoute {
                    provider: format!("route '{}' (no target has weight)", route.name),
                    method: parts.method.to_string(),
                    path: self.path_and_query.to_string(),
                }));
            };
            let target = &route.targets[index];
            let listener = target.listener();
            let endpoints = target.node.endpoints(listener);
            let http2 = listener.is_some_and(|l| l.http2);
            let attempt_start = Instant::now();
            let mut endpoint = None;
            let result = match endpoints.pick(avoid).await {
                Err(error) => Err(error),
                Ok(in_flight) => {
                    endpoint = Some(in_flight.endpoint().clone());
                    let body = match (&replay, streaming.take()) {
                        (Some(bytes), _) => RequestBody::full(bytes.clone()),
                        (None, Some(body)) => body,
                        (None, None) => RequestBody::full(Bytes::new()),
                    };
                    let mut headers = headers.clone();
                    if http2 {
                        headers.remove(header::HOST);
                        if te_trailers {
                            headers.insert(header::TE, HeaderValue::from_static("trailers"));
                        }
                    }
                    let request = UpstreamRequest {
                        method: &parts.method,
                        headers,
                        path_and_query: self.path_and_query,
                        target: self.target.as_ref(),
                        http2,
                        body,
                    };
                    let timeout = attempt_timeout(
                        policy.per_try,
                        policy.max_retries,
                        route.per_request,
                        deadline,
                    );
                    self.send(request, in_flight, &target.node.name, timeout)
                        .await
                }
            };
            let (status, server_error) = match &result {
                Ok((response, _)) => (
                    response.status().as_u16(),
                    response.status().is_server_error(),
                ),
                Err(error @ ProxyError::NoHealthyEndpoint { .. }) => {
                    (error.status().as_u16(), false)
                }
                Err(error) => (error.status().as_u16(), true),
            };
            if let Some(endpoint) = &endpoint {
                let outlier = listener.and_then(|l| l.outlier.as_ref());
                if let Some(duration) = endpoints.record(endpoint, server_error, outlier) {
                    EndpointEjected {
                        node: &target.node.name,
                        addr: endpoint.addr,
                        duration,
                    }
                    .emit(&self.shared.telemetry);
                }
            }
            let wanted = match &result {
                Ok(_) => idempotent && policy.retries_status(status),
                Err(error) => {
                    policy.retries_error(error)
                        && (idempotent || error.delivery() == Delivery::NeverSent)
                }
            };
            let retry = wanted
                && retries < policy.max_retries
                && replay.is_some()
                && deadline.is_none_or(|d| Instant::now() < d);
            Attempt {
                series: &target.series,
                key: &target.key,
                endpoint: endpoint.as_ref().map(|e| e.addr),
                status,
                elapsed: attempt_start.elapsed(),
                error: result.as_ref().err(),
                retried: retry,
            }
            .emit();
            if retry {
                retries += 1;
                if !failed_targets.contains(&index) {
                    failed_targets.push(index);
                }
                avoid = endpoint.map(|e| e.addr);
                continue;
            }
            return match result {
                Ok((response, in_flight)) => Ok(downstream_response(response, in_flight, route)),
                Err(error) => Err(Failure {
                    service: self.service.to_string(),
                    error,
                    counted: true,
                }),
            };
        }
    }

    async fn send(
        &self,
        request: UpstreamRequest<'_>,
        in_flight: InFlight,
        node: &str,
        timeout: Option<(Duration, Duration)>,
    ) -> Result<(Response<Incoming>, InFlight), ProxyError> {
        let endpoint = in_flight.endpoint();
        let addr = endpoint.addr;
        let http2 = request.http2;
        let request = request
            .build(endpoint)
            .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        let upstreams = &self.shared.upstreams;
        // Either way: (whether no connection could be made, what went wrong). The calls are
        // pinned here and passed on by reference: they are large, and every move copies.
        let result = if http2 {
            let call = pin!(upstreams.http2.request(request));
            within(timeout, node, call)
                .await?
                .map_err(|e| (e.is_connect(), error_chain(&e)))
        } else {
            let pool = endpoint.http1_pool(&upstreams.http1);
            let call = pin!(pool.send(request));
            within(timeout, node, call)
                .await?
                .map_err(|e| (e.is_connect(), error_chain(&e)))
        };
        match result {
            Ok(response) => Ok((response, in_flight)),
            Err((true, detail)) => Err(ProxyError::Connect {
                node: node.to_string(),
                addr,
                detail,
            }),
            Err((false, detail)) => Err(ProxyError::Stream {
                node: node.to_string(),
                addr,
                detail,
            }),
        }
    }
}

/// `call`, given up with [`ProxyError::Timeout`] after the attempt's timeout.
async fn within<T>(
    timeout: Option<(Duration, Duration)>,
    node: &str,
    call: impl Future<Output = T>,
) -> Result<T, ProxyError> {
    match timeout {
        Some((wait, limit)) => {
            tokio::time::timeout(wait, call)
                .await
                .map_err(|_| ProxyError::Timeout {
                    node: node.to_string(),
                    after: limit,
                })
        }
        None => Ok(call.await),
    }
}

/// How long one attempt may wait, and the configured limit to name if it runs out: the retry
/// policy's per-try timeout (when it can retry at all), cut to what is left of the route's
/// per-request timeout.
fn attempt_timeout(
    per_try: Option<Duration>,
    max_retries: u32,
    per_request: Option<Duration>,
    deadline: Option<Instant>,
) -> Option<(Duration, Duration)> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let per_try = per_try.filter(|_| max_retries > 0);
    match (per_try, left, per_request) {
        (Some(try_for), Some(left), Some(limit)) if left < try_for => Some((left, limit)),
        (Some(try_for), _, _) => Some((try_for, try_for)),
        (None, Some(left), Some(limit)) => Some((left, limit)),
        _ => None,
    }
}

struct UpstreamRequest<'a> {
    method: &'a Method,
    headers: HeaderMap,
    path_and_query: &'a str,
    /// `path_and_query`, already parsed.
    target: Option<&'a PathAndQuery>,
    http2: bool,
    body: RequestBody,
}

impl UpstreamRequest<'_> {
    /// HTTP/1.1 requests go in origin-form (`/path?query`) on a connection to the endpoint;
    /// HTTP/2 ones in absolute form, which hyper-util's client routes by.
    fn build(self, endpoint: &Endpoint) -> Result<Request<RequestBody>, http::Error> {
        let mut parts = uri::Parts::default();
        match (endpoint.authority(), self.target) {
            (Some(authority), Some(target)) => {
                if self.http2 {
                    parts.scheme = Some(Scheme::HTTP);
                    parts.authority = Some(authority.clone());
                }
                parts.path_and_query = Some(target.clone());
            }
            // Whatever does not parse fails here, with the builder's error.
            _ => {
                let built = Uri::builder()
                    .scheme("http")
                    .authority(endpoint.addr.to_string())
                    .path_and_query(self.path_and_query)
                    .build()?
                    .into_parts();
                if self.http2 {
                    parts.scheme = built.scheme;
                    parts.authority = built.authority;
                }
                parts.path_and_query = built.path_and_query;
            }
        }
        let uri = Uri::from_parts(parts)?;
        let mut request = Request::new(self.body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = if self.http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        *request.headers_mut() = self.headers;
        Ok(request)
    }
}

fn downstream_response(
    response: Response<Incoming>,
    in_flight: InFlight,
    route: &RouteEntry,
) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers, false);
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, ResponseBody::upstream(body, route.idle, in_flight))
}

/// A plain answer from the proxy itself (admin endpoints).
pub fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::text(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
