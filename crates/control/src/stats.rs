//! `StatsWindow`: per-node request statistics pushed by proxies, kept in memory over a sliding
//! window of short slots, and read back as aggregates for canary analysis; `check_report` and
//! `KnownNodes` decide what may be counted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use model::wire::{LATENCY_BUCKETS_MS, NodeStats, NodeView, StatsView};
use tokio::time::Instant;

mod forward;
mod known;
mod report;
mod series;

pub use forward::{FORWARDED, Forwarder};
pub use known::KnownNodes;
pub use report::{check_known, check_report};

/// Slot length: fine enough that a one-second window moves in quarter seconds.
pub(crate) const SLOT: Duration = Duration::from_millis(250);
/// Slots kept: 2400 × 250 ms = the last 10 minutes, the App Mesh canary pipeline's default
/// `failure_threshold_time`.
const SLOTS: usize = 2400;
/// How often, in slots (one minute), rings with nothing left in the window are dropped, so a
/// deleted node's counts are forgotten ten to eleven minutes after its last report.
const SWEEP_EVERY: u64 = 240;
pub const MAX_WINDOW: Duration = Duration::from_secs(600);
/// Latency buckets a slot keeps: `LATENCY_BUCKETS_MS` and one for slower.
const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// One slot's counts, fixed-size so that a slot costs no allocation (280 bytes with its index).
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    requests: u64,
    status_2xx: u64,
    status_4xx: u64,
    status_5xx: u64,
    failures: u64,
    latency: [u64; BUCKETS],
}

impl Counts {
    /// A validated sample (`check_report`: at most `BUCKETS` latency buckets) as counts.
    fn of(sample: &NodeStats) -> Counts {
        let mut latency = [0; BUCKETS];
        for (into, count) in latency.iter_mut().zip(&sample.latency_buckets) {
            *into = *count;
        }
        Counts {
            requests: sample.requests,
            status_2xx: sample.status_2xx,
            status_4xx: sample.status_4xx,
            status_5xx: sample.status_5xx,
            failures: sample.failures,
            latency,
        }
    }

    /// Saturating, so no sequence of reports can wrap a counter around.
    fn merge(&mut self, other: &Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.status_2xx = self.status_2xx.saturating_add(other.status_2xx);
        self.status_4xx = self.status_4xx.saturating_add(other.status_4xx);
        self.status_5xx = self.status_5xx.saturating_add(other.status_5xx);
        self.failures = self.failures.saturating_add(other.failures);
        for (into, add) in self.latency.iter_mut().zip(&other.latency) {
            *into = into.saturating_add(*add);
        }
    }

    fn to_stats(self, series: &Series) -> NodeStats {
        NodeStats {
            virtual_node: series.node.clone(),
            workload: series.workload.clone(),
            requests: self.requests,
            status_2xx: self.status_2xx,
            status_4xx: self.status_4xx,
            status_5xx: self.status_5xx,
            failures: self.failures,
            latency_buckets: self.latency.to_vec(),
        }
    }
}

struct Slot {
    /// Which slot number (since start) this holds.
    index: u64,
    counts: Counts,
}

/// One node's slots that counted something, oldest first, none older than `SLOTS`: a node
/// that reported once costs one slot, one that reports every 250 ms at most `SLOTS`.
#[derive(Default)]
struct Ring {
    slots: VecDeque<Slot>,
}

impl Ring {
    /// `now` never decreases between calls (it is read under the window's lock).
    fn add(&mut self, now: u64, sample: &NodeStats) {
        self.expire(now);
        let counts = Counts::of(sample);
        if let Some(slot) = self.slots.back_mut().filter(|slot| slot.index == now) {
            slot.counts.merge(&counts);
            return;
        }
        self.grow_for_one();
        self.slots.push_back(Slot { index: now, counts });
    }

    /// Drops slots that fell out of the longest window.
    fn expire(&mut self, now: u64) {
        while self
            .slots
            .front()
            .is_some_and(|slot| slot.index + SLOTS as u64 <= now)
        {
            self.slots.pop_front();
        }
    }

    /// Doubles capacity as a `VecDeque` would, but never past `SLOTS`, the most it can hold.
    fn grow_for_one(&mut self) {
        let len = self.slots.len();
        if len == self.slots.capacity() {
            let target = (len * 2).clamp(8, SLOTS.max(len + 1));
            self.slots.reserve_exact(target - len);
        }
    }

    /// Sum of the slots in `(now - slots, now]`.
    fn sum(&self, now: u64, slots: u64) -> Counts {
        let mut total = Counts::default();
        for slot in self.slots.iter().rev() {
            if slot.index > now {
                continue;
            }
            if now - slot.index >= slots {
                break;
            }
            total.merge(&slot.counts);
        }
        total
    }

    /// Nothing in it is within the longest window any more.
    fn is_stale(&self, now: u64) -> bool {
        self.slots
            .back()
            .is_none_or(|slot| slot.index + SLOTS as u64 <= now)
    }
}

/// What one ring counts: a node of a mesh, or the endpoints of one workload of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Series {
    mesh: String,
    node: String,
    workload: Option<String>,
}

impl Series {
    fn of(mesh: &str, node: &str, workload: Option<&str>) -> Series {
        Series {
            mesh: mesh.to_string(),
            node: node.to_string(),
            workload: workload.map(str::to_string),
        }
    }
}

#[derive(Default)]
struct Nodes {
    rings: HashMap<Series, Ring>,
    /// The slot of the last sweep of stale rings.
    swept: u64,
}

/// Per-node (and per node and workload) counts of the last ten minutes. Memory is bounded by
/// the nodes and workloads that reported in that time (at most `SLOTS` slots each), and only
/// nodes and workloads that exist are reported (`v1::post_stats` checks with [`KnownNodes`]
/// first).
pub struct StatsWindow {
    started: Instant,
    nodes: Mutex<Nodes>,
}

impl Default for StatsWindow {
    fn default() -> Self {
        StatsWindow {
            started: Instant::now(),
            nodes: Mutex::new(Nodes::default()),
        }
    }
}

impl StatsWindow {
    fn slot_now(&self) -> u64 {
        // Slot 0 is never "now", so nothing counts as current before the first slot passes.
        (self.started.elapsed().as_millis() / SLOT.as_millis()) as u64 + 1
    }

    /// Every operation leaves `Nodes` consistent between statements, so a poisoned lock is safe.
    fn lock(&self) -> MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts samples of `check_report`ed reports of nodes known to exist.
    pub fn record(&self, mesh: &str, samples: &[NodeStats]) {
        let mut nodes = self.lock();
        // Read under the lock, so each ring sees slots in order.
        let now = self.slot_now();
        if now >= nodes.swept + SWEEP_EVERY {
            nodes.rings.retain(|_, ring| !ring.is_stale(now));
            nodes.swept = now;
        }
        for sample in samples {
            let series = Series::of(mesh, &sample.virtual_node, sample.workload.as_deref());
            nodes.rings.entry(series).or_default().add(now, sample);
        }
    }

    /// Drops everything counted for `node` (and each of its workloads), or with `workload`
    /// for that workload of it only: a canary judges only what its own version answered, even
    /// when a node or workload of the same name ran before.
    pub fn forget(&self, mesh: &str, node: &str, workload: Option<&str>) {
        self.lock().rings.retain(|series, _| {
            !(series.mesh == mesh
                && series.node == node
                && (workload.is_none() || series.workload.as_deref() == workload))
        });
    }

    /// Nodes held, and the most slots and slot capacity of any one, for tests of the bound.
    #[cfg(test)]
    fn held(&self) -> (usize, usize, usize) {
        let nodes = self.lock();
        let rings = nodes.rings.values();
        let slots = rings.clone().map(|ring| ring.slots.len()).max();
        let capacity = rings.map(|ring| ring.slots.capacity()).max();
        (nodes.rings.len(), slots.unwrap_or(0), capacity.unwrap_or(0))
    }

    /// One node's counts summed over `window` (clamped to 250 ms..=10 min).
    #[cfg(test)]
    pub fn node(&self, mesh: &str, node: &str, window: Duration) -> NodeStats {
        self.version(mesh, node, None, window)
    }

    /// As [`StatsWindow::node`], of one workload of the node when `workload` names one.
    pub fn version(
        &self,
        mesh: &str,
        node: &str,
        workload: Option<&str>,
        window: Duration,
    ) -> NodeStats {
        let window = window.clamp(SLOT, MAX_WINDOW);
        let slots = window.as_millis().div_ceil(SLOT.as_millis()) as u64;
        let now = self.slot_now();
        let series = Series::of(mesh, node, workload);
        let nodes = self.lock();
        nodes
            .rings
            .get(&series)
            .map(|ring| ring.sum(now, slots))
            .unwrap_or_default()
            .to_stats(&series)
    }

    /// Aggregates of every node of `mesh` that reported within `window`, sorted by name.
    pub fn aggregate(&self, mesh: &str, window: Duration) -> StatsView {
        let window = window.clamp(SLOT, MAX_WINDOW);
        let slots = window.as_millis().div_ceil(SLOT.as_millis()) as u64;
        let seconds = (slots * SLOT.as_millis() as u64) as f64 / 1000.0;
        let now = self.slot_now();
        let nodes = self.lock();
        let mut counted: Vec<(&Series, NodeStats)> = nodes
            .rings
            .iter()
            .filter(|(series, _)| series.mesh == mesh)
            .map(|(series, ring)| (series, ring.sum(now, slots).to_stats(series)))
            .filter(|(_, stats)| stats.requests > 0)
            .collect();
        counted.sort_by(|a, b| a.0.cmp(b.0));
        let (workloads, nodes): (Vec<_>, Vec<_>) = counted
            .into_iter()
            .map(|(_, stats)| NodeView::of(&stats, seconds))
            .partition(|view| view.workload.is_some());
        StatsView {
            mesh: mesh.to_string(),
            window_seconds: seconds,
            latency_buckets_ms: LATENCY_BUCKETS_MS.len(),
            nodes,
            workloads,
        }
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
        // Checked: `?window=999999999999999999m` is a 400, not an overflow.
        "m" => number.checked_mul(60).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
