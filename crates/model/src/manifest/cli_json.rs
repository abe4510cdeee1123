//! What App Mesh users' scripts saved, read as manifests: the JSON `aws appmesh describe-*`
//! prints (`{"virtualNode": {"meshName", "virtualNodeName", "spec", "metadata", "status"}}`),
//! and the input of `create-*` / `update-*` (`--cli-input-json` files: `{"meshName",
//! "virtualNodeName", "spec", "tags"}`).
//!
//! A document is one of these when it has no `kind` and either a single key naming an App Mesh
//! resource (`mesh`, `virtualNode`, …: describe output) or a `meshName` (an input). Which kind
//! an input is follows from its name fields, as the CLI's operation would: `routeName` with
//! `virtualRouterName` is a Route, `virtualRouterName` alone a VirtualRouter, and so on.
//! `metadata` and `status` of describe output (ARN, version, timestamps) are App Mesh's
//! bookkeeping, not intent, and are not used; `clientToken` and `meshOwner` neither.

use serde_json::{Map, Value, json};

use super::Manifest;
use crate::kind::Kind;
use crate::problem::Problem;

/// The describe output wrapper key of each kind.
const WRAPPERS: [(&str, Kind); 7] = [
    ("mesh", Kind::Mesh),
    ("virtualNode", Kind::VirtualNode),
    ("virtualRouter", Kind::VirtualRouter),
    ("route", Kind::Route),
    ("virtualService", Kind::VirtualService),
    ("virtualGateway", Kind::VirtualGateway),
    ("gatewayRoute", Kind::GatewayRoute),
];

/// Fields of an input or a described resource that carry no intent.
const NOT_USED: [&str; 4] = ["metadata", "status", "clientToken", "meshOwner"];

/// Whether `doc` is describe output or CLI input rather than a manifest.
pub fn is_cli_json(doc: &Value) -> bool {
    let Some(object) = doc.as_object() else {
        return false;
    };
    if object.contains_key("kind") {
        return false;
    }
    let wrapped = object.len() == 1 && WRAPPERS.iter().any(|(key, _)| object.contains_key(*key));
    wrapped || object.contains_key("meshName")
}

/// The manifest `doc` (see [`is_cli_json`]) describes; problems name `source` and the field.
pub fn convert(doc: &Value, source: &str) -> Result<Manifest, Vec<Problem>> {
    let at = |path: &str| {
        if path.is_empty() {
            source.to_string()
        } else {
            format!("{source}: {path}")
        }
    };
    let object = doc.as_object().cloned().unwrap_or_default();
    let (resource, prefix) = match WRAPPERS.iter().find(|(key, _)| object.contains_key(*key)) {
        Some((key, _)) if object.len() == 1 => match object.get(*key) {
            Some(Value::Object(inner)) => (inner.clone(), format!("{key}.")),
            _ => return Err(vec![Problem::new(at(key), "must be an object")]),
        },
        _ => (object, String::new()),
    };
    let text = |field: &str| resource.get(field).and_then(Value::as_str);
    let kind = if text("routeName").is_some() {
        Kind::Route
    } else if text("gatewayRouteName").is_some() {
        Kind::GatewayRoute
    } else if text("virtualNodeName").is_some() {
        Kind::VirtualNode
    } else if text("virtualRouterName").is_some() {
        Kind::VirtualRouter
    } else if text("virtualServiceName").is_some() {
        Kind::VirtualService
    } else if text("virtualGatewayName").is_some() {
        Kind::VirtualGateway
    } else {
        Kind::Mesh
    };
    let name_field = match kind {
        Kind::Mesh => "meshName",
        Kind::VirtualNode => "virtualNodeName",
        Kind::VirtualRouter => "virtualRouterName",
        Kind::Route => "routeName",
        Kind::VirtualService => "virtualServiceName",
        Kind::VirtualGateway => "virtualGatewayName",
        Kind::GatewayRoute => "gatewayRouteName",
    };
    let parent_field = match kind {
        Kind::Route => Some("virtualRouterName"),
        Kind::GatewayRoute => Some("virtualGatewayName"),
        _ => None,
    };
    let mut problems = Vec::new();
    let known: Vec<&str> = ["meshName", name_field, "spec", "tags"]
        .into_iter()
        .chain(parent_field)
        .chain(NOT_USED)
        .collect();
    for key in resource.keys() {
        if !known.contains(&key.as_str()) {
            problems.push(Problem::new(
                at(prefix.trim_end_matches('.')),
                format!(
                    "unknown field '{key}' for a {kind}; allowed: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let mut metadata = Map::new();
    let mut required =
        |field: &str, into: &str, problems: &mut Vec<Problem>| match resource.get(field) {
            Some(Value::String(value)) => {
                metadata.insert(into.into(), json!(value));
            }
            Some(_) => problems.push(Problem::new(
                at(&format!("{prefix}{field}")),
                "must be a string",
            )),
            None => problems.push(Problem::new(at(&format!("{prefix}{field}")), "is required")),
        };
    if kind == Kind::Mesh {
        required("meshName", "name", &mut problems);
    } else {
        required("meshName", "mesh", &mut problems);
        required(name_field, "name", &mut problems);
    }
    if let Some(parent) = parent_field {
        let into = match kind {
            Kind::Route => "virtualRouter",
            _ => "virtualGateway",
        };
        required(parent, into, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut manifest = json!({ "kind": kind.as_str(), "metadata": metadata });
    for field in ["spec", "tags"] {
        if let Some(value) = resource.get(field) {
            manifest[field] = value.clone();
        }
    }
    Manifest::from_value(&manifest, source).map_err(|found| {
        // Paths as the document has them: under its describe wrapper, if it has one.
        (found.0.into_iter())
            .map(|p| {
                let rest = p.path.strip_prefix(&format!("{source}: ")).unwrap_or("");
                // The manifest's metadata is the document's name fields.
                let rest = match rest {
                    "metadata.name" => name_field.to_string(),
                    "metadata.mesh" => "meshName".to_string(),
                    "metadata.virtualRouter" => "virtualRouterName".to_string(),
                    "metadata.virtualGateway" => "virtualGatewayName".to_string(),
                    other => other.to_string(),
                };
                Problem {
                    path: at(&format!("{prefix}{rest}")),
                    message: p.message,
                }
            })
            .collect()
    })
}

#[cfg(test)]
mod tests;
