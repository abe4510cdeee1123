//! The proxy's copy of a mesh: the control plane's `/v1` snapshot, kept current by applying
//! watch events, and saved to (and loaded from) the state directory for static stability.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use model::Kind;
use model::wire::{
    AviaryKind, CanaryRecord, Change, Endpoint, MeshSnapshot, Object, ObjectKind, Op, Raw,
};
use serde_json::Value;

use crate::canary::Exposure;

/// Identifies one resource of the mesh: its kind, parent (router or gateway) and name.
pub type ResourceKey = (Kind, Option<String>, String);

/// Every resource of one mesh at one store revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub revision: u64,
    /// The mesh's `MeshData`; `None` when the mesh does not exist (or was deleted).
    pub mesh: Option<Value>,
    pub resources: BTreeMap<ResourceKey, Value>,
    /// Endpoints registered in the control plane, as the snapshot lists them.
    pub endpoints: Vec<Endpoint>,
    /// The mesh's canary records that decode, by name, each with what it exposes now.
    canaries: BTreeMap<String, Canary>,
}

/// One canary record as received (kept to be saved as it came) and its exposure now.
#[derive(Debug, Clone, PartialEq)]
struct Canary {
    record: Raw<CanaryRecord>,
    exposure: Option<Exposure>,
}

impl Canary {
    /// `None`, with a warning, for a record this build cannot read (a newer control plane's
    /// canary option, say): the proxy goes on following its mesh without it.
    fn decode(name: &str, record: &Raw<CanaryRecord>) -> Option<Canary> {
        match record.decode() {
            Ok(decoded) => Some(Canary {
                record: record.clone(),
                exposure: Exposure::of(&decoded),
            }),
            Err(error) => {
                tracing::warn!(canary = name, %error, "canary record skipped: cannot decode it");
                None
            }
        }
    }
}

/// What applying a watch event asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// The event is of a kind the proxy does not route by (a workload, say), or a canary
    /// rewrite that leaves its exposure as it was: nothing to do.
    Ignored,
}

impl Snapshot {
    /// The proxy's copy of the control plane's snapshot; workloads are not kept, nor canary
    /// records that do not decode.
    pub fn from_wire(wire: MeshSnapshot) -> Result<Snapshot, String> {
        let mut resources = BTreeMap::new();
        for kind in Kind::ALL {
            for item in wire.resources(kind) {
                let key = key_of(kind, item)
                    .ok_or_else(|| format!("a {} without its names", kind.as_str()))?;
                resources.insert(key, item.clone());
            }
        }
        let mut canaries = BTreeMap::new();
        for record in &wire.canaries {
            let name = record.as_value()["name"].as_str().unwrap_or_default();
            if let Some(canary) = Canary::decode(name, record) {
                canaries.insert(name.to_string(), canary);
            }
        }
        Ok(Snapshot {
            revision: wire.revision,
            mesh: wire.mesh,
            resources,
            endpoints: wire.endpoints,
            canaries,
        })
    }

    /// Parses the `/v1/meshes/{mesh}/snapshot` JSON.
    pub fn from_json(value: &Value) -> Result<Snapshot, String> {
        let wire = MeshSnapshot::deserialize(value).map_err(|e| format!("snapshot: {e}"))?;
        Snapshot::from_wire(wire)
    }

    /// The control plane's snapshot shape (without workloads; canary records as received).
    pub fn to_wire(&self) -> MeshSnapshot {
        let mut wire = MeshSnapshot {
            revision: self.revision,
            mesh: self.mesh.clone(),
            endpoints: self.endpoints.clone(),
            canaries: self.canaries.values().map(|c| c.record.clone()).collect(),
            ..MeshSnapshot::default()
        };
        for ((kind, _, _), data) in &self.resources {
            if let Some(list) = wire.resources_mut(*kind) {
                list.push(data.clone());
            }
        }
        wire
    }

    /// The `*Data` of every resource of `kind`.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Value> {
        self.resources
            .range((kind, None, String::new())..)
            .take_while(move |((k, _, _), _)| *k == kind)
            .map(|(_, v)| v)
    }

    /// What each canary that exposes itself beyond weights asks of the proxy now.
    pub(crate) fn exposures(&self) -> impl Iterator<Item = &Exposure> {
        self.canaries.values().filter_map(|c| c.exposure.as_ref())
    }

    pub fn get(&self, kind: Kind, parent: Option<&str>, name: &str) -> Option<&Value> {
        self.resources
            .get(&(kind, parent.map(str::to_string), name.to_string()))
    }

    /// Applies one watch event.
    pub fn apply(&mut self, change: &Change) -> Result<Applied, String> {
        let key = |kind| (kind, change.parent.clone(), change.name.clone());
        let applied = match &change.op {
            Op::Put(Object::Endpoint(endpoint)) => {
                self.forget_endpoint(change)?;
                self.endpoints.push(endpoint.clone());
                Applied::Changed
            }
            Op::Delete(ObjectKind::Aviary(AviaryKind::Endpoint)) => {
                self.forget_endpoint(change)?;
                Applied::Changed
            }
            Op::Put(Object::Canary(record)) => {
                let canary = Canary::decode(&change.name, record);
                let exposure = canary.as_ref().and_then(|c| c.exposure.clone());
                let before = match canary {
                    Some(canary) => self.canaries.insert(change.name.clone(), canary),
                    None => self.canaries.remove(&change.name),
                };
                exposure_moved(before, exposure.as_ref())
            }
            Op::Delete(ObjectKind::Aviary(AviaryKind::Canary)) => {
                exposure_moved(self.canaries.remove(&change.name), None)
            }
            Op::Put(object) => match object.app_mesh() {
                Some((Kind::Mesh, data)) => {
                    self.mesh = Some(data.clone());
                    Applied::Changed
                }
                Some((kind, data)) => {
                    self.resources.insert(key(kind), data.clone());
                    Applied::Changed
                }
                None => Applied::Ignored,
            },
            Op::Delete(ObjectKind::AppMesh(Kind::Mesh)) => {
                self.mesh = None;
                Applied::Changed
            }
            Op::Delete(ObjectKind::AppMesh(kind)) => {
                self.resources.remove(&key(*kind));
                Applied::Changed
            }
            Op::Delete(ObjectKind::Aviary(_)) | Op::Unknown { .. } => Applied::Ignored,
        };
        self.revision = self.revision.max(change.revision);
        Ok(applied)
    }

    /// Drops the endpoint a change names: its name is the id, its parent the virtual node.
    fn forget_endpoint(&mut self, change: &Change) -> Result<(), String> {
        let node = change
            .parent
            .as_deref()
            .ok_or("endpoint event has no 'parent' (its virtual node)")?;
        self.endpoints
            .retain(|e| !(e.virtual_node == node && e.id == change.name));
        Ok(())
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
        let body = serde_json::to_vec(&self.to_wire()).map_err(io::Error::other)?;
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
        let wire: MeshSnapshot = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Snapshot::from_wire(wire)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// `Changed` when a canary's exposure is not what it was (`before` being its previous record).
fn exposure_moved(before: Option<Canary>, now: Option<&Exposure>) -> Applied {
    if before.and_then(|c| c.exposure).as_ref() == now {
        Applied::Ignored
    } else {
        Applied::Changed
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
