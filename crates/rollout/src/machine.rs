//! The state machine: `start`, `step` on each input, the actions for the driver, and when to tick next.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::analysis::{blockers, failures};
use crate::duration::{format_millis, to_millis};
use crate::evidence::{self, Evidence, MAX_ANALYSIS_WINDOW};
use crate::observe::Observation;
use crate::spec::{CanarySpec, NoTraffic, StepSpec};
use crate::state::{CanaryState, Event, HistoryEntry, Phase};
use crate::status::{Wait, all_passed, count, step_of};
use crate::validate::validate;

/// Something that happened to a canary. JSON is tagged by `type`:
/// `{"type": "tick", "now": 1700000000000, "observation": {...}}`, `{"type": "pause", "now": …}`,
/// `{"type": "resume", …}`, `{"type": "promote", …}`, `{"type": "abort", "now": …, "reason": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Input {
    /// Fresh stats; the driver sends one about every 250 ms while the canary is not terminal.
    Tick {
        now: Millis,
        observation: Observation,
    },
    Pause {
        now: Millis,
    },
    /// Ends a pause, or passes a gate.
    Resume {
        now: Millis,
    },
    /// Straight to 100% canary.
    Promote {
        now: Millis,
    },
    /// Straight to 100% stable.
    Abort {
        now: Millis,
        reason: String,
    },
}

impl Input {
    pub fn now(&self) -> Millis {
        match *self {
            Input::Tick { now, .. }
            | Input::Pause { now }
            | Input::Resume { now }
            | Input::Promote { now }
            | Input::Abort { now, .. } => now,
        }
    }
}

/// What the driver must do, in order, after storing the new state. JSON is tagged by `type`:
/// `{"type": "setWeights", "stable": 90, "canary": 10}`, `{"type": "callWebhooks"}`,
/// `{"type": "removeStable"}`, `{"type": "removeCanary"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Action {
    /// Set the route to exactly these weights for the stable and canary nodes (idempotent: the
    /// driver compares with the route first). They always add up to 100.
    SetWeights { stable: u32, canary: u32 },
    /// Call the spec's webhooks with the canary's state, forget the previous step's results,
    /// and send the new ones in the following observations.
    CallWebhooks,
    /// After promotion: delete the old version's workloads, then its node (once the route no
    /// longer names it).
    RemoveStable,
    /// After a rollback: delete the canary's workloads, then its node (once the route no
    /// longer names it).
    RemoveCanary,
}

/// Starts a canary at `now`: the first step's weight, and the webhooks for it. A spec that
/// fails [`validate`] starts `failed` with the problems as its reason and no actions at all
/// (it may name the stable node as the canary, so not even a rollback is safe).
pub fn start(spec: &CanarySpec, now: Millis) -> (CanaryState, Vec<Action>) {
    let mut state = CanaryState {
        phase: Phase::Progressing,
        step: 0,
        steps: spec.steps(),
        canary_weight: 0,
        step_started_at: now,
        last_progress_at: now,
        paused_at: None,
        reason: None,
        history: Vec::new(),
        evidence: Evidence::default(),
    };
    let problems = validate(spec);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let reason = format!("invalid spec: {}", list.join("; "));
        state.phase = Phase::Failed;
        record(&mut state, now, Event::Rejected, reason.clone());
        state.reason = Some(reason);
        return (state, Vec::new());
    }
    let mut actions = Vec::new();
    let n = state.steps.len();
    let reason = match state.steps.first() {
        Some(StepSpec::Weight(w)) => match spec.replicas() {
            Some(split) => {
                let (stable, canary) = split.counts(*w);
                format!(
                    "{}: {canary} of {} replicas run canary {}, {stable} stable {}",
                    step_of(0, n),
                    split.total,
                    spec.canary_version(),
                    spec.stable_version()
                )
            }
            None => format!(
                "{}: {w}% to canary {}, {}% to stable {}",
                step_of(0, n),
                spec.canary_node,
                100 - w,
                spec.stable_node
            ),
        },
        _ => format!(
            "canary {} of stable {}, {}",
            spec.canary_version(),
            spec.stable_version(),
            count(n as u64, "step")
        ),
    };
    // Always a first write, so the route names both nodes from the start.
    if state.steps.first() == Some(&StepSpec::Gate) {
        actions.push(set_weights(0));
    }
    enter(
        spec,
        &mut state,
        0,
        now,
        Event::Started,
        reason,
        &mut actions,
    );
    (state, actions)
}

/// Feeds one input to a canary. Never panics; the same inputs always give the same outputs;
/// inputs to a terminal canary change nothing and give no actions.
pub fn step(spec: &CanarySpec, state: &CanaryState, input: Input) -> (CanaryState, Vec<Action>) {
    let mut state = state.clone();
    let mut actions = Vec::new();
    if state.phase.is_terminal() {
        return (state, actions);
    }
    match input {
        Input::Tick { now, observation } => tick(spec, &mut state, now, &observation, &mut actions),
        Input::Pause { now } => {
            if state.phase == Phase::Progressing {
                state.phase = Phase::Paused;
                state.paused_at = Some(now);
                let left = left_in_step(spec, &state, now);
                let reason = format!(
                    "paused by command in {} ({} left in it)",
                    step_of(state.step, state.steps.len()),
                    format_millis(left)
                );
                state.reason = Some(reason.clone());
                record(&mut state, now, Event::Paused, reason);
            }
        }
        Input::Resume { now } => match state.phase {
            Phase::Paused => {
                let paused_for = now.saturating_sub(state.paused_at.unwrap_or(now));
                state.step_started_at = state.step_started_at.saturating_add(paused_for);
                state.last_progress_at = state.last_progress_at.saturating_add(paused_for);
                state.phase = Phase::Progressing;
                state.paused_at = None;
                state.reason = None;
                let reason = format!(
                    "resumed by command after {} paused; {} left in {}",
                    format_millis(paused_for),
                    format_millis(left_in_step(spec, &state, now)),
                    step_of(state.step, state.steps.len())
                );
                record(&mut state, now, Event::Resumed, reason);
            }
            Phase::WaitingForGate => {
                state.reason = None;
                let reason = format!(
                    "gate at {} passed by command",
                    step_of(state.step, state.steps.len())
                );
                record(&mut state, now, Event::Resumed, reason.clone());
                let next = state.step + 1;
                enter(
                    spec,
                    &mut state,
                    next,
                    now,
                    Event::Step,
                    reason,
                    &mut actions,
                );
            }
            _ => {}
        },
        Input::Promote { now } => {
            let reason = format!(
                "promoted by command at {} ({})",
                step_of(state.step, state.steps.len()),
                exposed(spec, &state)
            );
            promote(spec, &mut state, now, reason, &mut actions);
        }
        Input::Abort { now, reason } => {
            let reason = if reason.trim().is_empty() {
                "aborted by command".to_string()
            } else {
                reason
            };
            roll_back(spec, &mut state, now, Phase::Aborted, reason, &mut actions);
        }
    }
    (state, actions)
}

/// When the driver should tick this canary at the latest: the end of the current step's
/// interval while it progresses (possibly already past, when the step waits for traffic or
/// webhooks); `None` while paused, at a gate or when terminal, when only an input can move it.
/// It is stored in the state's timers, so it survives a restart of the driver.
pub fn next_deadline(spec: &CanarySpec, state: &CanaryState) -> Option<Millis> {
    (state.phase == Phase::Progressing)
        .then(|| state.step_started_at.saturating_add(spec.interval_ms()))
}

/// How far back the driver should look for the step's stats (`canary` and `stable` of the
/// [`Observation`]): the current analysis window, which starts with each step (and each gate),
/// goes on through pauses, and is ended by the tick that finds it [`MAX_ANALYSIS_WINDOW`] old
/// (its counts kept in the state's evidence). The driver must use exactly this window: a longer
/// one counts requests twice.
pub fn analysis_window(state: &CanaryState, now: Millis) -> Millis {
    now.saturating_sub(evidence::window_start(state))
}

/// The actions that make the world match `state`, all idempotent: for a driver that restarted
/// and cannot know whether it carried out the last actions before it stopped. A live canary
/// gets its weights and (in a step that has webhooks) a fresh webhook call, since their results
/// were in the driver's memory; a finished one gets its final weights and clean-up again; a
/// rejected one gets nothing.
pub fn reconcile(spec: &CanarySpec, state: &CanaryState) -> Vec<Action> {
    let mut actions = Vec::new();
    match state.phase {
        Phase::Progressing | Phase::Paused | Phase::WaitingForGate => {
            actions.push(set_weights(state.canary_weight));
            let in_weight_step = matches!(
                state.steps.get(state.step),
                Some(StepSpec::Weight(_) | StepSpec::Mirror(_) | StepSpec::Match)
            );
            if in_weight_step
                && state.phase != Phase::WaitingForGate
                && !spec.analysis.webhooks.is_empty()
            {
                actions.push(Action::CallWebhooks);
            }
        }
        Phase::Succeeded => {
            actions.push(set_weights(100));
            if spec.on_success.remove_stable {
                actions.push(Action::RemoveStable);
            }
        }
        Phase::Failed | Phase::Aborted => {
            let rejected = state
                .history
                .last()
                .is_some_and(|h| h.event == Event::Rejected);
            if !rejected {
                actions.push(set_weights(0));
                if spec.on_failure.remove_canary {
                    actions.push(Action::RemoveCanary);
                }
            }
        }
    }
    actions
}

fn tick(
    spec: &CanarySpec,
    state: &mut CanaryState,
    now: Millis,
    seen: &Observation,
    actions: &mut Vec<Action>,
) {
    let failing = failures(spec, state, now, seen);
    if !failing.is_empty() {
        roll_back(spec, state, now, Phase::Failed, failing.join("; "), actions);
        return;
    }
    // The window this observation reports, before this tick possibly ends it.
    let window = analysis_window(state, now);
    let baseline = slow_baseline(spec, state, window, seen);
    let moved = state.phase == Phase::Progressing && progress(spec, state, now, seen, actions);
    if state.phase.is_terminal() {
        return;
    }
    // A passing step ended the window already.
    if !moved && (baseline.is_some() || window >= to_millis(MAX_ANALYSIS_WINDOW)) {
        evidence::end_window(state, now, seen);
    }
    if baseline.is_some() {
        state.evidence.slow_bucket = baseline;
    }
}

/// With a latency comparison and no slow bucket yet: the bucket this tick's stable window
/// fixes, if it has the latency of enough requests. The window is ended before the bucket is
/// stored, so the requests that chose what "slow" means are not judged by it: they would
/// flatter stable, at most 1% of them being slower by construction.
fn slow_baseline(
    spec: &CanarySpec,
    state: &CanaryState,
    window: Millis,
    seen: &Observation,
) -> Option<u8> {
    let latency = spec.analysis.compare.as_ref()?.latency?;
    if state.evidence.slow_bucket.is_some() || window == 0 {
        return None;
    }
    evidence::slow_bucket(&seen.stable, latency.quantile)
}

/// Passes the current step, or fails the canary for want of traffic (`noTraffic: fail`) or
/// progress; `false` when the step still waits.
fn progress(
    spec: &CanarySpec,
    state: &mut CanaryState,
    now: Millis,
    seen: &Observation,
    actions: &mut Vec<Action>,
) -> bool {
    let a = &spec.analysis;
    let elapsed = now.saturating_sub(state.step_started_at);
    let interval_over = elapsed >= spec.interval_ms();
    let stalled = now.saturating_sub(state.last_progress_at);
    let past_deadline = stalled > to_millis(a.progress_deadline);
    if !interval_over && !past_deadline {
        // Nothing to decide: skip the blockers, whose statistics cost a few microseconds.
        return false;
    }
    let mut waiting = blockers(spec, state, now, seen);
    let n = state.steps.len();
    let at = format!("{} ({})", step_of(state.step, n), exposed(spec, state));
    if interval_over {
        let requests = evidence::this_step(state, seen).canary.requests;
        // A driver that saw only part of the step cannot tell that there was no traffic.
        let fresh = !waiting.iter().any(|w| matches!(w, Wait::FreshStats { .. }));
        let starved = fresh && requests < a.min_requests;
        let mut reason = match a.no_traffic {
            NoTraffic::Fail if starved => {
                let reason = format!(
                    "{at} saw {requests} of the {} canary requests it needs in {} (noTraffic: \
                     fail)",
                    a.min_requests,
                    format_millis(elapsed)
                );
                roll_back(spec, state, now, Phase::Failed, reason, actions);
                return true;
            }
            NoTraffic::Pass if starved => {
                // Without traffic there is no evidence to wait for either.
                waiting.retain(|w| {
                    !matches!(
                        w,
                        Wait::Requests { .. } | Wait::Evidence { .. } | Wait::SlowBaseline { .. }
                    )
                });
                format!(
                    "{at} passed without traffic: {} in it (noTraffic: pass)",
                    count(requests, "canary request")
                )
            }
            _ => format!(
                "{at} passed with {} in {}",
                count(requests, "canary request"),
                format_millis(elapsed)
            ),
        };
        if waiting.is_empty() {
            if !a.webhooks.is_empty() {
                reason.push_str(" and every webhook");
            }
            evidence::end_window(state, now, seen);
            let next = state.step + 1;
            enter(spec, state, next, now, Event::Step, reason, actions);
            return true;
        }
    }
    if past_deadline {
        if !interval_over {
            waiting.push(Wait::Interval {
                left_ms: left_in_step(spec, state, now),
            });
        }
        let waiting: Vec<String> = waiting.iter().map(ToString::to_string).collect();
        let reason = format!(
            "no progress for {}, past the progress deadline of {}: {}",
            format_millis(stalled),
            crate::duration::format(a.progress_deadline),
            waiting.join("; ")
        );
        roll_back(spec, state, now, Phase::Failed, reason, actions);
        return true;
    }
    false
}

/// How much of the traffic a weight gives the canary: `20%`, or for a replicas canary
/// `1 of 4 replicas`.
pub(crate) fn share(spec: &CanarySpec, weight: u32) -> String {
    match spec.replicas() {
        Some(split) => format!("{} of {} replicas", split.counts(weight).1, split.total),
        None => format!("{weight}%"),
    }
}

/// Makes `index` the current step: applies its weight, waits at its gate, or promotes after the
/// last one. `event` and `reason` describe how it got there.
fn enter(
    spec: &CanarySpec,
    state: &mut CanaryState,
    index: usize,
    now: Millis,
    event: Event,
    reason: String,
    actions: &mut Vec<Action>,
) {
    state.step = index;
    state.step_started_at = now;
    state.last_progress_at = now;
    evidence::restart_window(state, now);
    match state.steps.get(index).copied() {
        None => {
            let reason = if event == Event::Started {
                reason
            } else {
                format!("{reason}; {}", all_passed(state.steps.len()))
            };
            promote(spec, state, now, reason, actions);
        }
        Some(StepSpec::Weight(weight)) => {
            state.phase = Phase::Progressing;
            state.canary_weight = weight.min(100);
            actions.push(set_weights(state.canary_weight));
            if !spec.analysis.webhooks.is_empty() {
                actions.push(Action::CallWebhooks);
            }
            let reason = if event == Event::Started {
                reason
            } else {
                format!(
                    "{reason}; {}: {}",
                    step_of(index, state.steps.len()),
                    share(spec, state.canary_weight)
                )
            };
            record(state, now, event, reason);
        }
        Some(step @ (StepSpec::Mirror(_) | StepSpec::Match)) => {
            state.phase = Phase::Progressing;
            state.canary_weight = 0;
            actions.push(set_weights(0));
            if !spec.analysis.webhooks.is_empty() {
                actions.push(Action::CallWebhooks);
            }
            let what = match step {
                StepSpec::Mirror(percent) => format!(
                    "{percent}% of requests copied to canary {} (answers discarded), all \
                     answered by stable {}",
                    spec.canary_node, spec.stable_node
                ),
                _ => {
                    let rules: Vec<String> = spec.matches.iter().map(ToString::to_string).collect();
                    format!(
                        "requests with {} to canary {}, all others to stable {}",
                        rules.join(" or "),
                        spec.canary_node,
                        spec.stable_node
                    )
                }
            };
            let reason = if event == Event::Started {
                format!("{}: {what}", step_of(index, state.steps.len()))
            } else {
                format!("{reason}; {}: {what}", step_of(index, state.steps.len()))
            };
            record(state, now, event, reason);
        }
        Some(StepSpec::Gate) => {
            record(state, now, event, reason);
            state.phase = Phase::WaitingForGate;
            let why = format!(
                "waiting at the gate of {} for resume (or promote, or abort)",
                step_of(index, state.steps.len())
            );
            state.reason = Some(why.clone());
            record(state, now, Event::Gate, why);
        }
    }
}

/// How the current step exposes the canary: `10%`, `mirror 20%`, `match`.
fn exposed(spec: &CanarySpec, state: &CanaryState) -> String {
    match state.steps.get(state.step) {
        Some(step @ (StepSpec::Mirror(_) | StepSpec::Match)) => step.to_string(),
        _ => share(spec, state.canary_weight),
    }
}

fn promote(
    spec: &CanarySpec,
    state: &mut CanaryState,
    now: Millis,
    reason: String,
    actions: &mut Vec<Action>,
) {
    state.phase = Phase::Succeeded;
    state.canary_weight = 100;
    state.paused_at = None;
    actions.push(set_weights(100));
    if spec.on_success.remove_stable {
        actions.push(Action::RemoveStable);
    }
    state.reason = Some(reason.clone());
    record(state, now, Event::Promoted, reason);
}

fn roll_back(
    spec: &CanarySpec,
    state: &mut CanaryState,
    now: Millis,
    phase: Phase,
    reason: String,
    actions: &mut Vec<Action>,
) {
    state.phase = phase;
    state.canary_weight = 0;
    state.paused_at = None;
    actions.push(set_weights(0));
    if spec.on_failure.remove_canary {
        actions.push(Action::RemoveCanary);
    }
    let event = if phase == Phase::Aborted {
        Event::Aborted
    } else {
        Event::RolledBack
    };
    state.reason = Some(reason.clone());
    record(state, now, event, reason);
}

/// What is left of the current step's interval at `now` (0 once it is over).
pub(crate) fn left_in_step(spec: &CanarySpec, state: &CanaryState, now: Millis) -> Millis {
    state
        .step_started_at
        .saturating_add(spec.interval_ms())
        .saturating_sub(now)
}

fn set_weights(canary: u32) -> Action {
    let canary = canary.min(100);
    Action::SetWeights {
        stable: 100 - canary,
        canary,
    }
}

fn record(state: &mut CanaryState, at: Millis, event: Event, reason: String) {
    state.history.push(HistoryEntry {
        at,
        event,
        canary_weight: state.canary_weight,
        reason,
    });
}
