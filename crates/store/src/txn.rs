//! Transaction semantics (compares, puts, deletes, per-key metadata), written once over each backend's tables.

use crate::{Compare, Event, EventKind, KeyValue, Op, StoreError, TxnOutcome};

/// A key's metadata, without its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) create_revision: u64,
    pub(crate) mod_revision: u64,
    pub(crate) version: u64,
}

impl Meta {
    pub(crate) fn of(kv: &KeyValue) -> Self {
        Meta {
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        }
    }
}

/// A backend's key-value table, inside whatever makes its writes atomic.
pub(crate) trait Tables {
    fn meta(&mut self, key: &str) -> Result<Option<Meta>, StoreError>;
    fn write(&mut self, kv: &KeyValue) -> Result<(), StoreError>;
    /// Whether the key existed.
    fn remove(&mut self, key: &str) -> Result<bool, StoreError>;
}

/// Refuses a txn that names one key in two ops, as etcd does, before anything is read or written.
pub(crate) fn validate(ops: &[Op]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(ops.len());
    for op in ops {
        if !seen.insert(op.key()) {
            return Err(StoreError::InvalidTxn(format!(
                "key {:?} appears in more than one op",
                op.key()
            )));
        }
    }
    Ok(())
}

/// [`validate`], and refuses [`Op::PutLeased`]: the local backends have no leases.
pub(crate) fn validate_local(ops: &[Op]) -> Result<(), StoreError> {
    validate(ops)?;
    match ops.iter().find(|op| matches!(op, Op::PutLeased(..))) {
        Some(op) => Err(no_leases(op.key())),
        None => Ok(()),
    }
}

fn no_leases(key: &str) -> StoreError {
    StoreError::Unsupported(format!(
        "leases (a leased put of {key:?}): only the etcd store has them"
    ))
}

/// The outcome for the first compare that does not hold, if any.
pub(crate) fn check(
    compares: &[Compare],
    tables: &mut impl Tables,
) -> Result<Option<TxnOutcome>, StoreError> {
    for compare in compares {
        let Compare::ModRevision(key, expected) = compare;
        let actual = tables.meta(key)?.map_or(0, |m| m.mod_revision);
        if actual != *expected {
            return Ok(Some(TxnOutcome::Failed {
                key: key.clone(),
                actual_mod_revision: actual,
            }));
        }
    }
    Ok(None)
}

/// Applies `ops`, which passed [`validate_local`], in order as `revision`, returning their events
/// (none for deletes of missing keys, so no events means nothing was written).
pub(crate) fn apply(
    ops: Vec<Op>,
    revision: u64,
    tables: &mut impl Tables,
) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Put(key, value) => {
                let previous = tables.meta(&key)?;
                let kv = KeyValue {
                    key,
                    value,
                    create_revision: previous.map_or(revision, |p| p.create_revision),
                    mod_revision: revision,
                    version: previous.map_or(1, |p| p.version + 1),
                };
                tables.write(&kv)?;
                events.push(Event {
                    kind: EventKind::Put,
                    kv,
                });
            }
            // Refused by `validate_local` before anything was written; kept as the same error.
            Op::PutLeased(key, ..) => return Err(no_leases(&key)),
            Op::Delete(key) => {
                if tables.remove(&key)? {
                    events.push(Event {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            key,
                            value: Vec::new(),
                            create_revision: 0,
                            mod_revision: revision,
                            version: 0,
                        },
                    });
                }
            }
        }
    }
    Ok(events)
}
