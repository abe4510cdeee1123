//! `validate`: every problem with a [`CanarySpec`] at once, each naming its JSON path.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::format;
use crate::spec::{CanarySpec, StepSpec, Strategy};

/// The longest interval, failure window or webhook timeout that makes sense.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The most requests per second `analysis.load` may send.
pub const MAX_LOAD_RATE: u32 = 1000;

/// The most A/B rules a canary may have (each is checked on every request of its route).
pub const MAX_MATCHES: usize = 16;

/// The most replicas a replicas canary may move: as many as one workload may run
/// (`model::wire::MAX_REPLICAS`).
pub const MAX_REPLICA_TOTAL: u32 = 64;

/// One thing wrong with a spec: where (a JSON path such as `strategy.weights[2]`) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem with `spec`, in field order; empty when it may start.
pub fn validate(spec: &CanarySpec) -> Vec<Problem> {
    let mut problems = Problems::default();
    let p = &mut problems;
    for (path, value) in [
        ("mesh", &spec.mesh),
        ("stableNode", &spec.stable_node),
        ("canaryNode", &spec.canary_node),
    ] {
        if value.is_empty() {
            p.add(path, "must not be empty");
        }
    }
    if spec.replicas().is_some() {
        replicas(p, spec);
    } else {
        for (path, value) in [("router", &spec.router), ("route", &spec.route)] {
            if value.is_empty() {
                p.add(path, "must not be empty");
            }
        }
        if !spec.stable_node.is_empty() && spec.stable_node == spec.canary_node {
            p.add(
                "canaryNode",
                format!(
                    "must differ from stableNode (both are {:?})",
                    spec.canary_node
                ),
            );
        }
    }
    strategy(p, &spec.strategy);
    analysis(p, spec);
    exposure(p, spec);
    problems.0
}

/// A replicas canary: one node, two workloads of it, no route; and nothing that needs a route
/// (the proxies' canary overlay is per route).
fn replicas(p: &mut Problems, spec: &CanarySpec) {
    if spec.stable_node != spec.canary_node {
        p.add(
            "canaryNode",
            format!(
                "a replicas canary runs both versions behind one node: must be stableNode {:?}, \
                 got {:?}",
                spec.stable_node, spec.canary_node
            ),
        );
    }
    for (path, value) in [("router", &spec.router), ("route", &spec.route)] {
        if !value.is_empty() {
            p.add(
                path,
                "a replicas canary moves replicas, not route weights: leave it out",
            );
        }
    }
    let unsupported = [
        ("mirror", spec.mirror.is_some()),
        ("match", !spec.matches.is_empty()),
        ("sticky", spec.sticky.is_some()),
    ];
    for (path, given) in unsupported {
        if given {
            p.add(
                path,
                "needs a weighted route; a replicas canary's traffic follows its replicas",
            );
        }
    }
}

/// `mirror`, `match` and `sticky`. A rule's `regex` is compiled by the control plane, which
/// has the regex engine; here only its presence is checked.
fn exposure(p: &mut Problems, spec: &CanarySpec) {
    if let Some(mirror) = spec.mirror
        && !(1..=100).contains(&mirror.percent)
    {
        p.add(
            "mirror.percent",
            format!("must be between 1 and 100, got {}", mirror.percent),
        );
    }
    if spec.matches.len() > MAX_MATCHES {
        p.add(
            "match",
            format!("at most {MAX_MATCHES} rules, got {}", spec.matches.len()),
        );
    }
    for (i, rule) in spec.matches.iter().enumerate() {
        let path = format!("match[{i}]");
        match (&rule.header, &rule.cookie) {
            (Some(_), Some(_)) | (None, None) => {
                p.add(path.clone(), "give exactly one of header and cookie")
            }
            (Some(name), None) | (None, Some(name)) => {
                let field = if rule.header.is_some() {
                    "header"
                } else {
                    "cookie"
                };
                if !http_token(name) {
                    p.add(
                        format!("{path}.{field}"),
                        format!("{name:?} is not a valid {field} name"),
                    );
                }
            }
        }
        let values = [&rule.exact, &rule.prefix, &rule.suffix, &rule.regex];
        if values.iter().filter(|v| v.is_some()).count() != 1 {
            p.add(
                path.clone(),
                "give exactly one of exact, prefix, suffix and regex",
            );
        }
    }
    if let Some(sticky) = &spec.sticky {
        if !http_token(&sticky.cookie) {
            p.add(
                "sticky.cookie",
                format!("{:?} is not a valid cookie name", sticky.cookie),
            );
        }
        period(p, "sticky.maxAge", sticky.max_age);
    }
}

/// An HTTP token (RFC 9110 `token`): what header and cookie names are made of.
pub fn http_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn strategy(p: &mut Problems, strategy: &Strategy) {
    match strategy {
        Strategy::Steps {
            step_weight,
            interval,
            max_weight,
        } => {
            if *step_weight == 0 {
                p.add("strategy.stepWeight", "must be at least 1");
            } else if *step_weight > 100 {
                p.add(
                    "strategy.stepWeight",
                    format!("must be at most 100, got {step_weight}"),
                );
            }
            if *max_weight == 0 || *max_weight > 100 {
                p.add(
                    "strategy.maxWeight",
                    format!("must be between 1 and 100, got {max_weight}"),
                );
            } else if *step_weight > *max_weight && *step_weight <= 100 {
                p.add(
                    "strategy.stepWeight",
                    format!("must not exceed maxWeight ({max_weight}), got {step_weight}"),
                );
            }
            period(p, "strategy.interval", *interval);
        }
        Strategy::Weights { weights, interval } => {
            if weights.is_empty() {
                p.add(
                    "strategy.weights",
                    "must list at least one weight, e.g. [10, 50, 100]",
                );
            } else if !weights
                .iter()
                .any(|s| matches!(s, StepSpec::Weight(w) if (1..100).contains(w)))
            {
                p.add(
                    "strategy.weights",
                    "must hold at least one weight between 1 and 99 before the promotion",
                );
            }
            let mut previous: Option<u32> = None;
            let mut promoted_at: Option<usize> = None;
            for (i, step) in weights.iter().enumerate() {
                let path = format!("strategy.weights[{i}]");
                if let Some(at) = promoted_at {
                    p.add(
                        path,
                        format!("nothing may follow the 100 at [{at}]: reaching 100 promotes"),
                    );
                    continue;
                }
                if matches!(step, StepSpec::Mirror(_) | StepSpec::Match) {
                    p.add(
                        path,
                        "mirror and match steps come from the spec's mirror and match, not \
                         from the weights",
                    );
                    continue;
                }
                let StepSpec::Weight(w) = *step else { continue };
                if w == 0 || w > 100 {
                    p.add(path, format!("must be between 1 and 100, got {w}"));
                    continue;
                }
                if let Some(before) = previous
                    && w <= before
                {
                    p.add(path, format!("weights must increase: {w} follows {before}"));
                }
                previous = Some(w);
                if w == 100 {
                    promoted_at = Some(i);
                }
            }
            period(p, "strategy.interval", *interval);
        }
        Strategy::Initial { weight, duration } => {
            if *weight == 0 || *weight >= 100 {
                p.add(
                    "strategy.weight",
                    format!("must be between 1 and 99 (100 is the promotion), got {weight}"),
                );
            }
            period(p, "strategy.duration", *duration);
        }
        Strategy::Replicas {
            stable_workload,
            canary_workload,
            total,
            interval,
        } => {
            for (path, value) in [
                ("strategy.stableWorkload", stable_workload),
                ("strategy.canaryWorkload", canary_workload),
            ] {
                if value.is_empty() {
                    p.add(path, "must not be empty");
                }
            }
            if !stable_workload.is_empty() && stable_workload == canary_workload {
                p.add(
                    "strategy.canaryWorkload",
                    format!("must differ from stableWorkload (both are {canary_workload:?})"),
                );
            }
            if !(2..=MAX_REPLICA_TOTAL).contains(total) {
                p.add(
                    "strategy.total",
                    format!(
                        "must be between 2 and {MAX_REPLICA_TOTAL} (one replica of each \
                         version at least), got {total}"
                    ),
                );
            }
            period(p, "strategy.interval", *interval);
        }
    }
}

fn period(p: &mut Problems, path: &str, d: Duration) {
    if d.is_zero() {
        p.add(path, "must be longer than 0s");
    } else if d > MAX_INTERVAL {
        p.add(
            path,
            format!(
                "must be at most {}, got {}",
                format(MAX_INTERVAL),
                format(d)
            ),
        );
    }
}

fn analysis(p: &mut Problems, spec: &CanarySpec) {
    let a = &spec.analysis;
    period(p, "analysis.failureWindow", a.failure_window);
    if let Some(rate) = a.max_error_rate
        && !(0.0..=1.0).contains(&rate)
    {
        p.add(
            "analysis.maxErrorRate",
            format!("must be a fraction between 0 and 1 (0.05 is 5%), got {rate}"),
        );
    }
    if let Some(ms) = a.max_p99_ms
        && !(ms.is_finite() && ms > 0.0)
    {
        p.add(
            "analysis.maxP99Ms",
            format!("must be a positive number of milliseconds, got {ms}"),
        );
    }
    if let Some(compare) = &a.compare {
        let confidence = compare.confidence;
        if !(confidence > 0.5 && confidence < 1.0) {
            p.add(
                "analysis.compare.confidence",
                format!("must be between 0.5 and 1, both excluded (0.99 is 99%), got {confidence}"),
            );
        }
        fraction(
            p,
            "analysis.compare.maxErrorRateIncrease",
            compare.max_error_rate_increase,
            "0.005 is half a percentage point",
        );
        if let Some(latency) = &compare.latency {
            let quantile = latency.quantile;
            if !(quantile > 0.5 && quantile < 1.0) {
                p.add(
                    "analysis.compare.latency.quantile",
                    format!(
                        "must be between 0.5 and 1, both excluded (0.99 is p99), got {quantile}"
                    ),
                );
            }
            fraction(
                p,
                "analysis.compare.latency.maxSlowShareIncrease",
                latency.max_slow_share_increase,
                "0.01 is one percentage point",
            );
        }
    }
    let interval = spec.strategy.interval();
    if a.progress_deadline < interval {
        let field = match spec.strategy {
            Strategy::Initial { .. } => "strategy.duration",
            _ => "strategy.interval",
        };
        p.add(
            "analysis.progressDeadline",
            format!(
                "must be at least {field} ({}), got {}",
                format(interval),
                format(a.progress_deadline)
            ),
        );
    }
    let mut checks = BTreeSet::new();
    for (i, check) in a.prometheus.iter().enumerate() {
        let path = format!("analysis.prometheus[{i}]");
        if check.name.is_empty() {
            p.add(format!("{path}.name"), "must not be empty");
        } else if !checks.insert(check.name.as_str()) {
            p.add(
                format!("{path}.name"),
                format!(
                    "{:?} is used by an earlier check; names must be unique",
                    check.name
                ),
            );
        }
        http_url(p, &format!("{path}.url"), &check.url);
        if check.query.trim().is_empty() {
            p.add(format!("{path}.query"), "must not be empty");
        }
        match (check.min, check.max) {
            (None, None) => p.add(
                format!("{path}.max"),
                "give max or min (or both): the range the value must stay in",
            ),
            (Some(min), Some(max)) if min > max => {
                p.add(format!("{path}.min"), format!("{min} is above max {max}"))
            }
            _ => {}
        }
        for (field, bound) in [("min", check.min), ("max", check.max)] {
            if bound.is_some_and(|b| !b.is_finite()) {
                p.add(format!("{path}.{field}"), "must be a finite number");
            }
        }
    }
    if let Some(load) = &a.load {
        http_url(p, "analysis.load.url", &load.url);
        if !(1..=MAX_LOAD_RATE).contains(&load.rate) {
            p.add(
                "analysis.load.rate",
                format!(
                    "must be between 1 and {MAX_LOAD_RATE} requests per second, got {}",
                    load.rate
                ),
            );
        }
        if let Some(host) = &load.host
            && (host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/'))
        {
            p.add("analysis.load.host", format!("{host:?} is not a host name"));
        }
    }
    for (i, notify) in spec.notify.iter().enumerate() {
        http_url(p, &format!("notify[{i}].url"), &notify.url);
    }
    let mut names = BTreeSet::new();
    for (i, hook) in a.webhooks.iter().enumerate() {
        let path = format!("analysis.webhooks[{i}]");
        if hook.name.is_empty() {
            p.add(format!("{path}.name"), "must not be empty");
        } else if !names.insert(hook.name.as_str()) {
            p.add(
                format!("{path}.name"),
                format!(
                    "{:?} is used by an earlier webhook; names must be unique",
                    hook.name
                ),
            );
        }
        http_url(p, &format!("{path}.url"), &hook.url);
        period(p, &format!("{path}.timeout"), hook.timeout);
    }
}

/// A URL the driver calls: http or https, with a host.
fn http_url(p: &mut Problems, path: &str, url: &str) {
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match host {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(char::is_whitespace) => {}
        _ => p.add(
            path,
            format!("must be an http:// or https:// URL with a host, got {url:?}"),
        ),
    }
}

/// A tolerance: strictly between 0 and 1.
fn fraction(p: &mut Problems, path: &str, value: f64, example: &str) {
    if !(value > 0.0 && value < 1.0) {
        p.add(
            path,
            format!("must be a fraction between 0 and 1, both excluded ({example}), got {value}"),
        );
    }
}

#[cfg(test)]
mod tests;
