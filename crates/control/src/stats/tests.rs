//! The sliding window adds reports up, forgets them when they age out, holds a bounded number
//! of slots per node, and refuses reports whose counts do not add up.

use std::time::Duration;

use model::wire::{NodeStats, StatsReport, latency_bucket};

use super::*;

fn sample(node: &str, ok: u64, errors: u64, millis: f64) -> NodeStats {
    let mut buckets = vec![0; latency_bucket(millis) + 1];
    buckets[latency_bucket(millis)] = ok + errors;
    NodeStats {
        virtual_node: node.into(),
        requests: ok + errors,
        status_2xx: ok,
        status_5xx: errors,
        latency_buckets: buckets,
        ..NodeStats::default()
    }
}

#[tokio::test(start_paused = true)]
async fn reports_from_many_proxies_add_up_and_age_out() {
    let window = StatsWindow::default();
    window.record("m", &[sample("v1", 90, 0, 5.0), sample("v2", 5, 5, 50.0)]);
    window.record("m", &[sample("v1", 10, 0, 5.0)]);
    window.record("other", &[sample("v1", 1000, 0, 5.0)]);
    let out = window.aggregate("m", Duration::from_secs(10));
    let nodes = &out.nodes;
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].virtual_node, "v1");
    assert_eq!(nodes[0].requests, 100);
    assert_eq!(nodes[0].error_rate, 0.0);
    assert_eq!(nodes[1].status_5xx, 5);
    assert_eq!(nodes[1].error_rate, 0.5);
    let p99 = nodes[1].p99_ms.unwrap();
    assert!((40.0..=60.0).contains(&p99), "{p99}");

    tokio::time::advance(Duration::from_secs(2)).await;
    window.record("m", &[sample("v1", 7, 0, 5.0)]);
    let one_second = window.aggregate("m", Duration::from_secs(1));
    assert_eq!(one_second.nodes[0].requests, 7, "{one_second:?}");
    assert_eq!(one_second.nodes.len(), 1, "v2 aged out of 1 s");
    assert_eq!(
        window.aggregate("m", Duration::from_secs(10)).nodes[0].requests,
        107
    );

    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(window.aggregate("m", Duration::from_secs(60)).nodes, []);
    // Ten minutes are kept: the canary pipeline's default failure_threshold_time.
    assert_eq!(
        window.aggregate("m", Duration::from_secs(120)).nodes[0].requests,
        107
    );
    tokio::time::advance(Duration::from_secs(600)).await;
    assert_eq!(window.aggregate("m", Duration::from_secs(600)).nodes, []);
}

#[test]
fn windows_parse_with_units() {
    assert_eq!(parse_window("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_window("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_window("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_window("3"), Some(Duration::from_secs(3)));
    assert_eq!(parse_window("ten"), None);
    assert_eq!(parse_window("5h"), None);
}

#[tokio::test(start_paused = true)]
async fn a_node_reporting_for_twenty_minutes_holds_at_most_ten_minutes_of_slots() {
    let window = StatsWindow::default();
    for _ in 0..2 * SLOTS {
        tokio::time::advance(SLOT).await;
        window.record("m", &[sample("v1", 1, 0, 5.0)]);
    }
    let (nodes, slots, capacity) = window.held();
    assert_eq!((nodes, slots), (1, SLOTS));
    assert!(
        capacity <= SLOTS,
        "capacity {capacity} beyond {SLOTS} slots"
    );
    assert_eq!(
        window.node("m", "v1", MAX_WINDOW).requests,
        SLOTS as u64,
        "ten minutes of one request per slot"
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_that_stops_reporting_is_forgotten_after_the_window_and_a_sweep() {
    let window = StatsWindow::default();
    window.record("m", &[sample("gone", 5, 0, 5.0)]);
    tokio::time::advance(Duration::from_secs(300)).await;
    window.record("m", &[sample("stays", 5, 0, 5.0)]);
    assert_eq!(window.held().0, 2, "both within ten minutes");
    tokio::time::advance(Duration::from_secs(370)).await;
    window.record("m", &[sample("stays", 1, 0, 5.0)]);
    assert_eq!(window.held().0, 1, "the silent node's ring was swept");
    assert_eq!(window.node("m", "gone", MAX_WINDOW).requests, 0);
    assert_eq!(window.node("m", "stays", MAX_WINDOW).requests, 6);
}

#[test]
fn counts_saturate_instead_of_wrapping() {
    let window = StatsWindow::default();
    let huge = NodeStats {
        virtual_node: "v1".into(),
        requests: u64::MAX,
        status_5xx: u64::MAX,
        failures: u64::MAX,
        latency_buckets: vec![u64::MAX; 3],
        ..NodeStats::default()
    };
    window.record("m", &[huge.clone(), huge]);
    let out = window.aggregate("m", Duration::from_secs(10));
    assert_eq!(out.nodes[0].requests, u64::MAX, "{out:?}");
    assert_eq!(out.nodes[0].error_rate, 1.0, "{out:?}");
}

/// `check_report`'s answer for one entry: `Ok` or the error message.
fn check(node: serde_json::Value, expected: &[&str]) {
    let report: StatsReport =
        serde_json::from_value(serde_json::json!({"proxy": "p", "nodes": [node]}))
            .expect("a well-typed report");
    let got = match check_report(&report) {
        Ok(()) => String::new(),
        Err(err) => err.to_string(),
    };
    for want in expected {
        assert!(got.contains(want), "{node}: `{got}` does not say `{want}`");
    }
    assert_eq!(got.is_empty(), expected.is_empty(), "{node}: {got}");
}

#[test]
fn reports_whose_counts_do_not_add_up_are_refused_naming_the_field() {
    use serde_json::json;
    let max = u64::MAX;
    check(
        json!({"virtualNode": "a", "requests": 10, "status2xx": 6, "status4xx": 2, "status5xx": 1, "failures": 1, "latencyBuckets": [4, 6]}),
        &[],
    );
    check(
        json!({"virtualNode": "a", "requests": 0, "status2xx": 0, "status4xx": 0, "status5xx": 0}),
        &[],
    );
    check(
        json!({"virtualNode": "a", "requests": 3, "status2xx": 5, "status4xx": 0, "status5xx": 0}),
        &["nodes[0].status2xx: 5 is more than requests (3)"],
    );
    check(
        json!({"virtualNode": "a", "requests": 3, "status2xx": 2, "status4xx": 0, "status5xx": 2}),
        &["nodes[0]: status2xx + status4xx + status5xx + failures is 4, more than requests (3)"],
    );
    check(
        json!({"virtualNode": "a", "requests": max, "status2xx": max, "status4xx": max, "status5xx": 0}),
        &["nodes[0].requests: must be at most 4294967296", "overflows"],
    );
    check(
        json!({"virtualNode": "a", "requests": 5, "status2xx": 5, "status4xx": 0, "status5xx": 0, "latencyBuckets": [max, max]}),
        &["nodes[0].latencyBuckets: the counts overflow"],
    );
    check(
        json!({"virtualNode": "a", "requests": 5, "status2xx": 5, "status4xx": 0, "status5xx": 0, "latencyBuckets": [3, 3]}),
        &["nodes[0].latencyBuckets: count 6 requests, more than requests (5)"],
    );
    check(
        json!({"virtualNode": "a", "requests": 1, "status2xx": 1, "status4xx": 0, "status5xx": 0, "latencyBuckets": vec![0; 30]}),
        &["nodes[0].latencyBuckets: must have at most 29 items, got 30"],
    );
    check(
        json!({"virtualNode": "a/b", "requests": 1, "status2xx": 1, "status4xx": 0, "status5xx": 0}),
        &["nodes[0].virtualNode: must start with a letter or digit"],
    );
}

#[test]
fn a_report_of_too_many_or_repeated_nodes_is_refused_with_a_short_message() {
    let entry = |name: String| NodeStats {
        virtual_node: name,
        ..NodeStats::default()
    };
    let too_many = StatsReport {
        proxy: "p".into(),
        nodes: (0..501).map(|i| entry(format!("n{i}"))).collect(),
    };
    let err = check_report(&too_many).unwrap_err().to_string();
    assert_eq!(
        err,
        "1 validation error detected: nodes: must have at most 500 entries, got 501"
    );

    let twice = StatsReport {
        proxy: "p".into(),
        nodes: (0..400).map(|i| entry(format!("n{}", i % 2))).collect(),
    };
    let err = check_report(&twice).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "398 validation errors detected: nodes[2].virtualNode: 'n0' is listed twice;"
        ),
        "{err}"
    );
    assert!(err.ends_with(" and 378 more"), "{err}");
    assert!(err.len() < 2000, "{} bytes", err.len());
}

#[tokio::test(start_paused = true)]
async fn workloads_count_apart_from_their_node_and_are_forgotten_with_it_or_alone() {
    let window = StatsWindow::default();
    let of = |workload: &str, ok| NodeStats {
        workload: Some(workload.into()),
        ..sample("web", ok, 0, 5.0)
    };
    window.record(
        "m",
        &[sample("web", 10, 0, 5.0), of("web-v1", 7), of("web-v2", 3)],
    );
    let at = |workload: Option<&str>| (window.version("m", "web", workload, MAX_WINDOW)).requests;
    assert_eq!(
        (at(None), at(Some("web-v1")), at(Some("web-v2"))),
        (10, 7, 3)
    );
    let view = window.aggregate("m", MAX_WINDOW);
    assert_eq!(view.nodes.len(), 1, "a workload is no node of its own");
    let shown: Vec<_> = (view.workloads.iter())
        .map(|w| (w.workload.as_deref(), w.requests))
        .collect();
    assert_eq!(shown, [(Some("web-v1"), 7), (Some("web-v2"), 3)]);
    window.forget("m", "web", Some("web-v2"));
    assert_eq!(
        (at(None), at(Some("web-v1")), at(Some("web-v2"))),
        (10, 7, 0)
    );
    window.forget("m", "web", None);
    assert_eq!((at(None), at(Some("web-v1"))), (0, 0));
}
