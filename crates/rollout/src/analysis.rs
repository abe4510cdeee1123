//! The judgement of one observation: what is failing (checked on every tick) and what still keeps a step from passing.
//!
//! Every message names the metric, the value, the limit and the window, because it becomes
//! the canary's `reason` and the history a person reads after the fact.

use crate::Millis;
use crate::compare;
use crate::duration::{format, format_millis};
use crate::evidence;
use crate::machine::analysis_window;
use crate::observe::{MetricResult, Observation};
use crate::spec::CanarySpec;
use crate::state::CanaryState;
use crate::status::{Wait, count};

/// Why the canary must be rolled back now; empty when it is healthy. Order: 5xx count, error
/// rate, p99, the comparison with stable (errors, then latency), webhooks in the spec's order.
/// Error rate and p99 are judged over the current analysis window: the step so far, or its
/// last few minutes in a long step (see [`MAX_ANALYSIS_WINDOW`](crate::MAX_ANALYSIS_WINDOW)).
pub(crate) fn failures(
    spec: &CanarySpec,
    state: &CanaryState,
    now: Millis,
    seen: &Observation,
) -> Vec<String> {
    let a = &spec.analysis;
    let node = spec.canary_version();
    let window = format_millis(analysis_window(state, now));
    let mut out = Vec::new();
    if let Some(max) = a.max_5xx
        && seen.canary_5xx_in_failure_window > max
    {
        out.push(format!(
            "canary {node} answered {} 5xx in the last {}; the limit is {max}",
            seen.canary_5xx_in_failure_window,
            format(a.failure_window),
        ));
    }
    let canary = &seen.canary;
    let stable = &seen.stable;
    if canary.requests >= 1 {
        if let Some(max) = a.max_error_rate
            && canary.error_rate > max
        {
            out.push(format!(
                "canary {node} error rate is {} over {} in this step (the last {window}); \
                 the limit is {} (stable: {})",
                percent(canary.error_rate),
                count(canary.requests, "request"),
                percent(max),
                if stable.requests >= 1 {
                    format!(
                        "{} over {}",
                        percent(stable.error_rate),
                        count(stable.requests, "request")
                    )
                } else {
                    "no requests".into()
                },
            ));
        }
        if let (Some(max), Some(p99)) = (a.max_p99_ms, canary.p99_ms)
            && p99 > max
        {
            out.push(format!(
                "canary {node} p99 latency is {} ms in this step (the last {window}); \
                 the limit is {} ms (stable: {})",
                number(p99),
                number(max),
                match stable.p99_ms {
                    Some(ms) if stable.requests >= 1 => format!("{} ms", number(ms)),
                    _ => "no requests".into(),
                },
            ));
        }
    }
    out.extend(compare::failures(spec, state, seen));
    for check in &a.prometheus {
        let value = seen
            .metrics
            .iter()
            .find(|m| m.name == check.name)
            .and_then(|m| m.value.as_ref().ok());
        if let Some(&value) = value {
            let outside = match (check.min, check.max) {
                (Some(min), _) if value < min => Some(format!("below its min {}", number(min))),
                (_, Some(max)) if value > max => Some(format!("above its max {}", number(max))),
                _ => None,
            };
            if let Some(outside) = outside {
                out.push(format!(
                    "prometheus check {:?} is {}, {outside} (query: {})",
                    check.name,
                    number(value),
                    check.query
                ));
            }
        }
    }
    for hook in &a.webhooks {
        let failed = seen
            .webhooks
            .iter()
            .find_map(|r| (r.name == hook.name).then_some(&r.outcome))
            .and_then(|outcome| outcome.as_ref().err());
        if let Some(error) = failed {
            out.push(format!(
                "webhook {:?} failed in step {}: {error}",
                hook.name,
                state.step + 1
            ));
        }
    }
    out
}

/// What keeps a step whose checks pass from passing: stats too fresh, too few canary
/// requests in the step, evidence that the canary is no worse than stable (with
/// `analysis.compare`), webhooks that have not answered. Empty when it may pass (once its
/// interval is over).
pub(crate) fn blockers(
    spec: &CanarySpec,
    state: &CanaryState,
    now: Millis,
    seen: &Observation,
) -> Vec<Wait> {
    let a = &spec.analysis;
    let mut out = Vec::new();
    if let Some(covered) = seen.covered_ms
        && covered < spec.interval_ms()
    {
        out.push(Wait::FreshStats {
            covered_ms: covered,
            needed_ms: spec.interval_ms(),
        });
    }
    let requests = evidence::this_step(state, seen).canary.requests;
    if requests < a.min_requests {
        out.push(Wait::Requests {
            seen: requests,
            needed: a.min_requests,
            window_ms: now.saturating_sub(state.step_started_at),
        });
    }
    out.extend(compare::blockers(spec, state, seen));
    for check in &a.prometheus {
        match seen.metrics.iter().find(|m| m.name == check.name) {
            Some(MetricResult { value: Ok(_), .. }) => {}
            Some(MetricResult {
                value: Err(error), ..
            }) => out.push(Wait::Metric {
                name: check.name.clone(),
                error: Some(error.clone()),
            }),
            None => out.push(Wait::Metric {
                name: check.name.clone(),
                error: None,
            }),
        }
    }
    for hook in &a.webhooks {
        let passed = seen
            .webhooks
            .iter()
            .any(|r| r.name == hook.name && r.outcome.is_ok());
        if !passed {
            out.push(Wait::Webhook {
                name: hook.name.clone(),
                step: state.step + 1,
            });
        }
    }
    out
}

/// `0.05` → `"5%"`, `0.125` → `"12.5%"`, `0.0004` → `"0.04%"`.
pub(crate) fn percent(fraction: f64) -> String {
    format!("{}%", number(fraction * 100.0))
}

/// At most two decimals, trailing zeros dropped: `12.50` → `"12.5"`, `3.0` → `"3"`.
pub(crate) fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests;
