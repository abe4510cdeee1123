//! What the driver saw of the canary and stable nodes since the last input: request counts, errors, latency, webhook results.

use serde::{Deserialize, Serialize};

use crate::Millis;

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
    #[serde(default)]
    pub status_5xx: u64,
    /// 0..=1; judged only when `requests >= 1`; NaN counts as not measured.
    #[serde(default)]
    pub error_rate: f64,
    /// Judged only when `requests >= 1`; `None` or NaN counts as not measured.
    #[serde(default)]
    pub p99_ms: Option<f64>,
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
