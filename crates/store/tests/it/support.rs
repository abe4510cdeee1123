//! Backends under test, and helpers for driving watchers from synchronous tests.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use store::{
    Event, HistoryLimits, MemoryStore, Op, RedbStore, Store, StoreError, Txn, TxnOutcome, Watcher,
};
use tempfile::TempDir;

/// Upper bound on any wait for an event; tests finish far sooner when they pass.
const PATIENCE: Duration = Duration::from_secs(10);

/// A way to get fresh, empty stores of one kind.
pub trait Backend {
    fn open_with_history(&self, limits: HistoryLimits) -> Box<dyn Store>;

    fn open(&self) -> Box<dyn Store> {
        self.open_with_history(HistoryLimits::default())
    }
}

/// The default limits with the history cut to `revisions`.
pub fn revisions(revisions: usize) -> HistoryLimits {
    HistoryLimits {
        revisions,
        ..HistoryLimits::default()
    }
}

/// The default limits with the history cut to `bytes`.
pub fn bytes(bytes: usize) -> HistoryLimits {
    HistoryLimits {
        bytes,
        ..HistoryLimits::default()
    }
}

pub struct Memory;

impl Backend for Memory {
    fn open_with_history(&self, limits: HistoryLimits) -> Box<dyn Store> {
        Box::new(MemoryStore::with_history(limits))
    }
}

/// Each store is a new file in a temporary directory removed when the test ends.
pub struct Redb {
    dir: TempDir,
    opened: Cell<u32>,
}

impl Redb {
    pub fn new() -> Self {
        Redb {
            dir: tempfile::tempdir().expect("temp dir"),
            opened: Cell::new(0),
        }
    }
}

impl Backend for Redb {
    fn open_with_history(&self, limits: HistoryLimits) -> Box<dyn Store> {
        let n = self.opened.replace(self.opened.get() + 1);
        let path = self.dir.path().join(format!("store-{n}.redb"));
        Box::new(RedbStore::open_with_history(&path, limits).expect("open redb store"))
    }
}

pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// The watcher's next batch, failing the test on an error, the end of the stream, or a timeout.
pub async fn next_batch(watcher: &mut Watcher) -> (u64, Vec<Event>) {
    match tokio::time::timeout(PATIENCE, watcher.next()).await {
        Ok(Some(Ok(batch))) => batch,
        other => panic!("expected a batch of events, got {other:?}"),
    }
}

/// `(revision, [(key, value)])` of a batch, for compact assertions.
pub fn keys_and_values(batch: &(u64, Vec<Event>)) -> (u64, Vec<(&str, &[u8])>) {
    let pairs = batch
        .1
        .iter()
        .map(|e| (e.kv.key.as_str(), e.kv.value.as_slice()))
        .collect();
    (batch.0, pairs)
}

pub fn put(store: &dyn Store, key: &str, value: &[u8]) -> u64 {
    committed(store.txn(Txn::default().then(Op::Put(key.into(), value.into()))))
}

pub fn delete(store: &dyn Store, key: &str) -> u64 {
    committed(store.txn(Txn::default().then(Op::Delete(key.into()))))
}

/// The revision of a txn that must have committed.
pub fn committed(outcome: Result<TxnOutcome, StoreError>) -> u64 {
    match outcome {
        Ok(TxnOutcome::Committed { revision }) => revision,
        other => panic!("expected a commit, got {other:?}"),
    }
}
