//! The JSON the control plane stores and the CLI shows: exact shapes of spec, state, inputs and actions, and errors that name the text.

use std::time::Duration;

use rollout::{
    Action, Analysis, CanarySpec, CanaryState, Input, NoTraffic, NodeWindow, Observation,
    OnFailure, OnSuccess, StepSpec, Strategy, Webhook, WebhookResult, start, step,
};
use serde_json::{Value, json};

use crate::support::{T0, healthy, secs, tick};

fn example_json() -> Value {
    json!({
        "mesh": "demomesh",
        "router": "product-vr",
        "route": "product-route",
        "stableNode": "product-vn",
        "canaryNode": "product-2-vn",
        "strategy": {"type": "steps", "stepWeight": 10, "interval": "30s", "maxWeight": 100},
        "analysis": {
            "max5xx": 0,
            "failureWindow": "1m",
            "maxErrorRate": 0.01,
            "maxP99Ms": 500.0,
            "minRequests": 20,
            "progressDeadline": "5m",
            "webhooks": [{"name": "smoke", "url": "http://127.0.0.1:9000/smoke", "timeout": "2s"}]
        },
        "onSuccess": {"removeStable": true},
        "onFailure": {"removeCanary": true}
    })
}

fn example() -> CanarySpec {
    CanarySpec {
        mesh: "demomesh".into(),
        router: "product-vr".into(),
        route: "product-route".into(),
        stable_node: "product-vn".into(),
        canary_node: "product-2-vn".into(),
        strategy: Strategy::Steps {
            step_weight: 10,
            interval: Duration::from_secs(30),
            max_weight: 100,
        },
        analysis: Analysis {
            max_5xx: Some(0),
            failure_window: Duration::from_secs(60),
            max_error_rate: Some(0.01),
            max_p99_ms: Some(500.0),
            min_requests: 20,
            progress_deadline: Duration::from_secs(300),
            webhooks: vec![Webhook {
                name: "smoke".into(),
                url: "http://127.0.0.1:9000/smoke".into(),
                timeout: Duration::from_secs(2),
            }],
            compare: None,
            no_traffic: NoTraffic::Wait,
            prometheus: Vec::new(),
            load: None,
        },
        on_success: OnSuccess {
            remove_stable: true,
        },
        on_failure: OnFailure {
            remove_canary: true,
        },
        notify: Vec::new(),
        mirror: None,
        matches: Vec::new(),
        sticky: None,
    }
}

#[test]
fn a_spec_reads_and_writes_the_documented_shape() {
    let spec: CanarySpec = serde_json::from_value(example_json()).unwrap();
    assert_eq!(spec, example());
    assert_eq!(serde_json::to_value(&spec).unwrap(), example_json());
}

#[test]
fn a_spec_needs_little_and_defaults_the_rest() {
    let spec: CanarySpec = serde_json::from_value(json!({
        "mesh": "m", "router": "r", "route": "rt", "stableNode": "a", "canaryNode": "b",
        "strategy": {"type": "steps", "stepWeight": 20, "interval": "1m"}
    }))
    .unwrap();
    assert_eq!(
        spec.strategy,
        Strategy::Steps {
            step_weight: 20,
            interval: Duration::from_secs(60),
            max_weight: 100
        }
    );
    assert_eq!(spec.analysis, Analysis::default());
    assert_eq!(spec.analysis.failure_window, Duration::from_secs(60));
    assert_eq!(spec.analysis.min_requests, 1);
    assert_eq!(spec.analysis.progress_deadline, Duration::from_secs(600));
    assert!(!spec.on_success.remove_stable && !spec.on_failure.remove_canary);
    assert_eq!(
        serde_json::to_value(&spec.analysis).unwrap(),
        json!({"failureWindow": "1m", "minRequests": 1, "progressDeadline": "10m", "webhooks": []})
    );
}

#[test]
fn every_strategy_has_its_shape() {
    use StepSpec::{Gate, Weight as W};
    for (value, strategy) in [
        (
            json!({"type": "weights", "weights": [1, 5, 25, 50, "gate", 100], "interval": "1m"}),
            Strategy::Weights {
                weights: vec![W(1), W(5), W(25), W(50), Gate, W(100)],
                interval: Duration::from_secs(60),
            },
        ),
        (
            json!({"type": "initial", "weight": 10, "duration": "5m"}),
            Strategy::Initial {
                weight: 10,
                duration: Duration::from_secs(300),
            },
        ),
        (
            json!({"type": "replicas", "stableWorkload": "web-v1", "canaryWorkload": "web-v2",
                   "total": 4, "interval": "30s"}),
            Strategy::Replicas {
                stable_workload: "web-v1".into(),
                canary_workload: "web-v2".into(),
                total: 4,
                interval: Duration::from_secs(30),
            },
        ),
    ] {
        assert_eq!(
            serde_json::from_value::<Strategy>(value.clone()).unwrap(),
            strategy
        );
        assert_eq!(serde_json::to_value(&strategy).unwrap(), value);
    }
}

#[track_caller]
fn spec_error(change: impl FnOnce(&mut Value)) -> String {
    let mut value = example_json();
    change(&mut value);
    serde_json::from_value::<CanarySpec>(value)
        .expect_err("must not parse")
        .to_string()
}

#[test]
fn bad_json_is_refused_with_a_message_naming_it() {
    type Change = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|v| v["strategy"]["interval"] = json!("30 seconds")),
            "invalid duration \"30 seconds\": unexpected ' ' after 30",
        ),
        (
            Box::new(|v| v["analysis"]["failureWindow"] = json!("1.5m")),
            "invalid duration \"1.5m\": fractions are not supported",
        ),
        (
            Box::new(|v| v["strategy"]["interval"] = json!(30)),
            "invalid type: integer `30`, expected a string",
        ),
        (
            Box::new(|v| v["strategy"]["stepWieght"] = json!(10)),
            "unknown field `stepWieght`",
        ),
        (
            Box::new(|v| v["analysis"]["maxErorRate"] = json!(0.1)),
            "unknown field `maxErorRate`",
        ),
        (
            Box::new(|v| v["strategy"]["type"] = json!("linear")),
            "unknown variant `linear`",
        ),
        (
            Box::new(|v| {
                v["strategy"] = json!({"type": "weights", "weights": [1, "wait"], "interval": "1m"})
            }),
            "\"wait\" is not a step: expected a weight from 1 to 100 or \"gate\"",
        ),
        (
            Box::new(|v| {
                v["strategy"] = json!({"type": "weights", "weights": [-5], "interval": "1m"})
            }),
            "weight -5 is not between 1 and 100",
        ),
        (
            Box::new(|v| {
                v["strategy"] = json!({"type": "weights", "weights": [1.5], "interval": "1m"})
            }),
            "expected a weight from 1 to 100 or \"gate\"",
        ),
        (
            Box::new(|v| {
                v["strategy"] =
                    json!({"type": "weights", "weights": [5000000000u64], "interval": "1m"})
            }),
            "weight 5000000000 is not between 1 and 100",
        ),
    ];
    for (change, expected) in cases {
        let message = spec_error(change);
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[test]
fn a_state_reads_and_writes_the_documented_shape() {
    let spec = example();
    let (state, _) = start(&spec, T0);
    let observation = healthy(25).hook("smoke", Ok(()));
    let (state, actions) = step(&spec, &state, tick(secs(30), observation));
    assert_eq!(
        serde_json::to_value(&actions).unwrap(),
        json!([{"type": "setWeights", "stable": 80, "canary": 20}, {"type": "callWebhooks"}])
    );
    let value = json!({
        "phase": "progressing",
        "step": 1,
        "steps": [10, 20, 30, 40, 50, 60, 70, 80, 90],
        "canaryWeight": 20,
        "stepStartedAt": 1_700_000_030_000u64,
        "lastProgressAt": 1_700_000_030_000u64,
        "pausedAt": null,
        "reason": null,
        "history": [
            {
                "at": 1_700_000_000_000u64,
                "event": "started",
                "canaryWeight": 10,
                "reason": "step 1 of 9: 10% to canary product-2-vn, 90% to stable product-vn"
            },
            {
                "at": 1_700_000_030_000u64,
                "event": "step",
                "canaryWeight": 20,
                "reason": "step 1 of 9 (10%) passed with 25 canary requests in 30s and every \
                           webhook; step 2 of 9: 20%"
            }
        ],
        "evidence": {
            "steps": [{
                "weight": 10,
                "canary": {"requests": 25, "errors": 0, "timed": 0, "slow": 0},
                "stable": {"requests": 225, "errors": 0, "timed": 0, "slow": 0}
            }],
            "windowStartedAt": 1_700_000_030_000u64
        }
    });
    assert_eq!(serde_json::to_value(&state).unwrap(), value);
    assert_eq!(serde_json::from_value::<CanaryState>(value).unwrap(), state);
}

use crate::support::Seen;

#[test]
fn phases_and_events_are_words() {
    let spec = example();
    let (state, _) = start(&spec, T0);
    let (paused, _) = step(&spec, &state, Input::Pause { now: T0 + 1 });
    let (aborted, _) = step(
        &spec,
        &paused,
        Input::Abort {
            now: T0 + 2,
            reason: "no".into(),
        },
    );
    let value = serde_json::to_value(&aborted).unwrap();
    assert_eq!(value["phase"], "aborted");
    let events: Vec<&str> = value["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["started", "paused", "aborted"]);
    assert_eq!(
        serde_json::to_value(rollout::Phase::WaitingForGate).unwrap(),
        "waitingForGate"
    );
    assert_eq!(
        serde_json::to_value(rollout::Event::RolledBack).unwrap(),
        "rolled back"
    );
}

#[test]
fn inputs_and_actions_are_tagged_by_type() {
    for (input, value) in [
        (Input::Pause { now: 5 }, json!({"type": "pause", "now": 5})),
        (
            Input::Resume { now: 6 },
            json!({"type": "resume", "now": 6}),
        ),
        (
            Input::Promote { now: 7 },
            json!({"type": "promote", "now": 7}),
        ),
        (
            Input::Abort {
                now: 8,
                reason: "why".into(),
            },
            json!({"type": "abort", "now": 8, "reason": "why"}),
        ),
        (
            Input::Tick {
                now: 9,
                observation: Observation::default(),
            },
            json!({"type": "tick", "now": 9, "observation": {
                "canary": {"requests": 0, "status5xx": 0, "errorRate": 0.0, "p99Ms": null},
                "stable": {"requests": 0, "status5xx": 0, "errorRate": 0.0, "p99Ms": null},
                "canary5xxInFailureWindow": 0,
                "webhooks": []
            }}),
        ),
    ] {
        assert_eq!(serde_json::to_value(&input).unwrap(), value);
        assert_eq!(serde_json::from_value::<Input>(value).unwrap(), input);
    }
    for (action, value) in [
        (Action::RemoveStable, json!({"type": "removeStable"})),
        (Action::RemoveCanary, json!({"type": "removeCanary"})),
        (Action::CallWebhooks, json!({"type": "callWebhooks"})),
    ] {
        assert_eq!(serde_json::to_value(action).unwrap(), value);
        assert_eq!(serde_json::from_value::<Action>(value).unwrap(), action);
    }
}

#[test]
fn a_node_of_the_stats_api_is_a_node_window() {
    let node: NodeWindow = serde_json::from_value(json!({
        "virtualNode": "product-2-vn", "requests": 40, "requestsPerSecond": 4.0,
        "status2xx": 30, "status4xx": 0, "status5xx": 10, "failures": 0,
        "errorRate": 0.25, "p50Ms": 5.0, "p99Ms": 12.0
    }))
    .unwrap();
    assert_eq!(
        node,
        NodeWindow {
            requests: 40,
            status_5xx: 10,
            error_rate: 0.25,
            p99_ms: Some(12.0),
            latency_buckets: vec![],
        }
    );
}

#[test]
fn webhook_results_say_passed_or_why_not() {
    for (result, value) in [
        (
            WebhookResult {
                name: "smoke".into(),
                outcome: Ok(()),
            },
            json!({"name": "smoke", "passed": true}),
        ),
        (
            WebhookResult {
                name: "smoke".into(),
                outcome: Err("timed out after 2s".into()),
            },
            json!({"name": "smoke", "passed": false, "error": "timed out after 2s"}),
        ),
    ] {
        assert_eq!(serde_json::to_value(&result).unwrap(), value);
        assert_eq!(
            serde_json::from_value::<WebhookResult>(value).unwrap(),
            result
        );
    }
    let bare: WebhookResult =
        serde_json::from_value(json!({"name": "smoke", "passed": false})).unwrap();
    assert_eq!(bare.outcome, Err("failed".into()));
}

#[test]
fn the_comparison_and_no_traffic_policy_have_their_shapes() {
    use rollout::{Compare, LatencyCompare};
    let mut value = example_json();
    value["analysis"]["compare"] = json!({
        "confidence": 0.995,
        "maxErrorRateIncrease": 0.01,
        "latency": {"quantile": 0.9, "maxSlowShareIncrease": 0.02}
    });
    value["analysis"]["noTraffic"] = json!("pass");
    let spec: CanarySpec = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(
        spec.analysis.compare,
        Some(Compare {
            confidence: 0.995,
            max_error_rate_increase: 0.01,
            latency: Some(LatencyCompare {
                quantile: 0.9,
                max_slow_share_increase: 0.02
            }),
        })
    );
    assert_eq!(spec.analysis.no_traffic, NoTraffic::Pass);
    assert_eq!(serde_json::to_value(&spec).unwrap(), value);

    // Every field of it has a default.
    let compare: Compare = serde_json::from_value(json!({"latency": {}})).unwrap();
    assert_eq!(
        compare,
        Compare {
            confidence: 0.99,
            max_error_rate_increase: 0.005,
            latency: Some(LatencyCompare {
                quantile: 0.99,
                max_slow_share_increase: 0.01
            }),
        }
    );
    assert_eq!(
        serde_json::to_value(Compare::default()).unwrap(),
        json!({"confidence": 0.99, "maxErrorRateIncrease": 0.005})
    );
    for (text, policy) in [
        ("wait", NoTraffic::Wait),
        ("pass", NoTraffic::Pass),
        ("fail", NoTraffic::Fail),
    ] {
        assert_eq!(serde_json::to_value(policy).unwrap(), text);
    }
    let message = spec_error(|v| v["analysis"]["compare"] = json!({"confidense": 0.9}));
    assert!(message.contains("unknown field `confidense`"), "{message}");
    let message = spec_error(|v| v["analysis"]["noTraffic"] = json!("skip"));
    assert!(message.contains("unknown variant `skip`"), "{message}");
}

/// What a control plane stored before the comparison existed still reads, and drives on.
#[test]
fn json_stored_before_the_comparison_still_reads() {
    let spec: CanarySpec = serde_json::from_value(example_json()).unwrap();
    assert_eq!(spec.analysis.compare, None);
    assert_eq!(spec.analysis.no_traffic, NoTraffic::Wait);
    let old_state = json!({
        "phase": "progressing",
        "step": 1,
        "steps": [10, 20, 30, 40, 50, 60, 70, 80, 90],
        "canaryWeight": 20,
        "stepStartedAt": 1_700_000_030_000u64,
        "lastProgressAt": 1_700_000_030_000u64,
        "pausedAt": null,
        "reason": null,
        "history": []
    });
    let state: CanaryState = serde_json::from_value(old_state).unwrap();
    assert_eq!(state.evidence, rollout::Evidence::default());
    // Its window is the step's, as before.
    assert_eq!(rollout::analysis_window(&state, T0 + secs(40)), secs(10));
    let node: NodeWindow =
        serde_json::from_value(json!({"requests": 4, "status5xx": 1, "errorRate": 0.25})).unwrap();
    assert!(node.latency_buckets.is_empty());
    let (next, _) = step(&spec, &state, tick(secs(40), healthy(30)));
    assert_eq!(next.phase, rollout::Phase::Progressing);
}
