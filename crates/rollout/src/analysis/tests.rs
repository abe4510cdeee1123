//! Unit tests of the analysis: which checks fail, in what order, with what words.

use std::time::Duration;

use crate::observe::{MetricResult, NodeWindow, Observation, WebhookResult};
use crate::spec::{Analysis, CanarySpec, PrometheusCheck, Strategy, Webhook, fixture};
use crate::state::{CanaryState, Phase};

use super::{blockers, failures, number, percent};

fn spec(analysis: Analysis) -> CanarySpec {
    fixture(
        Strategy::Steps {
            step_weight: 10,
            interval: Duration::from_secs(30),
            max_weight: 100,
        },
        analysis,
    )
}

fn state(step_started_at: u64) -> CanaryState {
    CanaryState {
        phase: Phase::Progressing,
        step: 1,
        steps: vec![],
        canary_weight: 20,
        step_started_at,
        last_progress_at: step_started_at,
        paused_at: None,
        reason: None,
        history: vec![],
        evidence: Default::default(),
    }
}

fn texts(waits: Vec<crate::status::Wait>) -> Vec<String> {
    waits.iter().map(ToString::to_string).collect()
}

fn window(requests: u64, error_rate: f64, p99_ms: Option<f64>) -> NodeWindow {
    NodeWindow {
        requests,
        status_5xx: 0,
        error_rate,
        p99_ms,
        latency_buckets: vec![],
    }
}

#[test]
fn numbers_read_like_people_write_them() {
    assert_eq!(percent(0.05), "5%");
    assert_eq!(percent(0.125), "12.5%");
    assert_eq!(percent(0.0004), "0.04%");
    assert_eq!(percent(1.0), "100%");
    assert_eq!(number(812.456), "812.46");
    assert_eq!(number(3.0), "3");
    assert_eq!(number(f64::NAN), "NaN");
}

#[test]
fn every_failing_check_is_named_in_order() {
    let spec = spec(Analysis {
        max_5xx: Some(0),
        max_error_rate: Some(0.05),
        max_p99_ms: Some(500.0),
        webhooks: vec![Webhook {
            name: "smoke".into(),
            url: "http://x/".into(),
            timeout: Duration::from_secs(1),
        }],
        ..Analysis::default()
    });
    let seen = Observation {
        canary: window(40, 0.25, Some(812.456)),
        stable: window(400, 0.0, Some(20.0)),
        canary_5xx_in_failure_window: 10,
        webhooks: vec![WebhookResult {
            name: "smoke".into(),
            outcome: Err("HTTP 503".into()),
        }],
        metrics: Vec::new(),
        covered_ms: None,
    };
    assert_eq!(
        failures(&spec, &state(1_000), 13_500, &seen),
        vec![
            "canary product-2-vn answered 10 5xx in the last 1m; the limit is 0",
            "canary product-2-vn error rate is 25% over 40 requests in this step (the last \
             12s500ms); the limit is 5% (stable: 0% over 400 requests)",
            "canary product-2-vn p99 latency is 812.46 ms in this step (the last 12s500ms); \
             the limit is 500 ms (stable: 20 ms)",
            "webhook \"smoke\" failed in step 2: HTTP 503",
        ]
    );
}

#[test]
fn rates_and_latency_need_a_request_and_a_number() {
    let spec = spec(Analysis {
        max_error_rate: Some(0.0),
        max_p99_ms: Some(1.0),
        ..Analysis::default()
    });
    let judged = |canary| {
        let seen = Observation {
            canary,
            ..Observation::default()
        };
        failures(&spec, &state(0), 1_000, &seen).len()
    };
    assert_eq!(judged(window(0, 1.0, Some(900.0))), 0);
    assert_eq!(judged(window(1, f64::NAN, Some(f64::NAN))), 0);
    assert_eq!(judged(window(1, 0.0, None)), 0);
    assert_eq!(judged(window(1, 0.01, Some(2.0))), 2);
}

#[test]
fn at_the_limit_passes_above_it_fails() {
    let spec = spec(Analysis {
        max_5xx: Some(3),
        ..Analysis::default()
    });
    let with = |n| Observation {
        canary_5xx_in_failure_window: n,
        ..Observation::default()
    };
    assert!(failures(&spec, &state(0), 0, &with(3)).is_empty());
    assert_eq!(failures(&spec, &state(0), 0, &with(4)).len(), 1);
}

#[test]
fn a_step_waits_for_requests_and_every_webhook() {
    let hook = |name: &str| Webhook {
        name: name.into(),
        url: "http://x/".into(),
        timeout: Duration::from_secs(1),
    };
    let spec = spec(Analysis {
        min_requests: 20,
        webhooks: vec![hook("a"), hook("b")],
        ..Analysis::default()
    });
    let seen = Observation {
        canary: window(3, 0.0, None),
        webhooks: vec![
            WebhookResult {
                name: "a".into(),
                outcome: Ok(()),
            },
            WebhookResult {
                name: "unknown".into(),
                outcome: Ok(()),
            },
        ],
        ..Observation::default()
    };
    assert_eq!(
        texts(blockers(&spec, &state(0), 120_000, &seen)),
        vec![
            "waiting for traffic: 3 of 20 canary requests in this step",
            "webhook \"b\" has not passed step 2 yet",
        ]
    );
    let enough = Observation {
        canary: window(20, 0.0, None),
        webhooks: vec!["b", "a"]
            .into_iter()
            .map(|name| WebhookResult {
                name: name.into(),
                outcome: Ok(()),
            })
            .collect(),
        ..Observation::default()
    };
    assert!(blockers(&spec, &state(0), 120_000, &enough).is_empty());
}

#[test]
fn a_step_waits_for_an_interval_of_fresh_stats_but_a_failure_does_not() {
    let spec = spec(Analysis::default());
    let healthy = Observation {
        canary: window(50, 0.0, Some(20.0)),
        stable: window(450, 0.0, Some(20.0)),
        ..Observation::default()
    };
    // A new leader 10 s into its term, 2 minutes into a 30 s step: its own stats are too few.
    let fresh = Observation {
        covered_ms: Some(10_000),
        ..healthy.clone()
    };
    assert_eq!(
        texts(blockers(&spec, &state(0), 120_000, &fresh)),
        vec![
            "waiting for fresh stats: this control plane has 10s of them, a step needs 30s \
             (it started driving canaries 10s ago)"
        ]
    );
    let enough = Observation {
        covered_ms: Some(30_000),
        ..healthy.clone()
    };
    assert!(blockers(&spec, &state(0), 120_000, &enough).is_empty());
    assert!(blockers(&spec, &state(0), 120_000, &healthy).is_empty());

    let failing = Observation {
        canary: window(50, 0.5, Some(20.0)),
        covered_ms: Some(1_000),
        ..healthy
    };
    let spec = super::super::spec::CanarySpec {
        analysis: Analysis {
            max_error_rate: Some(0.05),
            ..Analysis::default()
        },
        ..spec
    };
    assert_eq!(failures(&spec, &state(0), 120_000, &failing).len(), 1);
}

#[test]
fn a_prometheus_value_outside_its_range_fails_and_none_yet_holds_the_step() {
    let check = |name: &str, min: Option<f64>, max: Option<f64>| PrometheusCheck {
        name: name.into(),
        url: "http://127.0.0.1:9090".into(),
        query: "q".into(),
        min,
        max,
    };
    let spec = spec(Analysis {
        prometheus: vec![
            check("share", None, Some(0.02)),
            check("rps", Some(10.0), None),
            check("later", None, Some(1.0)),
        ],
        ..Analysis::default()
    });
    let seen = Observation {
        canary: window(40, 0.0, None),
        stable: window(400, 0.0, None),
        metrics: vec![
            MetricResult {
                name: "share".into(),
                value: Ok(0.05),
            },
            MetricResult {
                name: "rps".into(),
                value: Ok(12.0),
            },
            MetricResult {
                name: "later".into(),
                value: Err("the query gave no data".into()),
            },
        ],
        ..Observation::default()
    };
    assert_eq!(
        failures(&spec, &state(1_000), 13_500, &seen),
        vec!["prometheus check \"share\" is 0.05, above its max 0.02 (query: q)".to_string()]
    );
    assert_eq!(
        texts(blockers(&spec, &state(1_000), 13_500, &seen)),
        vec!["waiting for prometheus check \"later\": the query gave no data".to_string()]
    );
    let none_yet = Observation {
        metrics: Vec::new(),
        ..seen
    };
    assert!(failures(&spec, &state(1_000), 13_500, &none_yet).is_empty());
    let waits = texts(blockers(&spec, &state(1_000), 13_500, &none_yet));
    assert_eq!(waits.len(), 3, "{waits:?}");
    assert!(
        waits[0].contains("\"share\": no value in this step yet"),
        "{waits:?}"
    );
}
