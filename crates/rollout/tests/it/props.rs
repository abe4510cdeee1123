//! Properties over generated specs and inputs: `step` never panics, is deterministic, keeps its invariants, and a healthy canary always finishes.

use std::time::Duration;

use proptest::prelude::*;
use rollout::{
    Analysis, CanarySpec, Compare, Input, LatencyCompare, NoTraffic, NodeWindow, Observation,
    Phase, StepSpec, Webhook, WebhookResult, start, step, validate,
};

use crate::support::{T0, invariants, spec};

fn ms(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_millis)
}

fn any_step() -> impl Strategy<Value = StepSpec> {
    prop_oneof![
        4 => (0u32..=120).prop_map(StepSpec::Weight),
        1 => Just(StepSpec::Gate),
    ]
}

fn any_strategy() -> impl Strategy<Value = rollout::Strategy> {
    prop_oneof![
        (0u32..=120, ms(0..=90_000), 0u32..=120).prop_map(|(step_weight, interval, max_weight)| {
            rollout::Strategy::Steps {
                step_weight,
                interval,
                max_weight,
            }
        }),
        (proptest::collection::vec(any_step(), 0..8), ms(0..=90_000))
            .prop_map(|(weights, interval)| rollout::Strategy::Weights { weights, interval }),
        (0u32..=120, ms(0..=90_000))
            .prop_map(|(weight, duration)| rollout::Strategy::Initial { weight, duration }),
    ]
}

/// Strategies that pass validation (given a deadline of at least their interval).
fn valid_strategy() -> impl Strategy<Value = rollout::Strategy> {
    let weights = (
        proptest::collection::btree_set(1u32..=100, 1..8),
        proptest::collection::vec(any::<bool>(), 8),
    )
        .prop_filter("a weight below 100", |(set, _)| {
            set.iter().any(|w| *w < 100)
        })
        .prop_map(|(set, gates)| {
            let mut list = Vec::new();
            for (w, gate) in set.into_iter().zip(gates) {
                if gate {
                    list.push(StepSpec::Gate);
                }
                list.push(StepSpec::Weight(w));
            }
            list
        });
    prop_oneof![
        (1u32..=100, ms(1..=90_000))
            .prop_flat_map(|(max_weight, interval)| (
                1..=max_weight,
                Just(max_weight),
                Just(interval)
            ))
            .prop_map(|(step_weight, max_weight, interval)| {
                rollout::Strategy::Steps {
                    step_weight,
                    interval,
                    max_weight,
                }
            }),
        (weights, ms(1..=90_000))
            .prop_map(|(weights, interval)| rollout::Strategy::Weights { weights, interval }),
        (1u32..=99, ms(1..=90_000))
            .prop_map(|(weight, duration)| rollout::Strategy::Initial { weight, duration }),
    ]
}

fn maybe_nan(range: std::ops::Range<f64>) -> impl Strategy<Value = f64> {
    prop_oneof![9 => range, 1 => Just(f64::NAN)]
}

fn any_spec() -> impl Strategy<Value = CanarySpec> {
    (
        any_strategy(),
        proptest::option::of(0u64..5),
        proptest::option::of(maybe_nan(-0.1..1.2)),
        proptest::option::of(maybe_nan(-10.0..500.0)),
        0u64..30,
        ms(0..=300_000),
        0usize..=2,
        any::<(bool, bool, bool)>(),
        any_compare(),
        prop_oneof![
            Just(NoTraffic::Wait),
            Just(NoTraffic::Pass),
            Just(NoTraffic::Fail)
        ],
    )
        .prop_map(
            |(
                strategy,
                max_5xx,
                rate,
                p99,
                min_requests,
                deadline,
                hooks,
                flags,
                compare,
                no_traffic,
            )| {
                let mut spec = spec(strategy);
                spec.analysis = Analysis {
                    max_5xx,
                    max_error_rate: rate,
                    max_p99_ms: p99,
                    min_requests,
                    progress_deadline: deadline,
                    webhooks: ["a", "b"][..hooks].iter().map(|name| hook(name)).collect(),
                    compare,
                    no_traffic,
                    ..Analysis::default()
                };
                spec.on_success.remove_stable = flags.0;
                spec.on_failure.remove_canary = flags.1;
                if flags.2 {
                    spec.canary_node = spec.stable_node.clone();
                }
                spec
            },
        )
}

/// Mostly valid comparisons, sometimes with latency, sometimes out of range.
fn any_compare() -> impl Strategy<Value = Option<Compare>> {
    proptest::option::of(
        (
            prop_oneof![4 => 0.6f64..0.9999, 1 => Just(1.0)],
            prop_oneof![4 => 0.001f64..0.5, 1 => Just(0.0)],
            proptest::option::of(0.6f64..0.999),
        )
            .prop_map(|(confidence, increase, quantile)| Compare {
                confidence,
                max_error_rate_increase: increase,
                latency: quantile.map(|quantile| LatencyCompare {
                    quantile,
                    max_slow_share_increase: 0.01,
                }),
            }),
    )
}

fn hook(name: &str) -> Webhook {
    Webhook {
        name: name.into(),
        url: "http://127.0.0.1:1/".into(),
        timeout: Duration::from_secs(1),
    }
}

fn any_window() -> impl Strategy<Value = NodeWindow> {
    (
        0u64..60,
        0u64..5,
        maybe_nan(0.0..1.0),
        proptest::option::of(maybe_nan(0.0..600.0)),
    )
        .prop_map(|(requests, status_5xx, error_rate, p99_ms)| NodeWindow {
            requests,
            status_5xx,
            error_rate,
            p99_ms,
            // Latency in a few buckets around 20 ms, as many requests as there are.
            latency_buckets: vec![
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                requests / 2,
                requests - requests / 2,
            ],
        })
}

fn any_observation() -> impl Strategy<Value = Observation> {
    (
        any_window(),
        any_window(),
        0u64..6,
        proptest::collection::vec((prop_oneof!["a", "b", "c"], any::<bool>()), 0..3),
    )
        .prop_map(|(canary, stable, fives, hooks)| Observation {
            canary,
            stable,
            canary_5xx_in_failure_window: fives,
            webhooks: hooks
                .into_iter()
                .map(|(name, ok)| WebhookResult {
                    name,
                    outcome: if ok { Ok(()) } else { Err("HTTP 500".into()) },
                })
                .collect(),
            metrics: Vec::new(),
            covered_ms: None,
        })
}

/// Inputs at times that mostly move forward, sometimes stay, sometimes go back.
fn any_inputs() -> impl Strategy<Value = Vec<Input>> {
    let one = (-2_000i64..40_000, 0u8..20, any_observation());
    proptest::collection::vec(one, 0..40).prop_map(|raw| {
        let mut now = T0;
        raw.into_iter()
            .map(|(delta, kind, observation)| {
                now = now.saturating_add_signed(delta);
                match kind {
                    0 => Input::Pause { now },
                    1 => Input::Resume { now },
                    2 => Input::Promote { now },
                    3 => Input::Abort {
                        now,
                        reason: String::new(),
                    },
                    _ => Input::Tick { now, observation },
                }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn step_never_panics_is_deterministic_and_keeps_its_invariants(
        spec in any_spec(),
        inputs in any_inputs(),
    ) {
        let (mut state, actions) = start(&spec, T0);
        prop_assert_eq!(start(&spec, T0), (state.clone(), actions.clone()));
        if !validate(&spec).is_empty() {
            prop_assert_eq!(state.phase, Phase::Failed);
            prop_assert!(actions.is_empty());
        }
        for input in inputs {
            let (after, actions) = step(&spec, &state, input.clone());
            prop_assert_eq!(
                step(&spec, &state, input.clone()),
                (after.clone(), actions.clone())
            );
            invariants(&spec, &state, &after, &actions, &input);
            let text = serde_json::to_string(&after).unwrap();
            prop_assert_eq!(&serde_json::from_str::<rollout::CanaryState>(&text).unwrap(), &after);
            state = after;
        }
    }

    #[test]
    fn a_valid_spec_expands_to_increasing_weights_below_100(
        strategy in valid_strategy(),
        weird in any_spec(),
    ) {
        let mut spec = spec(strategy);
        spec.analysis.progress_deadline = spec.strategy.interval();
        prop_assert_eq!(validate(&spec), vec![]);
        // Unvalidated specs expand to something small and sane too.
        prop_assert!(weird.strategy.expand().len() <= 100);
        prop_assert!(weird
            .strategy
            .expand()
            .iter()
            .all(|s| matches!(s, StepSpec::Gate | StepSpec::Weight(0..=99))));
        let weights: Vec<u32> = spec
            .strategy
            .expand()
            .into_iter()
            .filter_map(|s| match s { StepSpec::Weight(w) => Some(w), _ => None })
            .collect();
        prop_assert!(!weights.is_empty());
        prop_assert!(weights.iter().all(|w| (1..100).contains(w)), "{:?}", weights);
        prop_assert!(weights.windows(2).all(|p| p[0] < p[1]), "{:?}", weights);
        if let rollout::Strategy::Steps { max_weight, .. } = spec.strategy
            && max_weight < 100
        {
            prop_assert_eq!(weights.last(), Some(&max_weight));
        }
        let (state, actions) = start(&spec, T0);
        prop_assert!(matches!(state.phase, Phase::Progressing | Phase::WaitingForGate));
        prop_assert!(!actions.is_empty());
    }

    #[test]
    fn a_healthy_canary_with_traffic_always_promotes(
        strategy in valid_strategy(),
        min_requests in 0u64..50,
        hooks in 0usize..=2,
    ) {
        let mut spec = spec(strategy);
        spec.analysis.max_5xx = Some(0);
        spec.analysis.max_error_rate = Some(0.0);
        spec.analysis.min_requests = min_requests;
        spec.analysis.progress_deadline = spec.strategy.interval() * 2;
        spec.analysis.webhooks = ["a", "b"][..hooks].iter().map(|name| hook(name)).collect();
        prop_assert_eq!(validate(&spec), vec![]);
        let interval = spec.strategy.interval().as_millis() as u64;
        let seen = Observation {
            canary: NodeWindow { requests: min_requests, ..NodeWindow::default() },
            webhooks: spec
                .analysis
                .webhooks
                .iter()
                .map(|h| WebhookResult { name: h.name.clone(), outcome: Ok(()) })
                .collect(),
            ..Observation::default()
        };
        let (mut state, _) = start(&spec, T0);
        let mut now = T0;
        for _ in 0..=2 * spec.strategy.expand().len() {
            if state.phase.is_terminal() {
                break;
            }
            now += interval;
            let input = if state.phase == Phase::WaitingForGate {
                Input::Resume { now }
            } else {
                Input::Tick { now, observation: seen.clone() }
            };
            state = step(&spec, &state, input).0;
        }
        prop_assert_eq!(state.phase, Phase::Succeeded, "{:#?}", state.history);
        prop_assert_eq!(state.canary_weight, 100);
    }
}
