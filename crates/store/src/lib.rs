//! A revisioned key-value store with watch, in the manner of etcd.
//!
//! `store` owns aviary's durable state as plain bytes: one global revision that grows by one per
//! committed write transaction, per-key metadata (create revision, mod revision, version), atomic
//! compare-and-swap transactions, consistent prefix snapshots, and `watch(prefix, from_revision)`
//! over an in-memory history of recent revisions, bounded by count and by bytes. Two backends sit behind the [`Store`]
//! trait: [`MemoryStore`] for tests and [`RedbStore`], one redb file, for real use; both share
//! the transaction logic and the watch history. It must never know aviary's model types: keys are
//! `String`s, values are `Vec<u8>`, and what they mean is the caller's business. The API is
//! synchronous (callers wrap it in `spawn_blocking`); only [`Watcher::next`] is async, built on
//! `tokio::sync` alone.

mod history;
mod memory;
mod redb_store;
mod txn;

use std::path::Path;

pub use history::Watcher;
pub use memory::MemoryStore;
pub use redb_store::RedbStore;

/// Revisions of events a store keeps in memory for watchers unless told otherwise.
pub const DEFAULT_HISTORY: usize = 10_000;

/// Bytes of events a store keeps in memory for watchers unless told otherwise: ten thousand
/// revisions of 64 KiB resources would be 640 MiB, so the count alone does not bound memory.
pub const DEFAULT_HISTORY_BYTES: usize = 64 * 1024 * 1024;

/// How much watch history a store keeps in memory; the oldest revisions go first once either
/// limit is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Revisions kept (at least the newest one is, whatever this says).
    pub revisions: usize,
    /// Budget for the kept events: key and value bytes plus a fixed cost per event. The newest
    /// revision is kept even if it alone is bigger.
    pub bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            revisions: DEFAULT_HISTORY,
            bytes: DEFAULT_HISTORY_BYTES,
        }
    }
}

/// What a store's watch history holds right now, from [`Store::history_usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryUsage {
    /// The smallest `from_revision` a watch can start from.
    pub oldest: u64,
    /// Revisions held.
    pub revisions: usize,
    /// Bytes held, counted as [`HistoryLimits::bytes`] counts them.
    pub bytes: usize,
}

/// File name of the store inside a data directory; see [`open_dir`].
pub const DATA_FILE: &str = "aviary.redb";

/// One key with its value and metadata, as read at some store revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the put that created the key (since its last delete).
    pub create_revision: u64,
    /// Revision of the last write to the key.
    pub mod_revision: u64,
    /// Number of puts since the key was created; 1 after the first.
    pub version: u64,
}

/// A condition a [`Txn`] checks before it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// key's mod_revision must equal this value; 0 means "key must not exist"
    ModRevision(String, u64),
}

/// A write inside a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(String, Vec<u8>),
    /// Deleting a missing key writes nothing, but still counts as an op of its txn.
    Delete(String),
}

/// Compares that must all hold, then ops applied in order under one new revision.
///
/// Ops on the same key within one txn apply in order, each as its own event: a put then a delete
/// leaves the key absent; two puts leave the second value with the version bumped twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Txn {
    /// Adds a compare.
    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }

    /// Adds an op.
    pub fn then(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }
}

/// What a [`Store::txn`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// All compares held. `revision` is the txn's new revision, or the current one for a txn
    /// without ops (which writes nothing and does not bump the revision).
    Committed { revision: u64 },
    /// a compare failed; nothing was written
    Failed {
        key: String,
        /// 0 when the key does not exist.
        actual_mod_revision: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a put: the key as written. For a delete: the key, an empty value, `mod_revision` = the
    /// revision of the delete, `create_revision` and `version` 0 (as etcd reports them).
    pub kv: KeyValue,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The events after `requested` are no longer in the in-memory history: re-list with
    /// [`Store::range`] and watch from the revision it returns.
    #[error(
        "revisions after {requested} are no longer in the watch history (oldest watchable: {oldest}); re-list"
    )]
    Compacted {
        /// The revision the watch had reached (or was asked to start from).
        requested: u64,
        /// The smallest `from_revision` the history can serve now.
        oldest: u64,
    },
    /// The storage engine failed; the message is its own.
    #[error("store backend: {0}")]
    Backend(String),
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes are not in the shape this crate writes.
    #[error("store data corrupt at key {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// A revisioned key-value store; see the crate docs.
///
/// Every method is blocking and linearizable: once a [`Store::txn`] returns, every later call on
/// any thread sees its effects.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    /// All keys starting with prefix, sorted by key, plus the store revision they were read at
    /// (consistent snapshot).
    fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError>;
    /// Atomic: all compares checked and all ops applied under one new revision, or nothing. A txn
    /// with no ops that passes does not bump the revision.
    fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;
    /// The revision of the last committed txn; 0 for a store never written.
    fn revision(&self) -> u64;
    /// Events with revision > from_revision for keys under prefix, in order, each exactly once.
    /// Err(Compacted) if revisions after from_revision are no longer in the in-memory history.
    /// A from_revision above the current revision is allowed: the watcher waits for it.
    fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, StoreError>;
    /// How much the in-memory watch history holds, for metrics and tests.
    fn history_usage(&self) -> HistoryUsage;
}

/// Opens (creating if needed) the redb store `data_dir/aviary.redb`, creating `data_dir` too.
pub fn open_dir(data_dir: &Path) -> Result<RedbStore, StoreError> {
    open_dir_with_history(data_dir, HistoryLimits::default())
}

/// Like [`open_dir`], keeping the watch history `limits` allow.
pub fn open_dir_with_history(
    data_dir: &Path,
    limits: HistoryLimits,
) -> Result<RedbStore, StoreError> {
    std::fs::create_dir_all(data_dir)?;
    RedbStore::open_with_history(&data_dir.join(DATA_FILE), limits)
}
