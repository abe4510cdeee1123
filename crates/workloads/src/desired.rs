//! What should run: the mesh's workloads and their nodes' health checks, built from a `/v1`
//! snapshot and kept current by watch events.

use std::collections::BTreeMap;

use model::Kind;
use model::typed::{HealthCheck, VirtualNodeSpec};
use model::wire::{AviaryKind, Change, MeshSnapshot, Object, ObjectKind, Op, Workload};
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
    pub fn from_snapshot(snapshot: &MeshSnapshot) -> Result<Desired, String> {
        let mut desired = Desired {
            revision: snapshot.revision,
            ..Desired::default()
        };
        for workload in &snapshot.workloads {
            desired
                .workloads
                .insert(workload.name.clone(), workload.clone());
        }
        for node in snapshot.resources(Kind::VirtualNode) {
            let (name, health) = parse_node(node)?;
            desired.nodes.insert(name, health);
        }
        Ok(desired)
    }

    /// Applies one watch event; returns whether anything the supervisor acts on changed.
    /// Kinds it does not act on (routes, endpoints, ...) only move the revision.
    pub fn apply(&mut self, change: &Change) -> Result<bool, String> {
        self.revision = self.revision.max(change.revision);
        let name = change.name.as_str();
        match &change.op {
            Op::Put(Object::Workload(workload)) => {
                let old = self.workloads.insert(name.to_string(), workload.clone());
                Ok(old.as_ref() != Some(workload))
            }
            Op::Delete(ObjectKind::Aviary(AviaryKind::Workload)) => {
                Ok(self.workloads.remove(name).is_some())
            }
            Op::Put(Object::VirtualNode(data)) => {
                let (_, health) = parse_node(data)?;
                let old = self.nodes.insert(name.to_string(), health.clone());
                Ok(old.as_ref() != Some(&health))
            }
            Op::Delete(ObjectKind::AppMesh(Kind::VirtualNode)) => {
                Ok(self.nodes.remove(name).is_some())
            }
            Op::Delete(ObjectKind::AppMesh(Kind::Mesh)) => {
                let changed = !self.workloads.is_empty() || !self.nodes.is_empty();
                self.workloads.clear();
                self.nodes.clear();
                Ok(changed)
            }
            _ => Ok(false),
        }
    }
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
