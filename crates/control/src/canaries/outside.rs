//! What the driver asks of, and tells, the world outside the mesh besides webhooks: the
//! canaries' Prometheus checks (queried in the background, at most every
//! [`METRICS_EVERY`] per canary, so a slow Prometheus never holds up a tick) and the
//! notifications of every transition (a POST with a Slack-compatible `text`).
//!
//! Both go only where `--webhook-allow` lets webhooks go. Metric values live in this replica's
//! memory: a new leader queries again, and a step passes only on values taken within its own
//! analysis window, so nothing from before a restart counts. Notifications are sent when a
//! transition is acted on: at least once (a leader that dies after sending but before
//! recording sends again from the next one), never retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::wire::CanaryRecord;
use rollout::{HistoryEntry, MetricResult, Millis, PrometheusCheck, Webhook};
use serde_json::{Value, json};

use crate::App;
use crate::clock::Clock;
use crate::webhooks::WebhookPolicy;

/// How often one canary's checks are queried.
pub const METRICS_EVERY: Duration = Duration::from_secs(2);

/// How long one query or notification may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The latest values of each live canary's checks, by (mesh, canary): at most one entry per
/// live canary with checks, dropped when it ends.
#[derive(Default)]
pub struct Metrics {
    canaries: Mutex<HashMap<(String, String), Taken>>,
}

#[derive(Default)]
struct Taken {
    /// When the last round of queries started.
    asked_at: Millis,
    running: bool,
    /// Each check's latest value, with when it was taken.
    values: Vec<(Millis, MetricResult)>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Taken>> {
        // Every operation leaves the map consistent between statements.
        self.canaries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn forget(&self, mesh: &str, name: &str) {
        self.lock().remove(&(mesh.to_string(), name.to_string()));
    }
}

impl App {
    /// The values of `record`'s checks taken since `since` (the analysis window's start), as
    /// this replica last queried them: none on a replica that does not drive the canary.
    pub(super) fn metric_results(&self, record: &CanaryRecord, since: Millis) -> Vec<MetricResult> {
        if record.spec.analysis.prometheus.is_empty() {
            return Vec::new();
        }
        let key = (record.spec.mesh.clone(), record.name.clone());
        self.metrics
            .lock()
            .get(&key)
            .map_or_else(Vec::new, |taken| {
                taken
                    .values
                    .iter()
                    .filter(|(at, _)| *at >= since)
                    .map(|(_, result)| result.clone())
                    .collect()
            })
    }

    /// The driver's part: starts a round of `record`'s queries in the background when the last
    /// one is older than [`METRICS_EVERY`] and none runs. `window_ms`: the analysis window so
    /// far, for `{{window}}`.
    pub(super) fn refresh_metrics(&self, record: &CanaryRecord, now: Millis, window_ms: Millis) {
        let checks = &record.spec.analysis.prometheus;
        if checks.is_empty() {
            return;
        }
        let key = (record.spec.mesh.clone(), record.name.clone());
        let mut canaries = self.metrics.lock();
        let taken = canaries.entry(key.clone()).or_default();
        let due = now.saturating_sub(taken.asked_at) >= METRICS_EVERY.as_millis() as Millis;
        if due && !taken.running {
            taken.running = true;
            taken.asked_at = now;
            let job = Round {
                checks: checks.clone(),
                vars: [
                    ("canary", record.spec.canary_node.clone()),
                    ("stable", record.spec.stable_node.clone()),
                    ("mesh", record.spec.mesh.clone()),
                    ("window", format!("{}s", (window_ms / 1000).max(1))),
                ],
                policy: self.webhook_policy.clone(),
                metrics: self.metrics.clone(),
                clock: self.clock,
                key,
            };
            tokio::spawn(job.run());
        }
    }

    /// Sends each of `entries` (new transitions of `record`, in order) to every `notify` URL,
    /// in the background.
    pub(super) fn notify(&self, record: &CanaryRecord, entries: &[HistoryEntry]) {
        for target in &record.spec.notify {
            let hook = Webhook {
                name: "notify".into(),
                url: target.url.clone(),
                timeout: CALL_TIMEOUT,
            };
            let payloads: Vec<Value> = entries.iter().map(|e| payload(record, e)).collect();
            let (policy, canary) = (self.webhook_policy.clone(), record.name.clone());
            tokio::spawn(async move {
                for payload in payloads {
                    if let Err(error) = policy.call(&hook, &payload).await.outcome {
                        tracing::warn!(%canary, url = %hook.url, %error, "notification not delivered");
                    }
                }
            });
        }
    }
}

/// One transition as a notification: `text` for Slack-compatible incoming webhooks, and the
/// same facts as fields.
fn payload(record: &CanaryRecord, entry: &HistoryEntry) -> Value {
    let spec = &record.spec;
    let text = format!(
        "aviary: canary {} in mesh {} ({}/{}: {} → {}) {} at {}% to the canary: {}",
        record.name,
        spec.mesh,
        spec.router,
        spec.route,
        spec.stable_node,
        spec.canary_node,
        entry.event,
        entry.canary_weight,
        entry.reason
    );
    json!({
        "text": text,
        "canary": record.name,
        "mesh": spec.mesh,
        "event": entry.event,
        "canaryWeight": entry.canary_weight,
        "reason": entry.reason,
        "phase": record.state.phase,
        "at": entry.at,
    })
}

/// One round of one canary's queries.
struct Round {
    checks: Vec<PrometheusCheck>,
    vars: [(&'static str, String); 4],
    policy: Arc<WebhookPolicy>,
    metrics: Arc<Metrics>,
    clock: Clock,
    key: (String, String),
}

impl Round {
    async fn run(self) {
        let mut values = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            let value = self.query(check).await;
            values.push((
                self.clock.now(),
                MetricResult {
                    name: check.name.clone(),
                    value,
                },
            ));
        }
        let mut canaries = self.metrics.lock();
        // Gone: the canary ended (or lost its entry) while the round ran.
        if let Some(taken) = canaries.get_mut(&self.key) {
            taken.values = values;
            taken.running = false;
        }
    }

    async fn query(&self, check: &PrometheusCheck) -> Result<f64, String> {
        let mut query = check.query.clone();
        for (name, value) in &self.vars {
            query = query.replace(&format!("{{{{{name}}}}}"), value);
        }
        let url = format!("{}/api/v1/query", check.url.trim_end_matches('/'));
        let body = self
            .policy
            .get_json(&url, &[("query", &query)], CALL_TIMEOUT)
            .await?;
        number_of(&body)
    }
}

/// The one number a Prometheus query answer holds.
fn number_of(body: &Value) -> Result<f64, String> {
    if body["status"] != "success" {
        let error = body["error"].as_str().unwrap_or("the query failed");
        return Err(format!("prometheus: {error}"));
    }
    let data = &body["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([one]) => &one["value"],
            Some([]) | None => return Err("the query gave no data".into()),
            Some(many) => {
                return Err(format!(
                    "the query gave {} series; it must give one number",
                    many.len()
                ));
            }
        },
        other => {
            return Err(format!(
                "the query gave a {}, not a number",
                other.unwrap_or("nothing")
            ));
        }
    };
    let text = sample[1].as_str().unwrap_or_default();
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("the query gave {text:?}, not a finite number")),
    }
}

#[cfg(test)]
mod tests;
