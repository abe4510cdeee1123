//! Unit tests of the comparison with stable: when it fails a canary and with what words, what a step waits for, and the evidence it carries across steps, pauses and windows.

use std::time::Duration;

use crate::observe::{NodeWindow, Observation};
use crate::spec::{Analysis, CanarySpec, Compare, LatencyCompare, Strategy, fixture};
use crate::state::{CanaryState, Phase};
use crate::status::Wait;
use crate::{Input, Millis, analysis_window, start, step};

const T0: Millis = 1_700_000_000_000;

fn spec(compare: Compare) -> CanarySpec {
    fixture(
        Strategy::Steps {
            step_weight: 10,
            interval: Duration::from_secs(30),
            max_weight: 30,
        },
        Analysis {
            compare: Some(compare),
            progress_deadline: Duration::from_secs(3600),
            ..Analysis::default()
        },
    )
}

fn node(requests: u64, errors: u64) -> NodeWindow {
    NodeWindow {
        requests,
        status_5xx: errors,
        error_rate: errors as f64 / requests.max(1) as f64,
        ..NodeWindow::default()
    }
}

/// `requests` counted into latency buckets: `fast` of them in bucket 12 (15..25 ms), the rest
/// in bucket 16 (100..150 ms).
fn timed(mut window: NodeWindow, fast: u64) -> NodeWindow {
    let mut buckets = vec![0; 17];
    buckets[12] = fast;
    buckets[16] = window.requests - fast;
    window.latency_buckets = buckets;
    window
}

fn seen(canary: NodeWindow, stable: NodeWindow) -> Observation {
    Observation {
        canary,
        stable,
        ..Observation::default()
    }
}

fn tick(at_ms: Millis, observation: Observation) -> Input {
    Input::Tick {
        now: T0 + at_ms,
        observation,
    }
}

fn run(spec: &CanarySpec, inputs: Vec<Input>) -> CanaryState {
    let (mut state, _) = start(spec, T0);
    for input in inputs {
        state = step(spec, &state, input).0;
    }
    state
}

#[test]
fn a_canary_failing_everything_fails_on_the_first_tick_with_three_errors() {
    let spec = spec(Compare::default());
    // 10% of the traffic: 9 stable requests per canary request, none of them failing.
    let at = |n: u64| tick(250 * n, seen(node(n, n), node(9 * n, 0)));
    let state = run(&spec, vec![at(1), at(2)]);
    assert_eq!(state.phase, Phase::Progressing, "{:?}", state.reason);
    let state = run(&spec, vec![at(1), at(2), at(3)]);
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(
        state.reason.as_deref(),
        Some(
            "canary product-2-vn fails more than stable product-vn: 3 errors in 3 requests \
             (100%) vs 0 in 27 (0%); odds 1:485 against it being no worse (the limit at 99% \
             confidence is 1:100)"
        )
    );
    assert_eq!(state.history.last().unwrap().reason, state.reason.unwrap());
}

#[test]
fn the_reason_names_both_versions_counts_rates_and_odds() {
    let spec = spec(Compare::default());
    let state = run(
        &spec,
        vec![tick(5_000, seen(node(300, 15), node(2700, 27)))],
    );
    assert_eq!(
        state.reason.as_deref(),
        Some(
            "canary product-2-vn fails more than stable product-vn: 15 errors in 300 requests \
             (5%) vs 27 in 2700 (1%); odds 1:2616 against it being no worse (the limit at 99% \
             confidence is 1:100)"
        )
    );
    // A stricter confidence needs longer odds: 1:2616 is not 1:10000.
    let strict = self::spec(Compare {
        confidence: 0.9999,
        ..Compare::default()
    });
    let state = run(
        &strict,
        vec![tick(5_000, seen(node(300, 15), node(2700, 27)))],
    );
    assert_eq!(state.phase, Phase::Progressing);
}

#[test]
fn evidence_is_carried_across_steps_each_with_its_own_split() {
    // A wide tolerance, so the first step passes on little evidence.
    let spec = spec(Compare {
        max_error_rate_increase: 0.5,
        ..Compare::default()
    });
    let first = tick(30_000, seen(node(100, 4), node(900, 4)));
    let state = run(&spec, vec![first.clone()]);
    assert_eq!((state.phase, state.step), (Phase::Progressing, 1));
    let carried = &state.evidence.steps;
    assert_eq!(carried.len(), 1);
    assert_eq!(carried[0].weight, 10);
    assert_eq!(
        (carried[0].canary.requests, carried[0].canary.errors),
        (100, 4)
    );
    assert_eq!(
        (carried[0].stable.requests, carried[0].stable.errors),
        (900, 4)
    );
    assert_eq!(state.evidence.window_started_at, Some(T0 + 30_000));
    assert_eq!(analysis_window(&state, T0 + 31_000), 1_000);

    // The second step's window alone (odds 1:4) fails nothing; with the first (1:143) it does.
    let second = tick(40_000, seen(node(100, 5), node(400, 4)));
    let alone = run(&spec, vec![second.clone()]);
    assert_eq!(alone.phase, Phase::Progressing);
    let state = run(&spec, vec![first, second]);
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(
        state.reason.as_deref(),
        Some(
            "canary product-2-vn fails more than stable product-vn: 9 errors in 200 requests \
             (4.5%) vs 8 in 1300 (0.62%); odds 1:143 against it being no worse (the limit at \
             99% confidence is 1:100)"
        )
    );
}

#[test]
fn pauses_keep_the_window_and_long_windows_are_ended_into_the_evidence() {
    // A tolerance too small to show, so the step stays.
    let spec = spec(Compare {
        max_error_rate_increase: 1e-6,
        ..Compare::default()
    });
    let quiet = |n| seen(node(n, 0), node(9 * n, 0));
    let state = run(
        &spec,
        vec![
            tick(10_000, quiet(200)),
            Input::Pause { now: T0 + 10_000 },
            tick(100_000, quiet(2_000)),
            Input::Resume { now: T0 + 200_000 },
        ],
    );
    assert_eq!(state.phase, Phase::Progressing);
    // The step's timer moved by the pause; the window did not: it still starts at T0.
    assert_eq!(state.step_started_at, T0 + 190_000);
    assert_eq!(analysis_window(&state, T0 + 200_000), 200_000);
    assert!(state.evidence.steps.is_empty());

    // Five minutes in, a tick ends the window: its counts go into the evidence.
    let state = step(&spec, &state, tick(300_000, quiet(6_000))).0;
    assert_eq!(state.evidence.window_started_at, Some(T0 + 300_000));
    assert_eq!(state.evidence.steps.len(), 1);
    assert_eq!(state.evidence.steps[0].canary.requests, 6_000);
    assert_eq!(state.evidence.steps[0].stable.requests, 54_000);
    // The next window of the same step adds to the same entry.
    let state = step(&spec, &state, tick(600_000, quiet(5_000))).0;
    assert_eq!(state.evidence.steps.len(), 1);
    assert_eq!(state.evidence.steps[0].canary.requests, 11_000);
}

#[test]
fn a_step_waits_for_evidence_that_the_canary_is_no_worse() {
    let spec = spec(Compare::default());
    let (state, _) = start(&spec, T0);
    let waits = super::blockers(&spec, &state, &seen(node(1_200, 13), node(10_800, 108)));
    assert_eq!(waits.len(), 1);
    assert_eq!(
        waits[0].to_string(),
        "needs more evidence that the canary is no worse than stable: error rate 1.08% (≤ \
         2.56%) vs 1% (≥ 0.67%), tolerance 0.5 points"
    );
    let Wait::Evidence { canary, stable, .. } = &waits[0] else {
        panic!("{waits:?}")
    };
    assert_eq!((canary.events, canary.requests), (13, 1_200));
    assert_eq!((stable.events, stable.requests), (108, 10_800));
    // Twenty times as much shows it (ten times is not quite enough).
    let waits = super::blockers(
        &spec,
        &state,
        &seen(node(12_000, 120), node(108_000, 1_080)),
    );
    assert_eq!(waits.len(), 1);
    let waits = super::blockers(
        &spec,
        &state,
        &seen(node(24_000, 240), node(216_000, 2_160)),
    );
    assert_eq!(waits, vec![]);
    // A canary worse than the tolerance never is.
    let waits = super::blockers(
        &spec,
        &state,
        &seen(node(120_000, 2_400), node(1_080_000, 10_800)),
    );
    assert_eq!(waits.len(), 1);
}

#[test]
fn latency_is_compared_as_the_share_slower_than_stables_quantile() {
    let spec = spec(Compare {
        latency: Some(LatencyCompare::default()),
        ..Compare::default()
    });
    // 99 of stable's first 100 are fast: its 0.99 quantile is in bucket 12 (15..25 ms).
    let (state, _) = start(&spec, T0);
    let baseline = seen(timed(node(10, 0), 10), timed(node(100, 0), 99));
    let waits = super::blockers(&spec, &state, &seen(node(10, 0), timed(node(90, 0), 90)));
    assert_eq!(
        waits[1].to_string(),
        "waiting for the latency of 100 stable requests in one window, to know what counts as \
         slow (90 so far)"
    );
    let state = step(&spec, &state, tick(1_000, baseline)).0;
    assert_eq!(state.evidence.slow_bucket, Some(12));
    // The window that chose it is ended, its latency not counted: it would flatter stable.
    assert_eq!(state.evidence.window_started_at, Some(T0 + 1_000));
    assert_eq!(state.evidence.steps[0].canary.requests, 10);
    assert_eq!(state.evidence.steps[0].stable.timed, 0);

    // Then: a canary slow half the time, against stable at 1%.
    let slow = seen(timed(node(40, 0), 20), timed(node(360, 0), 356));
    let failed = step(&spec, &state, tick(3_000, slow)).0;
    assert_eq!(failed.phase, Phase::Failed);
    assert_eq!(
        failed.reason.as_deref(),
        Some(
            "canary product-2-vn is slower than stable product-vn: 20 of 40 requests slower \
             than 25 ms (50%) vs 4 of 360 (1.11%); odds 1:6.2e14 against it being no slower (the \
             limit at 99% confidence is 1:200, with errors and latency both compared)"
        )
    );
}

/// splitmix64, for traffic that is the same on every run.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn failures(&mut self, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| self.uniform() < p).count() as u64
    }
}

/// A canary at `canary_errors` against stable at 1%, 20 canary requests per second, ticked
/// every 250 ms for up to an hour; the final state.
fn seeded_run(canary_errors: f64, seed: u64) -> CanaryState {
    let spec = spec(Compare::default());
    let mut rng = Rng(seed);
    let (mut state, _) = start(&spec, T0);
    let (mut canary, mut stable) = (node(0, 0), node(0, 0));
    for tick in 1..=4 * 3600 {
        if state.phase.is_terminal() {
            break;
        }
        let w = u64::from(state.canary_weight);
        let (c, s) = (5, 5 * (100 - w) / w);
        canary.requests += c;
        canary.status_5xx += rng.failures(c, canary_errors);
        stable.requests += s;
        stable.status_5xx += rng.failures(s, 0.01);
        let now = T0 + 250 * tick;
        let observation = seen(canary.clone(), stable.clone());
        state = step(&spec, &state, Input::Tick { now, observation }).0;
        if analysis_window(&state, now) == 0 {
            (canary, stable) = (node(0, 0), node(0, 0));
        }
    }
    state
}

#[test]
fn an_equal_canary_is_promoted_and_a_worse_one_rolled_back_over_long_seeded_runs() {
    for seed in 1..=3 {
        let equal = seeded_run(0.01, seed);
        assert_eq!(equal.phase, Phase::Succeeded, "{:?}", equal.reason);
        let worse = seeded_run(0.05, seed);
        assert_eq!(worse.phase, Phase::Failed);
        assert!(
            worse
                .reason
                .as_deref()
                .unwrap()
                .contains("fails more than stable"),
            "{:?}",
            worse.reason
        );
    }
}
