//! Series counting and the Prometheus exposition.

use std::time::Duration;

use super::*;

fn key(route: &str, node: &str) -> SeriesKey {
    SeriesKey {
        virtual_service: "svc.local".into(),
        route: route.into(),
        target_node: node.into(),
    }
}

#[test]
fn attempts_count_by_class_and_latency_bucket() {
    let telemetry = Telemetry::new("m");
    let k = key("r", "a");
    let series = telemetry.series(&k);
    assert!(
        Arc::ptr_eq(&series, &telemetry.series(&k)),
        "one series per key"
    );
    for (status, ms, retried) in [(200, 1, false), (204, 30, false), (503, 2000, true)] {
        Attempt {
            series: &series,
            workload: None,
            key: &k,
            endpoint: None,
            status,
            elapsed: Duration::from_millis(ms),
            error: None,
            retried,
        }
        .emit();
    }
    let snapshot = telemetry.snapshot();
    assert_eq!(snapshot.len(), 1);
    let counts = &snapshot[0].1;
    assert_eq!(counts.by_class, [0, 2, 0, 0, 1]);
    assert_eq!(counts.retries, 1);
    let filled: Vec<(f64, u64)> = counts.latency.iter().copied().filter(|b| b.1 > 0).collect();
    // Each latency lands in the first bucket whose bound holds it: 1 ms, 40 ms, 2.5 s.
    assert_eq!(filled, [(0.001, 1), (0.04, 1), (2.5, 1)]);
    assert_eq!(
        counts.latency.len(),
        model::wire::LATENCY_BUCKETS_MS.len() + 1
    );
    assert!((counts.latency_sum_seconds - 2.031).abs() < 1e-9);
}

#[test]
fn exposition_names_every_label() {
    let telemetry = Telemetry::new("m");
    let k = key("r", "a");
    let series = telemetry.series(&k);
    let workload = telemetry.workload_series("a", "a-v2");
    Attempt {
        series: &series,
        workload: Some(&workload),
        key: &k,
        endpoint: None,
        status: 200,
        elapsed: Duration::from_millis(3),
        error: None,
        retried: false,
    }
    .emit();
    let text = telemetry.render();
    assert!(
        text.contains(
            r#"aviary_proxy_workload_requests_total{mesh="m",target_node="a",workload="a-v2",status_class="2xx"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"aviary_proxy_requests_total{mesh="m",virtual_service="svc.local",route="r",target_node="a",status_class="2xx"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"aviary_proxy_request_duration_seconds_bucket{le="0.004",mesh="m",virtual_service="svc.local",route="r",target_node="a"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"aviary_proxy_request_duration_seconds_bucket{le="0.0025",mesh="m",virtual_service="svc.local",route="r",target_node="a"} 0"#
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE aviary_proxy_request_duration_seconds histogram"));
}
