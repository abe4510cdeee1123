//! Resolution: from a request to the route that serves it — the virtual service it names (a
//! gateway route's target, or the absolute-form URI / `Host` on egress), the egress filter,
//! the service's route by match and priority — then hands it to [`Forward`].

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{Entry, Failure, Forward};
use model::wire::IdentityKind;

use crate::Shared;
use crate::body::ResponseBody;
use crate::error::ProxyError;
use crate::matching::RequestView;
use crate::table::RouteTable;

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

pub(super) async fn serve(
    shared: &Arc<Shared>,
    table: &Arc<RouteTable>,
    entry: &Entry,
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
        Entry::Egress { .. } => {
            let (host, port) = requested_host(&parts).map_err(|e| Failure::new("", e))?;
            let path_and_query = original.map_or("/", PathAndQuery::as_str);
            (Cow::Owned(host), port, Cow::Borrowed(path_and_query), None)
        }
        &Entry::Gateway { port } => {
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
    let caller = match entry {
        Entry::Egress { node } => node.as_deref(),
        Entry::Gateway { .. } => None,
    };
    table.check_backend(caller, &service_name).map_err(fail)?;
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
    // Who calls, for mutual TLS: the node of an outbound listener, or this gateway.
    let caller = match (entry, &shared.role) {
        (Entry::Egress { node: Some(node) }, _) => {
            Some((IdentityKind::VirtualNode, node.to_string()))
        }
        (Entry::Gateway { .. }, crate::Role::Gateway(name)) => {
            Some((IdentityKind::VirtualGateway, name.clone()))
        }
        _ => None,
    };
    let forward = Forward {
        shared,
        table,
        caller,
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
