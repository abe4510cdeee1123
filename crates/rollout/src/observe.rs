//! What the driver saw of the canary and stable nodes since the last input: request counts, errors, latency, webhook results.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Upper bounds, in milliseconds, of the latency buckets a [`NodeWindow`] counts into; one more
/// bucket (not listed) holds everything slower, so a window has up to 29 counts. The proxies'
/// buckets: roughly 1.5× apart.
pub const LATENCY_BUCKETS_MS: [f64; 28] = [
    0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5, 4.0, 6.0, 10.0, 15.0, 25.0, 40.0, 60.0, 100.0, 150.0,
    250.0, 400.0, 600.0, 1000.0, 1500.0, 2500.0, 4000.0, 6000.0, 10000.0, 15000.0, 30000.0,
];

/// One tick's view, from per-node stats over windows the driver chooses per the spec:
/// [`analysis_window`](crate::analysis_window) (the current step so far) for `canary` and
/// `stable`, and `analysis.failureWindow` for `canary_5xx_in_failure_window`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub canary: NodeWindow,
    pub stable: NodeWindow,
    /// 5xx answers of the canary within `failureWindow`. Requests that got no answer at all
    /// (the proxy's `failures`) belong here too: a canary that cannot be reached is failing.
    pub canary_5xx_in_failure_window: u64,
    /// The latest result of each webhook called for the current step (since the last
    /// [`Action::CallWebhooks`](crate::Action::CallWebhooks)); missing = not answered yet.
    /// The driver keeps sending them on every tick until it calls the webhooks again.
    #[serde(default)]
    pub webhooks: Vec<WebhookResult>,
    /// The latest value of each Prometheus check taken within the current analysis window;
    /// missing = none yet. An `Err` says why the query gave no number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
    /// How far back the driver's stats reach, when that is less than the whole step: a driver
    /// that just started (or just became the leader) has seen nothing from before. `None`:
    /// the stats cover everything asked for. A step does not pass on less than one interval of
    /// stats; a failure is acted on whatever the coverage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_ms: Option<Millis>,
}

/// One node's stats over a window: the shape of a node in `GET /v1/meshes/{mesh}/stats`
/// (other fields there are ignored). A node with no traffic is all zeros.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeWindow {
    pub requests: u64,
    /// Errors: 5xx answers and requests that got no answer at all.
    #[serde(default)]
    pub status_5xx: u64,
    /// 0..=1; judged only when `requests >= 1`; NaN counts as not measured.
    #[serde(default)]
    pub error_rate: f64,
    /// Judged only when `requests >= 1`; `None` or NaN counts as not measured.
    #[serde(default)]
    pub p99_ms: Option<f64>,
    /// Requests per latency bucket: index `i` counts those slower than bound `i - 1` of
    /// [`LATENCY_BUCKETS_MS`] and at most as slow as bound `i`; index 28 the slower rest. May be
    /// shorter (trailing zeros left out); longer lists are read up to index 28. Empty when the
    /// driver does not count latency: then `analysis.compare.latency` cannot pass a step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_buckets: Vec<u64>,
}

/// One Prometheus check's value, or why there is none ("HTTP 503", "the query gave no data").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    pub name: String,
    pub value: Result<f64, String>,
}

/// The outcome of calling one webhook: `Ok` for a 2xx answer, else `Err` with what happened
/// ("HTTP 503", "timed out after 5s"). JSON: `{"name": "smoke", "passed": true}` or
/// `{"name": "smoke", "passed": false, "error": "HTTP 503"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WebhookResultJson", into = "WebhookResultJson")]
pub struct WebhookResult {
    pub name: String,
    pub outcome: Result<(), String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookResultJson {
    name: String,
    passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<WebhookResultJson> for WebhookResult {
    fn from(json: WebhookResultJson) -> Self {
        let outcome = if json.passed {
            Ok(())
        } else {
            Err(json.error.unwrap_or_else(|| "failed".into()))
        };
        WebhookResult {
            name: json.name,
            outcome,
        }
    }
}

impl From<WebhookResult> for WebhookResultJson {
    fn from(result: WebhookResult) -> Self {
        WebhookResultJson {
            name: result.name,
            passed: result.outcome.is_ok(),
            error: result.outcome.err(),
        }
    }
}
