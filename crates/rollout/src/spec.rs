//! What a canary is asked to do: the route it drives, its strategy, its analysis, and what to clean up after.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Millis;
use crate::duration::to_millis;

/// One canary release: shift `route` of `router` in `mesh` from `stable_node` to `canary_node`;
/// or, with a [`Strategy::Replicas`], shift one node's replicas from one workload to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    pub mesh: String,
    /// Empty (and left out of the JSON) for a replicas canary, which drives no route.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub router: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub route: String,
    /// The node that carries the route's traffic now: the old version.
    pub stable_node: String,
    /// The node of the new version; for a replicas canary the same node as `stable_node`.
    pub canary_node: String,
    pub strategy: Strategy,
    #[serde(default)]
    pub analysis: Analysis,
    #[serde(default)]
    pub on_success: OnSuccess,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Told of every transition (started, step passed, paused, promoted, rolled back, ...),
    /// with the reason: a POST whose JSON `text` is a Slack-compatible incoming-webhook message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
    /// Shadow traffic first: a step before any other in which this share of the route's
    /// requests is copied to the canary (answers discarded), judged by the same analysis
    /// before any user request reaches it. `{"percent": 20}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// A/B first: a step (after the mirror step, before the weighted ones) in which only
    /// requests matching any of these go to the canary; they keep going there through the
    /// weighted steps (Flagger's A/B testing). `[{"header": "x-canary", "exact": "always"},
    /// {"cookie": "canary", "exact": "always"}]`.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RequestMatch>,
    /// A caller the proxy sent to the canary by weight gets a cookie that keeps sending it
    /// there while the canary has weight, so one user does not flip between versions.
    /// `{"cookie": "aviary-canary", "maxAge": "1h"}`, both optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
}

/// `mirror`: the share of requests copied to the canary during the mirror step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirror {
    /// 1..=100.
    pub percent: u32,
}

/// One A/B rule: a header or a cookie, and how its value must read. Exactly one of `header`
/// and `cookie`, and exactly one of `exact`, `prefix`, `suffix` and `regex` (anchored at both
/// ends, Rust `regex` syntax).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

impl fmt::Display for RequestMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.header, &self.cookie) {
            (Some(h), _) => write!(f, "header {h}")?,
            (None, Some(c)) => write!(f, "cookie {c}")?,
            (None, None) => f.write_str("(nothing)")?,
        }
        if let Some(v) = &self.exact {
            write!(f, " = {v:?}")
        } else if let Some(v) = &self.prefix {
            write!(f, " starting {v:?}")
        } else if let Some(v) = &self.suffix {
            write!(f, " ending {v:?}")
        } else if let Some(v) = &self.regex {
            write!(f, " matching /{v}/")
        } else {
            Ok(())
        }
    }
}

/// `sticky`: the cookie that keeps a caller on the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sticky {
    /// Default `aviary-canary`.
    #[serde(default = "sticky_cookie")]
    pub cookie: String,
    /// The cookie's `Max-Age`. Default 1h.
    #[serde(default = "one_hour", with = "crate::duration")]
    pub max_age: Duration,
}

impl Default for Sticky {
    fn default() -> Self {
        Sticky {
            cookie: sticky_cookie(),
            max_age: one_hour(),
        }
    }
}

fn sticky_cookie() -> String {
    "aviary-canary".to_string()
}

fn one_hour() -> Duration {
    Duration::from_secs(3600)
}

/// Where a canary's transitions are sent: `{"url": "https://hooks.slack.com/services/..."}`.
/// Sent at least once, never retried for long: a notification is news, not a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notify {
    pub url: String,
}

/// How the canary's weight grows. JSON is tagged by `type`:
/// `{"type": "steps", "stepWeight": 10, "interval": "30s", "maxWeight": 100}`,
/// `{"type": "weights", "weights": [1, 5, 25, 50, "gate", 100], "interval": "1m"}`,
/// `{"type": "initial", "weight": 10, "duration": "5m"}`,
/// `{"type": "replicas", "stableWorkload": "web-v1", "canaryWorkload": "web-v2", "total": 4,
/// "interval": "1m"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Strategy {
    /// `step_weight`, 2×`step_weight`, … while below `max_weight`, then `max_weight` itself
    /// (unless it is 100), each held for `interval`; then promote.
    Steps {
        step_weight: u32,
        #[serde(with = "crate::duration")]
        interval: Duration,
        /// Defaults to 100.
        #[serde(default = "hundred")]
        max_weight: u32,
    },
    /// An explicit list: each weight held for `interval`; a gate waits for a resume command;
    /// reaching 100, or the end of the list, promotes.
    Weights {
        weights: Vec<StepSpec>,
        #[serde(with = "crate::duration")]
        interval: Duration,
    },
    /// `weight` for `duration`, then all.
    Initial {
        weight: u32,
        #[serde(with = "crate::duration")]
        duration: Duration,
    },
    /// No weighted route (the mesh-less way of the EKS canary tutorial): both versions are
    /// workloads of one node, and traffic follows their replicas, which the canary moves one
    /// at a time: of `total` replicas, 1, 2, … `total - 1` run the canary's workload, each for
    /// `interval`; then all of them. Step weights are the canary's share of the replicas,
    /// rounded down (`total` 3: 33%, 66%); the node's proxies count each workload apart, so
    /// the analysis judges the canary's replicas against the stable ones.
    Replicas {
        stable_workload: String,
        canary_workload: String,
        /// 2..=[`MAX_REPLICA_TOTAL`](crate::MAX_REPLICA_TOTAL).
        total: u32,
        #[serde(with = "crate::duration")]
        interval: Duration,
    },
}

fn hundred() -> u32 {
    100
}

impl Strategy {
    /// How long each weight is held: `interval`, or `duration` for [`Strategy::Initial`].
    pub fn interval(&self) -> Duration {
        match self {
            Strategy::Steps { interval, .. }
            | Strategy::Weights { interval, .. }
            | Strategy::Replicas { interval, .. } => *interval,
            Strategy::Initial { duration, .. } => *duration,
        }
    }

    /// The steps before promotion, expanded once when a canary starts: `Steps` gives
    /// `[step, 2×step, …, max]` without a final 100; `Weights` gives its list up to (without)
    /// the first weight of 100 or more; `Initial` gives `[weight]`. Promotion to 100% follows
    /// the last step. Weights are clamped to 100 and the list to 100 entries, so even an
    /// unvalidated spec expands to something small.
    pub fn expand(&self) -> Vec<StepSpec> {
        match *self {
            Strategy::Steps {
                step_weight,
                max_weight,
                ..
            } => {
                let max = max_weight.min(100);
                let step = step_weight.max(1);
                let mut steps = Vec::new();
                let mut weight = step;
                while weight < max && steps.len() < 100 {
                    steps.push(StepSpec::Weight(weight));
                    weight = weight.saturating_add(step);
                }
                if max < 100 && max > 0 {
                    steps.push(StepSpec::Weight(max));
                }
                steps
            }
            Strategy::Weights { ref weights, .. } => weights
                .iter()
                .take_while(|s| !matches!(s, StepSpec::Weight(w) if *w >= 100))
                .take(100)
                .copied()
                .collect(),
            Strategy::Initial { weight, .. } if weight < 100 => vec![StepSpec::Weight(weight)],
            Strategy::Initial { .. } => Vec::new(),
            Strategy::Replicas { total, .. } => {
                let total = total.min(crate::MAX_REPLICA_TOTAL);
                (1..total)
                    .map(|k| StepSpec::Weight(k * 100 / total))
                    .collect()
            }
        }
    }
}

/// The two workloads of a replicas canary and how many replicas both run together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSplit<'a> {
    pub stable_workload: &'a str,
    pub canary_workload: &'a str,
    pub total: u32,
}

impl ReplicaSplit<'_> {
    /// (stable, canary) replicas for a canary weight: the weights of
    /// [`Strategy::expand`] are `k × 100 / total` rounded down, less than one replica's
    /// share below `k`, so rounding up gives `k` back; 0 and 100 give none and all.
    pub fn counts(&self, canary_weight: u32) -> (u32, u32) {
        let total = self.total.min(crate::MAX_REPLICA_TOTAL);
        let canary = (canary_weight.min(100) * total).div_ceil(100);
        (total - canary, canary)
    }
}

/// One entry of [`Strategy::Weights`]: a canary weight in percent, or a gate that waits for a
/// resume command. JSON: a number, or the string `"gate"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepSpec {
    Weight(u32),
    Gate,
    /// The mirror step ([`CanarySpec::mirror`]): weight 0, this share of requests copied to the
    /// canary. JSON `{"mirror": 20}`; comes only from the spec's `mirror`.
    Mirror(u32),
    /// The A/B step ([`CanarySpec::matches`]): weight 0, matching requests to the canary. JSON
    /// `"match"`; comes only from the spec's `match`.
    Match,
}

impl Serialize for StepSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StepSpec::Weight(w) => serializer.serialize_u32(*w),
            StepSpec::Gate => serializer.serialize_str("gate"),
            StepSpec::Match => serializer.serialize_str("match"),
            StepSpec::Mirror(p) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("mirror", p)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for StepSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StepVisitor;
        impl<'de> Visitor<'de> for StepVisitor {
            type Value = StepSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a weight from 1 to 100 or \"gate\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StepSpec, E> {
                u32::try_from(v)
                    .map(StepSpec::Weight)
                    .map_err(|_| E::custom(format!("weight {v} is not between 1 and 100")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StepSpec, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("weight {v} is not between 1 and 100"))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<StepSpec, A::Error> {
                match map.next_key::<String>()?.as_deref() {
                    Some("mirror") => {
                        let percent = map.next_value::<u32>()?;
                        if map.next_key::<String>()?.is_some() {
                            return Err(de::Error::custom("a mirror step has only \"mirror\""));
                        }
                        Ok(StepSpec::Mirror(percent))
                    }
                    other => Err(de::Error::custom(format!(
                        "{other:?} is not a step: expected a weight, \"gate\" or {{\"mirror\": percent}}"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StepSpec, E> {
                if v == "gate" {
                    Ok(StepSpec::Gate)
                } else if v == "match" {
                    Ok(StepSpec::Match)
                } else {
                    Err(E::custom(format!(
                        "{v:?} is not a step: expected a weight from 1 to 100 or \"gate\""
                    )))
                }
            }
        }
        deserializer.deserialize_any(StepVisitor)
    }
}

impl fmt::Display for StepSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepSpec::Weight(w) => write!(f, "{w}%"),
            StepSpec::Gate => f.write_str("gate"),
            StepSpec::Mirror(p) => write!(f, "mirror {p}%"),
            StepSpec::Match => f.write_str("match"),
        }
    }
}

/// What decides whether the canary is healthy (checked on every tick) and whether a step may
/// pass (checked when its interval is over).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// Failure if the canary's 5xx count within `failure_window` exceeds this (the App Mesh
    /// pipeline's `failure_threshold_value`; 0 = any 5xx fails). `None` = not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_5xx: Option<u64>,
    /// The window of `max_5xx` (the pipeline's `failure_threshold_time`). Default 60s.
    #[serde(default = "sixty_seconds", with = "crate::duration")]
    pub failure_window: Duration,
    /// Failure if the canary's error rate (0..=1) in the current step exceeds this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Failure if the canary's p99 latency in the current step exceeds this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    /// A step may pass only with at least this many canary requests during it (no traffic, no
    /// progress). Default 1.
    #[serde(default = "one")]
    pub min_requests: u64,
    /// Fail if no step has passed for this long. Default 10m.
    #[serde(default = "ten_minutes", with = "crate::duration")]
    pub progress_deadline: Duration,
    /// Called at the start of every step; each must have passed before the step may pass, and
    /// any failure fails the canary.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// A statistical comparison of the canary with the stable version over the same time:
    /// fails a canary shown to be worse than stable, and holds each step until the canary is
    /// shown to be no worse than stable by more than a tolerance. `None` = not compared.
    /// Combines with the thresholds above: any failing check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
    /// What a step whose interval is over does when it saw fewer than `minRequests` canary
    /// requests. Left out of the JSON when it is the default, `wait`.
    #[serde(default, skip_serializing_if = "NoTraffic::is_wait")]
    pub no_traffic: NoTraffic,
    /// PromQL queries (Flagger's metric templates) the driver runs against a Prometheus,
    /// each with a range its value must stay in: outside it fails the canary; a step passes
    /// only once every check has a value from its own analysis window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prometheus: Vec<PrometheusCheck>,
    /// Synthetic load while the canary runs (Flagger's load tester), so a canary without
    /// users can be judged. `None` = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<Load>,
}

/// `analysis.load`: `{"url": "http://127.0.0.1:8080/", "rate": 10}`: GET requests the driver
/// sends, `rate` per second, to `url`, an entry into the mesh (a gateway's listener, or a
/// proxy's outbound listener with `host` naming the virtual service), for as long as the
/// canary is live and this control plane leads. Answers are discarded: the proxies count
/// them like any request. At most `rate` requests are in flight; each gives up after 5 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Load {
    pub url: String,
    /// Requests per second, 1..=[`MAX_LOAD_RATE`](crate::MAX_LOAD_RATE).
    pub rate: u32,
    /// The `Host` header to send, when it is not the URL's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// `{"name": "error-share", "url": "http://127.0.0.1:9090", "query": "...", "max": 0.02}`.
/// In the query, `{{canary}}`, `{{stable}}` and `{{mesh}}` are the nodes' and mesh's names and
/// `{{window}}` the analysis window so far in whole seconds (`30s`), for ranges like
/// `rate(x[{{window}}])`. The query must give one number (a scalar or a one-series vector).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusCheck {
    pub name: String,
    /// The Prometheus server; the query goes to `{url}/api/v1/query`.
    pub url: String,
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// `analysis.compare`: the canary against the live stable version, on every request of both
/// since the canary started. JSON: `{"confidence": 0.99, "maxErrorRateIncrease": 0.005,
/// "latency": {"quantile": 0.99, "maxSlowShareIncrease": 0.01}}`, every field optional.
///
/// Two anytime-valid tests run on every tick, so looking at the evidence every 250 ms costs
/// nothing in error guarantees:
/// - fail: the canary is rolled back once the odds that it fails (or is slow) more often than
///   stable reach `confidence : 1 - confidence` (1:100 at 0.99). A canary exactly as good as
///   stable is rolled back this way with probability at most `1 - confidence`.
/// - pass: a step passes only once the canary's error rate is shown, at `confidence`, to be
///   below stable's plus `max_error_rate_increase` (and the slow share below stable's plus
///   `max_slow_share_increase`). A canary worse than that passes with probability at most
///   `1 - confidence`.
///
/// A canary between the two (worse than stable, but by less than the tolerance) may go either
/// way: that indifference zone is what makes both guarantees affordable. Proving "no worse by
/// more than 0.5 points" takes many requests: about 13 000 canary requests for a service
/// failing 1% of its requests (see `bench/README.md`); `analysis.progressDeadline` must leave
/// that much time, or the step runs into it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compare {
    /// 0.5 < confidence < 1. Default 0.99.
    #[serde(default = "ninety_nine_percent")]
    pub confidence: f64,
    /// How much worse than stable's error rate the canary's may be, as a fraction (0.005 is
    /// half a percentage point: 1% on stable allows 1.5% on the canary). 0 < x < 1. Default
    /// 0.005.
    #[serde(default = "half_a_point")]
    pub max_error_rate_increase: f64,
    /// Also compare latency. `None` = errors only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyCompare>,
}

/// `analysis.compare.latency`: latency compared as the share of "slow" requests, those slower
/// than stable's `quantile` (as fixed from stable's first 100 requests with latency, rounded
/// up to a bucket bound of [`LATENCY_BUCKETS_MS`](crate::LATENCY_BUCKETS_MS)); the same two
/// tests as errors, on slow requests instead of failed ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyCompare {
    /// 0.5 < quantile < 1. Default 0.99: stable's slow share is then at most 1%.
    #[serde(default = "ninety_nine_percent")]
    pub quantile: f64,
    /// How much larger than stable's the canary's slow share may be, as a fraction. 0 < x < 1.
    /// Default 0.01.
    #[serde(default = "one_point")]
    pub max_slow_share_increase: f64,
}

impl Default for Compare {
    fn default() -> Self {
        Compare {
            confidence: ninety_nine_percent(),
            max_error_rate_increase: half_a_point(),
            latency: None,
        }
    }
}

impl Default for LatencyCompare {
    fn default() -> Self {
        LatencyCompare {
            quantile: ninety_nine_percent(),
            max_slow_share_increase: one_point(),
        }
    }
}

fn ninety_nine_percent() -> f64 {
    0.99
}

fn half_a_point() -> f64 {
    0.005
}

fn one_point() -> f64 {
    0.01
}

/// `analysis.noTraffic`: what a step whose interval is over does when it saw fewer than
/// `minRequests` canary requests (and the driver's stats cover the whole interval, so the
/// count can be trusted). JSON: `"wait"`, `"pass"` or `"fail"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NoTraffic {
    /// Wait for traffic, until `progressDeadline`.
    #[default]
    Wait,
    /// Pass the step anyway (also without the evidence `compare` waits for, since there is no
    /// traffic to give it); its history entry says so, for the driver to warn about.
    Pass,
    /// Roll the canary back.
    Fail,
}

impl NoTraffic {
    fn is_wait(&self) -> bool {
        *self == NoTraffic::Wait
    }
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

fn one() -> u64 {
    1
}

fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            max_5xx: None,
            failure_window: sixty_seconds(),
            max_error_rate: None,
            max_p99_ms: None,
            min_requests: one(),
            progress_deadline: ten_minutes(),
            webhooks: Vec::new(),
            compare: None,
            no_traffic: NoTraffic::Wait,
            prometheus: Vec::new(),
            load: None,
        }
    }
}

/// The custom health check: an HTTP POST of the canary's state; 2xx passes, anything else or
/// no answer within `timeout` fails. The driver makes the call; this crate only judges results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    #[serde(default = "five_seconds", with = "crate::duration")]
    pub timeout: Duration,
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

/// What to clean up after promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnSuccess {
    /// Remove the old version's workloads, then its node (once the route no longer names it).
    #[serde(default)]
    pub remove_stable: bool,
}

/// What to clean up after a rollback (failure or abort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnFailure {
    /// Remove the canary's workloads, then its node (once the route no longer names it).
    #[serde(default)]
    pub remove_canary: bool,
}

impl CanarySpec {
    pub(crate) fn interval_ms(&self) -> Millis {
        to_millis(self.strategy.interval())
    }

    /// The workloads a replicas canary moves replicas between; `None` for a route canary.
    pub fn replicas(&self) -> Option<ReplicaSplit<'_>> {
        match &self.strategy {
            Strategy::Replicas {
                stable_workload,
                canary_workload,
                total,
                ..
            } => Some(ReplicaSplit {
                stable_workload,
                canary_workload,
                total: *total,
            }),
            _ => None,
        }
    }

    /// What the canary's stats are counted under, and what texts call it: its node, or for a
    /// replicas canary its workload (of the one node).
    pub fn canary_version(&self) -> Version<'_> {
        Version {
            node: &self.canary_node,
            workload: self.replicas().map(|split| split.canary_workload),
        }
    }

    /// As [`CanarySpec::canary_version`], for the stable version.
    pub fn stable_version(&self) -> Version<'_> {
        Version {
            node: &self.stable_node,
            workload: self.replicas().map(|split| split.stable_workload),
        }
    }

    /// Every step before promotion: the mirror step if `mirror` is set, the A/B step if
    /// `match` is, then the strategy's ([`Strategy::expand`]).
    pub fn steps(&self) -> Vec<StepSpec> {
        let mut steps = Vec::new();
        if let Some(mirror) = self.mirror {
            steps.push(StepSpec::Mirror(mirror.percent.min(100)));
        }
        if !self.matches.is_empty() {
            steps.push(StepSpec::Match);
        }
        steps.extend(self.strategy.expand());
        steps
    }
}

/// One side of a canary: a node, or one workload of a node. Shown as the workload's name
/// when there is one (workload names are unique in a mesh), else the node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    pub node: &'a str,
    pub workload: Option<&'a str>,
}

impl fmt::Display for Version<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.workload.unwrap_or(self.node))
    }
}

/// What the proxies do for a canary besides its route's weights, now: copy a share of
/// requests to it (the mirror step), send matching requests to it (from the A/B step on),
/// keep callers it was chosen for on it. Proxies read it off the canary's stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure<'a> {
    /// Percent of the route's requests copied to the canary.
    pub mirror_percent: Option<u32>,
    /// Requests matching any of these go to the canary.
    pub matches: &'a [RequestMatch],
    /// Set when the canary has weight: a request the weighted choice sent to the canary gets
    /// this cookie, and a request carrying it (with the canary node's name as its value) goes
    /// to the canary.
    pub sticky: Option<&'a Sticky>,
}

/// The [`Exposure`] of a canary in `state`; `None` once it ended, or when it exposes the
/// canary only by weight.
pub fn exposure<'a>(spec: &'a CanarySpec, state: &crate::CanaryState) -> Option<Exposure<'a>> {
    if state.phase.is_terminal() {
        return None;
    }
    let exposure = match state.steps.get(state.step) {
        Some(StepSpec::Mirror(percent)) => Exposure {
            mirror_percent: Some(*percent),
            matches: &[],
            sticky: None,
        },
        _ => Exposure {
            mirror_percent: None,
            matches: &spec.matches,
            sticky: spec.sticky.as_ref().filter(|_| state.canary_weight > 0),
        },
    };
    let nothing = exposure.mirror_percent.is_none()
        && exposure.matches.is_empty()
        && exposure.sticky.is_none();
    (!nothing).then_some(exposure)
}

/// The spec unit tests start from: mesh `m`, router `r`, route `rt`, stable `product-vn`,
/// canary `product-2-vn`, nothing to clean up, no notifications, only weights.
#[cfg(test)]
pub(crate) fn fixture(strategy: Strategy, analysis: Analysis) -> CanarySpec {
    CanarySpec {
        mesh: "m".into(),
        router: "r".into(),
        route: "rt".into(),
        stable_node: "product-vn".into(),
        canary_node: "product-2-vn".into(),
        strategy,
        analysis,
        on_success: OnSuccess::default(),
        on_failure: OnFailure::default(),
        notify: Vec::new(),
        mirror: None,
        matches: Vec::new(),
        sticky: None,
    }
}
