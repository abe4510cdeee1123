//! A revisioned key-value store with watch, in the manner of etcd.
//!
//! `store` owns aviary's durable state as plain bytes: one global revision that grows by one per
//! committed write transaction, per-key metadata (create revision, mod revision, version), atomic
//! compare-and-swap transactions, consistent prefix snapshots, and `watch(prefix, from_revision)`
//! over an in-memory history of recent revisions, bounded by count and by bytes. Three backends
//! sit behind the [`Store`] trait: [`MemoryStore`] for tests and [`RedbStore`], one redb file,
//! share the transaction logic and the watch history; `EtcdStore` (cargo feature `etcd`, opened
//! with [`open_etcd`]) maps the same contract onto an etcd v3 cluster for high availability, and
//! alone has [`Leases`]. It must never know aviary's model types: keys are `String`s, values are
//! `Vec<u8>`, and what they mean is the caller's business. The API is synchronous (callers wrap
//! it in `spawn_blocking`); only [`Watcher::next`] is async.

#[cfg(feature = "etcd")]
mod etcd;
mod history;
mod memory;
mod redb_store;
mod txn;
mod watcher;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "etcd")]
pub use etcd::EtcdStore;
pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use watcher::Watcher;

/// An etcd lease, from [`Leases::grant`].
pub type LeaseId = i64;

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
    /// Deleting a missing key changes nothing: no event, and no new revision if no other op of
    /// its txn changes a key.
    Delete(String),
    /// A put whose key the store deletes when the lease expires or is revoked.
    PutLeased(String, Vec<u8>, LeaseId),
}

impl Op {
    /// The key the op writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put(key, _) | Op::Delete(key) | Op::PutLeased(key, _, _) => key,
        }
    }
}

/// Compares that must all hold, then ops applied in order under one new revision.
///
/// Each op names a different key (as etcd requires): a txn naming one key twice is refused with
/// [`StoreError::InvalidTxn`] before anything is checked or written.
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
    /// whose ops change no key (none at all, or only deletes of missing keys), which writes
    /// nothing and does not bump the revision.
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
    /// The backend cannot be reached or has no quorum, and nothing was done: a write that got
    /// this was not applied, and may be sent again (elsewhere too).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A txn reached the backend (or may have) but got no answer in time: it may or may not
    /// have been applied. Read before writing again.
    #[error("the store did not confirm this write: {0}; it may or may not have been applied")]
    Indeterminate(String),
    /// The backend cannot do this (memory/redb: leases).
    #[error("not supported by this store: {0}")]
    Unsupported(String),
    /// The txn breaks a rule of [`Txn`] (one key in two ops); nothing was written.
    #[error("invalid txn: {0}")]
    InvalidTxn(String),
}

/// Keys that vanish with their lease, where the backend has them ([`Store::leases`]).
pub trait Leases: Send + Sync {
    /// A new lease that expires `ttl` from now unless kept alive (etcd rounds up to seconds).
    fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError>;
    /// Renews once; Ok(false) when the lease has expired or was revoked.
    fn keep_alive(&self, lease: LeaseId) -> Result<bool, StoreError>;
    /// Ends the lease now, deleting its keys.
    fn revoke(&self, lease: LeaseId) -> Result<(), StoreError>;
}

/// A revisioned key-value store; see the crate docs.
///
/// Every method is blocking and linearizable: once a [`Store::txn`] returns, every later call on
/// any thread sees its effects (etcd's [`Store::revision`] only through the same store value;
/// see there).
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    /// All keys starting with prefix, sorted by key, plus the store revision they were read at
    /// (consistent snapshot).
    fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError>;
    /// Atomic: all compares checked and all ops applied under one new revision, or nothing. A txn
    /// that passes but changes no key does not bump the revision. Err(InvalidTxn) for a txn that
    /// names one key twice; Err(Unsupported) for [`Op::PutLeased`] without [`Store::leases`].
    fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;
    /// The revision of the last committed txn; 0 for a local store never written. Answered
    /// from memory, so it is cheap enough to call per request, even in async code. etcd: the
    /// newest cluster revision this store has seen: at once for its own reads and writes, for
    /// other clients' writes under its prefix as soon as its watch delivers them (so this one
    /// method is not linearizable across replicas; [`Store::range`] is).
    fn revision(&self) -> u64;
    /// Events with revision > from_revision for keys under prefix, in order, each exactly once.
    /// Err(Compacted) if revisions after from_revision are no longer in the in-memory history.
    /// A from_revision above the current revision is allowed: the watcher waits for it.
    fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, StoreError>;
    /// How much the in-memory watch history holds, for metrics and tests.
    fn history_usage(&self) -> HistoryUsage;
    /// Leases where the backend has them (etcd); `None` for memory and redb.
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }
    /// Ok when the backend answers now (etcd: a linearizable read within the request timeout).
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// "memory", "redb" or "etcd", for /healthz and /metrics.
    fn backend(&self) -> &'static str;
}

/// Where and how to reach etcd, for [`open_etcd`]. Always compiled (plain data), so callers can
/// carry it even in a build without etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs of the members, e.g. `http://10.0.0.1:2379`; any of them will do.
    pub endpoints: Vec<String>,
    /// Prepended to every key on write and stripped on read; ranges and watches stay inside it.
    pub prefix: String,
    pub tls: Option<EtcdTls>,
    /// Bound on every request, after which it fails with [`StoreError::Unavailable`].
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// The defaults (prefix `aviary/`, 3 s per request, no TLS) for these endpoints.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            prefix: DEFAULT_ETCD_PREFIX.to_owned(),
            tls: None,
            request_timeout: DEFAULT_ETCD_REQUEST_TIMEOUT,
        }
    }
}

impl Default for EtcdConfig {
    /// [`EtcdConfig::new`] without endpoints.
    fn default() -> Self {
        EtcdConfig::new(Vec::new())
    }
}

/// [`EtcdConfig::prefix`] unless told otherwise.
pub const DEFAULT_ETCD_PREFIX: &str = "aviary/";
/// [`EtcdConfig::request_timeout`] unless told otherwise.
pub const DEFAULT_ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// PEM files for talking to etcd over TLS.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// The CA that signed the members' certificates.
    pub ca: PathBuf,
    /// A client certificate and its key, for members that require one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Connects to etcd; in a build without the `etcd` feature:
/// Err(Unsupported("this aviary was built without etcd support; rebuild with --features etcd")).
pub fn open_etcd(config: &EtcdConfig) -> Result<Arc<dyn Store>, StoreError> {
    #[cfg(feature = "etcd")]
    {
        Ok(Arc::new(EtcdStore::connect(config)?))
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = config;
        Err(StoreError::Unsupported(
            "this aviary was built without etcd support; rebuild with --features etcd".to_owned(),
        ))
    }
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
