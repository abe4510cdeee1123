//! The sliding window adds reports up and forgets them when they age out.

use std::time::Duration;

use model::wire::{NodeStats, latency_bucket};

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
    let nodes = out["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["virtualNode"], "v1");
    assert_eq!(nodes[0]["requests"], 100);
    assert_eq!(nodes[0]["errorRate"], 0.0);
    assert_eq!(nodes[1]["status5xx"], 5);
    assert_eq!(nodes[1]["errorRate"], 0.5);
    let p99 = nodes[1]["p99Ms"].as_f64().unwrap();
    assert!((40.0..=60.0).contains(&p99), "{p99}");

    tokio::time::advance(Duration::from_secs(2)).await;
    window.record("m", &[sample("v1", 7, 0, 5.0)]);
    let one_second = window.aggregate("m", Duration::from_secs(1));
    assert_eq!(one_second["nodes"][0]["requests"], 7, "{one_second}");
    assert_eq!(
        one_second["nodes"].as_array().unwrap().len(),
        1,
        "v2 aged out of 1 s"
    );
    assert_eq!(
        window.aggregate("m", Duration::from_secs(10))["nodes"][0]["requests"],
        107
    );

    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        window.aggregate("m", Duration::from_secs(60))["nodes"],
        serde_json::json!([])
    );
    // Ten minutes are kept: the canary pipeline's default failure_threshold_time.
    assert_eq!(
        window.aggregate("m", Duration::from_secs(120))["nodes"][0]["requests"],
        107
    );
    tokio::time::advance(Duration::from_secs(600)).await;
    assert_eq!(
        window.aggregate("m", Duration::from_secs(600))["nodes"],
        serde_json::json!([])
    );
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
