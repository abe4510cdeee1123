//! Canary scenarios as data: a spec and timed inputs, and the trace the state machine must produce.

use std::time::Duration;

use rollout::{
    Action, Compare, Event, NoTraffic, Phase, StepSpec, Strategy, Webhook, next_deadline,
    reconcile, start, step, validate,
};

use crate::support::*;

#[test]
fn steps_go_up_one_interval_at_a_time_then_promote() {
    let mut spec = spec(steps(25, 30, 100));
    spec.analysis.min_requests = 10;
    spec.on_success.remove_stable = true;
    let scenario = Scenario {
        spec: spec.clone(),
        inputs: vec![
            tick(secs(10), healthy(50)),
            tick(secs(30), healthy(50)),
            tick(secs(60) - 250, healthy(50)),
            tick(secs(60), healthy(50)),
            tick(secs(90), healthy(50)),
            tick(secs(120), healthy(50)),
        ],
    };
    let run = check(
        &scenario,
        "
        0s       start | progressing 25 | setWeights 75/25 | started
        10s      tick  | progressing 25 | -                | -
        30s      tick  | progressing 50 | setWeights 50/50 | step
        59s750ms tick  | progressing 50 | -                | -
        1m       tick  | progressing 75 | setWeights 25/75 | step
        1m30s    tick  | succeeded 100  | setWeights 0/100, removeStable | promoted
        2m       tick  | succeeded 100  | -                | -
        ",
    );
    let first = &run.states[0];
    assert_eq!(
        first.steps,
        vec![
            StepSpec::Weight(25),
            StepSpec::Weight(50),
            StepSpec::Weight(75)
        ]
    );
    assert_eq!(next_deadline(&spec, first), Some(T0 + secs(30)));
    assert_eq!(next_deadline(&spec, &run.states[3]), Some(T0 + secs(60)));
    let done = run.last();
    assert_eq!(done.step, 3);
    assert_eq!(
        done.reason.as_deref(),
        Some("step 3 of 3 (75%) passed with 50 canary requests in 30s; all 3 steps passed")
    );
    assert_eq!(
        done.history[1].reason,
        "step 1 of 3 (25%) passed with 50 canary requests in 30s; step 2 of 3: 50%"
    );
}

#[test]
fn steps_stop_at_max_weight_before_promotion() {
    let expand = |step, max| steps(step, 30, max).expand();
    use StepSpec::Weight as W;
    assert_eq!(expand(20, 50), vec![W(20), W(40), W(50)]);
    assert_eq!(expand(30, 100), vec![W(30), W(60), W(90)]);
    assert_eq!(expand(50, 100), vec![W(50)]);
    assert_eq!(expand(1, 100).len(), 99);
    check(
        &Scenario {
            spec: spec(steps(20, 30, 50)),
            inputs: (1..=4).map(|i| tick(secs(30 * i), healthy(5))).collect(),
        },
        "
        0s    start | progressing 20 | setWeights 80/20 | started
        30s   tick  | progressing 40 | setWeights 60/40 | step
        1m    tick  | progressing 50 | setWeights 50/50 | step
        1m30s tick  | succeeded 100  | setWeights 0/100 | promoted
        2m    tick  | succeeded 100  | -                | -
        ",
    );
}

#[test]
fn explicit_weights_wait_at_the_gate_until_resume() {
    use StepSpec::{Gate, Weight as W};
    let mut spec = spec(Strategy::Weights {
        weights: vec![W(1), W(5), Gate, W(50), W(100)],
        interval: Duration::from_secs(10),
    });
    spec.analysis.progress_deadline = Duration::from_secs(60);
    let run = check(
        &Scenario {
            spec: spec.clone(),
            inputs: vec![
                tick(secs(10), healthy(5)),
                tick(secs(20), healthy(5)),
                tick(secs(300), healthy(5)),
                pause(secs(301)),
                resume(secs(360)),
                tick(secs(365), healthy(5)),
                tick(secs(370), healthy(5)),
            ],
        },
        "
        0s    start  | progressing 1     | setWeights 99/1  | started
        10s   tick   | progressing 5     | setWeights 95/5  | step
        20s   tick   | waitingForGate 5  | -                | step, gate
        5m    tick   | waitingForGate 5  | -                | -
        5m1s  pause  | waitingForGate 5  | -                | -
        6m    resume | progressing 50    | setWeights 50/50 | resumed, step
        6m5s  tick   | progressing 50    | -                | -
        6m10s tick   | succeeded 100     | setWeights 0/100 | promoted
        ",
    );
    assert_eq!(run.states[0].steps, vec![W(1), W(5), Gate, W(50)]);
    let gate = &run.states[2];
    assert_eq!(gate.step, 2);
    assert_eq!(
        gate.reason.as_deref(),
        Some("waiting at the gate of step 3 of 4 for resume (or promote, or abort)")
    );
    assert_eq!(next_deadline(&spec, gate), None);
    assert_eq!(run.states[5].reason, None);
    assert_eq!(next_deadline(&spec, &run.states[5]), Some(T0 + secs(370)));
}

#[test]
fn a_gate_first_holds_all_traffic_on_stable() {
    use StepSpec::{Gate, Weight as W};
    check(
        &Scenario {
            spec: spec(Strategy::Weights {
                weights: vec![Gate, W(10)],
                interval: Duration::from_secs(10),
            }),
            inputs: vec![resume(secs(5)), tick(secs(15), healthy(1))],
        },
        "
        0s  start  | waitingForGate 0 | setWeights 100/0 | started, gate
        5s  resume | progressing 10   | setWeights 90/10 | resumed, step
        15s tick   | succeeded 100    | setWeights 0/100 | promoted
        ",
    );
}

#[test]
fn initial_weight_for_a_while_then_all() {
    let mut spec = spec(Strategy::Initial {
        weight: 10,
        duration: Duration::from_secs(60),
    });
    spec.analysis.min_requests = 10;
    check(
        &Scenario {
            spec,
            inputs: vec![tick(secs(30), healthy(100)), tick(secs(60), healthy(100))],
        },
        "
        0s  start | progressing 10 | setWeights 90/10 | started
        30s tick  | progressing 10 | -                | -
        1m  tick  | succeeded 100  | setWeights 0/100 | promoted
        ",
    );
}

#[test]
fn too_many_5xx_mid_step_rolls_back_at_once() {
    let mut spec = spec(steps(10, 30, 100));
    spec.analysis.max_5xx = Some(5);
    spec.on_failure.remove_canary = true;
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(30), healthy(100)),
                tick(secs(35), healthy(100).fives(5)),
                tick(secs(35) + 250, healthy(100).fives(12)),
                tick(secs(36), healthy(100)),
                promote(secs(37)),
            ],
        },
        "
        0s       start   | progressing 10 | setWeights 90/10 | started
        30s      tick    | progressing 20 | setWeights 80/20 | step
        35s      tick    | progressing 20 | -                | -
        35s250ms tick    | failed 0       | setWeights 100/0, removeCanary | rolled back
        36s      tick    | failed 0       | -                | -
        37s      promote | failed 0       | -                | -
        ",
    );
    let failed = run.last();
    assert_eq!(
        failed.reason.as_deref(),
        Some("canary product-2-vn answered 12 5xx in the last 1m; the limit is 5")
    );
    assert_eq!(
        failed.history.last().unwrap().reason,
        failed.reason.clone().unwrap()
    );
    assert_eq!(failed.step, 1, "it failed in the second step");
}

#[test]
fn a_5xx_limit_of_zero_fails_on_the_first_5xx() {
    let mut spec = spec(steps(10, 30, 100));
    spec.analysis.max_5xx = Some(0);
    spec.analysis.failure_window = Duration::from_secs(10);
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(30), healthy(100)),
                tick(secs(30) + 250, healthy(100).fives(1)),
            ],
        },
        "
        0s       start | progressing 10 | setWeights 90/10 | started
        30s      tick  | progressing 20 | setWeights 80/20 | step
        30s250ms tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
    assert_eq!(
        run.last().reason.as_deref(),
        Some("canary product-2-vn answered 1 5xx in the last 10s; the limit is 0")
    );
}

#[test]
fn error_rate_above_the_limit_fails_once_there_is_traffic() {
    let mut spec = spec(steps(10, 30, 100));
    spec.analysis.max_error_rate = Some(0.05);
    let mut stable_errors = healthy(20).error_rate(0.1);
    stable_errors.stable.error_rate = 0.01;
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(1), healthy(0).error_rate(1.0)),
                tick(secs(2), healthy(10).error_rate(0.05)),
                tick(secs(2) + 250, stable_errors),
            ],
        },
        "
        0s       start | progressing 10 | setWeights 90/10 | started
        1s       tick  | progressing 10 | -                | -
        2s       tick  | progressing 10 | -                | -
        2s250ms  tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
    assert_eq!(
        run.last().reason.as_deref(),
        Some(
            "canary product-2-vn error rate is 10% over 20 requests in this step (the last \
             2s250ms); the limit is 5% (stable: 1% over 180 requests)"
        )
    );
}

#[test]
fn p99_above_the_limit_fails() {
    let mut spec = spec(steps(10, 30, 100));
    spec.analysis.max_p99_ms = Some(300.0);
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(3), healthy(10).p99(300.0)),
                tick(secs(3) + 250, healthy(10).p99(450.5)),
            ],
        },
        "
        0s      start | progressing 10 | setWeights 90/10 | started
        3s      tick  | progressing 10 | -                | -
        3s250ms tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
    assert_eq!(
        run.last().reason.as_deref(),
        Some(
            "canary product-2-vn p99 latency is 450.5 ms in this step (the last 3s250ms); the \
             limit is 300 ms (stable: 20 ms)"
        )
    );
}

#[test]
fn several_failing_checks_are_all_named() {
    let mut spec = spec(steps(10, 30, 100));
    spec.analysis.max_5xx = Some(0);
    spec.analysis.max_error_rate = Some(0.5);
    let run = check(
        &Scenario {
            spec,
            inputs: vec![tick(secs(1), healthy(4).fives(4).error_rate(1.0))],
        },
        "
        0s start | progressing 10 | setWeights 90/10 | started
        1s tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
    let reason = run.last().reason.clone().unwrap();
    assert!(
        reason.starts_with("canary product-2-vn answered 4 5xx"),
        "{reason}"
    );
    assert!(
        reason.contains("; canary product-2-vn error rate is 100% over 4"),
        "{reason}"
    );
}

fn smoke(spec: &mut rollout::CanarySpec) {
    spec.analysis.webhooks = vec![Webhook {
        name: "smoke".into(),
        url: "http://127.0.0.1:9000/smoke".into(),
        timeout: Duration::from_secs(2),
    }];
}

#[test]
fn webhooks_are_called_each_step_and_gate_it() {
    let mut spec = spec(steps(40, 10, 100));
    smoke(&mut spec);
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(10), healthy(10)),
                tick(secs(10) + 250, healthy(10).hook("other", Ok(()))),
                tick(secs(11), healthy(10).hook("smoke", Ok(()))),
                tick(secs(12), healthy(10).hook("smoke", Err("HTTP 503"))),
            ],
        },
        "
        0s       start | progressing 40 | setWeights 60/40, callWebhooks | started
        10s      tick  | progressing 40 | -                              | -
        10s250ms tick  | progressing 40 | -                              | -
        11s      tick  | progressing 80 | setWeights 20/80, callWebhooks | step
        12s      tick  | failed 0       | setWeights 100/0               | rolled back
        ",
    );
    assert_eq!(
        run.last().reason.as_deref(),
        Some("webhook \"smoke\" failed in step 2: HTTP 503")
    );
    assert_eq!(
        run.states[3].history.last().unwrap().reason,
        "step 1 of 2 (40%) passed with 10 canary requests in 11s and every webhook; step 2 of \
         2: 80%"
    );
}

#[test]
fn a_webhook_that_never_answers_runs_into_the_deadline() {
    let mut spec = spec(steps(40, 10, 100));
    smoke(&mut spec);
    spec.analysis.progress_deadline = Duration::from_secs(30);
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(30), healthy(10)),
                tick(secs(30) + 250, healthy(10)),
            ],
        },
        "
        0s       start | progressing 40 | setWeights 60/40, callWebhooks | started
        30s      tick  | progressing 40 | -                              | -
        30s250ms tick  | failed 0       | setWeights 100/0               | rolled back
        ",
    );
    assert_eq!(
        run.last().reason.as_deref(),
        Some(
            "no progress for 30s250ms, past the progress deadline of 30s: webhook \"smoke\" has \
             not passed step 1 yet"
        )
    );
}

fn starved() -> rollout::CanarySpec {
    let mut spec = spec(steps(10, 30, 100));
    spec.analysis.min_requests = 20;
    spec.analysis.progress_deadline = Duration::from_secs(120);
    spec
}

#[test]
fn no_traffic_means_no_progress_then_failure() {
    let run = check(
        &Scenario {
            spec: starved(),
            inputs: vec![
                tick(secs(30), healthy(3)),
                tick(secs(60), healthy(3)),
                tick(secs(120), healthy(3)),
                tick(secs(120) + 250, healthy(3)),
            ],
        },
        "
        0s       start | progressing 10 | setWeights 90/10 | started
        30s      tick  | progressing 10 | -                | -
        1m       tick  | progressing 10 | -                | -
        2m       tick  | progressing 10 | -                | -
        2m250ms  tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
    assert_eq!(
        run.last().reason.as_deref(),
        Some(
            "no progress for 2m250ms, past the progress deadline of 2m: waiting for traffic: 3 \
             of 20 canary requests in this step"
        )
    );
}

#[test]
fn no_traffic_pass_passes_the_step_and_says_so() {
    let mut spec = starved();
    spec.analysis.no_traffic = NoTraffic::Pass;
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(10), healthy(3)),
                tick(secs(30), healthy(3)),
                tick(secs(60), healthy(0)),
                tick(secs(90), healthy(25)),
            ],
        },
        "
        0s  start | progressing 10 | setWeights 90/10 | started
        10s tick  | progressing 10 | -                | -
        30s tick  | progressing 20 | setWeights 80/20 | step
        1m  tick  | progressing 30 | setWeights 70/30 | step
        1m30s tick | progressing 40 | setWeights 60/40 | step
        ",
    );
    let reasons: Vec<&str> = run.last().history[1..]
        .iter()
        .map(|h| h.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "step 1 of 9 (10%) passed without traffic: 3 canary requests in it (noTraffic: \
             pass); step 2 of 9: 20%",
            "step 2 of 9 (20%) passed without traffic: 0 canary requests in it (noTraffic: \
             pass); step 3 of 9: 30%",
            "step 3 of 9 (30%) passed with 25 canary requests in 30s; step 4 of 9: 40%",
        ]
    );
}

#[test]
fn no_traffic_fail_rolls_back_once_the_interval_is_over() {
    let mut spec = starved();
    spec.analysis.no_traffic = NoTraffic::Fail;
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(10), healthy(0)),
                tick(secs(30), healthy(0).covered(secs(5))),
                tick(secs(30) + 250, healthy(0)),
            ],
        },
        "
        0s       start | progressing 10 | setWeights 90/10 | started
        10s      tick  | progressing 10 | -                | -
        30s      tick  | progressing 10 | -                | -
        30s250ms tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
    // A driver that has seen only 5 s of the step cannot tell, so that tick waits.
    assert_eq!(
        run.last().reason.as_deref(),
        Some(
            "step 1 of 9 (10%) saw 0 of the 20 canary requests it needs in 30s250ms \
             (noTraffic: fail)"
        )
    );
}

#[test]
fn compare_carries_evidence_from_step_to_step() {
    let mut spec = spec(steps(10, 30, 100));
    spec.analysis.compare = Some(Compare {
        max_error_rate_increase: 0.5,
        ..Compare::default()
    });
    let errors = |canary: (u64, u64), stable: (u64, u64)| {
        let mut seen = healthy(0);
        seen.canary.requests = canary.0;
        seen.canary.status_5xx = canary.1;
        seen.stable.requests = stable.0;
        seen.stable.status_5xx = stable.1;
        seen
    };
    let run = check(
        &Scenario {
            spec,
            inputs: vec![
                tick(secs(30), errors((100, 4), (900, 4))),
                tick(secs(40), errors((100, 5), (400, 4))),
            ],
        },
        "
        0s  start | progressing 10 | setWeights 90/10 | started
        30s tick  | progressing 20 | setWeights 80/20 | step
        40s tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
    assert_eq!(
        run.last().reason.as_deref(),
        Some(
            "canary product-2-vn fails more than stable product-vn: 9 errors in 200 requests \
             (4.5%) vs 8 in 1300 (0.62%); odds 1:143 against it being no worse (the limit at \
             99% confidence is 1:100)"
        )
    );
}

#[test]
fn late_traffic_passes_the_step_and_restarts_the_deadline() {
    check(
        &Scenario {
            spec: starved(),
            inputs: vec![
                tick(secs(60), healthy(3)),
                tick(secs(90), healthy(20)),
                tick(secs(210), healthy(3)),
                tick(secs(210) + 250, healthy(3)),
            ],
        },
        "
        0s          start | progressing 10 | setWeights 90/10 | started
        1m          tick  | progressing 10 | -                | -
        1m30s       tick  | progressing 20 | setWeights 80/20 | step
        3m30s       tick  | progressing 20 | -                | -
        3m30s250ms  tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
}

#[test]
fn pause_holds_progress_and_resume_keeps_the_remaining_wait() {
    let mut spec = spec(steps(10, 30, 100));
    spec.analysis.progress_deadline = Duration::from_secs(60);
    let run = check(
        &Scenario {
            spec: spec.clone(),
            inputs: vec![
                tick(secs(10), healthy(100)),
                pause(secs(10)),
                pause(secs(15)),
                tick(secs(40), healthy(100)),
                tick(secs(300), healthy(100)),
                resume(secs(300)),
                resume(secs(301)),
                tick(secs(320) - 250, healthy(100)),
                tick(secs(320), healthy(100)),
            ],
        },
        "
        0s       start  | progressing 10 | setWeights 90/10 | started
        10s      tick   | progressing 10 | -                | -
        10s      pause  | paused 10      | -                | paused
        15s      pause  | paused 10      | -                | -
        40s      tick   | paused 10      | -                | -
        5m       tick   | paused 10      | -                | -
        5m       resume | progressing 10 | -                | resumed
        5m1s     resume | progressing 10 | -                | -
        5m19s750ms tick | progressing 10 | -                | -
        5m20s    tick   | progressing 20 | setWeights 80/20 | step
        ",
    );
    let paused = &run.states[2];
    assert_eq!(paused.paused_at, Some(T0 + secs(10)));
    assert_eq!(
        paused.reason.as_deref(),
        Some("paused by command in step 1 of 9 (20s left in it)")
    );
    let resumed = &run.states[6];
    assert_eq!(resumed.step_started_at, T0 + secs(290));
    assert_eq!(next_deadline(&spec, resumed), Some(T0 + secs(320)));
    assert_eq!(
        resumed.history.last().unwrap().reason,
        "resumed by command after 4m50s paused; 20s left in step 1 of 9"
    );
}

#[test]
fn a_held_canary_still_rolls_back_when_it_breaks() {
    use StepSpec::{Gate, Weight as W};
    let mut paused = spec(steps(10, 30, 100));
    paused.analysis.max_5xx = Some(0);
    check(
        &Scenario {
            spec: paused,
            inputs: vec![pause(secs(5)), tick(secs(6), healthy(10).fives(1))],
        },
        "
        0s start | progressing 10 | setWeights 90/10 | started
        5s pause | paused 10      | -                | paused
        6s tick  | failed 0       | setWeights 100/0 | rolled back
        ",
    );
    let mut gated = spec(Strategy::Weights {
        weights: vec![W(10), Gate, W(50)],
        interval: Duration::from_secs(10),
    });
    gated.analysis.max_error_rate = Some(0.0);
    check(
        &Scenario {
            spec: gated,
            inputs: vec![
                tick(secs(10), healthy(10)),
                tick(secs(11), healthy(10).error_rate(0.1)),
            ],
        },
        "
        0s  start | progressing 10    | setWeights 90/10 | started
        10s tick  | waitingForGate 10 | -                | step, gate
        11s tick  | failed 0          | setWeights 100/0 | rolled back
        ",
    );
}

/// A canary that passes through every live phase: progressing at two steps, paused, and at
/// a gate. Promote and abort are tried after each prefix of it.
fn every_live_phase() -> (rollout::CanarySpec, Vec<rollout::Input>, Vec<&'static str>) {
    use StepSpec::{Gate, Weight as W};
    let mut spec = spec(Strategy::Weights {
        weights: vec![W(10), W(20), Gate, W(50)],
        interval: Duration::from_secs(10),
    });
    spec.on_success.remove_stable = true;
    spec.on_failure.remove_canary = true;
    let inputs = vec![
        tick(secs(10), healthy(5)),
        pause(secs(12)),
        resume(secs(14)),
        tick(secs(22), healthy(5)),
    ];
    let lines = vec![
        "0s start | progressing 10 | setWeights 90/10 | started",
        "10s tick | progressing 20 | setWeights 80/20 | step",
        "12s pause | paused 20 | - | paused",
        "14s resume | progressing 20 | - | resumed",
        "22s tick | waitingForGate 20 | - | step, gate",
    ];
    (spec, inputs, lines)
}

#[test]
fn promote_works_in_every_live_phase() {
    let (spec, inputs, lines) = every_live_phase();
    for k in 0..=inputs.len() {
        let mut scenario = Scenario {
            spec: spec.clone(),
            inputs: inputs[..k].to_vec(),
        };
        scenario.inputs.push(promote(secs(30)));
        let mut expected = lines[..=k].join("\n");
        expected
            .push_str("\n30s promote | succeeded 100 | setWeights 0/100, removeStable | promoted");
        let run = check(&scenario, &expected);
        assert!(
            run.last()
                .reason
                .as_deref()
                .unwrap()
                .starts_with("promoted by command at step"),
            "{:?}",
            run.last().reason
        );
        assert_eq!(run.last().paused_at, None);
    }
}

#[test]
fn abort_works_in_every_live_phase() {
    let (spec, inputs, lines) = every_live_phase();
    for k in 0..=inputs.len() {
        let mut scenario = Scenario {
            spec: spec.clone(),
            inputs: inputs[..k].to_vec(),
        };
        scenario
            .inputs
            .push(abort(secs(30), "dashboards look wrong"));
        let mut expected = lines[..=k].join("\n");
        expected.push_str("\n30s abort | aborted 0 | setWeights 100/0, removeCanary | aborted");
        let run = check(&scenario, &expected);
        assert_eq!(run.last().reason.as_deref(), Some("dashboards look wrong"));
    }
    let run = check(
        &Scenario {
            spec: spec.clone(),
            inputs: vec![abort(secs(1), "  ")],
        },
        "
        0s start | progressing 10 | setWeights 90/10 | started
        1s abort | aborted 0 | setWeights 100/0, removeCanary | aborted
        ",
    );
    assert_eq!(run.last().reason.as_deref(), Some("aborted by command"));
}

#[test]
fn terminal_canaries_ignore_every_input() {
    let mut spec = spec(steps(50, 10, 100));
    spec.analysis.max_5xx = Some(0);
    let every_input = |from: u64| {
        vec![
            tick(secs(from), healthy(100)),
            tick(secs(from + 1), healthy(100).fives(100)),
            pause(secs(from + 2)),
            resume(secs(from + 3)),
            promote(secs(from + 4)),
            abort(secs(from + 5), "again"),
        ]
    };
    let endings = [
        (
            promote(secs(1)),
            "succeeded 100",
            "setWeights 0/100",
            "promoted",
        ),
        (
            abort(secs(1), "stop"),
            "aborted 0",
            "setWeights 100/0",
            "aborted",
        ),
        (
            tick(secs(1), healthy(1).fives(1)),
            "failed 0",
            "setWeights 100/0",
            "rolled back",
        ),
    ];
    for (ending, phase, action, event) in endings {
        let label = match ending {
            rollout::Input::Promote { .. } => "promote",
            rollout::Input::Abort { .. } => "abort",
            _ => "tick",
        };
        let mut inputs = vec![ending];
        inputs.extend(every_input(10));
        let expected = format!(
            "0s start | progressing 50 | setWeights 50/50 | started
             1s {label} | {phase} | {action} | {event}
             10s tick | {phase} | - | -
             11s tick | {phase} | - | -
             12s pause | {phase} | - | -
             13s resume | {phase} | - | -
             14s promote | {phase} | - | -
             15s abort | {phase} | - | -"
        );
        let run = check(
            &Scenario {
                spec: spec.clone(),
                inputs,
            },
            &expected,
        );
        assert!(run.states[1..].windows(2).all(|w| w[0] == w[1]));
    }
}

#[test]
fn a_restart_in_the_middle_changes_nothing() {
    let mut spec = spec(steps(20, 30, 100));
    smoke(&mut spec);
    spec.analysis.max_5xx = Some(3);
    let ok = |at| tick(at, healthy(30).hook("smoke", Ok(())));
    let inputs = vec![
        ok(secs(30)),
        ok(secs(45)),
        pause(secs(50)),
        resume(secs(70)),
        ok(secs(80) - 250),
        ok(secs(80)),
        tick(secs(81), healthy(30).fives(4)),
    ];
    let whole = Scenario {
        spec: spec.clone(),
        inputs: inputs.clone(),
    };
    let expected = "
        0s       start  | progressing 20 | setWeights 80/20, callWebhooks | started
        30s      tick   | progressing 40 | setWeights 60/40, callWebhooks | step
        45s      tick   | progressing 40 | -                              | -
        50s      pause  | paused 40      | -                              | paused
        1m10s    resume | progressing 40 | -                              | resumed
        1m19s750ms tick | progressing 40 | -                              | -
        1m20s    tick   | progressing 60 | setWeights 40/60, callWebhooks | step
        1m21s    tick   | failed 0       | setWeights 100/0               | rolled back
    ";
    let uninterrupted = check(&whole, expected);

    // The driver stops after the pause was stored; a new one reads spec and state back.
    let (mut state, _) = start(&spec, T0);
    for input in &inputs[..3] {
        state = step(&spec, &state, input.clone()).0;
    }
    let stored_spec = serde_json::to_string(&spec).unwrap();
    let stored_state = serde_json::to_string(&state).unwrap();
    let spec: rollout::CanarySpec = serde_json::from_str(&stored_spec).unwrap();
    let mut state: rollout::CanaryState = serde_json::from_str(&stored_state).unwrap();
    assert_eq!(state.phase, Phase::Paused);
    assert_eq!(
        reconcile(&spec, &state),
        vec![
            Action::SetWeights {
                stable: 60,
                canary: 40
            },
            Action::CallWebhooks
        ]
    );
    assert_eq!(next_deadline(&spec, &state), None);
    let mut states = Vec::new();
    for input in &inputs[3..] {
        state = step(&spec, &state, input.clone()).0;
        states.push(state.clone());
    }
    assert_eq!(states, uninterrupted.states[4..]);
    assert_eq!(
        reconcile(&spec, &state),
        vec![Action::SetWeights {
            stable: 100,
            canary: 0
        }]
    );
}

#[test]
fn validate_reports_every_problem_at_once() {
    use StepSpec::Weight as W;
    let mut spec = spec(Strategy::Weights {
        weights: vec![W(0), W(50), W(40), W(101)],
        interval: Duration::from_secs(25 * 3600),
    });
    spec.canary_node = spec.stable_node.clone();
    spec.analysis.max_error_rate = Some(2.0);
    spec.analysis.max_p99_ms = Some(f64::NAN);
    spec.analysis.progress_deadline = Duration::from_secs(60);
    spec.analysis.webhooks = vec![
        Webhook {
            name: "a".into(),
            url: "ftp://x".into(),
            timeout: Duration::from_secs(1),
        },
        Webhook {
            name: "a".into(),
            url: "http://ok/".into(),
            timeout: Duration::from_secs(1),
        },
    ];
    let problems = validate(&spec);
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "canaryNode",
            "strategy.weights[0]",
            "strategy.weights[2]",
            "strategy.weights[3]",
            "strategy.interval",
            "analysis.maxErrorRate",
            "analysis.maxP99Ms",
            "analysis.progressDeadline",
            "analysis.webhooks[0].url",
            "analysis.webhooks[1].name",
        ],
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 10);

    // Started anyway, it refuses without touching anything: with the canary named as the
    // stable node, even a rollback or a removal would hit the stable version.
    spec.on_failure.remove_canary = true;
    let (state, actions) = start(&spec, T0);
    assert_eq!(actions, vec![]);
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.history.len(), 1);
    assert_eq!(state.history[0].event, Event::Rejected);
    let reason = state.reason.clone().unwrap();
    assert!(
        reason.starts_with("invalid spec: canaryNode: must differ from stableNode"),
        "{reason}"
    );
    for problem in &problems {
        assert!(
            reason.contains(&problem.to_string()),
            "{reason} lacks {problem}"
        );
    }
    assert_eq!(reconcile(&spec, &state), vec![]);
}

#[test]
fn a_clock_that_goes_back_only_waits() {
    let spec = spec(steps(10, 30, 100));
    let (state, _) = start(&spec, T0);
    let (after, actions) = step(
        &spec,
        &state,
        rollout::Input::Tick {
            now: T0 - secs(3600),
            observation: healthy(100),
        },
    );
    assert_eq!((after, actions), (state.clone(), vec![]));
    let (after, _) = step(
        &spec,
        &state,
        rollout::Input::Tick {
            now: 0,
            observation: healthy(1),
        },
    );
    assert_eq!(after.phase, Phase::Progressing);
}

#[test]
fn a_mirror_step_then_an_ab_step_come_before_the_weights_and_say_how_requests_reach_the_canary() {
    use StepSpec::{Match, Mirror, Weight as W};
    let mut spec = spec(steps(50, 30, 100));
    spec.mirror = Some(rollout::Mirror { percent: 20 });
    spec.matches = vec![rollout::RequestMatch {
        header: Some("x-canary".into()),
        exact: Some("always".into()),
        ..Default::default()
    }];
    spec.sticky = Some(rollout::Sticky::default());
    let run = check(
        &Scenario {
            spec: spec.clone(),
            inputs: (1..=3).map(|i| tick(secs(30 * i), healthy(5))).collect(),
        },
        "
        0s    start | progressing 0  | setWeights 100/0 | started
        30s   tick  | progressing 0  | setWeights 100/0 | step
        1m    tick  | progressing 50 | setWeights 50/50 | step
        1m30s tick  | succeeded 100  | setWeights 0/100 | promoted
        ",
    );
    assert_eq!(run.states[0].steps, vec![Mirror(20), Match, W(50)]);
    assert_eq!(
        run.states[0].history[0].reason,
        "step 1 of 3: 20% of requests copied to canary product-2-vn (answers discarded), all \
         answered by stable product-vn"
    );
    assert_eq!(
        run.states[1].history[1].reason,
        "step 1 of 3 (mirror 20%) passed with 5 canary requests in 30s; step 2 of 3: requests \
         with header x-canary = \"always\" to canary product-2-vn, all others to stable \
         product-vn"
    );
    // What the proxies do in each: mirror only, then the rules, then the rules and the cookie.
    let exposed = |i: usize| rollout::exposure(&spec, &run.states[i]);
    let mirror = exposed(0).expect("the mirror step exposes the canary");
    assert_eq!(mirror.mirror_percent, Some(20));
    assert!(mirror.matches.is_empty() && mirror.sticky.is_none());
    let ab = exposed(1).expect("the A/B step exposes the canary");
    assert_eq!((ab.mirror_percent, ab.matches.len()), (None, 1));
    assert!(
        ab.sticky.is_none(),
        "no cookie while the canary has no weight"
    );
    let weighted = exposed(2).expect("a weighted step keeps the rules");
    assert_eq!(weighted.matches.len(), 1);
    assert_eq!(
        weighted.sticky.map(|s| s.cookie.as_str()),
        Some("aviary-canary")
    );
    assert_eq!(
        exposed(3),
        None,
        "a promoted canary needs nothing of the proxies"
    );
    assert_eq!(
        rollout::exposure(&self::spec(steps(50, 30, 100)), &run.states[2]),
        None
    );
}

/// A replicas canary of 4: one replica more for the canary each interval (3/1, 2/2, 1/3), its
/// texts in replicas, then all 4; and every weight it can step to maps back to its replicas.
#[test]
fn a_replicas_canary_moves_one_replica_at_a_time() {
    let mut spec = spec(Strategy::Replicas {
        stable_workload: "product-v1".into(),
        canary_workload: "product-v2".into(),
        total: 4,
        interval: Duration::from_secs(30),
    });
    spec.router.clear();
    spec.route.clear();
    spec.canary_node = spec.stable_node.clone();
    spec.analysis.max_5xx = Some(0);
    assert_eq!(validate(&spec), vec![]);
    let scenario = Scenario {
        spec: spec.clone(),
        inputs: vec![
            tick(secs(30), healthy(50)),
            tick(secs(60), healthy(50)),
            tick(secs(90), healthy(50)),
        ],
    };
    let run = check(
        &scenario,
        "
        0s       start | progressing 25 | setWeights 75/25 | started
        30s      tick  | progressing 50 | setWeights 50/50 | step
        1m       tick  | progressing 75 | setWeights 25/75 | step
        1m30s    tick  | succeeded 100  | setWeights 0/100 | promoted
        ",
    );
    let first = &run.states[0];
    assert_eq!(
        first.history[0].reason,
        "step 1 of 3: 1 of 4 replicas run canary product-v2, 3 stable product-v1"
    );
    assert_eq!(
        run.states[1].history[1].reason,
        "step 1 of 3 (1 of 4 replicas) passed with 50 canary requests in 30s; step 2 of 3: 2 \
         of 4 replicas"
    );
    // A failing canary is named by its workload.
    let failed = step(&spec, first, tick(secs(5), healthy(50).fives(1))).0;
    assert_eq!(failed.phase, Phase::Failed);
    assert!(
        failed
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("canary product-v2 answered 1 5xx")),
        "{:?}",
        failed.reason
    );
    for total in 2..=rollout::MAX_REPLICA_TOTAL {
        let mut spec = spec.clone();
        let Strategy::Replicas { total: t, .. } = &mut spec.strategy else {
            unreachable!()
        };
        *t = total;
        let split = spec.replicas().unwrap();
        let steps = spec.steps();
        assert_eq!(steps.len() as u32, total - 1, "total {total}");
        for (k, step) in (1..).zip(&steps) {
            let StepSpec::Weight(w) = *step else {
                panic!("total {total}: {step:?}")
            };
            assert_eq!(split.counts(w), (total - k, k), "total {total}, weight {w}");
        }
        assert_eq!(split.counts(0), (total, 0));
        assert_eq!(split.counts(100), (0, total));
    }
}
