//! `StatsWindow`: per-node request statistics pushed by proxies, kept in memory over a sliding
//! window of short slots, and read back as aggregates for canary analysis.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use model::wire::{LATENCY_BUCKETS_MS, NodeStats, quantile_ms};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Slot length: fine enough that a one-second window moves in quarter seconds.
const SLOT: Duration = Duration::from_millis(250);
/// Slots kept: 2400 × 250 ms = the last 10 minutes, the App Mesh canary pipeline's default
/// `failure_threshold_time`. A slot holds counts only once requests arrive (about 300 bytes).
const SLOTS: usize = 2400;
pub const MAX_WINDOW: Duration = Duration::from_secs(600);

#[derive(Default, Clone)]
struct Slot {
    /// Which slot number (since start) this holds; stale slots are reset before reuse.
    index: u64,
    stats: NodeStats,
}

struct Ring {
    slots: Vec<Slot>,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            slots: vec![Slot::default(); SLOTS],
        }
    }

    fn add(&mut self, index: u64, sample: &NodeStats) {
        let slot = &mut self.slots[(index % SLOTS as u64) as usize];
        if slot.index != index {
            *slot = Slot {
                index,
                stats: NodeStats::default(),
            };
        }
        merge(&mut slot.stats, sample);
    }

    /// Sum of the slots in `(now - slots, now]`.
    fn sum(&self, now: u64, slots: u64) -> NodeStats {
        let mut total = NodeStats::default();
        for slot in &self.slots {
            if slot.index <= now && now - slot.index < slots {
                merge(&mut total, &slot.stats);
            }
        }
        total
    }
}

fn merge(into: &mut NodeStats, sample: &NodeStats) {
    into.requests += sample.requests;
    into.status_2xx += sample.status_2xx;
    into.status_4xx += sample.status_4xx;
    into.status_5xx += sample.status_5xx;
    into.failures += sample.failures;
    if into.latency_buckets.len() < sample.latency_buckets.len() {
        into.latency_buckets.resize(sample.latency_buckets.len(), 0);
    }
    for (into, add) in into.latency_buckets.iter_mut().zip(&sample.latency_buckets) {
        *into += add;
    }
}

pub struct StatsWindow {
    started: Instant,
    nodes: Mutex<HashMap<(String, String), Ring>>,
}

impl Default for StatsWindow {
    fn default() -> Self {
        StatsWindow {
            started: Instant::now(),
            nodes: Mutex::new(HashMap::new()),
        }
    }
}

impl StatsWindow {
    fn slot_now(&self) -> u64 {
        // Slot 0 is never "now", so a default (zeroed) slot never counts as current.
        (self.started.elapsed().as_millis() / SLOT.as_millis()) as u64 + 1
    }

    pub fn record(&self, mesh: &str, samples: &[NodeStats]) {
        let now = self.slot_now();
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        for sample in samples {
            nodes
                .entry((mesh.to_string(), sample.virtual_node.clone()))
                .or_insert_with(Ring::new)
                .add(now, sample);
        }
    }

    /// Drops everything counted for `node`: a canary judges only what its own version answered,
    /// even when a node of the same name ran before.
    pub fn forget(&self, mesh: &str, node: &str) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes.remove(&(mesh.to_string(), node.to_string()));
    }

    /// One node's counts summed over `window` (clamped to 250 ms..=10 min).
    pub fn node(&self, mesh: &str, node: &str, window: Duration) -> NodeStats {
        let window = window.clamp(SLOT, MAX_WINDOW);
        let slots = window.as_millis().div_ceil(SLOT.as_millis()) as u64;
        let now = self.slot_now();
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes
            .get(&(mesh.to_string(), node.to_string()))
            .map(|ring| ring.sum(now, slots))
            .unwrap_or_default()
    }

    /// Aggregates of every node of `mesh` that reported within `window`.
    pub fn aggregate(&self, mesh: &str, window: Duration) -> Value {
        let window = window.clamp(SLOT, MAX_WINDOW);
        let slots = window.as_millis().div_ceil(SLOT.as_millis()) as u64;
        let now = self.slot_now();
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Value> = nodes
            .iter()
            .filter(|((m, _), _)| m == mesh)
            .map(|((_, node), ring)| (node, ring.sum(now, slots)))
            .filter(|(_, s)| s.requests > 0)
            .map(|(node, s)| {
                let seconds = (slots * SLOT.as_millis() as u64) as f64 / 1000.0;
                let errors = s.status_5xx + s.failures;
                json!({
                    "virtualNode": node,
                    "requests": s.requests,
                    "requestsPerSecond": s.requests as f64 / seconds,
                    "status2xx": s.status_2xx,
                    "status4xx": s.status_4xx,
                    "status5xx": s.status_5xx,
                    "failures": s.failures,
                    "errorRate": errors as f64 / s.requests as f64,
                    "p50Ms": quantile_ms(&s.latency_buckets, 0.50),
                    "p99Ms": quantile_ms(&s.latency_buckets, 0.99),
                })
            })
            .collect();
        out.sort_by(|a, b| a["virtualNode"].as_str().cmp(&b["virtualNode"].as_str()));
        json!({
            "mesh": mesh,
            "windowSeconds": (slots * SLOT.as_millis() as u64) as f64 / 1000.0,
            "latencyBucketsMs": LATENCY_BUCKETS_MS.len(),
            "nodes": out,
        })
    }
}

/// `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_window(text: &str) -> Option<Duration> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number * 60)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
