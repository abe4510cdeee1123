//! `ProxyError`: every way a proxied request can fail, who failed, and whether a retry is safe.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;

/// Who caused a failure; metrics and logs read it, and only upstream failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The caller sent something we cannot serve (malformed, unknown service, not allowed).
    Client,
    /// A target node failed: no endpoint, refused, reset, too slow.
    Upstream,
    /// The proxy itself cannot serve (no configuration yet).
    Proxy,
}

/// Whether the request reached an upstream before it failed. A request that never did can be
/// sent again whatever its method; one that did is retried only when it is idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    NeverSent,
    Sent,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("virtual service '{service}' not found in mesh '{mesh}'")]
    UnknownService { service: String, mesh: String },
    #[error("no route of {provider} matches {method} {path}")]
    NoRoute {
        provider: String,
        method: String,
        path: String,
    },
    #[error(
        "virtual node '{node}' may not call virtual service '{service}': it is not one of the node's backends and mesh '{mesh}' has egress filter DROP_ALL"
    )]
    NotABackend {
        node: String,
        service: String,
        mesh: String,
    },
    #[error("no healthy endpoint of virtual node '{node}': {reason}")]
    NoHealthyEndpoint { node: String, reason: String },
    #[error("cannot connect to virtual node '{node}' at {addr}: {detail}")]
    Connect {
        node: String,
        addr: SocketAddr,
        detail: String,
    },
    #[error("virtual node '{node}' at {addr} failed the request: {detail}")]
    Stream {
        node: String,
        addr: SocketAddr,
        detail: String,
    },
    #[error("virtual node '{node}' did not answer within {after:?}")]
    Timeout { node: String, after: Duration },
    #[error("the proxy has no configuration for mesh '{mesh}' yet")]
    NotConfigured { mesh: String },
    #[error("no TLS to virtual node '{node}': {detail}")]
    Tls { node: String, detail: String },
}

impl ProxyError {
    pub fn party(&self) -> Party {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::UnknownService { .. }
            | ProxyError::NoRoute { .. }
            | ProxyError::NotABackend { .. } => Party::Client,
            ProxyError::NoHealthyEndpoint { .. }
            | ProxyError::Connect { .. }
            | ProxyError::Stream { .. }
            | ProxyError::Timeout { .. } => Party::Upstream,
            ProxyError::NotConfigured { .. } | ProxyError::Tls { .. } => Party::Proxy,
        }
    }

    pub fn delivery(&self) -> Delivery {
        match self {
            ProxyError::Stream { .. } | ProxyError::Timeout { .. } => Delivery::Sent,
            _ => Delivery::NeverSent,
        }
    }

    /// What the caller is told: what failed and how, without upstream addresses or error
    /// chains, which are the mesh's internals (the full error is logged).
    pub fn public(&self) -> String {
        match self {
            ProxyError::Connect { node, .. } => format!("cannot connect to virtual node '{node}'"),
            ProxyError::Stream { node, .. } => {
                format!("virtual node '{node}' failed the request before answering it")
            }
            ProxyError::Tls { node, .. } => format!("no TLS to virtual node '{node}'"),
            other => other.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::UnknownService { .. } | ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::NotABackend { .. } => StatusCode::FORBIDDEN,
            ProxyError::NoHealthyEndpoint { .. }
            | ProxyError::Connect { .. }
            | ProxyError::NotConfigured { .. }
            | ProxyError::Tls { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Stream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// Why `Proxy::bind` or `Proxy::run` could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({what})")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The control plane's client cannot be built (a CA file that cannot be used).
    #[error(transparent)]
    Client(client::ClientError),
}

#[cfg(test)]
mod tests;
