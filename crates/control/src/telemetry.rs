//! The control plane's observable events and the Prometheus registry they count into; metric
//! names and labels live here and nowhere else.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
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

pub struct Telemetry {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    watch_streams: Gauge,
    store_revision: Gauge<u64, AtomicU64>,
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
        Telemetry {
            registry,
            requests,
            latency,
            watch_streams,
            store_revision,
        }
    }
}

impl Telemetry {
    /// Prometheus text exposition of every metric, with the store revision read now.
    pub fn render(&self, store_revision: u64) -> String {
        self.store_revision.set(store_revision);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts an open watch stream until the returned guard drops.
    pub fn watch_opened(&self) -> WatchStreamGuard {
        self.watch_streams.inc();
        WatchStreamGuard(self.watch_streams.clone())
    }
}

pub struct WatchStreamGuard(Gauge);

impl Drop for WatchStreamGuard {
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
