//! Pushes per-node request counts to the control plane every `PUSH_INTERVAL`, as deltas, so that
//! canary analysis sees what this proxy saw within a quarter of a second.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use model::wire::{NodeStats, StatsReport};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::telemetry::SeriesCounts;

pub const PUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Totals per target node, and per workload of a node that counts them, since the proxy
/// started.
type Totals = BTreeMap<(String, Option<String>), NodeStats>;

pub async fn run(
    shared: Arc<Shared>,
    client: client::Client,
    who: String,
    shutdown: CancellationToken,
) {
    // What the control plane has acknowledged (or refused for good); a failed push is carried
    // into the next one.
    let mut pushed = Totals::new();
    let mut tick = tokio::time::interval(PUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let telemetry = &shared.telemetry;
        let now = totals(&telemetry.snapshot(), &telemetry.workload_snapshot());
        let nodes = deltas(&now, &pushed);
        if nodes.is_empty() {
            continue;
        }
        let report = StatsReport {
            proxy: who.clone(),
            nodes,
        };
        let result = client.post_stats(&shared.mesh, &report).await;
        match settle(&result) {
            Settled::Counted => pushed = now,
            Settled::Refused => {
                tracing::warn!(error = ?result.err(), "stats report refused; its counts are dropped");
                pushed = now;
            }
            Settled::Retry => {
                tracing::debug!(error = ?result.err(), "stats push failed; retrying with the next")
            }
        }
    }
}

/// What a push's answer means for the deltas it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Counted,
    /// Refused for good (a 4xx: a node deleted since it was counted, say). Carried into the
    /// next push it would be refused again, and so would every push after it: dropped.
    Refused,
    /// Not reached, or failed on the server's side: carried into the next push.
    Retry,
}

pub fn settle(result: &Result<(), client::ClientError>) -> Settled {
    match result {
        Ok(()) => Settled::Counted,
        Err(client::ClientError::Api { status, .. }) if (400..500).contains(status) => {
            Settled::Refused
        }
        Err(_) => Settled::Retry,
    }
}

/// Sums every series by target node; requests that never got a node (no route) are left out.
/// Each workload series is an entry of its own.
pub fn totals(
    series: &[(crate::SeriesKey, SeriesCounts)],
    workloads: &[(crate::telemetry::WorkloadKey, SeriesCounts)],
) -> Totals {
    let mut totals = Totals::new();
    let by_node = (series.iter()).map(|(key, counts)| ((&key.target_node, None), counts));
    let by_workload =
        (workloads.iter()).map(|((node, workload), counts)| ((node, Some(workload)), counts));
    for ((target, workload), counts) in by_node.chain(by_workload) {
        if target.is_empty() {
            continue;
        }
        let node = totals
            .entry((target.clone(), workload.cloned()))
            .or_insert_with(|| NodeStats {
                virtual_node: target.clone(),
                workload: workload.cloned(),
                ..NodeStats::default()
            });
        node.requests += counts.requests();
        node.status_2xx += counts.by_class[1];
        node.status_4xx += counts.by_class[3];
        node.status_5xx += counts.by_class[4];
        if node.latency_buckets.len() < counts.latency.len() {
            node.latency_buckets.resize(counts.latency.len(), 0);
        }
        for (into, (_, count)) in node.latency_buckets.iter_mut().zip(&counts.latency) {
            *into += count;
        }
    }
    totals
}

/// What `now` counted beyond `before`, for nodes with new requests.
pub fn deltas(now: &Totals, before: &Totals) -> Vec<NodeStats> {
    now.values()
        .filter_map(|node| {
            let zero = NodeStats::default();
            let key = (node.virtual_node.clone(), node.workload.clone());
            let old = before.get(&key).unwrap_or(&zero);
            let requests = node.requests.saturating_sub(old.requests);
            (requests > 0).then(|| NodeStats {
                virtual_node: node.virtual_node.clone(),
                workload: node.workload.clone(),
                requests,
                status_2xx: node.status_2xx.saturating_sub(old.status_2xx),
                status_4xx: node.status_4xx.saturating_sub(old.status_4xx),
                status_5xx: node.status_5xx.saturating_sub(old.status_5xx),
                failures: 0,
                latency_buckets: node
                    .latency_buckets
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        n.saturating_sub(old.latency_buckets.get(i).copied().unwrap_or(0))
                    })
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
