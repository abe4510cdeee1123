//! The inbound side of an agent: a request from another host's proxy for one local replica,
//! passed to the replica on loopback as it came (the calling proxy already chose the route,
//! the target and this endpoint, and applies the route's timeouts and retries), and its answer
//! streamed back. Only a stale pooled connection is retried here, as everywhere.

use std::net::SocketAddr;
use std::pin::pin;

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use crate::Shared;
use crate::body::{self, Prepared, RequestBody, ResponseBody};
use crate::forward::text_response;
use crate::headers::remove_hop_by_hop;
use crate::retry::is_idempotent;
use crate::tls::ServerTls;
use crate::trace;

/// The local replica an inbound listener serves.
#[derive(Debug)]
pub struct Target {
    pub node: String,
    pub local: SocketAddr,
    /// What the listener accepts when the node's listener sets no `tls`: mesh mutual TLS
    /// (PERMISSIVE, so callers without a mesh identity still reach it), or plain text.
    pub mesh: Option<ServerTls>,
}

/// The TLS an inbound connection meets, from the configuration in use: the node listener's
/// App Mesh `tls` (its mode, certificate, validation), else the mesh's, else plain text. A
/// listener `tls` that cannot be built refuses every connection: the spec asked for TLS.
pub fn server_tls(shared: &Shared, target: &Target) -> Result<ServerTls, String> {
    let table = shared.table.load();
    let listener_tls = table
        .node(&target.node)
        .and_then(|node| node.listeners.first())
        .and_then(|listener| listener.tls.clone());
    match listener_tls {
        Some(tls) => tls,
        None => Ok(target.mesh.clone().unwrap_or_else(ServerTls::disabled)),
    }
}

pub async fn handle(
    shared: &Shared,
    target: &Target,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    // The replica's own calls out carry this hop as their parent, if it passes the headers on.
    let hop = (shared.tracer.as_ref()).map(|t| t.start(trace::Kind::Server, &mut request));
    let response = match pass(shared, target, request).await {
        Ok(response) => response,
        Err((status, public, detail)) => {
            tracing::warn!(node = %target.node, local = %target.local, %detail,
                "inbound request failed");
            text_response(status, "text/plain; charset=utf-8", format!("{public}\n"))
        }
    };
    if let (Some(hop), Some(tracer)) = (hop, &shared.tracer) {
        let outcome = trace::Outcome {
            status: response.status(),
            error: None,
            virtual_service: None,
            notes: trace::Notes {
                target_node: Some(target.node.clone()),
                endpoint: Some(target.local),
                ..trace::Notes::default()
            },
        };
        hop.finish(tracer, &shared.telemetry, &shared.mesh, outcome);
    }
    response
}

type Failed = (StatusCode, String, String);

async fn pass(
    shared: &Shared,
    target: &Target,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Failed> {
    let http2 = shared.table.load().node_speaks_http2(&target.node);
    let (parts, body) = request.into_parts();
    let idempotent = is_idempotent(&parts.method);
    let bad = |e: String| {
        (
            StatusCode::BAD_REQUEST,
            format!("malformed request: {e}"),
            e,
        )
    };
    let prepared = body::prepare(body, idempotent)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let (replay, streaming) = match prepared {
        Prepared::Replayable(bytes) => (Some(bytes), None),
        Prepared::Streaming(body) => (None, Some(body)),
    };
    let mut headers = parts.headers;
    remove_hop_by_hop(&mut headers, false);
    if http2 {
        headers.remove(http::header::HOST);
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let build = |body: RequestBody| {
        let uri = if http2 {
            Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(target.local.to_string())
                .path_and_query(path.clone())
                .build()
        } else {
            Uri::builder().path_and_query(path.clone()).build()
        };
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri.expect("a socket address and a parsed path make a URI");
        *request.version_mut() = if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        *request.headers_mut() = headers.clone();
        request
    };
    let first = match (streaming, &replay) {
        (Some(body), _) => body,
        (None, Some(bytes)) => RequestBody::full(bytes.clone()),
        (None, None) => RequestBody::full(Bytes::new()),
    };
    let failed = |detail: String| {
        (
            StatusCode::BAD_GATEWAY,
            format!(
                "virtual node '{}' failed the request before answering it",
                target.node
            ),
            detail,
        )
    };
    let response = if http2 {
        let call = pin!(shared.upstreams.http2.request(build(first)));
        call.await.map_err(|e| failed(e.to_string()))?
    } else {
        let again = replay
            .as_ref()
            .filter(|_| idempotent)
            .map(|bytes| move || build(RequestBody::full(bytes.clone())));
        let again = again
            .as_ref()
            .map(|f| f as &(dyn Fn() -> Request<RequestBody> + Sync));
        let pool = shared.upstreams.http1.pool(target.local);
        let call = pin!(pool.send(build(first), again));
        call.await.map_err(|e| {
            let status = if e.is_connect() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_GATEWAY
            };
            let public = if e.is_connect() {
                format!("cannot connect to virtual node '{}'", target.node)
            } else {
                format!(
                    "virtual node '{}' failed the request before answering it",
                    target.node
                )
            };
            (status, public, crate::forward::error_chain(&e))
        })?
    };
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers, false);
    parts.version = Version::HTTP_11;
    Ok(Response::from_parts(parts, ResponseBody::passed_on(body)))
}
