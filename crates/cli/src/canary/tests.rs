//! The canary views as a person reads them: status, list and history from typed records.

use model::wire::{CanaryRecord, CanaryView, NodeStats, NodeView, StatsView};
use rollout::{CanarySpec, Input, Millis, Observation};

use super::{history_table, list_table, status_view};

const T0: Millis = 1_700_000_000_000;

/// A canary of four 20% steps over 30 s, started at `T0`, fed `inputs`, with its status at
/// `T0 + at` as the control plane computes it (no requests seen yet).
fn view(inputs: Vec<Input>, at: Millis) -> CanaryView {
    let spec: CanarySpec = serde_json::from_value(serde_json::json!({
        "mesh": "demo", "router": "product-vr", "route": "product-r",
        "stableNode": "product-1", "canaryNode": "product-2",
        "strategy": {"type": "steps", "stepWeight": 20, "interval": "30s"},
    }))
    .unwrap();
    let (mut state, _) = rollout::start(&spec, T0);
    for input in inputs {
        state = rollout::step(&spec, &state, input).0;
    }
    let status = rollout::status(&spec, &state, T0 + at, Some(&Observation::default()));
    let acted = state.history.len();
    CanaryView {
        record: CanaryRecord {
            name: "c1".into(),
            spec,
            state,
            acted,
            notes: vec![],
        },
        status,
    }
}

fn stats() -> StatsView {
    let node = |name: &str, requests, status_5xx| {
        let counts = NodeStats {
            virtual_node: name.into(),
            requests,
            status_2xx: requests - status_5xx,
            status_5xx,
            ..NodeStats::default()
        };
        NodeView::of(&counts, 10.0)
    };
    StatsView {
        mesh: "demo".into(),
        window_seconds: 10.0,
        latency_buckets_ms: 28,
        nodes: vec![node("product-1", 90, 0), node("product-2", 10, 1)],
        workloads: Vec::new(),
    }
}

/// Compares with `expected`, written indented by 8 spaces, trailing spaces aside.
#[track_caller]
fn check(shown: String, expected: &str) {
    let expected: String = expected
        .lines()
        .map(|l| l.strip_prefix("        ").unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let shown: String = shown
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    assert_eq!(shown, expected);
}

#[test]
fn status_says_step_i_of_n_as_the_history_does_and_what_it_waits_for() {
    check(
        status_view(&view(vec![], 27_000), Some(&stats())),
        "
        canary c1   mesh demo   route product-vr/product-r
        phase progressing   step 1 of 4   weights product-1 80 / product-2 20
        status: step 1 of 4 (20% to canary): analysis interval 3s left; waiting for traffic: 0 of 1 canary requests in this step
                 NODE                         REQ/S    ERRORS       P99
        stable   product-1                      9.0      0.0%         -
        canary   product-2                      1.0     10.0%         -
        last: started at 20%: step 1 of 4: 20% to canary product-2, 80% to stable product-1
        ",
    );
    let paused = vec![Input::Pause { now: T0 + 10_000 }];
    check(
        status_view(&view(paused, 50_000), None),
        "
        canary c1   mesh demo   route product-vr/product-r
        phase paused   step 1 of 4   weights product-1 80 / product-2 20
        status: step 1 of 4 (20% to canary): paused; analysis interval 20s left
                 NODE                         REQ/S    ERRORS       P99
        stable   product-1                      0.0      0.0%         -
        canary   product-2                      0.0      0.0%         -
        last: paused at 20%: paused by command in step 1 of 4 (20s left in it)
        ",
    );
}

#[test]
fn list_and_history_read_the_typed_record() {
    let promoted = vec![Input::Promote { now: T0 + 1_500 }];
    check(
        list_table(&[view(vec![], 1_000), view(promoted.clone(), 2_000)]),
        "
        NAME                 ROUTE                    STABLE           CANARY           PHASE           WEIGHT  STATUS
        c1                   product-vr/product-r     product-1        product-2        progressing        20%  step 1 of 4 (20% to canary): analysis interval 29s left; waiting for traffic: 0 of 1 canary requests in this step
        c1                   product-vr/product-r     product-1        product-2        succeeded         100%  promoted by command at step 1 of 4
        ",
    );
    check(
        history_table(&view(promoted, 2_000).record),
        "
        AT (UTC)                   EVENT       CANARY  REASON
        2023-11-14 22:13:20.000    started        20%  step 1 of 4: 20% to canary product-2, 80% to stable product-1
        2023-11-14 22:13:21.500    promoted      100%  promoted by command at step 1 of 4 (20%)
        ",
    );
}
