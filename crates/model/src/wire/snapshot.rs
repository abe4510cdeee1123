//! The mesh snapshot (`GET /v1/meshes/{mesh}/snapshot`): every resource and object of one mesh at one store revision.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CanaryRecord, Endpoint, Raw, Workload};
use crate::Kind;

/// Every resource of one mesh at one store revision; watch from `revision` to keep it current.
/// App Mesh resources are their `*Data` JSON (read them through `model::typed`). Lists a
/// server leaves out are empty, so a proxy's saved copy from before a list existed still reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshSnapshot {
    pub revision: u64,
    #[serde(default)]
    pub virtual_nodes: Vec<Value>,
    #[serde(default)]
    pub virtual_routers: Vec<Value>,
    #[serde(default)]
    pub routes: Vec<Value>,
    #[serde(default)]
    pub virtual_services: Vec<Value>,
    #[serde(default)]
    pub virtual_gateways: Vec<Value>,
    #[serde(default)]
    pub gateway_routes: Vec<Value>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// `env` values are `(hidden)` for roles that do not run workloads.
    #[serde(default)]
    pub workloads: Vec<Workload>,
    #[serde(default)]
    pub canaries: Vec<Raw<CanaryRecord>>,
    /// The `MeshData`; the server always sends it (a missing mesh is a 404), a proxy's saved
    /// copy of a deleted mesh has `null`.
    #[serde(default)]
    pub mesh: Option<Value>,
}

impl MeshSnapshot {
    /// The `*Data` of every resource of `kind` (none for `Mesh`: see `mesh`).
    pub fn resources(&self, kind: Kind) -> &[Value] {
        match kind {
            Kind::Mesh => &[],
            Kind::VirtualNode => &self.virtual_nodes,
            Kind::VirtualRouter => &self.virtual_routers,
            Kind::Route => &self.routes,
            Kind::VirtualService => &self.virtual_services,
            Kind::VirtualGateway => &self.virtual_gateways,
            Kind::GatewayRoute => &self.gateway_routes,
        }
    }

    /// The list of `kind`'s resources; `None` for `Mesh`, which is one, not a list.
    pub fn resources_mut(&mut self, kind: Kind) -> Option<&mut Vec<Value>> {
        Some(match kind {
            Kind::Mesh => return None,
            Kind::VirtualNode => &mut self.virtual_nodes,
            Kind::VirtualRouter => &mut self.virtual_routers,
            Kind::Route => &mut self.routes,
            Kind::VirtualService => &mut self.virtual_services,
            Kind::VirtualGateway => &mut self.virtual_gateways,
            Kind::GatewayRoute => &mut self.gateway_routes,
        })
    }
}
