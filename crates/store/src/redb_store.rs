//! The durable backend: one redb file holding every key with its metadata, and the revision.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::history::History;
use crate::txn::{self, Meta, Tables};
use crate::{HistoryLimits, HistoryUsage, KeyValue, Store, StoreError, Txn, TxnOutcome, Watcher};

/// key -> [`encode`]d metadata and value.
const KVS: TableDefinition<&str, &[u8]> = TableDefinition::new("kvs");
/// Store-wide counters; only [`REVISION`] so far.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// `create_revision`, `mod_revision`, `version`, each u64 little-endian, then the value.
const HEADER: usize = 24;

/// A [`Store`] in one redb file. A txn that returned `Ok` is on disk (redb's immediate
/// durability), so it survives a crash of the process.
///
/// The watch history is in memory only: after a reopen it starts empty at the persisted
/// revision, so watching from an older revision gets [`StoreError::Compacted`].
pub struct RedbStore {
    db: Database,
    history: History,
    /// Held from the write txn's start until its events are published, so that the history sees
    /// revisions in order. redb would serialize the writes anyway.
    writer: Mutex<()>,
    path: PathBuf,
}

fn backend(error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Io(error) => StoreError::Io(error),
        error => StoreError::Backend(error.to_string()),
    }
}

fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + kv.value.len());
    bytes.extend_from_slice(&kv.create_revision.to_le_bytes());
    bytes.extend_from_slice(&kv.mod_revision.to_le_bytes());
    bytes.extend_from_slice(&kv.version.to_le_bytes());
    bytes.extend_from_slice(&kv.value);
    bytes
}

fn decode_meta(key: &str, bytes: &[u8]) -> Result<Meta, StoreError> {
    let Some((header, _)) = bytes.split_first_chunk::<HEADER>() else {
        return Err(StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!(
                "{} bytes, shorter than the {HEADER}-byte header",
                bytes.len()
            ),
        });
    };
    let word = |i: usize| {
        let mut le = [0; 8];
        le.copy_from_slice(&header[i * 8..(i + 1) * 8]);
        u64::from_le_bytes(le)
    };
    Ok(Meta {
        create_revision: word(0),
        mod_revision: word(1),
        version: word(2),
    })
}

fn decode(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    let meta = decode_meta(key, bytes)?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: bytes[HEADER..].to_vec(),
        create_revision: meta.create_revision,
        mod_revision: meta.mod_revision,
        version: meta.version,
    })
}

fn read_revision(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta
        .get(REVISION)
        .map_err(backend)?
        .map_or(0, |revision| revision.value()))
}

struct WriteTables<'t> {
    kvs: redb::Table<'t, &'static str, &'static [u8]>,
}

impl Tables for WriteTables<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<Meta>, StoreError> {
        match self.kvs.get(key).map_err(backend)? {
            Some(bytes) => decode_meta(key, bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    fn write(&mut self, kv: &KeyValue) -> Result<(), StoreError> {
        self.kvs
            .insert(kv.key.as_str(), encode(kv).as_slice())
            .map_err(backend)?;
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.kvs.remove(key).map_err(backend)?.is_some())
    }
}

impl RedbStore {
    /// Opens the store file at `path`, creating it if missing.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_history(path, HistoryLimits::default())
    }

    /// Like [`RedbStore::open`], with watchers lagging only as far behind as `limits` allow.
    pub fn open_with_history(path: &Path, limits: HistoryLimits) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        // Create the tables up front so that reads never meet a missing table.
        let write = db.begin_write().map_err(backend)?;
        let revision = {
            write.open_table(KVS).map_err(backend)?;
            read_revision(&write.open_table(META).map_err(backend)?)?
        };
        write.commit().map_err(backend)?;
        Ok(RedbStore {
            db,
            history: History::new(limits, revision),
            writer: Mutex::new(()),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let read = self.db.begin_read().map_err(backend)?;
        let kvs = read.open_table(KVS).map_err(backend)?;
        match kvs.get(key).map_err(backend)? {
            Some(bytes) => decode(key, bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let read = self.db.begin_read().map_err(backend)?;
        let revision = read_revision(&read.open_table(META).map_err(backend)?)?;
        let kvs = read.open_table(KVS).map_err(backend)?;
        let mut found = Vec::new();
        for entry in kvs.range::<&str>(prefix..).map_err(backend)? {
            let (key, bytes) = entry.map_err(backend)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            found.push(decode(key.value(), bytes.value())?);
        }
        Ok((found, revision))
    }

    fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        txn::validate_local(&txn.ops)?;
        // A poisoned lock guards nothing: the data is in redb, which aborted the failed write.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let write = self.db.begin_write().map_err(backend)?;
        // Ok(commit) or Err(outcome without writing)
        let plan = {
            let mut meta = write.open_table(META).map_err(backend)?;
            let mut tables = WriteTables {
                kvs: write.open_table(KVS).map_err(backend)?,
            };
            let current = read_revision(&meta)?;
            if let Some(failed) = txn::check(&txn.compares, &mut tables)? {
                Err(failed)
            } else {
                let revision = current + 1;
                let events = txn::apply(txn.ops, revision, &mut tables)?;
                if events.is_empty() {
                    // Nothing changed, as etcd counts it: no new revision (and the abort below
                    // drops the empty write).
                    Err(TxnOutcome::Committed { revision: current })
                } else {
                    meta.insert(REVISION, revision).map_err(backend)?;
                    Ok((revision, events))
                }
            }
        };
        match plan {
            Ok((revision, events)) => {
                write.commit().map_err(backend)?;
                self.history.publish(revision, events);
                Ok(TxnOutcome::Committed { revision })
            }
            Err(outcome) => {
                write.abort().map_err(backend)?;
                Ok(outcome)
            }
        }
    }

    fn revision(&self) -> u64 {
        self.history.revision()
    }

    fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, StoreError> {
        self.history.watch(prefix, from_revision)
    }

    fn history_usage(&self) -> HistoryUsage {
        self.history.usage()
    }

    fn backend(&self) -> &'static str {
        "redb"
    }
}
