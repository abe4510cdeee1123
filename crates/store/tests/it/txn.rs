//! Transactions: compare-and-swap, and all-or-nothing multi-op writes.

use store::{Compare, EventKind, Op, StoreError, Txn, TxnOutcome};

use crate::support::{Backend, block_on, committed, keys_and_values, next_batch, put};

conformance!(
    create_if_absent_succeeds_once,
    cas_with_the_current_mod_revision_succeeds_and_a_stale_one_fails,
    a_failed_compare_writes_nothing_and_publishes_nothing,
    a_multi_op_txn_applies_every_op_under_one_revision,
    a_txn_naming_one_key_twice_is_refused_and_writes_nothing,
);

fn put_op(key: &str, value: &[u8]) -> Op {
    Op::Put(key.into(), value.into())
}

// Revisions are counted from `r`, the store's revision when the test starts (see kv.rs).

fn create_if_absent_succeeds_once(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    let create = |value: &[u8]| {
        Txn::default()
            .when(Compare::ModRevision("k".into(), 0))
            .then(put_op("k", value))
    };
    assert_eq!(
        store.txn(create(b"first")).unwrap(),
        TxnOutcome::Committed { revision: r + 1 }
    );
    assert_eq!(
        store.txn(create(b"second")).unwrap(),
        TxnOutcome::Failed {
            key: "k".into(),
            actual_mod_revision: r + 1
        }
    );
    assert_eq!(store.get("k").unwrap().unwrap().value, b"first");
    assert_eq!(store.revision(), r + 1);
}

fn cas_with_the_current_mod_revision_succeeds_and_a_stale_one_fails(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "k", b"1");
    put(&*store, "other", b"x");
    let swap = |seen: u64, value: &[u8]| {
        Txn::default()
            .when(Compare::ModRevision("k".into(), seen))
            .then(put_op("k", value))
    };
    assert_eq!(committed(store.txn(swap(r + 1, b"2"))), r + 3);
    assert_eq!(
        store.txn(swap(r + 1, b"stale")).unwrap(),
        TxnOutcome::Failed {
            key: "k".into(),
            actual_mod_revision: r + 3
        }
    );
    let k = store.get("k").unwrap().unwrap();
    assert_eq!(
        (k.value.as_slice(), k.mod_revision, k.version),
        (&b"2"[..], r + 3, 2)
    );
    assert_eq!(store.revision(), r + 3);
    assert_eq!(
        store.txn(swap(0, b"absent?")).unwrap(),
        TxnOutcome::Failed {
            key: "k".into(),
            actual_mod_revision: r + 3
        },
        "0 means the key must not exist"
    );
}

fn a_failed_compare_writes_nothing_and_publishes_nothing(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "a", b"1");
    put(&*store, "b", b"1");
    let mut watcher = store.watch("", r + 2).unwrap();
    let txn = Txn::default()
        .when(Compare::ModRevision("a".into(), r + 1))
        .when(Compare::ModRevision("b".into(), r + 1))
        .then(put_op("a", b"2"))
        .then(Op::Delete("b".into()))
        .then(put_op("c", b"2"));
    assert_eq!(
        store.txn(txn).unwrap(),
        TxnOutcome::Failed {
            key: "b".into(),
            actual_mod_revision: r + 2
        }
    );
    assert_eq!(store.revision(), r + 2);
    let (all, revision) = store.range("").unwrap();
    let all: Vec<_> = all
        .iter()
        .map(|kv| (kv.key.as_str(), kv.mod_revision))
        .collect();
    assert_eq!((all, revision), (vec![("a", r + 1), ("b", r + 2)], r + 2));

    put(&*store, "z", b"after");
    let batch = block_on(next_batch(&mut watcher));
    assert_eq!(keys_and_values(&batch), (r + 3, vec![("z", &b"after"[..])]));
}

fn a_multi_op_txn_applies_every_op_under_one_revision(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "x", b"old");
    let mut watcher = store.watch("", r + 1).unwrap();
    let txn = Txn::default()
        .when(Compare::ModRevision("x".into(), r + 1))
        .then(put_op("b", b"B"))
        .then(put_op("a", b"A"))
        .then(Op::Delete("x".into()))
        .then(Op::Delete("missing".into()));
    assert_eq!(committed(store.txn(txn)), r + 2);

    let (all, revision) = store.range("").unwrap();
    let all: Vec<_> = all
        .iter()
        .map(|kv| (kv.key.as_str(), kv.mod_revision))
        .collect();
    assert_eq!((all, revision), (vec![("a", r + 2), ("b", r + 2)], r + 2));

    let (revision, events) = block_on(next_batch(&mut watcher));
    assert_eq!(revision, r + 2);
    let events: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision))
        .collect();
    assert_eq!(
        events,
        [
            (EventKind::Put, "b", r + 2),
            (EventKind::Put, "a", r + 2),
            (EventKind::Delete, "x", r + 2)
        ],
        "one event per op that changed a key, in op order"
    );
}

/// etcd refuses a txn that names one key in two ops, so every backend does, naming the key,
/// before it checks or writes anything.
fn a_txn_naming_one_key_twice_is_refused_and_writes_nothing(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "k", b"0");
    let twice = [
        Txn::default()
            .then(put_op("other", b"1"))
            .then(put_op("k", b"1"))
            .then(put_op("k", b"2")),
        Txn::default()
            .when(Compare::ModRevision("k".into(), r + 1))
            .then(put_op("k", b"1"))
            .then(Op::Delete("k".into())),
        Txn::default()
            .then(Op::Delete("k".into()))
            .then(Op::Delete("k".into())),
    ];
    for txn in twice {
        match store.txn(txn.clone()) {
            Err(StoreError::InvalidTxn(message)) => {
                assert!(message.contains("\"k\""), "{message} should name the key")
            }
            other => panic!("{txn:?}: expected InvalidTxn, got {other:?}"),
        }
    }
    assert_eq!(store.revision(), r + 1);
    let (all, _) = store.range("").unwrap();
    let all: Vec<_> = all
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_slice(), kv.version))
        .collect();
    assert_eq!(all, [("k", &b"0"[..], 1)]);
}
