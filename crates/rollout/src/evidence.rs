//! What both versions did since the canary started, kept in the state as counts per canary weight: the evidence `analysis.compare` judges.
//!
//! The driver reports counts over the current analysis window (see
//! [`analysis_window`](crate::analysis_window)). A window ends at a tick that passes a step or
//! that finds it [`MAX_ANALYSIS_WINDOW`] old; its counts are then added to the entry of the
//! weight it ran at, and the next window starts at that tick. So nothing is counted twice, and
//! no window outgrows the driver's stats. Windows that end without a tick are lost (safe, not
//! wrong): a gate's last window when a resume passes it, and whatever was not stored when a
//! canary ends. Pauses do not end a window: the paused time's traffic ran at the same weight.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::observe::{LATENCY_BUCKETS_MS, NodeWindow, Observation};
use crate::state::CanaryState;
use crate::stats::Split;

/// The longest analysis window: a tick that finds the current window this old ends it. Well
/// inside the ten minutes of stats aviary's control plane keeps, so a late tick still finds
/// the whole window.
pub const MAX_ANALYSIS_WINDOW: Duration = Duration::from_secs(300);

/// How many stable requests with latency one window needs before it fixes what "slow" means.
pub(crate) const SLOW_BASELINE: u64 = 100;

/// The counts `analysis.compare` judges. JSON: `{"steps": [{"weight": 10, "canary": {...},
/// "stable": {...}}], "slowBucket": 15, "windowStartedAt": 1700000030000}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The ended windows, summed per canary weight, in the order the weights ran (at most
    /// one per weight, so at most 101). Kept apart because the test of "worse than stable"
    /// needs each traffic split on its own.
    #[serde(default)]
    pub steps: Vec<StepEvidence>,
    /// Index into the latency buckets of stable's `analysis.compare.latency.quantile`: a
    /// request in a later bucket is slow. Fixed once, at the first tick whose stable window
    /// has the latency of at least 100 requests; `None` until then, or without a latency
    /// comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_bucket: Option<u8>,
    /// When the current analysis window started; `None` in a state stored before there were
    /// windows, which then started with the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_started_at: Option<Millis>,
}

/// Both arms' counts over the windows that ran at `weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepEvidence {
    /// The canary's weight in percent while these were counted.
    pub weight: u32,
    pub canary: Counts,
    pub stable: Counts,
}

/// One arm's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub requests: u64,
    /// Failed requests: 5xx answers and requests that got no answer.
    pub errors: u64,
    /// Requests whose latency was counted while the slow bucket was known: those that could
    /// have been slow.
    #[serde(default)]
    pub timed: u64,
    /// Of those, how many were slower than the slow bucket.
    #[serde(default)]
    pub slow: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.timed = self.timed.saturating_add(other.timed);
        self.slow = self.slow.saturating_add(other.slow);
    }

    /// `node`'s window, with latency counted only once `slow_bucket` is known.
    fn of(node: &NodeWindow, slow_bucket: Option<u8>) -> Counts {
        let (timed, slow) = match slow_bucket {
            Some(bucket) => {
                let buckets = latency_buckets(node);
                let slow = buckets.iter().skip(usize::from(bucket) + 1);
                (sum(buckets), slow.fold(0u64, |n, c| n.saturating_add(*c)))
            }
            None => (0, 0),
        };
        Counts {
            requests: node.requests,
            errors: node.status_5xx.min(node.requests),
            timed,
            slow: slow.min(timed),
        }
    }
}

impl StepEvidence {
    fn add(&mut self, other: &StepEvidence) {
        self.canary.add(other.canary);
        self.stable.add(other.stable);
    }

    /// The error counts as one traffic split.
    pub(crate) fn errors(&self) -> Split {
        Split {
            canary_events: self.canary.errors,
            canary_trials: self.canary.requests,
            stable_events: self.stable.errors,
            stable_trials: self.stable.requests,
        }
    }

    /// The slow counts as one traffic split.
    pub(crate) fn slow(&self) -> Split {
        Split {
            canary_events: self.canary.slow,
            canary_trials: self.canary.timed,
            stable_events: self.stable.slow,
            stable_trials: self.stable.timed,
        }
    }
}

impl Evidence {
    /// Adds an ended window to the entry of its weight.
    fn add(&mut self, window: StepEvidence) {
        match self.steps.last_mut() {
            Some(last) if last.weight == window.weight => last.add(&window),
            _ => self.steps.push(window),
        }
    }
}

/// The current window, as the observation reports it.
pub(crate) fn current(state: &CanaryState, seen: &Observation) -> StepEvidence {
    let bucket = state.evidence.slow_bucket;
    StepEvidence {
        weight: state.canary_weight,
        canary: Counts::of(&seen.canary, bucket),
        stable: Counts::of(&seen.stable, bucket),
    }
}

/// Everything so far, one entry per weight: the ended windows and the current one.
pub(crate) fn so_far(state: &CanaryState, seen: &Observation) -> Vec<StepEvidence> {
    let mut all = state.evidence.clone();
    all.add(current(state, seen));
    all.steps
}

/// The current step's counts: its ended windows (a step's windows all ran at its weight, and
/// weights only grow) and the current one.
pub(crate) fn this_step(state: &CanaryState, seen: &Observation) -> StepEvidence {
    let mut step = current(state, seen);
    if let Some(last) = state.evidence.steps.last()
        && last.weight == step.weight
    {
        step.add(last);
    }
    step
}

/// When the current analysis window started.
pub(crate) fn window_start(state: &CanaryState) -> Millis {
    state
        .evidence
        .window_started_at
        .unwrap_or(state.step_started_at)
}

/// Ends the current window at `now`: its counts join the evidence, the next starts.
pub(crate) fn end_window(state: &mut CanaryState, now: Millis, seen: &Observation) {
    let window = current(state, seen);
    if window.canary.requests > 0 || window.stable.requests > 0 {
        state.evidence.add(window);
    }
    state.evidence.window_started_at = Some(now);
}

/// Starts a fresh window at `now` without counting the current one (which no observation
/// reported).
pub(crate) fn restart_window(state: &mut CanaryState, now: Millis) {
    state.evidence.window_started_at = Some(now);
}

/// The slow bucket that stable's window fixes, once it counts the latency of enough requests:
/// the bucket that holds stable's `quantile`, so at most `1 - quantile` of stable's requests
/// are slower (less when the bucket is wide).
pub(crate) fn slow_bucket(stable: &NodeWindow, quantile: f64) -> Option<u8> {
    let buckets = latency_buckets(stable);
    let total = sum(buckets);
    if total < SLOW_BASELINE {
        return None;
    }
    let rank = quantile * total as f64;
    let mut seen = 0u64;
    for (i, count) in buckets.iter().enumerate() {
        seen = seen.saturating_add(*count);
        if seen as f64 >= rank {
            // At most 29 buckets: the index fits.
            return u8::try_from(i).ok();
        }
    }
    None
}

/// The latency counted so far by stable's window, for the wait that needs it.
pub(crate) fn timed(node: &NodeWindow) -> u64 {
    sum(latency_buckets(node))
}

/// The upper bound in milliseconds of `bucket`; `None` for the last, unbounded one.
pub(crate) fn bucket_bound_ms(bucket: u8) -> Option<f64> {
    LATENCY_BUCKETS_MS.get(usize::from(bucket)).copied()
}

fn latency_buckets(node: &NodeWindow) -> &[u64] {
    let len = node.latency_buckets.len().min(LATENCY_BUCKETS_MS.len() + 1);
    &node.latency_buckets[..len]
}

fn sum(counts: &[u64]) -> u64 {
    counts.iter().fold(0, |n, c| n.saturating_add(*c))
}
