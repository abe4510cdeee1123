//! Request statistics: what proxies push (`StatsReport`), the latency buckets they count
//! into, and the per-node aggregates the control plane serves back (`StatsView`).

use serde::{Deserialize, Serialize};

/// Upper bounds, in milliseconds, of the latency buckets proxies count into; the last bucket
/// (not listed) holds everything slower. Roughly 1.5× apart: percentiles read from them are
/// within about 25% of the truth, enough to tell a 5 ms service from a 50 ms one.
/// They are `rollout`'s, whose latency comparison reads these very counts.
pub const LATENCY_BUCKETS_MS: [f64; 28] = rollout::LATENCY_BUCKETS_MS;

/// Index of the latency bucket that counts a request of `millis`.
pub fn latency_bucket(millis: f64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|bound| millis <= *bound)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

/// Most node entries one stats report may carry. A proxy sends one entry per node it sent
/// requests to, so this is also the most nodes one proxy can report on at once.
pub const MAX_REPORT_NODES: usize = 500;

/// Largest stats report body: 500 entries of a long node name and every latency bucket fit.
pub const MAX_REPORT_BYTES: usize = 256 * 1024;

/// Most requests one entry may count. A proxy reports every 250 ms, so this is far beyond any
/// real traffic; it keeps sums over the ten-minute window from ever nearing `u64::MAX`.
pub const MAX_REPORT_REQUESTS: u64 = 1 << 32;

/// What one proxy saw since its previous report (`POST /v1/meshes/{mesh}/stats`): counts are
/// deltas, so reports from many proxies simply add up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatsReport {
    /// Who reports, for logs: e.g. `gateway demo-gw` or `node order-vn`.
    pub proxy: String,
    pub nodes: Vec<NodeStats>,
}

/// Requests that one proxy sent to one target node, or to the replicas of one workload of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStats {
    pub virtual_node: String,
    /// Set on an entry that counts only the endpoints of this workload of the node; those
    /// requests are in the node's own entry too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    pub requests: u64,
    pub status_2xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Requests that got no HTTP answer from the node (refused, reset, timed out).
    #[serde(default)]
    pub failures: u64,
    /// Counts per `LATENCY_BUCKETS_MS` bucket, plus one for slower; may be shorter (trailing
    /// zeros left out).
    #[serde(default)]
    pub latency_buckets: Vec<u64>,
}

/// The `p`-quantile (0..=1) in milliseconds of a bucket histogram, interpolated within the
/// bucket; `None` when it counted nothing.
pub fn quantile_ms(buckets: &[u64], p: f64) -> Option<f64> {
    // Saturating: buckets come from reports, and a bad sum must not panic or wrap.
    let total = buckets.iter().fold(0u64, |sum, n| sum.saturating_add(*n));
    if total == 0 {
        return None;
    }
    let rank = (p.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0u64;
    for (i, count) in buckets.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        if seen.saturating_add(*count) as f64 >= rank {
            let low = if i == 0 {
                0.0
            } else {
                LATENCY_BUCKETS_MS[i - 1]
            };
            let high = LATENCY_BUCKETS_MS
                .get(i)
                .copied()
                .unwrap_or(LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.len() - 1] * 2.0);
            let within = (rank - seen as f64) / *count as f64;
            return Some(low + (high - low) * within);
        }
        seen = seen.saturating_add(*count);
    }
    LATENCY_BUCKETS_MS.last().copied()
}

/// `GET /v1/meshes/{mesh}/stats?window=10s`: every node of the mesh that had requests in the
/// window, sorted by name. Fields a newer server adds are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    pub mesh: String,
    /// The window actually summed: the one asked for, rounded up to whole 250 ms slots.
    pub window_seconds: f64,
    /// How many latency bucket bounds proxies count into (`LATENCY_BUCKETS_MS.len()`).
    pub latency_buckets_ms: usize,
    pub nodes: Vec<NodeView>,
    /// Per workload, for nodes whose endpoints come from two or more workloads (their
    /// requests are in `nodes` too), sorted by node and workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<NodeView>,
}

impl StatsView {
    /// The aggregates of `node`, if it had requests in the window.
    pub fn node(&self, node: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.virtual_node == node)
    }

    /// The aggregates of one workload of `node`, if its replicas had requests in the window.
    pub fn workload(&self, node: &str, workload: &str) -> Option<&NodeView> {
        self.workloads
            .iter()
            .find(|n| n.virtual_node == node && n.workload.as_deref() == Some(workload))
    }

    /// [`StatsView::node`] or [`StatsView::workload`], as `workload` says.
    pub fn version(&self, node: &str, workload: Option<&str>) -> Option<&NodeView> {
        match workload {
            Some(workload) => self.workload(node, workload),
            None => self.node(node),
        }
    }
}

/// One node's requests over a [`StatsView`]'s window, from every proxy that called it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub virtual_node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    pub requests: u64,
    pub requests_per_second: f64,
    pub status_2xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Requests that got no HTTP answer (refused, reset, timed out).
    pub failures: u64,
    /// (5xx + failures) / requests, 0..=1.
    pub error_rate: f64,
    /// `None` (JSON `null`) when no latency was counted.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl NodeView {
    /// The aggregates of `counts` (summed over `window_seconds`), which must count at least
    /// one request.
    pub fn of(counts: &NodeStats, window_seconds: f64) -> NodeView {
        let errors = counts.status_5xx.saturating_add(counts.failures);
        NodeView {
            virtual_node: counts.virtual_node.clone(),
            workload: counts.workload.clone(),
            requests: counts.requests,
            requests_per_second: counts.requests as f64 / window_seconds,
            status_2xx: counts.status_2xx,
            status_4xx: counts.status_4xx,
            status_5xx: counts.status_5xx,
            failures: counts.failures,
            error_rate: errors as f64 / counts.requests.max(1) as f64,
            p50_ms: quantile_ms(&counts.latency_buckets, 0.50),
            p99_ms: quantile_ms(&counts.latency_buckets, 0.99),
        }
    }
}

/// What canary analysis judges of a node's counts over a window: requests that got no answer
/// count as 5xx; the latency buckets go along for the latency comparison.
pub fn node_window(counts: &NodeStats) -> rollout::NodeWindow {
    let view = NodeView::of(counts, 1.0);
    rollout::NodeWindow {
        requests: view.requests,
        status_5xx: view.status_5xx.saturating_add(view.failures),
        error_rate: view.error_rate,
        p99_ms: view.p99_ms,
        latency_buckets: counts.latency_buckets.clone(),
    }
}
