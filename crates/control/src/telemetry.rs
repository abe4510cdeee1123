//! The control plane's observable events and the Prometheus registry they count into; metric
//! names and labels live here and nowhere else.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    mesh: String,
    /// `virtualNode` or `virtualGateway`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum TimeoutPhase {
    header_read,
    idle,
    tls_handshake,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    phase: TimeoutPhase,
}

pub struct Telemetry {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    watch_streams: Gauge,
    store_revision: Gauge<u64, AtomicU64>,
    leader: Gauge,
    stats_not_forwarded: Gauge<u64, AtomicU64>,
    connections: Gauge,
    refused: Counter,
    timeouts: Family<TimeoutLabels, Counter>,
    tls_failures: Counter,
    accept_errors: Counter,
    certificates_issued: Family<CertificateLabels, Counter>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aviary_control");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "API requests answered, by App Mesh operation and HTTP status",
            requests.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "api_request_duration_seconds",
            "Time to answer an API request",
            latency.clone(),
        );
        let watch_streams = Gauge::default();
        registry.register(
            "watch_streams",
            "Open /v1 watch streams",
            watch_streams.clone(),
        );
        let store_revision = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "store_revision",
            "Current revision of the store",
            store_revision.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "Whether this replica leads (drives canaries): 1 or 0",
            leader.clone(),
        );
        let stats_not_forwarded = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "stats_pushes_not_forwarded",
            "Stats pushes this follower could not pass on to the leader (total)",
            stats_not_forwarded.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open client connections",
            connections.clone(),
        );
        let refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections refused because --max-connections were open",
            refused.clone(),
        );
        let timeouts = Family::<TimeoutLabels, Counter>::default();
        registry.register(
            "connection_timeouts",
            "Connections closed by a deadline: header_read (slow request head), idle \
             (keep-alive), tls_handshake",
            timeouts.clone(),
        );
        let tls_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed (untrusted certificate, plain HTTP, bad client)",
            tls_failures.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Failed accepts, such as running out of file descriptors",
            accept_errors.clone(),
        );
        let certificates_issued = Family::<CertificateLabels, Counter>::default();
        registry.register(
            "certificates_issued",
            "Certificates the mesh CAs issued, by mesh and identity kind",
            certificates_issued.clone(),
        );
        Telemetry {
            registry,
            requests,
            latency,
            watch_streams,
            store_revision,
            leader,
            stats_not_forwarded,
            connections,
            refused,
            timeouts,
            tls_failures,
            accept_errors,
            certificates_issued,
        }
    }
}

impl Telemetry {
    /// Prometheus text exposition of every metric, with the store revision, leadership and
    /// forwarding losses read now.
    pub fn render(&self, store_revision: u64, leading: bool, not_forwarded: u64) -> String {
        self.store_revision.set(store_revision);
        self.leader.set(i64::from(leading));
        self.stats_not_forwarded.set(not_forwarded);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts an open watch stream until the returned guard drops.
    pub fn watch_opened(&self) -> GaugeGuard {
        self.watch_streams.inc();
        GaugeGuard(self.watch_streams.clone())
    }

    /// Counts an open connection until the returned guard drops.
    pub fn connection_opened(&self) -> GaugeGuard {
        self.connections.inc();
        GaugeGuard(self.connections.clone())
    }
}

/// Holds one unit of a gauge, given back on drop.
pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One API request answered.
pub struct ApiRequest<'a> {
    pub operation: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub elapsed: Duration,
}

impl ApiRequest<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::debug!(
            operation = self.operation,
            method = self.method,
            status = self.status,
            elapsed_ms = self.elapsed.as_secs_f64() * 1000.0,
            "api request"
        );
        telemetry
            .requests
            .get_or_create(&RequestLabels {
                operation: self.operation.to_string(),
                code: self.status,
            })
            .inc();
        telemetry.latency.observe(self.elapsed.as_secs_f64());
    }
}

/// A connection refused because `max_connections` were open. Logged at debug only: under a
/// flood there is one per attempt, and the counter tells the story.
pub struct ConnectionRefused {
    pub max_connections: usize,
}

impl ConnectionRefused {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::debug!(
            max_connections = self.max_connections,
            "connection refused: too many open"
        );
        telemetry.refused.inc();
    }
}

/// A connection closed because it took too long over something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionTimedOut {
    HeaderRead,
    Idle,
    TlsHandshake,
}

impl ConnectionTimedOut {
    pub fn emit(&self, telemetry: &Telemetry) {
        let phase = match self {
            ConnectionTimedOut::HeaderRead => TimeoutPhase::header_read,
            ConnectionTimedOut::Idle => TimeoutPhase::idle,
            ConnectionTimedOut::TlsHandshake => TimeoutPhase::tls_handshake,
        };
        tracing::debug!(?phase, "connection timed out");
        telemetry
            .timeouts
            .get_or_create(&TimeoutLabels { phase })
            .inc();
    }
}

/// A TLS handshake that failed.
pub struct TlsHandshakeFailed<'a> {
    pub error: &'a std::io::Error,
}

impl TlsHandshakeFailed<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::debug!(error = %self.error, "TLS handshake failed");
        telemetry.tls_failures.inc();
    }
}

/// `accept` failed; the loop backs off and goes on.
pub struct AcceptFailed<'a> {
    pub error: &'a std::io::Error,
}

impl AcceptFailed<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::warn!(error = %self.error, "accept failed; backing off");
        telemetry.accept_errors.inc();
    }
}

/// A connection ended by the client or by an HTTP error; only logged, as it is routine.
pub struct ConnectionEnded {
    pub error: Option<hyper::Error>,
}

impl ConnectionEnded {
    pub fn emit(&self) {
        if let Some(error) = &self.error {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}

/// A mesh CA signed a certificate. Logged at info: each one grants an identity.
pub struct CertificateIssued<'a> {
    pub mesh: &'a str,
    pub kind: model::wire::IdentityKind,
    pub name: &'a str,
    /// Unix seconds.
    pub not_after: u64,
}

impl CertificateIssued<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::info!(
            mesh = self.mesh,
            kind = self.kind.as_str(),
            name = self.name,
            not_after = self.not_after,
            "certificate issued"
        );
        telemetry
            .certificates_issued
            .get_or_create(&CertificateLabels {
                mesh: self.mesh.to_string(),
                kind: self.kind.as_str(),
            })
            .inc();
    }
}

/// A mesh got its CA (once per mesh, on whichever replica won the race to make it).
pub struct MeshCaCreated<'a> {
    pub mesh: &'a str,
    pub common_name: &'a str,
}

impl MeshCaCreated<'_> {
    pub fn emit(&self) {
        tracing::info!(mesh = self.mesh, ca = self.common_name, "mesh CA created");
    }
}
