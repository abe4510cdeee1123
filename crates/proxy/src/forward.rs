//! The request path: find the virtual service a request is for and its route
//! ([`resolve`]), then try weighted targets under the route's timeout and retry policy
//! ([`crate::retry`]), one attempt at a time ([`attempt`]), streaming the answer back. It reads
//! one immutable `RouteTable` per request and takes no lock.

mod attempt;
mod mirror;
mod resolve;

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::Shared;
use crate::body::{self, Prepared, RequestBody, ResponseBody};
use crate::endpoints::{Endpoint, InFlight};
use crate::error::ProxyError;
use crate::headers::append_forwarded_for;
use crate::headers::remove_hop_by_hop;
use crate::mesh_tls::Caller;
use crate::pool::PoolTls;
use crate::pool::{CONNECT_TIMEOUT, Http1Pools, Http2TlsPools, IDLE_TIMEOUT};
use crate::retry::{Outcome, Retries, is_idempotent};
use crate::table::{NodeEntry, NodeListener, RouteEntry, RouteTable, TargetEntry};
use crate::telemetry::{Attempt, EndpointEjected, Failed, Rejected, Series};
use crate::tls::ClientTls;
use crate::trace;
pub use attempt::error_chain;
use attempt::{RequestHead, UpstreamRequest, downstream_response};
pub use mirror::Mirrors;
use model::wire::IdentityKind;
use std::net::SocketAddr;
use std::time::Duration;

/// How a request entered the proxy.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A virtual gateway listener on this port.
    Gateway { port: u16 },
    /// An outbound (egress) listener: of this local virtual node, whose `backends` the egress
    /// filter applies, or shared by callers it cannot tell apart (`None`).
    Egress { node: Option<Arc<str>> },
}

/// Keep-alive connection pools to upstreams: HTTP/1.1 (the proxy's own, per endpoint), and
/// HTTP/2 with prior knowledge (hyper-util's, one multiplexed connection per address).
pub struct Upstreams {
    pub http1: Http1Pools,
    pub http2: Client<HttpConnector, RequestBody>,
    /// HTTP/2 over TLS (client policies, mesh TLS), which `http2` cannot make.
    pub http2_tls: Http2TlsPools,
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
            http2_tls: Http2TlsPools::default(),
        }
    }
}

impl Upstreams {
    /// Every [`IDLE_TIMEOUT`] until `stop`: closes HTTP/1.1 connections idle that long (or
    /// closed by the upstream) and forgets closed HTTP/2-over-TLS ones.
    pub async fn expire_idle(&self, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(IDLE_TIMEOUT);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    self.http1.expire(Instant::now());
                    self.http2_tls.expire();
                }
            }
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
    shared: &Arc<Shared>,
    entry: &Entry,
    forwarded_for: &HeaderValue,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    // The trace headers are rewritten once, at the door: every attempt sends the same ones.
    let hop = (shared.tracer.as_ref()).map(|t| t.start(entry.into(), &mut request));
    let table = shared.table.load_full();
    let serving = resolve::serve(shared, &table, entry, forwarded_for, request, start);
    let (result, notes) = trace::observed(hop.is_some(), serving).await;
    let (response, failure) = match result {
        Ok(response) => (response, None),
        Err(failure) => {
            if failure.counted {
                Failed {
                    virtual_service: &failure.service,
                    error: &failure.error,
                }
                .emit();
            } else {
                Rejected {
                    virtual_service: &failure.service,
                    error: &failure.error,
                    elapsed: start.elapsed(),
                }
                .emit(&shared.telemetry);
            }
            (error_response(&failure.error), Some(failure))
        }
    };
    if let (Some(hop), Some(tracer)) = (hop, &shared.tracer) {
        let outcome = trace::Outcome {
            status: response.status(),
            error: failure.as_ref().map(|f| &f.error),
            virtual_service: failure.as_ref().map(|f| f.service.as_str()),
            notes,
        };
        hop.finish(tracer, &shared.telemetry, &shared.mesh, outcome);
    }
    response
}

/// The caller's answer to a failure. Upstream failures say which virtual node failed and how
/// (cannot connect, failed, too slow) but not its address or the error chain: those are
/// internals of the mesh, and they are logged ([`Rejected`], [`Attempt`]) instead.
pub fn error_response(error: &ProxyError) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::text(format!("{}\n", error.public())));
    *response.status_mut() = error.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The series of the workload `endpoint` is a replica of, when its node counts per workload.
fn workload_series(endpoint: &Option<Arc<Endpoint>>) -> Option<&Series> {
    endpoint
        .as_ref()
        .and_then(|e| e.workload.as_ref())
        .map(|w| &*w.series)
}

/// The status an attempt is counted with: the answer's, or the one its error is answered with.
fn status_of<T>(result: &Result<(Response<T>, InFlight), ProxyError>) -> u16 {
    match result {
        Ok((response, _)) => response.status().as_u16(),
        Err(error) => error.status().as_u16(),
    }
}

/// One request on its way to a route's targets.
pub(super) struct Forward<'a> {
    pub shared: &'a Arc<Shared>,
    pub table: &'a Arc<RouteTable>,
    /// Who calls, when mutual TLS can present it (see `mesh_tls::Caller`).
    pub caller: Option<Caller>,
    pub service: &'a str,
    pub route: &'a Arc<RouteEntry>,
    pub forwarded_for: &'a HeaderValue,
    pub path_and_query: &'a str,
    /// `path_and_query` parsed; `None` when it does not parse (the attempt then fails).
    pub target: Option<PathAndQuery>,
    /// Replaces `Host` (a gateway's hostname rewrite).
    pub host: Option<HeaderValue>,
    pub start: Instant,
}

impl Forward<'_> {
    /// Attempts under the route's retry policy until one answers or no retry is left.
    async fn run(self, parts: Parts, body: Incoming) -> Result<Response<ResponseBody>, Failure> {
        let route = self.route;
        let fail = |error| Failure::new(self.service, error);
        let idempotent = is_idempotent(&parts.method);
        // A live canary's say, on the few routes that have one.
        let canary = (route.canary.as_deref())
            .map(|overlay| (overlay, overlay.decide(&parts.headers, &route.choice)));
        let mirror = canary.filter(|(_, decision)| decision.mirror);
        // Kept when the route may retry it, when it may be sent twice on a fresh connection
        // if a pooled one closes under it (idempotent), or when a copy goes to the canary.
        let keep = Retries::may_retry(&route.retry) || idempotent || mirror.is_some();
        let (replay, mut streaming) = match body::prepare(body, keep).await.map_err(fail)? {
            Prepared::Replayable(bytes) => (Some(bytes), None),
            Prepared::Streaming(body) => (None, Some(body)),
        };
        let mut retries = Retries::new(
            &route.retry,
            &parts.method,
            replay.is_some(),
            route.per_request,
            self.start,
        );
        let te_trailers = parts
            .headers
            .get_all(header::TE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("trailers")));
        let headers = self.upstream_headers(parts.headers, parts.uri.authority());
        if let Some((overlay, _)) = mirror {
            self.mirror(overlay, &parts.method, &headers, replay.as_ref());
        }
        // A rule or the sticky cookie names the first target; retries choose by weight.
        let mut first = canary.and_then(|(_, decision)| decision.first);
        let mut http2_headers = None;
        loop {
            let Some(index) = first.take().or_else(|| retries.pick(&route.choice)) else {
                return Err(fail(ProxyError::NoRoute {
                    provider: format!("route '{}' (no target has weight)", route.name),
                    method: parts.method.to_string(),
                    path: self.path_and_query.to_string(),
                }));
            };
            let target = &route.targets[index];
            let http2 = target.http2();
            let attempt_start = Instant::now();
            let (result, endpoint) = self
                .attempt(target, retries.avoid(), retries.attempt_timeout(), || {
                    let headers = if http2 {
                        http2_headers.get_or_insert_with(|| http2_form(&headers, te_trailers))
                    } else {
                        &headers
                    };
                    UpstreamRequest {
                        head: RequestHead {
                            method: &parts.method,
                            headers,
                            path_and_query: self.path_and_query,
                            target: self.target.as_ref(),
                            http2,
                        },
                        body: streaming.take(),
                        replay: replay.clone(),
                        idempotent,
                    }
                })
                .await;
            let outcome = match &result {
                Ok((response, _)) => Outcome::Answered(response.status().as_u16()),
                Err(error) => Outcome::Failed(error),
            };
            let tried = endpoint.as_ref().map(|e| e.addr);
            let retry = retries.after(&outcome, index, tried);
            let status = status_of(&result);
            Attempt {
                series: &target.series,
                workload: workload_series(&endpoint),
                key: &target.key,
                endpoint: tried,
                status,
                elapsed: attempt_start.elapsed(),
                error: result.as_ref().err(),
                retried: retry,
            }
            .emit();
            if retry {
                continue;
            }
            return match result {
                Ok((response, in_flight)) => {
                    let mut response = downstream_response(response, in_flight, route);
                    // The weighted choice sent a caller without the sticky cookie to the canary,
                    // which answered: a canary's 5xx does not tie the caller to it.
                    if let Some((overlay, decision)) = canary
                        && decision.offer_cookie
                        && index == overlay.target
                        && !response.status().is_server_error()
                        && let Some(cookie) = overlay.set_cookie()
                    {
                        response
                            .headers_mut()
                            .append(header::SET_COOKIE, cookie.clone());
                    }
                    Ok(response)
                }
                Err(error) => Err(Failure {
                    service: self.service.to_string(),
                    error,
                    counted: true,
                }),
            };
        }
    }

    /// One attempt at `target`, shared by the retry loop and mirrored copies: an endpoint
    /// picked (not `avoid`), the request made (`request`, called only once there is an
    /// endpoint, so a streaming body is not taken by an attempt that sends nothing), the
    /// connection secured as [`Forward::tls_for`] says, sent under `timeout`; then outlier
    /// detection told how it went. Returns the result and the endpoint tried.
    async fn attempt<'h>(
        &self,
        target: &TargetEntry,
        avoid: Option<SocketAddr>,
        timeout: Option<(Duration, Duration)>,
        request: impl FnOnce() -> UpstreamRequest<'h>,
    ) -> (
        Result<(Response<Incoming>, InFlight), ProxyError>,
        Option<Arc<Endpoint>>,
    ) {
        let listener = target.listener();
        let endpoints = target.node.endpoints(listener);
        let in_flight = match endpoints.pick(avoid).await {
            Ok(in_flight) => in_flight,
            Err(error) => return (Err(error), None),
        };
        let endpoint = in_flight.endpoint().clone();
        let result = match self.tls_for(&target.node, listener, endpoint.addr).await {
            Ok(tls) => {
                self.send(request(), in_flight, &target.node.name, timeout, tls)
                    .await
            }
            Err(error) => Err(error),
        };
        // No healthy endpoint says nothing about this one.
        let server_error = match &result {
            Ok((response, _)) => response.status().is_server_error(),
            Err(ProxyError::NoHealthyEndpoint { .. }) => false,
            Err(_) => true,
        };
        let outlier = listener.and_then(|l| l.outlier.as_ref());
        if let Some(duration) = endpoints.record(&endpoint, server_error, outlier) {
            EndpointEjected {
                node: &target.node.name,
                addr: endpoint.addr,
                duration,
            }
            .emit(&self.shared.telemetry);
        }
        (result, Some(endpoint))
    }

    /// How a connection to `addr` (an endpoint of `node`, behind `listener`) is secured: the
    /// calling node's App Mesh client policy for this service (a gateway's: its
    /// `backendDefaults`) where it applies, else mesh
    /// mutual TLS where the endpoint takes it, the node's listener sets no App Mesh `tls` of
    /// its own (which then governs, as in App Mesh) and this proxy has an identity to present,
    /// else plain text. A policy that could not be built fails the attempt rather than send in
    /// plain text what the spec says must be encrypted.
    async fn tls_for(
        &self,
        node: &NodeEntry,
        listener: Option<&NodeListener>,
        addr: SocketAddr,
    ) -> Result<Option<PoolTls>, ProxyError> {
        let port = listener.map_or(0, |l| l.port);
        let pool_tls = |tls: ClientTls| PoolTls {
            tls,
            server_name: self.service.to_string(),
            metrics: self.shared.telemetry.tls.clone(),
        };
        let policy = match &self.caller {
            Some((IdentityKind::VirtualNode, caller)) => self
                .table
                .node(caller)
                .and_then(|entry| entry.client_policies.for_service(self.service)),
            Some((IdentityKind::VirtualGateway, _)) => self.table.gateway_client_policy(),
            None => None,
        };
        match policy {
            Some(Ok(tls)) if tls.applies_to(port) => return Ok(Some(pool_tls(tls.clone()))),
            Some(Err(why)) => {
                return Err(ProxyError::Tls {
                    node: node.name.clone(),
                    detail: why.clone(),
                });
            }
            _ => {}
        }
        if let (Some(mesh), Some(caller)) = (&self.shared.mesh_tls, &self.caller)
            && self.table.speaks_mesh_tls(addr)
            && listener.is_none_or(|l| l.tls.is_none())
        {
            let tls = mesh
                .client(caller, &node.name)
                .await
                .map_err(|e| ProxyError::Tls {
                    node: node.name.clone(),
                    detail: e.to_string(),
                })?;
            return Ok(Some(pool_tls(tls)));
        }
        Ok(None)
    }

    /// The caller's headers as every attempt sends them: hop-by-hop headers removed,
    /// `X-Forwarded-For` appended, `Host` rewritten (gateway) or taken from the URI.
    fn upstream_headers(&self, mut headers: HeaderMap, authority: Option<&Authority>) -> HeaderMap {
        remove_hop_by_hop(&mut headers, false);
        append_forwarded_for(&mut headers, self.forwarded_for);
        if let Some(host) = &self.host {
            headers.insert(header::HOST, host.clone());
        } else if !headers.contains_key(header::HOST)
            && let Some(authority) = authority
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            headers.insert(header::HOST, value);
        }
        headers
    }
}

/// HTTP/2 carries the host in `:authority`, and `TE` only as `trailers`.
fn http2_form(headers: &HeaderMap, te_trailers: bool) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove(header::HOST);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    headers
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
