//! Where a canary stands, in the words `aviary canary status` and a dashboard share: step i of n, what the step waits for, and counts.
//!
//! Steps are numbered as the history numbers them: "step 3 of 4" is `state.step == 2` of four
//! steps before promotion (the promotion itself is not a step).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::analysis::{blockers, number, percent};
use crate::duration::format_millis;
use crate::observe::Observation;
use crate::spec::{CanarySpec, StepSpec};
use crate::state::{CanaryState, Event, Phase};

/// A canary's standing at one moment, derived from its spec and state (and, for a step that
/// counts requests or waits for webhooks, a fresh [`Observation`]); never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub phase: Phase,
    /// The current step, from 1; the last step once every step passed; 0 when there are none.
    pub step: usize,
    /// Steps before promotion.
    pub steps: usize,
    /// How many of them passed.
    pub passed: usize,
    /// "step 3 of 4 (30% to canary)", "gate at step 3 of 4", "promoted: all 4 steps passed".
    pub progress: String,
    /// What the current step waits for, each with its words; empty once the canary ended, or
    /// when the step passes at the next tick.
    pub waiting: Vec<Waiting>,
    /// `progress`, then what it waits for: one line for a person.
    pub summary: String,
}

/// One thing a step waits for, and the sentence that says it. JSON:
/// `{"for": "requests", "seen": 3, "needed": 20, "windowMs": 120000, "text": "waiting for
/// traffic: 3 of 20 canary requests in this step"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    #[serde(flatten)]
    pub wait: Wait,
    pub text: String,
}

impl From<Wait> for Waiting {
    fn from(wait: Wait) -> Waiting {
        Waiting {
            text: wait.to_string(),
            wait,
        }
    }
}

/// What keeps the current step from passing. JSON is tagged by `for`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Wait {
    /// The rest of the step's analysis interval.
    Interval { left_ms: Millis },
    /// More canary requests in this step: `seen` of `needed` in the `window_ms` it has run
    /// (time paused not counted).
    Requests {
        seen: u64,
        needed: u64,
        window_ms: Millis,
    },
    /// A passing answer of this webhook for step `step` (from 1).
    Webhook { name: String, step: usize },
    /// A value of this Prometheus check from the current analysis window; `error` says why
    /// the last query gave none.
    Metric {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Stats of a whole interval on this control plane, which started driving canaries
    /// `covered_ms` ago.
    FreshStats {
        covered_ms: Millis,
        needed_ms: Millis,
    },
    /// Evidence, from `analysis.compare`, that the canary is no worse than stable by more than
    /// `tolerance`: the canary's rate is at most `canary.bound` and stable's at least
    /// `stable.bound` (both at the comparison's confidence), and the step passes once
    /// `canary.bound < stable.bound + tolerance`. JSON: `{"for": "evidence", "metric":
    /// "errorRate", "canary": {"events": 13, "requests": 1200, "bound": 0.023}, "stable":
    /// {...}, "tolerance": 0.005}`, with `"slowerThanMs": 100.0` for `"slowShare"`.
    Evidence {
        metric: Metric,
        /// What counts as slow, for [`Metric::SlowShare`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slower_than_ms: Option<f64>,
        canary: Share,
        stable: Share,
        tolerance: f64,
    },
    /// The latency of `needed` stable requests in one window, from which `analysis.compare`
    /// fixes what "slow" means; `seen` in the current one.
    SlowBaseline { seen: u64, needed: u64 },
    /// A resume command: the step is a gate.
    Gate,
    /// A resume command: the canary is paused.
    Paused,
}

/// What [`Wait::Evidence`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    /// Errors (5xx and no answer) per request.
    ErrorRate,
    /// Slow requests per request with a latency.
    SlowShare,
}

/// One version's events of `requests` since the canary started, and a confidence bound on
/// their rate (the canary's upper, stable's lower).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub events: u64,
    pub requests: u64,
    pub bound: f64,
}

impl Share {
    fn rate(&self) -> String {
        percent(crate::compare::rate(self.events, self.requests))
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Whole seconds, rounded up: "1s372ms left" is more than a person wants to read.
            Wait::Interval { left_ms } => write!(
                f,
                "analysis interval {} left",
                format_millis(left_ms.div_ceil(1000) * 1000)
            ),
            Wait::Requests { seen, needed, .. } => write!(
                f,
                "waiting for traffic: {seen} of {needed} canary requests in this step"
            ),
            Wait::Webhook { name, step } => {
                write!(f, "webhook {name:?} has not passed step {step} yet")
            }
            Wait::Metric { name, error: None } => {
                write!(
                    f,
                    "waiting for prometheus check {name:?}: no value in this step yet"
                )
            }
            Wait::Metric {
                name,
                error: Some(error),
            } => write!(f, "waiting for prometheus check {name:?}: {error}"),
            Wait::FreshStats {
                covered_ms,
                needed_ms,
            } => write!(
                f,
                "waiting for fresh stats: this control plane has {} of them, a step needs {} \
                 (it started driving canaries {} ago)",
                format_millis(*covered_ms),
                format_millis(*needed_ms),
                format_millis(*covered_ms)
            ),
            Wait::Evidence {
                metric,
                slower_than_ms,
                canary,
                stable,
                tolerance,
            } => {
                let (what, metric) = match metric {
                    Metric::ErrorRate => ("worse", "error rate".to_string()),
                    Metric::SlowShare => (
                        "slower",
                        format!(
                            "share slower than {} ms",
                            number(slower_than_ms.unwrap_or(f64::INFINITY))
                        ),
                    ),
                };
                let points = tolerance * 100.0;
                write!(
                    f,
                    "needs more evidence that the canary is no {what} than stable: {metric} {} \
                     (≤ {}) vs {} (≥ {}), tolerance {} {}",
                    canary.rate(),
                    percent(canary.bound),
                    stable.rate(),
                    percent(stable.bound),
                    number(points),
                    if points == 1.0 { "point" } else { "points" }
                )
            }
            Wait::SlowBaseline { seen, needed } => write!(
                f,
                "waiting for the latency of {needed} stable requests in one window, to know what \
                 counts as slow ({seen} so far)"
            ),
            Wait::Gate => f.write_str("waiting for a resume (gate)"),
            Wait::Paused => f.write_str("paused"),
        }
    }
}

/// `noun` for `n` of them: `request` for 1, `requests` for any other count.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

/// `1 request`, `2 requests`, `0 requests`.
pub fn count(n: u64, noun: &str) -> String {
    format!("{n} {}", plural(n, noun))
}

/// `step 3 of 4`.
pub(crate) fn step_of(index: usize, steps: usize) -> String {
    format!("step {} of {steps}", index + 1)
}

/// `all 3 steps passed`, `its only step passed`, `no steps`.
pub(crate) fn all_passed(steps: usize) -> String {
    match steps {
        0 => "no steps".into(),
        1 => "its only step passed".into(),
        n => format!("all {n} steps passed"),
    }
}

/// Where the canary stands at `now`. `seen` is what the driver would observe now; without it
/// (or outside a progressing step) the waits that need stats are left out.
pub fn status(
    spec: &CanarySpec,
    state: &CanaryState,
    now: Millis,
    seen: Option<&Observation>,
) -> Status {
    let steps = state.steps.len();
    let passed = state.step.min(steps);
    let at = step_of(state.step.min(steps.saturating_sub(1)), steps);
    let weight = match state.steps.get(state.step) {
        Some(StepSpec::Mirror(percent)) => format!("{percent}% mirrored to canary"),
        Some(StepSpec::Match) => "matching requests to canary".to_string(),
        _ => format!(
            "{} to canary",
            crate::machine::share(spec, state.canary_weight)
        ),
    };
    let left_in_step = |at: Millis| crate::machine::left_in_step(spec, state, at);
    let mut waiting: Vec<Wait> = Vec::new();
    let progress = match state.phase {
        Phase::Progressing => {
            let left = left_in_step(now);
            if left > 0 {
                waiting.push(Wait::Interval { left_ms: left });
            }
            if let Some(seen) = seen {
                waiting.extend(blockers(spec, state, now, seen));
            }
            format!("{at} ({weight})")
        }
        Phase::Paused => {
            waiting.push(Wait::Paused);
            let left = left_in_step(state.paused_at.unwrap_or(now));
            if left > 0 {
                waiting.push(Wait::Interval { left_ms: left });
            }
            format!("{at} ({weight})")
        }
        Phase::WaitingForGate => {
            waiting.push(Wait::Gate);
            format!("gate at {at} ({weight})")
        }
        Phase::Succeeded if state.step >= steps => format!("promoted: {}", all_passed(steps)),
        Phase::Succeeded => format!("promoted by command at {at}"),
        Phase::Failed if rejected(state) => "rejected: the spec is invalid".into(),
        Phase::Failed => format!("rolled back at {at}"),
        Phase::Aborted => format!("aborted at {at}"),
    };
    let waiting: Vec<Waiting> = waiting.into_iter().map(Waiting::from).collect();
    let summary = if waiting.is_empty() {
        progress.clone()
    } else {
        let texts: Vec<&str> = waiting.iter().map(|w| w.text.as_str()).collect();
        format!("{progress}: {}", texts.join("; "))
    };
    Status {
        phase: state.phase,
        step: if steps == 0 {
            0
        } else {
            passed.min(steps - 1) + 1
        },
        steps,
        passed,
        progress,
        waiting,
        summary,
    }
}

fn rejected(state: &CanaryState) -> bool {
    state
        .history
        .last()
        .is_some_and(|h| h.event == Event::Rejected)
}

#[cfg(test)]
mod tests;
