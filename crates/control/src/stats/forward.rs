//! `Forwarder`: a follower replica passes every stats push on to the leader, which judges canaries.
//!
//! Proxies push to whichever replica they reach; only the leader's stats feed canary analysis.
//! A follower keeps what it receives for its own `GET .../stats`, and forwards the report as
//! it came (with the proxy's own `Authorization`, valid on every replica) in the background.
//! Bounded: at most `MAX_IN_FLIGHT` forwards at once; beyond that a push is not forwarded,
//! and the leader's coverage rule (a step needs an interval of stats) absorbs the gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderValue;

/// Marks a forwarded push, so that a replica never forwards it again.
pub const FORWARDED: &str = "x-aviary-forwarded";

const MAX_IN_FLIGHT: usize = 64;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Forwarder {
    client: reqwest::Client,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Pushes not forwarded (too many in flight, or the leader did not take them).
    pub dropped: Arc<AtomicU64>,
}

impl Forwarder {
    pub fn new() -> Result<Forwarder, reqwest::Error> {
        let client = crate::tls::http_client(FORWARD_TIMEOUT)?;
        Ok(Forwarder {
            client,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            dropped: Arc::default(),
        })
    }

    /// Sends `report` (the push's body) to the leader at `leader_url`, in the background.
    pub fn forward(
        &self,
        leader_url: &str,
        mesh: &str,
        authorization: Option<HeaderValue>,
        report: Vec<u8>,
    ) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let url = format!(
            "{}/v1/meshes/{mesh}/stats",
            leader_url.trim_end_matches('/')
        );
        let mut request = self
            .client
            .post(url)
            .header(FORWARDED, "1")
            .header("content-type", "application/json")
            .body(report);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let dropped = self.dropped.clone();
        tokio::spawn(async move {
            let outcome = request.send().await;
            let taken = matches!(&outcome, Ok(response) if response.status().is_success());
            if !taken {
                dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(?outcome, "the leader did not take a forwarded stats push");
            }
            drop(permit);
        });
    }
}
