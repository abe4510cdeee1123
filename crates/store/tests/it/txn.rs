//! Transactions: compare-and-swap, and all-or-nothing multi-op writes.

use store::{Compare, EventKind, Op, Txn, TxnOutcome};

use crate::support::{Backend, block_on, committed, keys_and_values, next_batch, put};

conformance!(
    create_if_absent_succeeds_once,
    cas_with_the_current_mod_revision_succeeds_and_a_stale_one_fails,
    a_failed_compare_writes_nothing_and_publishes_nothing,
    a_multi_op_txn_applies_every_op_under_one_revision,
    ops_on_one_key_apply_in_order,
);

fn put_op(key: &str, value: &[u8]) -> Op {
    Op::Put(key.into(), value.into())
}

fn create_if_absent_succeeds_once(backend: &dyn Backend) {
    let store = backend.open();
    let create = |value: &[u8]| {
        Txn::default()
            .when(Compare::ModRevision("k".into(), 0))
            .then(put_op("k", value))
    };
    assert_eq!(
        store.txn(create(b"first")).unwrap(),
        TxnOutcome::Committed { revision: 1 }
    );
    assert_eq!(
        store.txn(create(b"second")).unwrap(),
        TxnOutcome::Failed {
            key: "k".into(),
            actual_mod_revision: 1
        }
    );
    assert_eq!(store.get("k").unwrap().unwrap().value, b"first");
    assert_eq!(store.revision(), 1);
}

fn cas_with_the_current_mod_revision_succeeds_and_a_stale_one_fails(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, "k", b"1");
    put(&*store, "other", b"x");
    let swap = |seen: u64, value: &[u8]| {
        Txn::default()
            .when(Compare::ModRevision("k".into(), seen))
            .then(put_op("k", value))
    };
    assert_eq!(committed(store.txn(swap(1, b"2"))), 3);
    assert_eq!(
        store.txn(swap(1, b"stale")).unwrap(),
        TxnOutcome::Failed {
            key: "k".into(),
            actual_mod_revision: 3
        }
    );
    let k = store.get("k").unwrap().unwrap();
    assert_eq!(
        (k.value.as_slice(), k.mod_revision, k.version),
        (&b"2"[..], 3, 2)
    );
    assert_eq!(store.revision(), 3);
    assert_eq!(
        store.txn(swap(0, b"absent?")).unwrap(),
        TxnOutcome::Failed {
            key: "k".into(),
            actual_mod_revision: 3
        },
        "0 means the key must not exist"
    );
}

fn a_failed_compare_writes_nothing_and_publishes_nothing(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, "a", b"1");
    put(&*store, "b", b"1");
    let mut watcher = store.watch("", 2).unwrap();
    let txn = Txn::default()
        .when(Compare::ModRevision("a".into(), 1))
        .when(Compare::ModRevision("b".into(), 1))
        .then(put_op("a", b"2"))
        .then(Op::Delete("b".into()))
        .then(put_op("c", b"2"));
    assert_eq!(
        store.txn(txn).unwrap(),
        TxnOutcome::Failed {
            key: "b".into(),
            actual_mod_revision: 2
        }
    );
    assert_eq!(store.revision(), 2);
    let (all, revision) = store.range("").unwrap();
    let all: Vec<_> = all
        .iter()
        .map(|kv| (kv.key.as_str(), kv.mod_revision))
        .collect();
    assert_eq!((all, revision), (vec![("a", 1), ("b", 2)], 2));

    put(&*store, "z", b"after");
    let batch = block_on(next_batch(&mut watcher));
    assert_eq!(keys_and_values(&batch), (3, vec![("z", &b"after"[..])]));
}

fn a_multi_op_txn_applies_every_op_under_one_revision(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, "x", b"old");
    let mut watcher = store.watch("", 1).unwrap();
    let txn = Txn::default()
        .when(Compare::ModRevision("x".into(), 1))
        .then(put_op("b", b"B"))
        .then(put_op("a", b"A"))
        .then(Op::Delete("x".into()))
        .then(Op::Delete("missing".into()));
    assert_eq!(committed(store.txn(txn)), 2);

    let (all, revision) = store.range("").unwrap();
    let all: Vec<_> = all
        .iter()
        .map(|kv| (kv.key.as_str(), kv.mod_revision))
        .collect();
    assert_eq!((all, revision), (vec![("a", 2), ("b", 2)], 2));

    let (revision, events) = block_on(next_batch(&mut watcher));
    assert_eq!(revision, 2);
    let events: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision))
        .collect();
    assert_eq!(
        events,
        [
            (EventKind::Put, "b", 2),
            (EventKind::Put, "a", 2),
            (EventKind::Delete, "x", 2)
        ],
        "one event per op that changed a key, in op order"
    );
}

fn ops_on_one_key_apply_in_order(backend: &dyn Backend) {
    let store = backend.open();
    let txn = Txn::default()
        .then(put_op("k", b"1"))
        .then(put_op("k", b"2"))
        .then(put_op("gone", b"1"))
        .then(Op::Delete("gone".into()));
    assert_eq!(committed(store.txn(txn)), 1);
    let k = store.get("k").unwrap().unwrap();
    assert_eq!(
        (
            k.value.as_slice(),
            k.create_revision,
            k.mod_revision,
            k.version
        ),
        (&b"2"[..], 1, 1, 2)
    );
    assert_eq!(store.get("gone").unwrap(), None);
}
