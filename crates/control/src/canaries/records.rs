//! A canary's record in the store: read it, store it (with its entry in the index of canaries
//! the driver must look at), and feed it one input.

use std::sync::Arc;

use model::wire::CanaryRecord;
use rollout::{Action, Input};
use store::{Compare, Op, Txn};

use super::{index_key, key, objects};
use crate::App;
use crate::consistency::Guard;
use crate::error::ApiError;

impl App {
    pub(super) async fn read_canary(
        &self,
        mesh: &str,
        name: &str,
    ) -> Result<(CanaryRecord, u64), ApiError> {
        match self.resources.get_raw(&key(mesh, name)).await? {
            Some(kv) => Ok((objects::decode(&kv.value)?, kv.mod_revision)),
            None => Err(ApiError::NotFound(format!(
                "canary '{name}' not found in mesh '{mesh}'"
            ))),
        }
    }

    /// Stores `record` if its key is still at `expected` (0: absent), under `guard`, with its
    /// index entry (present while it is not settled); returns the new revision, which is then
    /// the key's mod revision.
    pub(super) async fn store_canary(
        &self,
        guard: &Guard,
        record: &CanaryRecord,
        expected: u64,
    ) -> Result<u64, ApiError> {
        let key = key(&record.spec.mesh, &record.name);
        let value = serde_json::to_vec(record).map_err(|e| ApiError::Internal(e.to_string()))?;
        let index = index_key(&record.spec.mesh, &record.name);
        let index = if record.settled() {
            Op::Delete(index)
        } else {
            Op::Put(index, Vec::new())
        };
        let txn = Txn::default()
            .when(Compare::ModRevision(key.clone(), expected))
            .then(Op::Put(key, value))
            .then(index);
        self.resources.commit_guarded(guard, txn).await
    }

    /// Feeds one input and stores the new state (before anyone acts on it); returns it, its
    /// revision and the actions it calls for. Nothing is stored for an input that changes
    /// nothing.
    pub(super) async fn advance(
        &self,
        guard: &Guard,
        record: CanaryRecord,
        mod_revision: u64,
        input: Input,
    ) -> Result<(CanaryRecord, u64, Vec<Action>), ApiError> {
        let (state, actions) = rollout::step(&record.spec, &record.state, input);
        if state == record.state && actions.is_empty() {
            return Ok((record, mod_revision, actions));
        }
        let next = CanaryRecord { state, ..record };
        let revision = self.store_canary(guard, &next, mod_revision).await?;
        Ok((next, revision, actions))
    }
}

/// A leader's write outside any mesh (`txn`'s compares are its fence): it holds only while the
/// fence does.
pub(super) async fn commit_fenced(store: &Arc<dyn store::Store>, txn: Txn) -> Result<(), ApiError> {
    if txn.ops.is_empty() {
        return Ok(());
    }
    let store = store.clone();
    match crate::resources::blocking(move || store.txn(txn)).await?? {
        store::TxnOutcome::Committed { .. } => Ok(()),
        store::TxnOutcome::Failed { .. } => Err(ApiError::Deposed),
    }
}
