//! `analysis.compare`: the canary judged against stable on the evidence since it started, failing it when it is shown worse and holding each step until it is shown no worse than the tolerance.
//!
//! Every failure names the metric, both versions' counts and rates, the odds and their limit,
//! because it becomes the canary's `reason` and a line of its history.

use crate::analysis::{number, percent};
use crate::evidence::{self, SLOW_BASELINE, StepEvidence};
use crate::observe::Observation;
use crate::spec::{CanarySpec, Compare};
use crate::state::CanaryState;
use crate::stats::{Split, log_odds_worse_over, rate_bounds};
use crate::status::{Metric, Share, Wait, count};

/// Why the comparison fails the canary now; empty when it does not (or is not configured).
/// Errors first, then latency.
pub(crate) fn failures(spec: &CanarySpec, state: &CanaryState, seen: &Observation) -> Vec<String> {
    let Some(compare) = &spec.analysis.compare else {
        return Vec::new();
    };
    let steps = evidence::so_far(state, seen);
    let mut out = Vec::new();
    // Either test may fail the canary, so each gets half the error budget when both run.
    let tests = if compare.latency.is_some() { 2 } else { 1 };
    let limit = Limit {
        confidence: compare.confidence,
        tests,
    };
    let splits: Vec<Split> = steps.iter().map(StepEvidence::errors).collect();
    if let Some(odds) = worse(&splits, &limit) {
        let total = total(&splits);
        out.push(format!(
            "canary {} fails more than stable {}: {} in {} ({}) vs {} in {} ({}); {odds} \
             against it being no worse ({})",
            spec.canary_version(),
            spec.stable_version(),
            count(total.canary_events, "error"),
            count(total.canary_trials, "request"),
            percent(rate(total.canary_events, total.canary_trials)),
            total.stable_events,
            total.stable_trials,
            percent(rate(total.stable_events, total.stable_trials)),
            limit,
        ));
    }
    if compare.latency.is_some()
        && let Some(bucket) = state.evidence.slow_bucket
    {
        let splits: Vec<Split> = steps.iter().map(StepEvidence::slow).collect();
        if let Some(odds) = worse(&splits, &limit) {
            let total = total(&splits);
            out.push(format!(
                "canary {} is slower than stable {}: {} of {} {} ({}) vs {} of {} ({}); {odds} \
                 against it being no slower ({})",
                spec.canary_version(),
                spec.stable_version(),
                total.canary_events,
                count(total.canary_trials, "request"),
                slower_than(bucket),
                percent(rate(total.canary_events, total.canary_trials)),
                total.stable_events,
                total.stable_trials,
                percent(rate(total.stable_events, total.stable_trials)),
                limit,
            ));
        }
    }
    out
}

/// What the comparison still needs before the current step may pass: evidence that the canary
/// is no worse than stable by more than the tolerance, on errors and (when compared) latency.
pub(crate) fn blockers(spec: &CanarySpec, state: &CanaryState, seen: &Observation) -> Vec<Wait> {
    let Some(compare) = &spec.analysis.compare else {
        return Vec::new();
    };
    let steps = evidence::so_far(state, seen);
    let mut out = Vec::new();
    let splits: Vec<Split> = steps.iter().map(StepEvidence::errors).collect();
    if let Some(wait) = not_shown(
        compare,
        &splits,
        Metric::ErrorRate,
        compare.max_error_rate_increase,
        None,
    ) {
        out.push(wait);
    }
    if let Some(latency) = &compare.latency {
        match state.evidence.slow_bucket {
            None => out.push(Wait::SlowBaseline {
                seen: evidence::timed(&seen.stable),
                needed: SLOW_BASELINE,
            }),
            Some(bucket) => {
                let splits: Vec<Split> = steps.iter().map(StepEvidence::slow).collect();
                let bound = evidence::bucket_bound_ms(bucket);
                if let Some(wait) = not_shown(
                    compare,
                    &splits,
                    Metric::SlowShare,
                    latency.max_slow_share_increase,
                    bound,
                ) {
                    out.push(wait);
                }
            }
        }
    }
    out
}

/// The odds against the canary being no worse, when they reach the limit: `"odds 1:412"`.
fn worse(splits: &[Split], limit: &Limit) -> Option<String> {
    // Without a single canary event every likelihood ratio is at most 1: skip the sums.
    if splits.iter().all(|s| s.canary_events == 0) {
        return None;
    }
    let log_odds = log_odds_worse_over(splits, limit.odds().ln());
    (log_odds >= limit.odds().ln()).then(|| format!("odds {}", odds(log_odds)))
}

/// When the odds fail the canary: at `1 / (1 - confidence)` (Ville's inequality), times the
/// number of tests that may fail it, so that a canary as good as stable is failed by any of
/// them with probability at most `1 - confidence`.
struct Limit {
    confidence: f64,
    tests: u32,
}

impl Limit {
    fn odds(&self) -> f64 {
        f64::from(self.tests) / (1.0 - self.confidence)
    }
}

/// `the limit at 99% confidence is 1:100`; with latency compared too, `the limit at 99%
/// confidence is 1:200, with errors and latency both compared`.
impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the limit at {} confidence is 1:{}",
            percent(self.confidence),
            number(self.odds())
        )?;
        if self.tests > 1 {
            f.write_str(", with errors and latency both compared")?;
        }
        Ok(())
    }
}

/// The wait for evidence of non-inferiority, or `None` once the canary's upper bound is below
/// stable's lower bound plus `tolerance`. Rates do not depend on the traffic split, so the
/// steps' counts are summed.
fn not_shown(
    compare: &Compare,
    splits: &[Split],
    metric: Metric,
    tolerance: f64,
    slower_than_ms: Option<f64>,
) -> Option<Wait> {
    let total = total(splits);
    let (_, canary_upper) =
        rate_bounds(total.canary_events, total.canary_trials, compare.confidence);
    let (stable_lower, _) =
        rate_bounds(total.stable_events, total.stable_trials, compare.confidence);
    (canary_upper >= stable_lower + tolerance).then_some(Wait::Evidence {
        metric,
        slower_than_ms,
        canary: Share {
            events: total.canary_events,
            requests: total.canary_trials,
            bound: canary_upper,
        },
        stable: Share {
            events: total.stable_events,
            requests: total.stable_trials,
            bound: stable_lower,
        },
        tolerance,
    })
}

fn total(splits: &[Split]) -> Split {
    splits.iter().fold(Split::default(), |sum, s| Split {
        canary_events: sum.canary_events.saturating_add(s.canary_events),
        canary_trials: sum.canary_trials.saturating_add(s.canary_trials),
        stable_events: sum.stable_events.saturating_add(s.stable_events),
        stable_trials: sum.stable_trials.saturating_add(s.stable_trials),
    })
}

pub(crate) fn rate(events: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        events as f64 / requests as f64
    }
}

/// `1:412` for e^6.02; past a million, `1:2.6e7`.
fn odds(log_odds: f64) -> String {
    let odds = log_odds.exp();
    if odds < 1e6 {
        format!("1:{}", odds.round())
    } else {
        format!("1:{odds:.1e}")
    }
}

/// `slower than 100 ms`, or for the last bucket, which has no bound, `slower than 30000 ms`
/// (nothing is: the bucket holds everything slower).
pub(crate) fn slower_than(bucket: u8) -> String {
    let ms = evidence::bucket_bound_ms(bucket)
        .or(crate::observe::LATENCY_BUCKETS_MS.last().copied())
        .unwrap_or(f64::INFINITY);
    format!("slower than {} ms", number(ms))
}

#[cfg(test)]
mod tests;
