//! Which failures of one control-plane URL let a request go on to the next one.
//!
//! The rule is whether the failed URL can have acted on the request: a connection that never
//! opened carried nothing, so any method moves on; a request that may have been sent moves on
//! only when repeating it is harmless (GET, HEAD, PUT, DELETE); a 503 moves on for those, and
//! for a POST only when it is App Mesh's `ServiceUnavailableException`, which aviary answers
//! before acting on anything (no store, or too many connections).

use reqwest::Method;

use crate::ClientError;

/// How one URL failed to answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection: refused, timed out while connecting, no such host, or a TLS handshake
    /// that failed. The request was not sent.
    NotSent,
    /// The connection broke or timed out after the request may have been sent.
    MaybeSent,
    /// The server answered 503; `service_unavailable` when it says
    /// `ServiceUnavailableException`.
    Unavailable { service_unavailable: bool },
}

const SERVICE_UNAVAILABLE: &str = "ServiceUnavailableException";

impl Failure {
    /// What `error` says about the URL that gave it; `None` when it is an answer to return as is
    /// (a 404 or a 400 would be the same on every replica).
    pub(crate) fn of(error: &ClientError) -> Option<Failure> {
        match error {
            ClientError::Unreachable { error, .. } if error.is_connect() => Some(Failure::NotSent),
            ClientError::Unreachable { .. } => Some(Failure::MaybeSent),
            ClientError::Tls { .. } => Some(Failure::NotSent),
            ClientError::Api {
                status: 503,
                error_type,
                ..
            } => Some(Failure::Unavailable {
                service_unavailable: error_type == SERVICE_UNAVAILABLE,
            }),
            _ => None,
        }
    }
}

/// Whether a request of `method` that failed this way may go to the next URL.
pub(crate) fn moves_on(method: &Method, failure: Failure) -> bool {
    let idempotent = [Method::GET, Method::HEAD, Method::PUT, Method::DELETE].contains(method);
    match failure {
        Failure::NotSent => true,
        Failure::MaybeSent => idempotent,
        Failure::Unavailable {
            service_unavailable,
        } => idempotent || (*method == Method::POST && service_unavailable),
    }
}

/// One URL a request went to, and why it gave no answer.
#[derive(Debug)]
pub struct Tried {
    pub url: String,
    pub error: ClientError,
}

impl std::fmt::Display for Tried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            // Both already name the URL; the root cause says more than reqwest's top line.
            ClientError::Unreachable { error, .. } => {
                write!(f, "{}: {}", self.url, crate::unreachable_reason(error))
            }
            ClientError::Tls { problem, .. } => {
                write!(f, "{}: no trusted TLS connection: {problem}", self.url)
            }
            other => write!(f, "{}: {other}", self.url),
        }
    }
}

/// `tried`'s reasons on one line, for `ClientError::Replicas`.
pub(crate) fn describe(tried: &[Tried]) -> String {
    let reasons: Vec<String> = tried.iter().map(Tried::to_string).collect();
    reasons.join("; ")
}

#[cfg(test)]
mod tests;
