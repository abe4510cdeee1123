//! Mesh guards: how check-then-commit writes stay correct when several replicas write at once.
//!
//! Every write in a mesh first reads what its rules need (the parent exists, nothing still
//! names what is deleted, the node an endpoint belongs to is there) and then commits. With one
//! process a lock kept those reads true until the commit; replicas share no lock. So each mesh
//! has a guard key, `guards/{mesh}`, outside the mesh's prefix (watchers never see it): an
//! operation reads the guard's mod revision before anything else, and its commit compares it
//! and bumps it. Any other write in the mesh that committed in between moved the guard, the
//! compare fails, nothing is written, and the operation runs again from fresh reads. The store
//! decides, in one transaction, so the rules hold whatever the number of replicas.
//!
//! Writes in different meshes never contend. A mesh's delete retires its guard with it, so
//! guards are bounded by the meshes that exist.

use std::time::Duration;

use store::{Compare, Op, Txn, TxnOutcome};

use crate::error::ApiError;
use crate::resources::{Resources, blocking};

/// How many times an operation is re-run on fresh reads before its caller gets a 409: only a
/// mesh written faster than one operation can read and commit gets there.
const MAX_ATTEMPTS: u32 = 16;

/// What an operation read its mesh's guard at, plus the fence of the leader it writes for.
/// (Owned by the operation's future: an `async` closure borrowing it would not be `Send`.)
pub(crate) struct Guard {
    mesh: String,
    key: String,
    seen: u64,
    fence: Vec<Compare>,
}

pub(crate) fn guard_key(mesh: &str) -> String {
    format!("guards/{mesh}")
}

impl Resources {
    /// Runs `operation` until its commit holds (or `MAX_ATTEMPTS`), each time with a fresh
    /// guard of `mesh`. `fence` joins every commit: a leader's writes carry its term's compare,
    /// so they fail once it no longer leads. `operation` must only read and commit through
    /// [`Resources::commit_guarded`]; anything else it did would be done again.
    pub(crate) async fn guarded<T, F>(
        &self,
        mesh: &str,
        fence: &[Compare],
        operation: impl Fn(Guard) -> F,
    ) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        let key = guard_key(mesh);
        for attempt in 0..MAX_ATTEMPTS {
            let seen = self.get_raw(&key).await?.map_or(0, |kv| kv.mod_revision);
            let guard = Guard {
                mesh: mesh.to_string(),
                key: key.clone(),
                seen,
                fence: fence.to_vec(),
            };
            match operation(guard).await {
                Err(ApiError::GuardMoved(_)) => {
                    // Spread the retries of writers that collided, so they do not collide again.
                    let jitter = u64::from(rand_below(1 + attempt * 2));
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
                done => return done,
            }
        }
        Err(ApiError::GuardMoved(mesh.to_string()))
    }

    /// Commits `txn` if nothing in the guard's mesh was written since the guard was read (and
    /// the fence holds); returns the new revision. A txn that deletes the mesh's own record
    /// retires the guard and the mesh's CA (`ca/{mesh}`), every other one bumps the guard.
    pub(crate) async fn commit_guarded(&self, guard: &Guard, txn: Txn) -> Result<u64, ApiError> {
        let mesh_key = crate::records::key(&model::ResourcePath::mesh(&guard.mesh));
        let retires = txn
            .ops
            .iter()
            .any(|op| matches!(op, Op::Delete(key) if *key == mesh_key));
        let mut compares = vec![Compare::ModRevision(guard.key.clone(), guard.seen)];
        compares.extend(guard.fence.iter().cloned());
        compares.extend(txn.compares);
        let mut ops = txn.ops;
        if retires {
            ops.push(Op::Delete(guard.key.clone()));
            // A mesh made again under the same name gets a new CA, which its old
            // certificates do not chain to. (A CA made concurrently compares the mesh's record,
            // so it cannot land after this delete.)
            ops.push(Op::Delete(crate::ca::ca_key(&guard.mesh)));
        } else {
            ops.push(Op::Put(guard.key.clone(), Vec::new()));
        }
        let store = self.store().clone();
        let outcome = blocking(move || store.txn(Txn { compares, ops })).await??;
        match outcome {
            TxnOutcome::Committed { revision } => Ok(revision),
            TxnOutcome::Failed { key, .. } if key == guard.key => {
                Err(ApiError::GuardMoved(guard.mesh.clone()))
            }
            TxnOutcome::Failed { key, .. }
                if guard
                    .fence
                    .iter()
                    .any(|Compare::ModRevision(fenced, _)| *fenced == key) =>
            {
                Err(ApiError::Deposed)
            }
            TxnOutcome::Failed { key, .. } => Err(ApiError::Conflict(format!(
                "{key} was changed by another writer; retry"
            ))),
        }
    }
}

/// A number below `bound` from the clock's nanoseconds: jitter needs no better randomness.
fn rand_below(bound: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos % bound.max(1)
}

#[cfg(test)]
mod tests;
