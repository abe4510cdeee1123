//! aviary's own kinds, kept in the store beside the App Mesh resources of their mesh so that
//! snapshots and watch streams carry them too: `Endpoint` (under its virtual node), `Workload`
//! and `Canary`.

use crate::error::ApiError;

/// The kinds themselves (names, collections) are part of the wire contract.
pub use model::wire::AviaryKind as ObjectKind;

/// Endpoints live under their virtual node; workloads and canaries directly in the mesh.
fn nested(kind: ObjectKind) -> bool {
    matches!(kind, ObjectKind::Endpoint)
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
    match (nested(kind), parts.as_slice()) {
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
