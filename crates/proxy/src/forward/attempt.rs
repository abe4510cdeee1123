//! One attempt: a request built for the chosen endpoint, sent on its pool (HTTP/1.1) or the
//! HTTP/2 client under the attempt's timeout, its failure told apart as connect (nothing sent)
//! or stream (sent, maybe seen), and the answer turned into the caller's response.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http::uri::{self, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::Forward;
use crate::body::{RequestBody, ResponseBody};
use crate::endpoints::{Endpoint, InFlight};
use crate::error::ProxyError;
use crate::headers::remove_hop_by_hop;
use crate::pool::PoolTls;
use crate::table::RouteEntry;

impl Forward<'_> {
    /// Sends `request` to the endpoint `in_flight` holds, within `timeout`.
    pub(super) async fn send(
        &self,
        mut request: UpstreamRequest<'_>,
        in_flight: InFlight,
        node: &str,
        timeout: Option<(Duration, Duration)>,
        tls: Option<PoolTls>,
    ) -> Result<(Response<Incoming>, InFlight), ProxyError> {
        let endpoint = in_flight.endpoint();
        let addr = endpoint.addr;
        let body = request.first_body();
        let head = &request.head;
        let first = head
            .build(endpoint, body)
            .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        let upstreams = &self.shared.upstreams;
        // Either way: (whether no connection could be made, what went wrong). The calls are
        // pinned here and passed on by reference: they are large, and every move copies.
        let result = if let (true, Some(tls)) = (head.http2, &tls) {
            let call = pin!(upstreams.http2_tls.send(addr, tls, first));
            within(timeout, node, call)
                .await?
                .map_err(|e| (e.is_connect(), error_chain(&e)))
        } else if head.http2 {
            let call = pin!(upstreams.http2.request(first));
            within(timeout, node, call)
                .await?
                .map_err(|e| (e.is_connect(), error_chain(&e)))
        } else {
            // Built again only if a reused connection closed under the first one; it was
            // built once, so it builds.
            let again = request
                .replay
                .as_ref()
                .filter(|_| request.idempotent)
                .map(|bytes| {
                    move || {
                        let body = RequestBody::full(bytes.clone());
                        head.build(endpoint, body).expect("it was built once")
                    }
                });
            let again = again
                .as_ref()
                .map(|f| f as &(dyn Fn() -> Request<RequestBody> + Sync));
            let tls_pool;
            let pool = match tls {
                None => endpoint.http1_pool(&upstreams.http1),
                Some(tls) => {
                    tls_pool = upstreams.http1.pool_with(addr, Some(tls));
                    &tls_pool
                }
            };
            let call = pin!(pool.send(first, again));
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

/// What is sent upstream: the head, built per try, and the body.
pub(super) struct UpstreamRequest<'a> {
    pub head: RequestHead<'a>,
    /// The body of the first try; `None` when it is `replay`'s.
    pub body: Option<RequestBody>,
    /// The whole body, when it was kept.
    pub replay: Option<Bytes>,
    /// The request may be sent twice with the same effect (idempotent).
    pub idempotent: bool,
}

pub(super) struct RequestHead<'a> {
    pub method: &'a Method,
    /// Hop-by-hop headers removed, `X-Forwarded-For` and `Host` set.
    pub headers: &'a HeaderMap,
    pub path_and_query: &'a str,
    /// `path_and_query`, already parsed.
    pub target: Option<&'a PathAndQuery>,
    pub http2: bool,
}

impl UpstreamRequest<'_> {
    fn first_body(&mut self) -> RequestBody {
        match (self.body.take(), &self.replay) {
            (Some(body), _) => body,
            (None, Some(bytes)) => RequestBody::full(bytes.clone()),
            (None, None) => RequestBody::full(Bytes::new()),
        }
    }
}

impl RequestHead<'_> {
    /// HTTP/1.1 requests go in origin-form (`/path?query`) on a connection to the endpoint;
    /// HTTP/2 ones in absolute form, which hyper-util's client routes by.
    fn build(
        &self,
        endpoint: &Endpoint,
        body: RequestBody,
    ) -> Result<Request<RequestBody>, http::Error> {
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
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = if self.http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }
}

pub(super) fn downstream_response(
    response: Response<Incoming>,
    in_flight: InFlight,
    route: &RouteEntry,
) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers, false);
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, ResponseBody::upstream(body, route.idle, in_flight))
}

pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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
