//! What should run: the mesh's workloads and their nodes' health checks, built from a `/v1`
//! snapshot and kept current by watch events.

use std::collections::BTreeMap;

use model::typed::{HealthCheck, VirtualNodeSpec};
use model::wire::Workload;
use serde_json::Value;

/// The part of a virtual node the supervisor acts on: its first listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeHealth {
    pub check: Option<HealthCheck>,
    pub listener_port: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// The store revision this state reflects.
    pub revision: u64,
    pub workloads: BTreeMap<String, Workload>,
    pub nodes: BTreeMap<String, NodeHealth>,
}

impl Desired {
    pub fn from_snapshot(snapshot: &Value) -> Result<Desired, String> {
        let revision = snapshot["revision"]
            .as_u64()
            .ok_or("the snapshot has no revision")?;
        let mut desired = Desired {
            revision,
            ..Desired::default()
        };
        for workload in snapshot["workloads"].as_array().into_iter().flatten() {
            let workload = parse_workload(workload)?;
            desired.workloads.insert(workload.name.clone(), workload);
        }
        for node in snapshot["virtualNodes"].as_array().into_iter().flatten() {
            let (name, health) = parse_node(node)?;
            desired.nodes.insert(name, health);
        }
        Ok(desired)
    }

    /// Applies one watch event (`data` of a `put` or `delete`); returns whether anything the
    /// supervisor acts on changed. Kinds it does not act on (routes, endpoints, ...) only move
    /// the revision.
    pub fn apply(&mut self, data: &Value) -> Result<bool, String> {
        if let Some(revision) = data["revision"].as_u64() {
            self.revision = self.revision.max(revision);
        }
        let put = match data["type"].as_str() {
            Some("put") => true,
            Some("delete") => false,
            other => return Err(format!("unknown change type {other:?}")),
        };
        let name = data["name"].as_str().ok_or("a change without a name")?;
        match data["kind"].as_str() {
            Some("Workload") if put => {
                let workload = parse_workload(&data["resource"])?;
                let old = self.workloads.insert(name.to_string(), workload.clone());
                Ok(old.as_ref() != Some(&workload))
            }
            Some("Workload") => Ok(self.workloads.remove(name).is_some()),
            Some("VirtualNode") if put => {
                let (_, health) = parse_node(&data["resource"])?;
                let old = self.nodes.insert(name.to_string(), health.clone());
                Ok(old.as_ref() != Some(&health))
            }
            Some("VirtualNode") => Ok(self.nodes.remove(name).is_some()),
            Some("Mesh") if !put => {
                let changed = !self.workloads.is_empty() || !self.nodes.is_empty();
                self.workloads.clear();
                self.nodes.clear();
                Ok(changed)
            }
            _ => Ok(false),
        }
    }
}

fn parse_workload(value: &Value) -> Result<Workload, String> {
    serde_json::from_value(value.clone()).map_err(|e| format!("a workload does not parse: {e}"))
}

/// A `VirtualNodeData`'s name and first listener. A spec that does not fit the typed view
/// (it was validated by the control plane, so this is unexpected) counts as no health check.
fn parse_node(value: &Value) -> Result<(String, NodeHealth), String> {
    let name = value["virtualNodeName"]
        .as_str()
        .ok_or("a virtual node without virtualNodeName")?
        .to_string();
    let listener = model::typed::view::<VirtualNodeSpec>(&value["spec"])
        .and_then(|spec| spec.listeners.into_iter().next());
    let health = match listener {
        Some(listener) => NodeHealth {
            check: listener.health_check,
            listener_port: Some(listener.port_mapping.port),
        },
        None => NodeHealth::default(),
    };
    Ok((name, health))
}

#[cfg(test)]
mod tests;
