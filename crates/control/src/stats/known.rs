//! `KnownNodes`: the virtual nodes and workloads of each mesh, re-read only when the store's
//! revision moves.

use std::collections::{HashMap, HashSet};

use model::wire::Workload;
use std::sync::{Arc, Mutex};

use model::{Kind, ResourcePath};
use store::Store;

use crate::error::ApiError;
use crate::objects::{self, ObjectKind};
use crate::records::{key, kind_prefix, path_from_key};

/// The names of one mesh's virtual nodes, and the node of each of its workloads, as of
/// `revision`.
#[derive(Debug)]
pub struct MeshNodes {
    revision: u64,
    names: HashSet<String>,
    workloads: HashMap<String, String>,
}

impl MeshNodes {
    pub fn contains(&self, node: &str) -> bool {
        self.names.contains(node)
    }

    /// The node whose endpoints `workload`'s replicas become, if the workload exists.
    pub fn workload_node(&self, workload: &str) -> Option<&str> {
        self.workloads.get(workload).map(String::as_str)
    }
}

/// A cache in front of the store for stats pushes, which arrive every 250 ms from every proxy:
/// a push costs a revision read and a hash lookup, not a store range, while nothing was written. It holds only
/// meshes that exist and were pushed to since the last write, so callers cannot grow it.
#[derive(Default)]
pub struct KnownNodes {
    meshes: Mutex<HashMap<String, Arc<MeshNodes>>>,
}

impl KnownNodes {
    /// The virtual nodes of `mesh`, or `None` if there is no such mesh.
    pub async fn of(
        &self,
        store: &Arc<dyn Store>,
        mesh: &str,
    ) -> Result<Option<Arc<MeshNodes>>, ApiError> {
        // Read before the store, so what is cached is at least as new as the revision it is
        // filed under; a write in between only makes the next push read again. On etcd the
        // revision is a round trip too, so it is read off the async threads like the rest.
        let revision = {
            let store = Arc::clone(store);
            crate::resources::blocking(move || store.revision()).await?
        };
        if let Some(hit) = self.cached(mesh, revision) {
            return Ok(Some(hit));
        }
        let store = Arc::clone(store);
        let owned = mesh.to_string();
        let names = crate::resources::blocking(move || read(&*store, &owned)).await??;
        let mut meshes = self.lock();
        // Older entries would be re-read before use anyway.
        meshes.retain(|_, nodes| nodes.revision == revision);
        let Some((names, workloads)) = names else {
            meshes.remove(mesh);
            return Ok(None);
        };
        let nodes = Arc::new(MeshNodes {
            revision,
            names,
            workloads,
        });
        meshes.insert(mesh.to_string(), Arc::clone(&nodes));
        Ok(Some(nodes))
    }

    fn cached(&self, mesh: &str, revision: u64) -> Option<Arc<MeshNodes>> {
        self.lock()
            .get(mesh)
            .filter(|nodes| nodes.revision == revision)
            .cloned()
    }

    /// Only whole-map operations run under the lock, so a poisoned one is consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<MeshNodes>>> {
        self.meshes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The mesh's virtual node names and each workload's node, or `None` if the mesh does not
/// exist.
type Read = Option<(HashSet<String>, HashMap<String, String>)>;

fn read(store: &dyn Store, mesh: &str) -> Result<Read, ApiError> {
    if store.get(&key(&ResourcePath::mesh(mesh)))?.is_none() {
        return Ok(None);
    }
    let (kvs, _) = store.range(&kind_prefix(mesh, Kind::VirtualNode, None))?;
    let names = kvs
        .iter()
        .filter_map(|kv| path_from_key(&kv.key))
        .filter(|path| path.kind == Kind::VirtualNode)
        .map(|path| path.name)
        .collect();
    let (kvs, _) = store.range(&objects::prefix(ObjectKind::Workload, mesh, None))?;
    let mut workloads = HashMap::new();
    for kv in kvs {
        let workload: Workload = objects::decode(&kv.value)?;
        workloads.insert(workload.name, workload.virtual_node);
    }
    Ok(Some((names, workloads)))
}
