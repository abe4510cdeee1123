//! Full validation of resource specs and names: the model's rules plus aviary's own.

use std::collections::HashMap;

use serde_json::Value;

use crate::kind::Kind;
use crate::problem::Problem;
use crate::validate::{exactly_one_message, join, validate_shape};

/// Largest serialized JSON of one resource's spec (and of one `/v1` workload or canary spec).
/// App Mesh's largest real specs are a few KiB; the bound keeps what one write costs the store,
/// its watch history and every proxy that follows it small and known.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;

/// Route types of a `RouteSpec`, exactly one of which must be set.
const ROUTE_TYPES: [&str; 4] = ["grpcRoute", "http2Route", "httpRoute", "tcpRoute"];
/// Route types of a `GatewayRouteSpec`, exactly one of which must be set.
const GATEWAY_ROUTE_TYPES: [&str; 3] = ["grpcRoute", "http2Route", "httpRoute"];

/// Validate a resource name: 1..=255 characters (the model's `ResourceName`) and aviary's
/// pattern `^[A-Za-z0-9][A-Za-z0-9._-]*$`, because names go into URL paths and DNS-like
/// virtual service names.
pub fn validate_name(path: &str, name: &str) -> Vec<Problem> {
    let mut problems = validate_shape("ResourceName", &Value::String(name.to_owned()), path);
    let mut chars = name.chars();
    let well_formed = match chars.next() {
        None => true, // the length rule already said so
        Some(first) => {
            first.is_ascii_alphanumeric()
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        }
    };
    if !well_formed {
        problems.push(Problem::new(
            path,
            "must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
        ));
    }
    problems
}

/// Full validation of a resource spec: the service model's rules for `kind.spec_shape()`, then
/// aviary's semantic rules (one route type per route, distinct weighted targets, not every
/// weight zero, well-formed referenced names). Returns all problems, paths starting at `spec`.
pub fn validate_spec(kind: Kind, spec: &Value) -> Vec<Problem> {
    if let Some(too_big) = size_problem("spec", spec) {
        // Walking a huge spec would cost what the limit is there to avoid, and could name
        // thousands of problems in it; its size is the one that matters.
        return vec![too_big];
    }
    let mut problems = validate_shape(kind.spec_shape(), spec, "spec");
    let Value::Object(object) = spec else {
        return problems;
    };
    match kind {
        Kind::Route => {
            exactly_one_of(object, &ROUTE_TYPES, &mut problems);
            for (path, targets) in weighted_target_lists(spec) {
                check_weighted_targets(&path, targets, &mut problems);
            }
        }
        Kind::GatewayRoute => exactly_one_of(object, &GATEWAY_ROUTE_TYPES, &mut problems),
        _ => {}
    }
    let mut names = name_sites(kind, spec);
    if kind == Kind::VirtualNode {
        names.extend(backend_names(spec));
    }
    for (path, _, name) in names {
        for problem in validate_name(&path, name) {
            // The model's length rule on `ResourceName` members may have said it already.
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// A problem at `path` if `value` serialized as JSON is over [`MAX_SPEC_BYTES`].
pub fn size_problem(path: &str, value: &impl serde::Serialize) -> Option<Problem> {
    let size = json_size(value);
    (size > MAX_SPEC_BYTES).then(|| {
        Problem::new(
            path,
            format!("is {size} bytes as JSON, over the limit of {MAX_SPEC_BYTES} bytes (64 KiB)"),
        )
    })
}

/// Bytes of `value` serialized as compact JSON, counted without building the text.
fn json_size(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing into a counter fails only for values JSON cannot hold (non-string map keys),
    // which nothing here has; such a value would count as what was written before the error.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Names of resources this spec refers to, deduplicated, in order of first appearance:
/// route weighted targets' virtual nodes, a virtual service's provider (node or router), a
/// gateway route's target virtual service. Virtual node backends are not included: App Mesh
/// lets backends name virtual services that do not exist yet.
pub fn references(kind: Kind, spec: &Value) -> Vec<(Kind, String)> {
    let mut out: Vec<(Kind, String)> = Vec::new();
    for Reference { kind, name, .. } in reference_sites(kind, spec) {
        if !out.iter().any(|(k, n)| *k == kind && *n == name) {
            out.push((kind, name));
        }
    }
    out
}

/// One place a spec names a resource that must exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where in the request, e.g. `spec.httpRoute.action.weightedTargets[0].virtualNode`.
    pub path: String,
    pub kind: Kind,
    pub name: String,
}

/// Every place a spec names a resource that must exist, with its path, in order and not
/// deduplicated: what [`references`] lists, so that an error can name the field at fault.
pub fn reference_sites(kind: Kind, spec: &Value) -> Vec<Reference> {
    name_sites(kind, spec)
        .into_iter()
        .map(|(path, kind, name)| Reference {
            path,
            kind,
            name: name.to_owned(),
        })
        .collect()
}

fn exactly_one_of(
    object: &serde_json::Map<String, Value>,
    names: &[&str],
    problems: &mut Vec<Problem>,
) {
    let set: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| object.get(*n).is_some_and(|v| !v.is_null()))
        .collect();
    if set.len() != 1 {
        problems.push(Problem::new("spec", exactly_one_message(names, &set)));
    }
}

/// Each route type's `action.weightedTargets` array, with its path.
fn weighted_target_lists(spec: &Value) -> Vec<(String, &Vec<Value>)> {
    ROUTE_TYPES
        .iter()
        .filter_map(|rt| {
            let targets = spec.get(rt)?.get("action")?.get("weightedTargets")?;
            Some((
                format!("spec.{rt}.action.weightedTargets"),
                targets.as_array()?,
            ))
        })
        .collect()
}

fn check_weighted_targets(path: &str, targets: &[Value], problems: &mut Vec<Problem>) {
    let mut seen: HashMap<(&str, Option<i64>), usize> = HashMap::new();
    for (i, target) in targets.iter().enumerate() {
        let Some(node) = target.get("virtualNode").and_then(Value::as_str) else {
            continue;
        };
        let port = target.get("port").and_then(Value::as_i64);
        if seen.insert((node, port), i).is_some() {
            let message = match port {
                Some(port) => format!("virtual node '{node}' port {port} is listed twice"),
                None => format!("virtual node '{node}' is listed twice"),
            };
            problems.push(Problem::new(format!("{path}[{i}]"), message));
        }
    }
    let weights: Option<Vec<u64>> = targets
        .iter()
        .map(|t| t.get("weight").and_then(Value::as_u64))
        .collect();
    if let Some(weights) = weights
        && !weights.is_empty()
        && weights.iter().all(|&w| w == 0)
    {
        problems.push(Problem::new(path, "all weights are zero"));
    }
}

/// Every place a spec names another resource: (path, kind named, name).
fn name_sites(kind: Kind, spec: &Value) -> Vec<(String, Kind, &str)> {
    let mut out = Vec::new();
    match kind {
        Kind::Route => {
            for (path, targets) in weighted_target_lists(spec) {
                for (i, target) in targets.iter().enumerate() {
                    if let Some(node) = target.get("virtualNode").and_then(Value::as_str) {
                        out.push((format!("{path}[{i}].virtualNode"), Kind::VirtualNode, node));
                    }
                }
            }
        }
        Kind::VirtualService => {
            let providers = [
                ("virtualNode", "virtualNodeName", Kind::VirtualNode),
                ("virtualRouter", "virtualRouterName", Kind::VirtualRouter),
            ];
            for (provider, field, kind) in providers {
                let name = spec
                    .get("provider")
                    .and_then(|p| p.get(provider))
                    .and_then(|p| p.get(field))
                    .and_then(Value::as_str);
                if let Some(name) = name {
                    out.push((format!("spec.provider.{provider}.{field}"), kind, name));
                }
            }
        }
        Kind::GatewayRoute => {
            for rt in GATEWAY_ROUTE_TYPES {
                let name = spec
                    .get(rt)
                    .and_then(|r| r.get("action"))
                    .and_then(|a| a.get("target"))
                    .and_then(|t| t.get("virtualService"))
                    .and_then(|v| v.get("virtualServiceName"))
                    .and_then(Value::as_str);
                if let Some(name) = name {
                    let path = format!("spec.{rt}.action.target.virtualService.virtualServiceName");
                    out.push((path, Kind::VirtualService, name));
                }
            }
        }
        Kind::Mesh | Kind::VirtualNode | Kind::VirtualRouter | Kind::VirtualGateway => {}
    }
    out
}

/// A virtual node's backends' virtual service names, which must be well-formed even though
/// they need not exist yet.
fn backend_names(spec: &Value) -> Vec<(String, Kind, &str)> {
    let Some(backends) = spec.get("backends").and_then(Value::as_array) else {
        return Vec::new();
    };
    backends
        .iter()
        .enumerate()
        .filter_map(|(i, backend)| {
            let name = backend
                .get("virtualService")?
                .get("virtualServiceName")?
                .as_str()?;
            let path = join(
                &format!("spec.backends[{i}]"),
                "virtualService.virtualServiceName",
            );
            Some((path, Kind::VirtualService, name))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
