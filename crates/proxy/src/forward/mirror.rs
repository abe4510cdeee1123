//! Mirrored requests: a copy of a request sent to a canary's node in the background, its
//! answer read and discarded, counted in the canary target's series like any attempt (so the
//! canary's analysis judges it). Never retried, never waited for by the caller, and bounded
//! per proxy: past [`MAX_MIRRORS_IN_FLIGHT`] copies in flight a copy is skipped and counted.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::attempt::{RequestHead, UpstreamRequest};
use super::{Forward, http2_form, status_of};
use crate::Shared;
use crate::canary::Overlay;
use crate::mesh_tls::Caller;
use crate::table::{RouteEntry, RouteTable};
use crate::telemetry::{Attempt, MirrorSkip, MirrorSkipped};

/// Copies in flight at most, per proxy: mirroring is a test of the canary, and must never
/// cost the proxy's real traffic its memory or its connections.
pub const MAX_MIRRORS_IN_FLIGHT: usize = 256;

/// Marks a mirrored copy, so the canary (and whoever reads its logs) can tell it apart.
pub static MIRRORED: HeaderName = HeaderName::from_static("x-aviary-mirrored");

/// The proxy's mirrored copies in flight: their bound, and the tracker that owns their tasks
/// (so shutdown waits for them as for any request, within its limit).
pub struct Mirrors {
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
}

impl Mirrors {
    pub fn new(tasks: TaskTracker) -> Mirrors {
        Mirrors {
            permits: Arc::new(Semaphore::new(MAX_MIRRORS_IN_FLIGHT)),
            tasks,
        }
    }
}

/// One copy, owning all it needs to outlive the request it copies.
struct MirroredRequest {
    shared: Arc<Shared>,
    table: Arc<RouteTable>,
    route: Arc<RouteEntry>,
    /// The canary's index among the route's targets.
    target: usize,
    service: String,
    caller: Option<Caller>,
    forwarded_for: HeaderValue,
    path_and_query: String,
    parsed: Option<PathAndQuery>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
}

impl Forward<'_> {
    /// Sends a copy of this request (`method`, the upstream `headers`, the whole `body`) to
    /// the canary of `overlay` in the background. `body` is `None` when it was too large to
    /// keep: then nothing is sent.
    pub(super) fn mirror(
        &self,
        overlay: &Overlay,
        method: &Method,
        headers: &HeaderMap,
        body: Option<&Bytes>,
    ) {
        let skipped = |reason| {
            MirrorSkipped {
                canary: &overlay.canary,
                reason,
            }
            .emit(&self.shared.telemetry)
        };
        let Some(body) = body else {
            return skipped(MirrorSkip::BodyNotReplayable);
        };
        let Ok(permit) = Arc::clone(&self.shared.mirrors.permits).try_acquire_owned() else {
            return skipped(MirrorSkip::InFlightLimit);
        };
        let mut headers = headers.clone();
        headers.insert(MIRRORED.clone(), HeaderValue::from_static("1"));
        let copy = MirroredRequest {
            shared: Arc::clone(self.shared),
            table: Arc::clone(self.table),
            route: Arc::clone(self.route),
            target: overlay.target,
            service: self.service.to_string(),
            caller: self.caller.clone(),
            forwarded_for: self.forwarded_for.clone(),
            path_and_query: self.path_and_query.to_string(),
            parsed: self.target.clone(),
            method: method.clone(),
            headers,
            body: body.clone(),
        };
        self.shared.mirrors.tasks.spawn(async move {
            copy.send().await;
            drop(permit);
        });
    }
}

impl MirroredRequest {
    /// One attempt at the canary under the route's per-request timeout, counted in its series;
    /// the answer's body is read to its end (so the connection goes back to the pool) and
    /// dropped.
    async fn send(self) {
        let forward = Forward {
            shared: &self.shared,
            table: &self.table,
            caller: self.caller.clone(),
            service: &self.service,
            route: &self.route,
            forwarded_for: &self.forwarded_for,
            path_and_query: &self.path_and_query,
            target: self.parsed.clone(),
            host: None,
            start: Instant::now(),
        };
        let Some(target) = self.route.targets.get(self.target) else {
            return;
        };
        let http2 = target.http2();
        let headers = if http2 {
            http2_form(&self.headers, false)
        } else {
            self.headers.clone()
        };
        let limit = self.route.per_request;
        let start = Instant::now();
        let (result, endpoint) = forward
            .attempt(target, None, limit.map(|d| (d, d)), || UpstreamRequest {
                head: RequestHead {
                    method: &self.method,
                    headers: &headers,
                    path_and_query: &self.path_and_query,
                    target: self.parsed.as_ref(),
                    http2,
                },
                body: None,
                replay: Some(self.body.clone()),
                // Not sent again on a fresh connection either: a mirror never retries.
                idempotent: false,
            })
            .await;
        Attempt {
            series: &target.series,
            workload: super::workload_series(&endpoint),
            key: &target.key,
            endpoint: endpoint.as_ref().map(|e| e.addr),
            status: status_of(&result),
            elapsed: start.elapsed(),
            error: result.as_ref().err(),
            retried: false,
        }
        .emit();
        if let Ok((response, in_flight)) = result {
            let left = limit.map(|d| d.saturating_sub(start.elapsed()));
            // Frame by frame, each dropped: however large the canary's answer, a copy holds
            // one frame of it.
            let mut body = response.into_body();
            let drain = async move { while let Some(Ok(_)) = body.frame().await {} };
            match left {
                Some(left) => {
                    let _ = tokio::time::timeout(left, drain).await;
                }
                None => {
                    let _ = drain.await;
                }
            }
            drop(in_flight);
        }
    }
}
