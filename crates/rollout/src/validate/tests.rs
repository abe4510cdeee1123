//! Unit tests of spec validation: one rule at a time, by path and message.

use std::time::Duration;

use crate::spec::{
    Analysis, CanarySpec, Load, Mirror, Notify, PrometheusCheck, RequestMatch, StepSpec, Sticky,
    Strategy, Webhook, fixture,
};

use super::validate;

fn good() -> CanarySpec {
    fixture(
        Strategy::Steps {
            step_weight: 10,
            interval: Duration::from_secs(30),
            max_weight: 100,
        },
        Analysis {
            webhooks: vec![Webhook {
                name: "smoke".into(),
                url: "http://127.0.0.1:9000/check".into(),
                timeout: Duration::from_secs(5),
            }],
            ..Analysis::default()
        },
    )
}

/// Applies `change` to a good spec and expects exactly one problem, at `path`, whose message
/// contains `message`.
fn check(change: impl FnOnce(&mut CanarySpec), path: &str, message: &str) {
    let mut spec = good();
    change(&mut spec);
    let problems = validate(&spec);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].path, path, "{problems:#?}");
    assert!(
        problems[0].message.contains(message),
        "{:?} lacks {message:?}",
        problems[0].message
    );
}

fn weights(list: &[StepSpec]) -> impl FnOnce(&mut CanarySpec) {
    let list = list.to_vec();
    move |s| {
        s.strategy = Strategy::Weights {
            weights: list,
            interval: Duration::from_secs(30),
        }
    }
}

use StepSpec::{Gate, Weight as W};

#[test]
fn a_good_spec_has_no_problems() {
    assert_eq!(validate(&good()), vec![]);
    let mut spec = good();
    weights(&[W(1), W(5), Gate, W(50), W(100)])(&mut spec);
    assert_eq!(validate(&spec), vec![]);
    spec.strategy = Strategy::Initial {
        weight: 10,
        duration: Duration::from_secs(300),
    };
    assert_eq!(validate(&spec), vec![]);
}

#[test]
fn names_and_nodes() {
    check(|s| s.mesh.clear(), "mesh", "must not be empty");
    check(|s| s.route.clear(), "route", "must not be empty");
    check(
        |s| s.canary_node = s.stable_node.clone(),
        "canaryNode",
        "must differ from stableNode (both are \"product-vn\")",
    );
}

#[test]
fn steps_strategy() {
    let steps = |step_weight, max_weight, secs| {
        move |s: &mut CanarySpec| {
            s.strategy = Strategy::Steps {
                step_weight,
                interval: Duration::from_secs(secs),
                max_weight,
            };
            // Keep the deadline out of it: only the strategy is under test here.
            s.analysis.progress_deadline = Duration::from_secs(secs.max(600));
        }
    };
    check(
        steps(0, 100, 30),
        "strategy.stepWeight",
        "must be at least 1",
    );
    check(
        steps(101, 100, 30),
        "strategy.stepWeight",
        "at most 100, got 101",
    );
    check(
        steps(10, 0, 30),
        "strategy.maxWeight",
        "between 1 and 100, got 0",
    );
    check(
        steps(10, 101, 30),
        "strategy.maxWeight",
        "between 1 and 100, got 101",
    );
    check(
        steps(60, 50, 30),
        "strategy.stepWeight",
        "must not exceed maxWeight (50)",
    );
    check(steps(10, 100, 0), "strategy.interval", "longer than 0s");
    check(
        steps(10, 100, 86_401),
        "strategy.interval",
        "at most 24h, got 24h1s",
    );
    assert_eq!(
        validate(&{
            let mut s = good();
            steps(10, 100, 86_400)(&mut s);
            s.analysis.progress_deadline = Duration::from_secs(86_400);
            s
        }),
        vec![]
    );
}

#[test]
fn weights_strategy() {
    check(weights(&[]), "strategy.weights", "at least one weight");
    check(
        weights(&[W(100)]),
        "strategy.weights",
        "between 1 and 99 before the promotion",
    );
    check(
        weights(&[Gate]),
        "strategy.weights",
        "between 1 and 99 before the promotion",
    );
    check(
        weights(&[W(0), W(50)]),
        "strategy.weights[0]",
        "between 1 and 100, got 0",
    );
    check(
        weights(&[W(10), W(101)]),
        "strategy.weights[1]",
        "between 1 and 100, got 101",
    );
    check(
        weights(&[W(10), W(10)]),
        "strategy.weights[1]",
        "must increase: 10 follows 10",
    );
    check(
        weights(&[W(50), Gate, W(20)]),
        "strategy.weights[2]",
        "must increase: 20 follows 50",
    );
    check(
        weights(&[W(50), W(100), Gate]),
        "strategy.weights[2]",
        "nothing may follow the 100 at [1]",
    );
}

/// A good replicas canary: node `product-vn`, workloads `web-v1` to `web-v2`, 4 replicas.
fn replicas(spec: &mut CanarySpec) {
    spec.router.clear();
    spec.route.clear();
    spec.canary_node = spec.stable_node.clone();
    spec.strategy = Strategy::Replicas {
        stable_workload: "web-v1".into(),
        canary_workload: "web-v2".into(),
        total: 4,
        interval: Duration::from_secs(30),
    };
}

#[test]
fn replicas_strategy() {
    let mut spec = good();
    replicas(&mut spec);
    assert_eq!(validate(&spec), vec![]);
    let then = |change: fn(&mut CanarySpec)| {
        move |s: &mut CanarySpec| {
            replicas(s);
            change(s);
        }
    };
    check(
        then(|s| s.canary_node = "other-vn".into()),
        "canaryNode",
        "runs both versions behind one node: must be stableNode \"product-vn\"",
    );
    check(
        then(|s| s.route = "rt".into()),
        "route",
        "moves replicas, not route weights",
    );
    check(
        then(|s| s.sticky = Some(Sticky::default())),
        "sticky",
        "needs a weighted route",
    );
    let strategy = |stable: &str, canary: &str, total: u32| Strategy::Replicas {
        stable_workload: stable.into(),
        canary_workload: canary.into(),
        total,
        interval: Duration::from_secs(30),
    };
    for (total, ok) in [(0, false), (1, false), (2, true), (64, true), (65, false)] {
        let mut spec = good();
        replicas(&mut spec);
        spec.strategy = strategy("a", "b", total);
        let problems = validate(&spec);
        assert_eq!(problems.is_empty(), ok, "total {total}: {problems:?}");
        if !ok {
            assert_eq!(problems[0].path, "strategy.total");
            assert!(problems[0].message.contains(&format!("got {total}")));
        }
    }
    let mut same = good();
    replicas(&mut same);
    same.strategy = strategy("a", "a", 4);
    assert_eq!(validate(&same)[0].path, "strategy.canaryWorkload");
    // A route canary still needs its route.
    check(|s| s.route.clear(), "route", "must not be empty");
}

#[test]
fn initial_strategy() {
    let initial = |weight, secs| {
        move |s: &mut CanarySpec| {
            s.strategy = Strategy::Initial {
                weight,
                duration: Duration::from_secs(secs),
            }
        }
    };
    check(initial(0, 60), "strategy.weight", "between 1 and 99");
    check(
        initial(100, 60),
        "strategy.weight",
        "(100 is the promotion), got 100",
    );
    check(initial(10, 0), "strategy.duration", "longer than 0s");
    check(
        initial(10, 3600),
        "analysis.progressDeadline",
        "must be at least strategy.duration (1h), got 10m",
    );
}

#[test]
fn analysis_thresholds() {
    check(
        |s| s.analysis.max_error_rate = Some(5.0),
        "analysis.maxErrorRate",
        "between 0 and 1 (0.05 is 5%), got 5",
    );
    check(
        |s| s.analysis.max_error_rate = Some(-0.1),
        "analysis.maxErrorRate",
        "got -0.1",
    );
    check(
        |s| s.analysis.max_error_rate = Some(f64::NAN),
        "analysis.maxErrorRate",
        "got NaN",
    );
    check(
        |s| s.analysis.max_p99_ms = Some(-1.0),
        "analysis.maxP99Ms",
        "positive number of milliseconds, got -1",
    );
    check(
        |s| s.analysis.max_p99_ms = Some(f64::NAN),
        "analysis.maxP99Ms",
        "got NaN",
    );
    check(
        |s| s.analysis.max_p99_ms = Some(0.0),
        "analysis.maxP99Ms",
        "got 0",
    );
    check(
        |s| s.analysis.failure_window = Duration::ZERO,
        "analysis.failureWindow",
        "longer than 0s",
    );
    check(
        |s| s.analysis.progress_deadline = Duration::from_secs(29),
        "analysis.progressDeadline",
        "must be at least strategy.interval (30s), got 29s",
    );
}

#[test]
fn webhooks() {
    let hook = |name: &str, url: &str| Webhook {
        name: name.into(),
        url: url.into(),
        timeout: Duration::from_secs(1),
    };
    check(
        |s| s.analysis.webhooks.push(hook("smoke", "http://b/")),
        "analysis.webhooks[1].name",
        "\"smoke\" is used by an earlier webhook",
    );
    check(
        |s| s.analysis.webhooks[0].name.clear(),
        "analysis.webhooks[0].name",
        "must not be empty",
    );
    for url in [
        "ftp://a/b",
        "localhost:9000",
        "http://",
        "https:///x",
        "http://a b/",
    ] {
        check(
            |s| s.analysis.webhooks[0].url = url.into(),
            "analysis.webhooks[0].url",
            "must be an http:// or https:// URL with a host",
        );
    }
    check(
        |s| s.analysis.webhooks[0].timeout = Duration::ZERO,
        "analysis.webhooks[0].timeout",
        "longer than 0s",
    );
    let mut spec = good();
    spec.analysis.webhooks[0].url = "https://checks.example:8443/x".into();
    assert_eq!(validate(&spec), vec![]);
}

#[test]
fn comparison_with_stable() {
    use crate::spec::{Compare, LatencyCompare};
    let compare = |change: fn(&mut Compare)| {
        move |s: &mut CanarySpec| {
            let mut compare = Compare {
                latency: Some(LatencyCompare::default()),
                ..Compare::default()
            };
            change(&mut compare);
            s.analysis.compare = Some(compare);
        }
    };
    assert_eq!(
        validate(&{
            let mut s = good();
            compare(|_| {})(&mut s);
            s
        }),
        vec![]
    );
    for confidence in [0.5, 1.0, f64::NAN, 99.0] {
        let mut spec = good();
        spec.analysis.compare = Some(Compare {
            confidence,
            ..Compare::default()
        });
        let problems = validate(&spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "analysis.compare.confidence");
        assert_eq!(
            problems[0].message,
            format!("must be between 0.5 and 1, both excluded (0.99 is 99%), got {confidence}")
        );
    }
    check(
        compare(|c| c.max_error_rate_increase = 0.0),
        "analysis.compare.maxErrorRateIncrease",
        "must be a fraction between 0 and 1, both excluded (0.005 is half a percentage point), \
         got 0",
    );
    check(
        compare(|c| c.max_error_rate_increase = 5.0),
        "analysis.compare.maxErrorRateIncrease",
        "got 5",
    );
    check(
        compare(|c| c.latency.as_mut().unwrap().quantile = 0.3),
        "analysis.compare.latency.quantile",
        "must be between 0.5 and 1, both excluded (0.99 is p99), got 0.3",
    );
    check(
        compare(|c| c.latency.as_mut().unwrap().max_slow_share_increase = f64::NAN),
        "analysis.compare.latency.maxSlowShareIncrease",
        "(0.01 is one percentage point), got NaN",
    );
    // Every problem at once.
    let mut spec = good();
    compare(|c| {
        c.confidence = 2.0;
        c.max_error_rate_increase = -1.0;
        c.latency = Some(LatencyCompare {
            quantile: 1.0,
            max_slow_share_increase: 1.0,
        });
    })(&mut spec);
    let paths: Vec<String> = validate(&spec).into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        [
            "analysis.compare.confidence",
            "analysis.compare.maxErrorRateIncrease",
            "analysis.compare.latency.quantile",
            "analysis.compare.latency.maxSlowShareIncrease",
        ]
    );
}

#[test]
fn prometheus_checks_and_notifications() {
    let with = |min: Option<f64>, max: Option<f64>, url: &str, query: &str| {
        let check = PrometheusCheck {
            name: "share".into(),
            url: url.into(),
            query: query.into(),
            min,
            max,
        };
        move |s: &mut CanarySpec| s.analysis.prometheus = vec![check]
    };
    let prometheus = "http://127.0.0.1:9090";
    check(
        with(None, None, prometheus, "up"),
        "analysis.prometheus[0].max",
        "give max or min",
    );
    check(
        with(Some(2.0), Some(1.0), prometheus, "up"),
        "analysis.prometheus[0].min",
        "2 is above max 1",
    );
    check(
        with(None, Some(1.0), "ftp://x", "up"),
        "analysis.prometheus[0].url",
        "must be an http:// or https:// URL",
    );
    check(
        with(None, Some(1.0), prometheus, " "),
        "analysis.prometheus[0].query",
        "must not be empty",
    );
    check(
        with(None, Some(f64::INFINITY), prometheus, "up"),
        "analysis.prometheus[0].max",
        "must be a finite number",
    );
    check(
        |s| {
            s.notify = vec![Notify {
                url: "hooks.slack.com".into(),
            }]
        },
        "notify[0].url",
        "must be an http:// or https:// URL",
    );
    let mut spec = good();
    with(Some(0.0), Some(1.0), prometheus, "up")(&mut spec);
    spec.notify = vec![Notify {
        url: "https://hooks.slack.com/services/T/B/X".into(),
    }];
    assert_eq!(validate(&spec), Vec::new());
}

#[test]
fn mirror_match_sticky_and_load_are_checked_field_by_field() {
    check(
        |s| s.mirror = Some(Mirror { percent: 0 }),
        "mirror.percent",
        "between 1 and 100, got 0",
    );
    let rule = |header: Option<&str>, cookie: Option<&str>, exact: Option<&str>| RequestMatch {
        header: header.map(Into::into),
        cookie: cookie.map(Into::into),
        exact: exact.map(Into::into),
        ..RequestMatch::default()
    };
    check(
        |s| s.matches = vec![rule(Some("x-canary"), Some("canary"), Some("1"))],
        "match[0]",
        "exactly one of header and cookie",
    );
    check(
        |s| s.matches = vec![rule(Some("x canary"), None, Some("1"))],
        "match[0].header",
        "\"x canary\" is not a valid header name",
    );
    check(
        |s| {
            s.matches = vec![RequestMatch {
                prefix: Some("a".into()),
                ..rule(None, Some("canary"), Some("1"))
            }]
        },
        "match[0]",
        "exactly one of exact, prefix, suffix and regex",
    );
    check(
        |s| s.matches = vec![rule(None, Some("canary"), Some("1")); 17],
        "match",
        "at most 16 rules, got 17",
    );
    check(
        |s| {
            s.sticky = Some(Sticky {
                cookie: "a;b".into(),
                ..Sticky::default()
            })
        },
        "sticky.cookie",
        "\"a;b\" is not a valid cookie name",
    );
    let load = |url: &str, rate: u32| Load {
        url: url.into(),
        rate,
        host: None,
    };
    check(
        |s| s.analysis.load = Some(load("http://127.0.0.1:8080/", 0)),
        "analysis.load.rate",
        "between 1 and 1000 requests per second, got 0",
    );
    check(
        |s| s.analysis.load = Some(load("127.0.0.1:8080", 5)),
        "analysis.load.url",
        "must be an http:// or https:// URL",
    );
    check(
        weights(&[StepSpec::Match, W(10)]),
        "strategy.weights[0]",
        "come from the spec's mirror and match",
    );
    let mut spec = good();
    spec.mirror = Some(Mirror { percent: 100 });
    spec.matches = vec![rule(None, Some("canary"), Some("always"))];
    spec.sticky = Some(Sticky::default());
    spec.analysis.load = Some(load("http://127.0.0.1:8080/", 1000));
    assert_eq!(validate(&spec), Vec::new());
}
