//! aviary's own kinds, kept in the store beside the App Mesh resources of their mesh so that
//! snapshots and watch streams carry them too: `Endpoint` (under its virtual node), `Workload`
//! and `Canary`.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Endpoint,
    Workload,
    Canary,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [
        ObjectKind::Endpoint,
        ObjectKind::Workload,
        ObjectKind::Canary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Endpoint => "Endpoint",
            ObjectKind::Workload => "Workload",
            ObjectKind::Canary => "Canary",
        }
    }

    /// The collection's name in `/v1` paths and snapshots.
    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::Endpoint => "endpoints",
            ObjectKind::Workload => "workloads",
            ObjectKind::Canary => "canaries",
        }
    }

    /// Endpoints live under their virtual node; workloads directly in the mesh.
    fn nested(self) -> bool {
        matches!(self, ObjectKind::Endpoint)
    }
}

/// Where one object lives: `meshes/{mesh}/{Kind}/[{parent}/]{name}`.
pub fn key(kind: ObjectKind, mesh: &str, parent: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(kind, mesh, parent))
}

/// All objects of `kind` in a mesh, or under one parent.
pub fn prefix(kind: ObjectKind, mesh: &str, parent: Option<&str>) -> String {
    crate::records::scoped_prefix(mesh, kind.as_str(), parent)
}

/// One parsed object key.
pub struct ObjectKey<'a> {
    pub kind: ObjectKind,
    pub mesh: &'a str,
    pub parent: Option<&'a str>,
    pub name: &'a str,
}

/// Inverse of `key`; `None` for keys of any other kind.
pub fn parse_key(key: &str) -> Option<ObjectKey<'_>> {
    let parts: Vec<&str> = key.strip_prefix("meshes/")?.split('/').collect();
    let kind = ObjectKind::ALL
        .into_iter()
        .find(|k| parts.get(1) == Some(&k.as_str()))?;
    match (kind.nested(), parts.as_slice()) {
        (true, [mesh, _, parent, name]) => Some(ObjectKey {
            kind,
            mesh,
            parent: Some(parent),
            name,
        }),
        (false, [mesh, _, name]) => Some(ObjectKey {
            kind,
            mesh,
            parent: None,
            name,
        }),
        _ => None,
    }
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Internal(format!("corrupt object: {e}")))
}

pub fn decode_value(bytes: &[u8]) -> Result<Value, ApiError> {
    decode(bytes)
}
