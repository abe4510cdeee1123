//! The proxy's observable events and metrics. Metric names and labels live here and nowhere
//! else; each event is one struct whose `emit()` both logs (structured `tracing` fields) and
//! counts.
//!
//! Request metrics are kept per series (virtual service, route, target node) in plain atomics,
//! so the request path never takes a lock and a per-node snapshot ([`Telemetry::snapshot`]) can
//! be pushed elsewhere. A series counts upstream *attempts*: a request that was retried counts
//! once per target it tried, so a canary whose failures retries hide still shows its 5xx. A
//! request that never reached a target counts under empty `route` and `target_node` labels.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use model::wire::{LATENCY_BUCKETS_MS, latency_bucket};

use crate::error::{Party, ProxyError};

const REQUESTS: &str = "aviary_proxy_requests";
const DURATION: &str = "aviary_proxy_request_duration_seconds";
const RETRIES: &str = "aviary_proxy_retries";
const WORKLOAD_REQUESTS: &str = "aviary_proxy_workload_requests";

/// The latency histogram's buckets are the ones pushed to the control plane
/// (`model::wire::LATENCY_BUCKETS_MS`), so `/metrics` and canary analysis read the same counts.
const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Which requests a series counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub virtual_service: String,
    pub route: String,
    pub target_node: String,
}

/// The counters of one series.
#[derive(Debug, Default)]
pub struct Series {
    by_class: [AtomicU64; 5],
    /// Not cumulative; the last one is +Inf.
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
    retries: AtomicU64,
}

/// A copy of one series' counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesCounts {
    /// Requests by status class, 1xx to 5xx.
    pub by_class: [u64; 5],
    /// Per bucket (upper bound in seconds, count), not cumulative; the last bound is +Inf.
    pub latency: Vec<(f64, u64)>,
    pub latency_sum_seconds: f64,
    pub retries: u64,
}

impl SeriesCounts {
    pub fn requests(&self) -> u64 {
        self.by_class.iter().sum()
    }
}

impl Series {
    fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let bucket = latency_bucket(elapsed.as_secs_f64() * 1000.0);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn counts(&self) -> SeriesCounts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SeriesCounts {
            by_class: std::array::from_fn(|i| load(&self.by_class[i])),
            latency: LATENCY_BUCKETS_MS
                .iter()
                .map(|ms| ms / 1000.0)
                .chain([f64::INFINITY])
                .zip(self.buckets.iter().map(load))
                .collect(),
            latency_sum_seconds: load(&self.sum_nanos) as f64 / 1e9,
            retries: load(&self.retries),
        }
    }
}

/// Every series, copy-on-write: readers load without locking, a new series (rare: one per
/// route target) copies the map.
#[derive(Debug, Default)]
struct SeriesSet {
    mesh: String,
    map: ArcSwap<HashMap<SeriesKey, Arc<Series>>>,
    /// Per (target node, workload), for nodes whose endpoints come from two or more
    /// workloads: the same attempts as `map`, told apart by the workload of the endpoint.
    workloads: ArcSwap<HashMap<WorkloadKey, Arc<Series>>>,
}

/// A node and one of its workloads.
pub type WorkloadKey = (String, String);

/// The series of `key` in `map`, added if it is new (rare: one per route target or
/// workload), copying the map.
fn series_in<K: Clone + Eq + std::hash::Hash>(
    map: &ArcSwap<HashMap<K, Arc<Series>>>,
    key: &K,
) -> Arc<Series> {
    if let Some(series) = map.load().get(key) {
        return series.clone();
    }
    let mut found = None;
    map.rcu(|map| {
        let mut map = HashMap::clone(map);
        found = Some(map.entry(key.clone()).or_default().clone());
        map
    });
    found.expect("rcu ran at least once")
}

#[derive(Debug)]
struct SeriesCollector(Arc<SeriesSet>);

impl Collector for SeriesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let map = self.0.map.load();
        let mut series: Vec<(&SeriesKey, SeriesCounts)> =
            map.iter().map(|(k, s)| (k, s.counts())).collect();
        series.sort_by(|a, b| a.0.cmp(b.0));
        let mesh = self.0.mesh.as_str();
        let labels = |key: &SeriesKey| {
            [
                ("mesh", mesh.to_string()),
                ("virtual_service", key.virtual_service.clone()),
                ("route", key.route.clone()),
                ("target_node", key.target_node.clone()),
            ]
        };
        {
            let mut metric = encoder.encode_descriptor(
                REQUESTS,
                "Requests to target nodes (each attempt), by status class.",
                None,
                MetricType::Counter,
            )?;
            for (key, counts) in &series {
                for (class, &count) in CLASSES.iter().zip(&counts.by_class) {
                    if count == 0 {
                        continue;
                    }
                    let [a, b, c, d] = labels(key);
                    let set = [a, b, c, d, ("status_class", class.to_string())];
                    metric
                        .encode_family(&set)?
                        .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
                }
            }
        }
        {
            let mut metric = encoder.encode_descriptor(
                DURATION,
                "Time from receiving a request to the target's response headers, per attempt.",
                None,
                MetricType::Histogram,
            )?;
            for (key, counts) in &series {
                let set = labels(key);
                metric.encode_family(&set)?.encode_histogram::<NoLabelSet>(
                    counts.latency_sum_seconds,
                    counts.requests(),
                    &counts.latency,
                    None,
                )?;
            }
        }
        {
            let mut metric = encoder.encode_descriptor(
                RETRIES,
                "Attempts that failed and were followed by a retry.",
                None,
                MetricType::Counter,
            )?;
            for (key, counts) in &series {
                let set = labels(key);
                metric
                    .encode_family(&set)?
                    .encode_counter::<NoLabelSet, _, u64>(&counts.retries, None)?;
            }
        }
        let workloads = self.0.workloads.load();
        let mut workloads: Vec<(&WorkloadKey, SeriesCounts)> =
            workloads.iter().map(|(k, s)| (k, s.counts())).collect();
        workloads.sort_by(|a, b| a.0.cmp(b.0));
        let mut metric = encoder.encode_descriptor(
            WORKLOAD_REQUESTS,
            "Requests to the endpoints of one workload of a target node (each attempt), by \
             status class, for nodes whose endpoints come from two or more workloads.",
            None,
            MetricType::Counter,
        )?;
        for ((node, workload), counts) in &workloads {
            for (class, &count) in CLASSES.iter().zip(&counts.by_class) {
                if count == 0 {
                    continue;
                }
                let set = [
                    ("mesh", mesh.to_string()),
                    ("target_node", node.clone()),
                    ("workload", workload.clone()),
                    ("status_class", class.to_string()),
                ];
                metric
                    .encode_family(&set)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }
        Ok(())
    }
}

pub struct Telemetry {
    series: Arc<SeriesSet>,
    registry: Registry,
    config_revision: Gauge<i64, AtomicI64>,
    config_updates: Family<[(&'static str, &'static str); 1], Counter>,
    control_errors: Counter,
    snapshots: Counter,
    reconnects: Counter,
    ejections: Family<[(&'static str, String); 1], Counter>,
    connections: Family<[(&'static str, &'static str); 1], Gauge>,
    refused: Family<[(&'static str, &'static str); 1], Counter>,
    spans_exported: Counter,
    spans_dropped: Family<[(&'static str, &'static str); 1], Counter>,
    trace_export_failures: Counter,
    mirror_skipped: Family<[(&'static str, &'static str); 1], Counter>,
    /// TLS refusals and certificate renewals, named in `tls/events.rs`.
    pub tls: crate::tls::TlsMetrics,
}

impl Telemetry {
    pub fn new(mesh: &str) -> Telemetry {
        let series = Arc::new(SeriesSet {
            mesh: mesh.to_string(),
            ..SeriesSet::default()
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SeriesCollector(series.clone())));
        let config_revision = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "aviary_proxy_config_revision",
            "Store revision of the configuration in use",
            config_revision.clone(),
        );
        let config_updates = Family::default();
        registry.register(
            "aviary_proxy_config_updates",
            "Configurations applied, by where they came from",
            config_updates.clone(),
        );
        let control_errors = Counter::default();
        registry.register(
            "aviary_proxy_control_errors",
            "Failed attempts to reach the control plane",
            control_errors.clone(),
        );
        let snapshots = Counter::default();
        registry.register(
            "aviary_proxy_control_snapshots",
            "Snapshots fetched from the control plane: the first, and one per re-list",
            snapshots.clone(),
        );
        let reconnects = Counter::default();
        registry.register(
            "aviary_proxy_control_reconnects",
            "Watch streams reopened (on the next control-plane URL, from the last revision received) after one ended, failed or did not open",
            reconnects.clone(),
        );
        let ejections = Family::default();
        registry.register(
            "aviary_proxy_ejections",
            "Endpoints ejected by outlier detection, by virtual node",
            ejections.clone(),
        );
        let connections = Family::default();
        registry.register(
            "aviary_proxy_connections",
            "Open client connections, by listener kind (gateway, egress, admin)",
            connections.clone(),
        );
        let refused = Family::default();
        registry.register(
            "aviary_proxy_connections_refused",
            "Connections answered 503 because the listener had --max-connections open",
            refused.clone(),
        );
        let spans_exported = Counter::default();
        registry.register(
            "aviary_proxy_trace_spans_exported",
            "Spans the trace collector accepted",
            spans_exported.clone(),
        );
        let spans_dropped = Family::default();
        registry.register(
            "aviary_proxy_trace_spans_dropped",
            "Sampled spans never exported, by reason (queue_full, export_failed, shutdown)",
            spans_dropped.clone(),
        );
        let trace_export_failures = Counter::default();
        registry.register(
            "aviary_proxy_trace_export_failures",
            "Batches of spans the trace collector refused or did not answer in time",
            trace_export_failures.clone(),
        );
        let mirror_skipped = Family::default();
        // Both shown from the start, at 0, so a rate of skips reads from the first scrape.
        for reason in MirrorSkip::ALL {
            drop(mirror_skipped.get_or_create(&[("reason", reason.as_str())]));
        }
        registry.register(
            "aviary_proxy_mirror_skipped",
            "Copies of requests not mirrored to a canary, by reason (in_flight_limit: as many copies in flight as allowed; body_not_replayable: a body too large to keep)",
            mirror_skipped.clone(),
        );
        Telemetry {
            series,
            tls: crate::tls::TlsMetrics::register(&mut registry),
            registry,
            config_revision,
            config_updates,
            control_errors,
            snapshots,
            reconnects,
            ejections,
            connections,
            refused,
            spans_exported,
            spans_dropped,
            trace_export_failures,
            mirror_skipped,
        }
    }

    /// The series for `key`, created on first use.
    pub fn series(&self, key: &SeriesKey) -> Arc<Series> {
        series_in(&self.series.map, key)
    }

    /// The series of one workload's endpoints of `node`.
    pub fn workload_series(&self, node: &str, workload: &str) -> Arc<Series> {
        series_in(
            &self.series.workloads,
            &(node.to_string(), workload.to_string()),
        )
    }

    /// Every workload series' counters now, for pushing to the control plane.
    pub fn workload_snapshot(&self) -> Vec<(WorkloadKey, SeriesCounts)> {
        let mut out: Vec<_> = (self.series.workloads.load().iter())
            .map(|(k, s)| (k.clone(), s.counts()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every series' counters now, for pushing to the control plane.
    pub fn snapshot(&self) -> Vec<(SeriesKey, SeriesCounts)> {
        let mut out: Vec<_> = self
            .series
            .map
            .load()
            .iter()
            .map(|(k, s)| (k.clone(), s.counts()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Counts an open connection of a `listener` ("gateway", ...) until the guard drops.
    pub fn connection_opened(&self, listener: &'static str) -> ConnectionGuard {
        let gauge = self
            .connections
            .get_or_create(&[("listener", listener)])
            .clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Holds one open connection in the gauge; gives it back on drop.
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A connection refused because its listener had `max_connections` open. Logged at debug
/// only: under a flood there is one per attempt, and the counter tells the story.
pub struct ConnectionRefused {
    pub listener: &'static str,
    pub max_connections: usize,
}

impl ConnectionRefused {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::debug!(
            listener = self.listener,
            max_connections = self.max_connections,
            "connection refused: too many open"
        );
        telemetry
            .refused
            .get_or_create(&[("listener", self.listener)])
            .inc();
    }
}

/// One attempt at a target node ended: with a response (its status) or an error.
pub struct Attempt<'a> {
    pub series: &'a Series,
    /// The series of the endpoint's workload, when its node counts per workload.
    pub workload: Option<&'a Series>,
    pub key: &'a SeriesKey,
    pub endpoint: Option<SocketAddr>,
    pub status: u16,
    pub elapsed: Duration,
    pub error: Option<&'a ProxyError>,
    /// Another attempt follows this one.
    pub retried: bool,
}

impl Attempt<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            virtual_service = %self.key.virtual_service,
            route = %self.key.route,
            target_node = %self.key.target_node,
            endpoint = ?self.endpoint,
            status = self.status,
            elapsed_ms = self.elapsed.as_secs_f64() * 1000.0,
            error = self.error.map(tracing::field::display),
            retried = self.retried,
            "upstream attempt"
        );
        // The request's span, if it has one, names its target from here: the retry loop
        // reports each attempt here anyway.
        crate::trace::note_attempt(self.key, self.endpoint, self.retried);
        self.series.observe(self.status, self.elapsed);
        if let Some(workload) = self.workload {
            workload.observe(self.status, self.elapsed);
        }
        if self.retried {
            self.series.retries.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A request whose last attempt failed upstream: the caller gets [`ProxyError::public`], the
/// log gets the whole error (address, cause). Counted by the attempt itself.
pub struct Failed<'a> {
    pub virtual_service: &'a str,
    pub error: &'a ProxyError,
}

impl Failed<'_> {
    pub fn emit(&self) {
        tracing::warn!(virtual_service = self.virtual_service, error = %self.error,
            "request failed upstream");
    }
}

/// A request answered by the proxy itself before any target was tried.
pub struct Rejected<'a> {
    pub virtual_service: &'a str,
    pub error: &'a ProxyError,
    pub elapsed: Duration,
}

impl Rejected<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        match self.error.party() {
            Party::Client => tracing::debug!(virtual_service = self.virtual_service,
                error = %self.error, "request rejected"),
            Party::Upstream | Party::Proxy => tracing::warn!(
                virtual_service = self.virtual_service, error = %self.error, "request failed"),
        }
        let key = SeriesKey {
            virtual_service: self.virtual_service.to_string(),
            route: String::new(),
            target_node: String::new(),
        };
        telemetry
            .series(&key)
            .observe(self.error.status().as_u16(), self.elapsed);
    }
}

/// Why a request was not mirrored to its canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorSkip {
    /// As many copies in flight as the proxy allows.
    InFlightLimit,
    /// The body was too large to keep (or had trailers), so there is nothing to copy.
    BodyNotReplayable,
}

impl MirrorSkip {
    pub const ALL: [MirrorSkip; 2] = [MirrorSkip::InFlightLimit, MirrorSkip::BodyNotReplayable];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorSkip::InFlightLimit => "in_flight_limit",
            MirrorSkip::BodyNotReplayable => "body_not_replayable",
        }
    }
}

/// A request of a mirrored route was not copied to its canary. Logged at debug only: when the
/// bound is reached there is one per request, and the counter tells the story.
pub struct MirrorSkipped<'a> {
    pub canary: &'a str,
    pub reason: MirrorSkip,
}

impl MirrorSkipped<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::debug!(
            canary = self.canary,
            reason = self.reason.as_str(),
            "request not mirrored"
        );
        telemetry
            .mirror_skipped
            .get_or_create(&[("reason", self.reason.as_str())])
            .inc();
    }
}

/// A sampled span was not queued for export. Counted only: under a flood or with the exporter
/// gone there is one per request, and the counter tells the story.
pub struct SpanDropped {
    pub reason: &'static str,
}

impl SpanDropped {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::trace!(reason = self.reason, "span dropped");
        telemetry
            .spans_dropped
            .get_or_create(&[("reason", self.reason)])
            .inc();
    }
}

/// A batch of spans reached the collector.
pub struct SpansExported {
    pub spans: usize,
}

impl SpansExported {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::debug!(spans = self.spans, "spans exported");
        telemetry.spans_exported.inc_by(self.spans as u64);
    }
}

/// A batch of spans could not be exported; its spans are dropped. Logged at warn only when
/// `warn` (the exporter rate-limits it), with how many failures went unlogged before.
pub struct TraceExportFailed<'a> {
    pub error: &'a str,
    pub spans: usize,
    pub warn: bool,
    pub unlogged_before: u64,
}

impl TraceExportFailed<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        if self.warn {
            tracing::warn!(
                error = self.error,
                spans = self.spans,
                unlogged_failures = self.unlogged_before,
                "cannot export spans; they are dropped"
            );
        } else {
            tracing::debug!(
                error = self.error,
                spans = self.spans,
                "cannot export spans"
            );
        }
        telemetry.trace_export_failures.inc();
        telemetry
            .spans_dropped
            .get_or_create(&[("reason", "export_failed")])
            .inc_by(self.spans as u64);
    }
}

/// Where a configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Control,
    StateDir,
}

impl ConfigSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigSource::Control => "control",
            ConfigSource::StateDir => "state-dir",
        }
    }
}

/// A new configuration is in use.
pub struct ConfigApplied {
    pub revision: u64,
    pub source: ConfigSource,
    pub virtual_services: usize,
    pub problems: usize,
    pub elapsed: Duration,
}

impl ConfigApplied {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::info!(
            revision = self.revision,
            source = self.source.as_str(),
            virtual_services = self.virtual_services,
            problems = self.problems,
            compile_us = self.elapsed.as_micros() as u64,
            "configuration applied"
        );
        telemetry
            .config_revision
            .set(i64::try_from(self.revision).unwrap_or(i64::MAX));
        telemetry
            .config_updates
            .get_or_create(&[("source", self.source.as_str())])
            .inc();
    }
}

/// The mesh's configuration could not be fetched (control plane down, mesh missing, bad
/// answer); the proxy keeps the configuration it has.
pub struct ControlUnreachable<'a> {
    pub error: &'a str,
    pub retry_in: Duration,
}

impl ControlUnreachable<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::warn!(
            error = self.error,
            retry_in_ms = self.retry_in.as_millis() as u64,
            "cannot fetch the mesh's configuration; serving the last one"
        );
        telemetry.control_errors.inc();
    }
}

/// A snapshot of the mesh arrived (at start, or to re-list).
pub struct SnapshotFetched<'a> {
    pub revision: u64,
    /// The control-plane URL that answered.
    pub control: &'a str,
}

impl SnapshotFetched<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::info!(
            revision = self.revision,
            control = self.control,
            "snapshot fetched"
        );
        telemetry.snapshots.inc();
    }
}

/// The watch stream ended, failed or did not open; it is reopened on the next control-plane
/// URL, after `retry_in`, from `resume_after`. The configuration in use stays.
pub struct WatchInterrupted<'a> {
    pub error: &'a str,
    pub resume_after: u64,
    pub retry_in: Duration,
}

impl WatchInterrupted<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::warn!(
            error = self.error,
            resume_after = self.resume_after,
            retry_in_ms = self.retry_in.as_millis() as u64,
            "watch stream lost; reconnecting, serving the last configuration meanwhile"
        );
        telemetry.reconnects.inc();
    }
}

/// Outlier detection ejected an endpoint.
pub struct EndpointEjected<'a> {
    pub node: &'a str,
    pub addr: SocketAddr,
    pub duration: Duration,
}

impl EndpointEjected<'_> {
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::warn!(
            node = self.node,
            endpoint = %self.addr,
            ejected_ms = self.duration.as_millis() as u64,
            "endpoint ejected by outlier detection"
        );
        telemetry
            .ejections
            .get_or_create(&[("target_node", self.node.to_string())])
            .inc();
    }
}

/// The state directory could not be written; the proxy serves on, without static stability.
pub struct SnapshotNotSaved<'a> {
    pub path: &'a std::path::Path,
    pub error: &'a std::io::Error,
}

impl SnapshotNotSaved<'_> {
    pub fn emit(&self) {
        tracing::warn!(path = %self.path.display(), error = %self.error,
            "cannot save the snapshot to the state directory");
    }
}

#[cfg(test)]
mod tests;
