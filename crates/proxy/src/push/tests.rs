//! Totals per node, the deltas pushed from them, and what an answer means for those deltas.

use model::wire::NodeStats;

use super::*;
use crate::SeriesKey;

fn counts(ok: u64, errors: u64) -> SeriesCounts {
    SeriesCounts {
        by_class: [0, ok, 0, 0, errors],
        latency: vec![(0.001, ok), (f64::INFINITY, errors)],
        latency_sum_seconds: 0.0,
        retries: 0,
    }
}

fn key(route: &str, node: &str) -> SeriesKey {
    SeriesKey {
        virtual_service: "svc".into(),
        route: route.into(),
        target_node: node.into(),
    }
}

#[test]
fn totals_sum_routes_per_node_and_skip_unrouted() {
    let series = vec![
        (key("r1", "v1"), counts(10, 1)),
        (key("r2", "v1"), counts(5, 0)),
        (key("r1", "v2"), counts(3, 3)),
        (key("", ""), counts(0, 7)),
    ];
    let workloads = vec![
        (("v1".to_string(), "v1-a".to_string()), counts(9, 1)),
        (("v1".to_string(), "v1-b".to_string()), counts(6, 0)),
    ];
    let totals = totals(&series, &workloads);
    assert_eq!(totals.len(), 4);
    let v1 = &totals[&("v1".to_string(), None)];
    assert_eq!((v1.requests, v1.status_2xx, v1.status_5xx), (16, 15, 1));
    assert_eq!(v1.latency_buckets, vec![15, 1]);
    let a = &totals[&("v1".to_string(), Some("v1-a".to_string()))];
    assert_eq!((a.requests, a.status_5xx), (10, 1));
    assert_eq!(a.workload.as_deref(), Some("v1-a"));
}

#[test]
fn deltas_carry_only_what_is_new() {
    let workload = |n| vec![(("v1".to_string(), "v1-a".to_string()), counts(n, 0))];
    let before = totals(
        &[
            (key("r", "v1"), counts(10, 0)),
            (key("r", "v2"), counts(4, 0)),
        ],
        &workload(7),
    );
    let now = totals(
        &[
            (key("r", "v1"), counts(12, 1)),
            (key("r", "v2"), counts(4, 0)),
        ],
        &workload(7),
    );
    let pushed = deltas(&now, &before);
    assert_eq!(
        pushed,
        vec![NodeStats {
            virtual_node: "v1".into(),
            workload: None,
            requests: 3,
            status_2xx: 2,
            status_4xx: 0,
            status_5xx: 1,
            failures: 0,
            latency_buckets: vec![2, 1],
        }]
    );
    assert!(deltas(&now, &now).is_empty());
}

#[test]
fn a_refused_report_is_dropped_and_a_failed_one_retried() {
    let api = |status: u16| {
        Err(client::ClientError::Api {
            status,
            error_type: "BadRequestException".into(),
            message: "nodes: virtual node 'gone-vn' does not exist".into(),
        })
    };
    assert_eq!(settle(&Ok(())), Settled::Counted);
    assert_eq!(settle(&api(400)), Settled::Refused);
    assert_eq!(settle(&api(413)), Settled::Refused);
    assert_eq!(settle(&api(404)), Settled::Refused);
    assert_eq!(settle(&api(500)), Settled::Retry);
    assert_eq!(settle(&api(503)), Settled::Retry);
    assert_eq!(
        settle(&Err(client::ClientError::Protocol("cut off".into()))),
        Settled::Retry
    );
}
