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
    let totals = totals(&series);
    assert_eq!(totals.len(), 2);
    let v1 = &totals["v1"];
    assert_eq!((v1.requests, v1.status_2xx, v1.status_5xx), (16, 15, 1));
    assert_eq!(v1.latency_buckets, vec![15, 1]);
}

#[test]
fn deltas_carry_only_what_is_new() {
    let before = totals(&[
        (key("r", "v1"), counts(10, 0)),
        (key("r", "v2"), counts(4, 0)),
    ]);
    let now = totals(&[
        (key("r", "v1"), counts(12, 1)),
        (key("r", "v2"), counts(4, 0)),
    ]);
    let pushed = deltas(&now, &before);
    assert_eq!(
        pushed,
        vec![NodeStats {
            virtual_node: "v1".into(),
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
