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

    /// The revision of a store never written, where the backend has one of its own (etcd's is
    /// the shared cluster's).
    fn fresh_revision(&self) -> Option<u64> {
        Some(0)
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

#[cfg(feature = "etcd")]
pub use etcd::{Etcd, shared_cluster};

#[cfg(feature = "etcd")]
mod etcd {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
    use std::time::Duration;

    use store::{EtcdConfig, EtcdStore, HistoryLimits, Store};
    use testkit::etcd::EtcdCluster;

    use super::Backend;

    /// One 1-member cluster for the whole test binary: starting etcd per test would cost a
    /// second each. Its members die with the test process (see `EtcdCluster`).
    static CLUSTER: OnceLock<EtcdCluster> = OnceLock::new();
    /// Conformance tests count revisions from their start and assume no other writer, so the
    /// etcd ones take turns on the shared cluster.
    static TURN: Mutex<()> = Mutex::new(());
    static PREFIXES: AtomicU32 = AtomicU32::new(0);

    pub fn shared_cluster() -> &'static EtcdCluster {
        CLUSTER.get_or_init(|| EtcdCluster::start(1))
    }

    /// Stores under a fresh key prefix of the shared cluster, one test at a time.
    pub struct Etcd {
        _turn: MutexGuard<'static, ()>,
    }

    impl Etcd {
        pub fn new() -> Self {
            // A test that failed on its turn poisons the lock; the next one may still run.
            let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
            shared_cluster();
            Etcd { _turn: turn }
        }
    }

    impl Backend for Etcd {
        /// etcd keeps its own history, so `limits` mean nothing here; the tests about them are
        /// local-only.
        fn open_with_history(&self, _limits: HistoryLimits) -> Box<dyn Store> {
            let n = PREFIXES.fetch_add(1, Ordering::Relaxed);
            let config = EtcdConfig {
                prefix: format!("conformance/{}/{n}/", std::process::id()),
                request_timeout: Duration::from_secs(5),
                ..EtcdConfig::new(shared_cluster().client_urls())
            };
            Box::new(EtcdStore::connect(&config).expect("connect to the shared etcd"))
        }

        fn fresh_revision(&self) -> Option<u64> {
            None
        }
    }
}
