//! Unit tests of the status: the words for each phase, the numbering the history uses, and counts.

use std::time::Duration;

use serde_json::json;

use super::{Wait, count, status};
use crate::observe::{NodeWindow, Observation};
use crate::spec::{Analysis, CanarySpec, StepSpec, Strategy, fixture};
use crate::{Input, Millis, start, step};

const T0: Millis = 1_700_000_000_000;

fn spec(strategy: Strategy, min_requests: u64) -> CanarySpec {
    CanarySpec {
        stable_node: "v1".into(),
        canary_node: "v2".into(),
        ..fixture(
            strategy,
            Analysis {
                min_requests,
                ..Analysis::default()
            },
        )
    }
}

fn steps(step_weight: u32) -> Strategy {
    Strategy::Steps {
        step_weight,
        interval: Duration::from_secs(30),
        max_weight: 100,
    }
}

fn seen(requests: u64) -> Observation {
    Observation {
        canary: NodeWindow {
            requests,
            ..NodeWindow::default()
        },
        ..Observation::default()
    }
}

fn tick(at: Millis, requests: u64) -> Input {
    Input::Tick {
        now: T0 + at,
        observation: seen(requests),
    }
}

/// Starts `spec` at `T0`, feeds `inputs`, and says what the status is at `T0 + at`.
fn check(spec: &CanarySpec, inputs: Vec<Input>, at: Millis, requests: u64, expected: &str) {
    let (mut state, _) = start(spec, T0);
    for input in inputs {
        state = step(spec, &state, input).0;
    }
    let shown = status(spec, &state, T0 + at, Some(&seen(requests)));
    assert_eq!(shown.summary, expected);
}

#[test]
fn each_phase_says_where_it_stands_and_what_it_waits_for() {
    let four = spec(steps(20), 1);
    check(
        &four,
        vec![],
        27_000,
        0,
        "step 1 of 4 (20% to canary): analysis interval 3s left; waiting for traffic: 0 of 1 \
         canary requests in this step",
    );
    check(
        &four,
        vec![],
        27_000,
        1,
        "step 1 of 4 (20% to canary): analysis interval 3s left",
    );
    check(&four, vec![], 31_000, 5, "step 1 of 4 (20% to canary)");
    check(
        &spec(steps(20), 3),
        vec![tick(30_000, 5)],
        45_000,
        1,
        "step 2 of 4 (40% to canary): analysis interval 15s left; waiting for traffic: 1 of 3 \
         canary requests in this step",
    );
    check(
        &four,
        vec![Input::Pause { now: T0 + 10_000 }],
        50_000,
        0,
        "step 1 of 4 (20% to canary): paused; analysis interval 20s left",
    );
    let gated = spec(
        Strategy::Weights {
            weights: vec![StepSpec::Weight(20), StepSpec::Gate, StepSpec::Weight(60)],
            interval: Duration::from_secs(30),
        },
        1,
    );
    check(
        &gated,
        vec![tick(30_000, 5)],
        40_000,
        0,
        "gate at step 2 of 3 (20% to canary): waiting for a resume (gate)",
    );
    let passed = (1..=4).map(|i| tick(30_000 * i, 5)).collect();
    check(&four, passed, 200_000, 0, "promoted: all 4 steps passed");
    let initial = spec(
        Strategy::Initial {
            weight: 10,
            duration: Duration::from_secs(30),
        },
        1,
    );
    check(
        &initial,
        vec![tick(30_000, 1)],
        40_000,
        0,
        "promoted: its only step passed",
    );
    check(
        &four,
        vec![Input::Promote { now: T0 + 1_000 }],
        2_000,
        0,
        "promoted by command at step 1 of 4",
    );
    check(
        &four,
        vec![
            tick(30_000, 5),
            Input::Abort {
                now: T0 + 31_000,
                reason: String::new(),
            },
        ],
        40_000,
        0,
        "aborted at step 2 of 4",
    );
}

/// "step i of n" in the status is the one the history last named, at every point of a run.
#[test]
fn status_numbers_steps_as_the_history_does() {
    let spec = spec(
        Strategy::Weights {
            weights: vec![StepSpec::Weight(10), StepSpec::Gate, StepSpec::Weight(50)],
            interval: Duration::from_secs(30),
        },
        1,
    );
    let (mut state, _) = start(&spec, T0);
    let inputs = [
        tick(30_000, 5),
        Input::Resume { now: T0 + 40_000 },
        Input::Pause { now: T0 + 45_000 },
    ];
    let last_step_named = |text: &str| {
        let at = text.rfind("step ").expect("the history names a step");
        let words: Vec<&str> = text[at..].split([' ', ':', ')']).take(4).collect();
        words.join(" ")
    };
    for input in inputs {
        let shown = status(&spec, &state, input.now(), None);
        let history = &state.history.last().unwrap().reason;
        assert!(
            shown.progress.contains(&last_step_named(history)),
            "{:?} vs history {history:?}",
            shown.progress
        );
        state = step(&spec, &state, input).0;
    }
    assert_eq!((state.step, state.steps.len()), (2, 3));
    let shown = status(&spec, &state, T0 + 46_000, None);
    assert_eq!((shown.step, shown.steps, shown.passed), (3, 3, 2));
}

#[test]
fn counts_read_as_words() {
    assert_eq!(count(0, "request"), "0 requests");
    assert_eq!(count(1, "request"), "1 request");
    assert_eq!(count(2, "canary request"), "2 canary requests");
    let one = Wait::Requests {
        seen: 2,
        needed: 3,
        window_ms: 1_500,
    };
    assert_eq!(
        one.to_string(),
        "waiting for traffic: 2 of 3 canary requests in this step"
    );
}

#[test]
fn the_json_carries_each_wait_with_its_words() {
    let spec = spec(steps(20), 1);
    let (state, _) = start(&spec, T0);
    let shown = status(&spec, &state, T0 + 27_000, Some(&seen(0)));
    assert_eq!(
        serde_json::to_value(&shown).unwrap(),
        json!({
            "phase": "progressing",
            "step": 1,
            "steps": 4,
            "passed": 0,
            "progress": "step 1 of 4 (20% to canary)",
            "waiting": [
                {"for": "interval", "leftMs": 3000, "text": "analysis interval 3s left"},
                {"for": "requests", "seen": 0, "needed": 1, "windowMs": 27000,
                 "text": "waiting for traffic: 0 of 1 canary requests in this step"},
            ],
            "summary": "step 1 of 4 (20% to canary): analysis interval 3s left; waiting for \
                        traffic: 0 of 1 canary requests in this step",
        })
    );
    let back: super::Status =
        serde_json::from_value(serde_json::to_value(&shown).unwrap()).unwrap();
    assert_eq!(back, shown);
}

#[test]
fn time_left_in_an_interval_reads_in_whole_seconds_rounded_up() {
    for (left_ms, text) in [
        (1372, "analysis interval 2s left"),
        (372, "analysis interval 1s left"),
        (3000, "analysis interval 3s left"),
        (0, "analysis interval 0s left"),
    ] {
        assert_eq!(Wait::Interval { left_ms }.to_string(), text);
    }
}

#[test]
fn the_wait_for_evidence_has_its_shape_and_words() {
    use super::{Metric, Share, Waiting};
    let wait = Wait::Evidence {
        metric: Metric::SlowShare,
        slower_than_ms: Some(100.0),
        canary: Share {
            events: 9,
            requests: 1_000,
            bound: 0.02,
        },
        stable: Share {
            events: 10,
            requests: 9_000,
            bound: 0.0005,
        },
        tolerance: 0.01,
    };
    let shown = Waiting::from(wait);
    assert_eq!(
        serde_json::to_value(&shown).unwrap(),
        json!({
            "for": "evidence",
            "metric": "slowShare",
            "slowerThanMs": 100.0,
            "canary": {"events": 9, "requests": 1000, "bound": 0.02},
            "stable": {"events": 10, "requests": 9000, "bound": 0.0005},
            "tolerance": 0.01,
            "text": "needs more evidence that the canary is no slower than stable: share slower \
                     than 100 ms 0.9% (≤ 2%) vs 0.11% (≥ 0.05%), tolerance 1 point",
        })
    );
    let back: Waiting = serde_json::from_value(serde_json::to_value(&shown).unwrap()).unwrap();
    assert_eq!(back, shown);
}

#[test]
fn a_step_under_comparison_says_what_evidence_it_waits_for() {
    let mut spec = spec(steps(20), 1);
    spec.analysis.compare = Some(crate::spec::Compare::default());
    let (state, _) = start(&spec, T0);
    let mut seen = seen(20);
    seen.stable.requests = 80;
    let shown = status(&spec, &state, T0 + 31_000, Some(&seen));
    assert_eq!(
        shown.summary,
        "step 1 of 4 (20% to canary): needs more evidence that the canary is no worse than \
         stable: error rate 0% (≤ 23.97%) vs 0% (≥ 0%), tolerance 0.5 points"
    );
}
