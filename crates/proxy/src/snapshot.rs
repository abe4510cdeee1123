//! The proxy's copy of a mesh: the control plane's `/v1` snapshot, kept current by applying
//! watch events, and saved to (and loaded from) the state directory for static stability.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use model::Kind;
use serde_json::{Value, json};

/// The watch stream's kind for endpoints registered in the control plane.
const ENDPOINT_KIND: &str = "Endpoint";

/// Identifies one resource of the mesh: its kind, parent (router or gateway) and name.
pub type ResourceKey = (Kind, Option<String>, String);

/// Every resource of one mesh at one store revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub revision: u64,
    /// The mesh's `MeshData`; `None` when the mesh does not exist (or was deleted).
    pub mesh: Option<Value>,
    pub resources: BTreeMap<ResourceKey, Value>,
    /// Endpoints registered in the control plane (`model::wire::Endpoint` JSON: virtualNode,
    /// id, address, port, healthy), as the snapshot lists them.
    pub endpoints: Vec<Value>,
}

/// What applying a watch event asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// The event is of a kind the proxy does not route by (a workload, say): nothing to do.
    Ignored,
}

impl Snapshot {
    /// Parses the `/v1/meshes/{mesh}/snapshot` JSON.
    pub fn from_json(value: &Value) -> Result<Snapshot, String> {
        let revision = value["revision"]
            .as_u64()
            .ok_or("snapshot has no numeric 'revision'")?;
        let mesh = value.get("mesh").filter(|m| !m.is_null()).cloned();
        let mut resources = BTreeMap::new();
        for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Mesh) {
            let Some(items) = value.get(kind.plural()).and_then(Value::as_array) else {
                continue;
            };
            for item in items {
                let key = key_of(kind, item)
                    .ok_or_else(|| format!("a {} without its names", kind.as_str()))?;
                resources.insert(key, item.clone());
            }
        }
        let endpoints = value
            .get("endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(Snapshot {
            revision,
            mesh,
            resources,
            endpoints,
        })
    }

    /// The same JSON shape as the control plane's snapshot.
    pub fn to_json(&self) -> Value {
        let mut out = json!({ "revision": self.revision, "mesh": self.mesh });
        for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Mesh) {
            out[kind.plural()] = Value::Array(self.of_kind(kind).cloned().collect());
        }
        out["endpoints"] = Value::Array(self.endpoints.clone());
        out
    }

    /// The `*Data` of every resource of `kind`.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Value> {
        self.resources
            .range((kind, None, String::new())..)
            .take_while(move |((k, _, _), _)| *k == kind)
            .map(|(_, v)| v)
    }

    pub fn get(&self, kind: Kind, parent: Option<&str>, name: &str) -> Option<&Value> {
        self.resources
            .get(&(kind, parent.map(str::to_string), name.to_string()))
    }

    /// Applies one watch event's `data` (`{revision, type, kind, mesh, name, parent?,
    /// resource}`).
    pub fn apply(&mut self, event: &Value) -> Result<Applied, String> {
        let revision = event["revision"]
            .as_u64()
            .ok_or("watch event has no numeric 'revision'")?;
        let kind_name = event["kind"].as_str().ok_or("watch event has no 'kind'")?;
        let name = event["name"]
            .as_str()
            .ok_or("watch event has no 'name'")?
            .to_string();
        let parent = event
            .get("parent")
            .and_then(Value::as_str)
            .map(str::to_string);
        let put = match event["type"].as_str() {
            Some("put") => true,
            Some("delete") => false,
            other => return Err(format!("watch event of unknown type {other:?}")),
        };
        let resource = event.get("resource").filter(|r| !r.is_null());
        if kind_name == ENDPOINT_KIND {
            // An endpoint's name is its id; its parent is its virtual node.
            let node = parent.ok_or("endpoint event has no 'parent' (its virtual node)")?;
            let same = |e: &Value| {
                e["virtualNode"].as_str() == Some(node.as_str()) && e["id"].as_str() == Some(&name)
            };
            self.endpoints.retain(|e| !same(e));
            match (put, resource) {
                (true, Some(resource)) => self.endpoints.push(resource.clone()),
                (true, None) => return Err("put event without a resource".into()),
                (false, _) => {}
            }
            self.revision = self.revision.max(revision);
            return Ok(Applied::Changed);
        }
        let Some(kind) = Kind::parse(kind_name) else {
            self.revision = self.revision.max(revision);
            return Ok(Applied::Ignored);
        };
        if kind == Kind::Mesh {
            self.mesh = if put { resource.cloned() } else { None };
        } else {
            let key = (kind, parent, name);
            match (put, resource) {
                (true, Some(resource)) => {
                    self.resources.insert(key, resource.clone());
                }
                (true, None) => return Err("put event without a resource".into()),
                (false, _) => {
                    self.resources.remove(&key);
                }
            }
        }
        self.revision = self.revision.max(revision);
        Ok(Applied::Changed)
    }

    /// Where a proxy of `mesh` keeps its last snapshot in `dir`.
    pub fn state_file(dir: &Path, mesh: &str) -> PathBuf {
        dir.join(format!("snapshot-{mesh}.json"))
    }

    /// Writes the snapshot atomically: a temporary file in the same directory, then a rename,
    /// so a crash leaves either the old file or the new one.
    pub fn save(&self, dir: &Path, mesh: &str) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = Snapshot::state_file(dir, mesh);
        let tmp = dir.join(format!(".snapshot-{mesh}.json.{}.tmp", std::process::id()));
        let body = serde_json::to_vec(&self.to_json()).map_err(io::Error::other)?;
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&body)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
    }

    /// The saved snapshot, `Ok(None)` when there is none.
    pub fn load(dir: &Path, mesh: &str) -> io::Result<Option<Snapshot>> {
        let path = Snapshot::state_file(dir, mesh);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Snapshot::from_json(&value)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// The key of a `*Data` item: its name field, and its router or gateway for (gateway) routes.
fn key_of(kind: Kind, item: &Value) -> Option<ResourceKey> {
    let name = item.get(kind.name_field())?.as_str()?.to_string();
    let parent = match kind.parent() {
        Some(parent) => Some(item.get(parent.name_field())?.as_str()?.to_string()),
        None => None,
    };
    Some((kind, parent, name))
}

#[cfg(test)]
mod tests;
