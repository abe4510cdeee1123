//! Retries as a small policy type, apart from the code that sends (linkerd2-proxy's
//! `http/retry` does the same): [`RetryPolicy`] is what a route allows, compiled once;
//! [`Retries`] is one request's account of it — whether an attempt's outcome is tried again,
//! which targets and endpoint to avoid next, and how long the next attempt may take.
//!
//! A stale pooled connection is not this policy's business: the pool sends such a request once
//! more on a fresh connection itself (`pool::Pool::send`), whether or not the route retries.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use model::typed::{self, GrpcRetryPolicy, HttpRetryEvent, HttpRetryPolicy, TcpRetryEvent};
use tokio::time::Instant;

use crate::error::{Delivery, ProxyError};
use crate::weighted::WeightedChoice;

/// Which failures a route retries, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub per_try: Option<Duration>,
    pub server_error: bool,
    pub gateway_error: bool,
    pub client_error: bool,
    pub stream_error: bool,
    pub connection_error: bool,
}

impl RetryPolicy {
    /// App Mesh's default for a route without `retryPolicy`: 2 retries of gateway errors and
    /// connection errors, 15 s per try.
    pub fn app_mesh_default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            per_try: Some(Duration::from_secs(15)),
            server_error: false,
            gateway_error: true,
            client_error: false,
            stream_error: false,
            connection_error: true,
        }
    }

    pub fn from_model(policy: &HttpRetryPolicy) -> RetryPolicy {
        RetryPolicy::from_events(
            policy.max_retries,
            policy.per_retry_timeout,
            &policy.http_retry_events,
            &policy.tcp_retry_events,
        )
    }

    /// A gRPC route's policy: its HTTP and TCP events as an HTTP route's. `grpcRetryEvents`
    /// are not acted on: retries here look at HTTP statuses and transport failures only.
    pub fn from_grpc(policy: &GrpcRetryPolicy) -> RetryPolicy {
        RetryPolicy::from_events(
            policy.max_retries,
            policy.per_retry_timeout,
            &policy.http_retry_events,
            &policy.tcp_retry_events,
        )
    }

    fn from_events(
        max_retries: u64,
        per_retry_timeout: typed::Duration,
        http: &[HttpRetryEvent],
        tcp: &[TcpRetryEvent],
    ) -> RetryPolicy {
        RetryPolicy {
            max_retries: u32::try_from(max_retries).unwrap_or(u32::MAX),
            per_try: Some(per_retry_timeout.to_std()).filter(|d| !d.is_zero()),
            server_error: http.contains(&HttpRetryEvent::ServerError),
            gateway_error: http.contains(&HttpRetryEvent::GatewayError),
            client_error: http.contains(&HttpRetryEvent::ClientError),
            stream_error: http.contains(&HttpRetryEvent::StreamError),
            connection_error: tcp.contains(&TcpRetryEvent::ConnectionError),
        }
    }

    /// Whether an upstream answer with `status` is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        (self.server_error && matches!(status, 500..=508 | 510 | 511))
            || (self.gateway_error && matches!(status, 502..=504))
            || (self.client_error && status == 409)
    }

    /// Whether an upstream failure without an answer is retried. Connection errors need
    /// `connection-error`; a reset or timeout after sending is Envoy's "reset" policy, which
    /// App Mesh includes in server-error and gateway-error, and `stream-error` covers too.
    pub fn retries_error(&self, error: &ProxyError) -> bool {
        match error {
            ProxyError::Connect { .. } | ProxyError::NoHealthyEndpoint { .. } => {
                self.connection_error
            }
            ProxyError::Stream { .. } => {
                self.stream_error || self.server_error || self.gateway_error
            }
            ProxyError::Timeout { .. } => self.server_error || self.gateway_error,
            _ => false,
        }
    }
}

/// Methods a request of which may be sent twice with the same effect (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// How one attempt ended, as far as retrying goes.
pub enum Outcome<'a> {
    /// The upstream answered with this status.
    Answered(u16),
    Failed(&'a ProxyError),
}

/// One request's retries under its route's policy.
pub struct Retries<'a> {
    policy: &'a RetryPolicy,
    idempotent: bool,
    /// The body is kept, so the request can be sent again.
    replayable: bool,
    /// The route's per-request timeout, from the request's start.
    per_request: Option<Duration>,
    deadline: Option<Instant>,
    done: u32,
    failed_targets: Vec<usize>,
    avoid: Option<SocketAddr>,
}

impl<'a> Retries<'a> {
    pub fn new(
        policy: &'a RetryPolicy,
        method: &Method,
        replayable: bool,
        per_request: Option<Duration>,
        start: Instant,
    ) -> Retries<'a> {
        Retries {
            policy,
            idempotent: is_idempotent(method),
            replayable,
            per_request,
            deadline: per_request.map(|d| start + d),
            done: 0,
            failed_targets: Vec::new(),
            avoid: None,
        }
    }

    /// Whether a request's body should be kept for replay at all.
    pub fn may_retry(policy: &RetryPolicy) -> bool {
        policy.max_retries > 0
    }

    /// The target for the next attempt: by weight, avoiding targets that failed this request
    /// while another has weight.
    pub fn pick(&self, choice: &WeightedChoice) -> Option<usize> {
        if self.failed_targets.is_empty() {
            choice.pick()
        } else {
            choice.pick_avoiding(|i| self.failed_targets.contains(&i))
        }
    }

    /// The endpoint the next attempt should avoid (the one that just failed).
    pub fn avoid(&self) -> Option<SocketAddr> {
        self.avoid
    }

    /// How long the next attempt may wait, and the configured limit to name if it runs out:
    /// the policy's per-try timeout (when it can retry at all), cut to what is left of the
    /// route's per-request timeout.
    pub fn attempt_timeout(&self) -> Option<(Duration, Duration)> {
        let left = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let per_try = self.policy.per_try.filter(|_| self.policy.max_retries > 0);
        match (per_try, left, self.per_request) {
            (Some(try_for), Some(left), Some(limit)) if left < try_for => Some((left, limit)),
            (Some(try_for), _, _) => Some((try_for, try_for)),
            (None, Some(left), Some(limit)) => Some((left, limit)),
            _ => None,
        }
    }

    /// Whether the attempt that ended with `outcome` on `target` (at `endpoint`) is tried
    /// again; if so, the next attempt avoids them.
    pub fn after(
        &mut self,
        outcome: &Outcome,
        target: usize,
        endpoint: Option<SocketAddr>,
    ) -> bool {
        let wanted = match outcome {
            Outcome::Answered(status) => self.idempotent && self.policy.retries_status(*status),
            Outcome::Failed(error) => {
                self.policy.retries_error(error)
                    && (self.idempotent || error.delivery() == Delivery::NeverSent)
            }
        };
        let retry = wanted
            && self.done < self.policy.max_retries
            && self.replayable
            && self.deadline.is_none_or(|d| Instant::now() < d);
        if retry {
            self.done += 1;
            if !self.failed_targets.contains(&target) {
                self.failed_targets.push(target);
            }
            self.avoid = endpoint;
        }
        retry
    }
}

#[cfg(test)]
mod tests;
