//! `Record`: how one App Mesh resource is kept in the store, its key and ARN, and its App Mesh
//! renderings (`*Data` and `*Ref`).

use model::{Kind, ResourcePath};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Every key of a mesh lives under `meshes/{mesh}/`, so one prefix range or watch sees a whole
/// mesh. Names never contain `/` (see `model::validate_name`), so prefixes cannot collide.
pub fn mesh_prefix(mesh: &str) -> String {
    format!("meshes/{mesh}/")
}

/// The prefix under which all resources of `kind` in one scope (mesh, or mesh + parent) live.
pub fn kind_prefix(mesh: &str, kind: Kind, parent: Option<&str>) -> String {
    scoped_prefix(mesh, kind.as_str(), parent)
}

/// The one key layout of everything in a mesh, App Mesh kinds and aviary's own alike:
/// `meshes/{mesh}/{Kind}/[{parent}/]`.
pub fn scoped_prefix(mesh: &str, kind: &str, parent: Option<&str>) -> String {
    match parent {
        Some(parent) => format!("meshes/{mesh}/{kind}/{parent}/"),
        None => format!("meshes/{mesh}/{kind}/"),
    }
}

/// Where one resource lives: `meshes/{mesh}/{Kind}/[{parent}/]{name}`; a mesh is keyed under
/// itself, `meshes/{mesh}/Mesh/{mesh}`.
pub fn key(path: &ResourcePath) -> String {
    format!(
        "{}{}",
        kind_prefix(&path.mesh, path.kind, path.parent.as_deref()),
        path.name
    )
}

/// Inverse of `key`; `None` for keys that are not App Mesh resources.
pub fn path_from_key(key: &str) -> Option<ResourcePath> {
    let parts: Vec<&str> = key.strip_prefix("meshes/")?.split('/').collect();
    let (mesh, kind, rest) = match parts.as_slice() {
        [mesh, kind, rest @ ..] => (
            *mesh,
            Kind::ALL.into_iter().find(|k| k.as_str() == *kind)?,
            rest,
        ),
        _ => return None,
    };
    let (parent, name) = match (kind.parent(), rest) {
        (Some(_), [parent, name]) => (Some(parent.to_string()), *name),
        (None, [name]) => (None, *name),
        _ => return None,
    };
    Some(ResourcePath::new(kind, mesh, parent, name))
}

/// `arn:aws:appmesh:{region}:{account}:mesh/demomesh/virtualRouter/product-vr/route/product-r`.
pub fn arn(path: &ResourcePath, region: &str, account: &str) -> String {
    let mut resource = format!("mesh/{}", path.mesh);
    if let (Some(parent_kind), Some(parent)) = (path.kind.parent(), &path.parent) {
        resource.push_str(&format!("/{}/{parent}", parent_kind.camel()));
    }
    if path.kind != Kind::Mesh {
        resource.push_str(&format!("/{}/{}", path.kind.camel(), path.name));
    }
    format!("arn:aws:appmesh:{region}:{account}:{resource}")
}

/// Inverse of `arn` (any region and account); `None` if it names no App Mesh resource.
pub fn path_from_arn(arn: &str) -> Option<ResourcePath> {
    let (_, resource) = arn.strip_prefix("arn:aws:appmesh:")?.split_once(":mesh/")?;
    let by_camel = |segment: &str| Kind::ALL.into_iter().find(|k| k.camel() == segment);
    let path = match resource.split('/').collect::<Vec<_>>().as_slice() {
        [mesh] => ResourcePath::mesh(*mesh),
        [mesh, kind, name] => {
            let kind = by_camel(kind).filter(|k| k.parent().is_none() && *k != Kind::Mesh)?;
            ResourcePath::new(kind, *mesh, None, *name)
        }
        [mesh, parent_kind, parent, kind, name] => {
            let kind = by_camel(kind)?;
            if kind.parent()? != by_camel(parent_kind)? {
                return None;
            }
            ResourcePath::new(kind, *mesh, Some(parent.to_string()), *name)
        }
        _ => return None,
    };
    Some(path)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub arn: String,
    pub uid: String,
    pub version: u64,
    pub created_at: f64,
    pub last_updated_at: f64,
    pub mesh_owner: String,
    pub resource_owner: String,
}

/// One stored App Mesh resource. Its path is the key, not stored twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub spec: Value,
    pub metadata: Metadata,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The `clientToken` of the create that made it: a retried create with the same token
    /// answers the existing resource instead of a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Record {
    /// The `*Data` shape (MeshData, RouteData, ...) that describe, create, update and delete answer.
    pub fn data(&self, path: &ResourcePath, status: &str) -> Value {
        let mut data = names(path);
        data.insert("metadata".into(), json!(self.metadata));
        data.insert("spec".into(), self.spec.clone());
        data.insert("status".into(), json!({ "status": status }));
        Value::Object(data)
    }

    /// The `*Ref` shape that list operations answer.
    pub fn reference(&self, path: &ResourcePath) -> Value {
        let mut reference = names(path);
        let m = &self.metadata;
        for (field, value) in [
            ("arn", json!(m.arn)),
            ("createdAt", json!(m.created_at)),
            ("lastUpdatedAt", json!(m.last_updated_at)),
            ("meshOwner", json!(m.mesh_owner)),
            ("resourceOwner", json!(m.resource_owner)),
            ("version", json!(m.version)),
        ] {
            reference.insert(field.into(), value);
        }
        Value::Object(reference)
    }
}

/// `meshName`, the parent's name field and the resource's own name field.
fn names(path: &ResourcePath) -> Map<String, Value> {
    let mut names = Map::new();
    names.insert("meshName".into(), json!(path.mesh));
    if let (Some(parent_kind), Some(parent)) = (path.kind.parent(), &path.parent) {
        names.insert(parent_kind.name_field().into(), json!(parent));
    }
    if path.kind != Kind::Mesh {
        names.insert(path.kind.name_field().into(), json!(path.name));
    }
    names
}
