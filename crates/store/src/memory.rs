//! The in-memory backend: a sorted map behind one mutex, for tests and throwaway control planes.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::history::History;
use crate::txn::{self, Meta, Tables};
use crate::{HistoryLimits, HistoryUsage, KeyValue, Store, StoreError, Txn, TxnOutcome, Watcher};

/// A [`Store`] that lives and dies with the process.
pub struct MemoryStore {
    state: Mutex<State>,
    history: History,
}

struct State {
    kvs: BTreeMap<String, KeyValue>,
    revision: u64,
}

impl Tables for BTreeMap<String, KeyValue> {
    fn meta(&mut self, key: &str) -> Result<Option<Meta>, StoreError> {
        Ok(self.get(key).map(Meta::of))
    }

    fn write(&mut self, kv: &KeyValue) -> Result<(), StoreError> {
        self.insert(kv.key.clone(), kv.clone());
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(BTreeMap::remove(self, key).is_some())
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_history(HistoryLimits::default())
    }

    /// A store whose watchers can lag only as far behind as `limits` allow.
    pub fn with_history(limits: HistoryLimits) -> Self {
        MemoryStore {
            state: Mutex::new(State {
                kvs: BTreeMap::new(),
                revision: 0,
            }),
            history: History::new(limits, 0),
        }
    }

    /// A txn either fails before writing or applies infallibly, so a panic cannot leave a
    /// half-applied txn behind and a poisoned lock is safe to reuse.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.state().kvs.get(key).cloned())
    }

    fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let state = self.state();
        let kvs = state
            .kvs
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok((kvs, state.revision))
    }

    fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        txn::validate_local(&txn.ops)?;
        let mut state = self.state();
        if let Some(failed) = txn::check(&txn.compares, &mut state.kvs)? {
            return Ok(failed);
        }
        let revision = state.revision + 1;
        let events = txn::apply(txn.ops, revision, &mut state.kvs)?;
        if events.is_empty() {
            // Nothing changed, as etcd counts it: no new revision.
            return Ok(TxnOutcome::Committed {
                revision: state.revision,
            });
        }
        state.revision = revision;
        // Still under the state lock, so revisions reach the history in order.
        self.history.publish(revision, events);
        Ok(TxnOutcome::Committed { revision })
    }

    fn revision(&self) -> u64 {
        self.state().revision
    }

    fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, StoreError> {
        self.history.watch(prefix, from_revision)
    }

    fn history_usage(&self) -> HistoryUsage {
        self.history.usage()
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
