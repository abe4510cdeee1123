//! Reads and single writes: keys, values, versions, revisions, and prefix ranges.

use store::{Compare, KeyValue, Op, StoreError, Txn, TxnOutcome};

use crate::support::{Backend, committed, delete, put};

conformance!(
    an_empty_store_is_at_revision_zero,
    a_put_creates_the_key_at_a_new_revision,
    a_put_on_an_existing_key_bumps_its_version_and_keeps_create_revision,
    a_delete_removes_the_key_and_a_later_put_starts_it_over,
    a_delete_of_a_missing_key_commits_without_a_new_revision,
    a_txn_without_ops_does_not_bump_the_revision,
    range_returns_the_prefix_sorted_with_its_revision;
    // Only memory and redb lack leases; etcd's leases are tested in `etcd.rs`.
    local: a_leased_put_is_refused_where_there_are_no_leases,
);

// Revisions below are counted from `r`, the store's revision when the test starts: 0 for a
// fresh local store, wherever the shared cluster is for etcd (whose fresh revision is 1, not 0).

fn kv(key: &str, value: &[u8], create_revision: u64, mod_revision: u64, version: u64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
        version,
    }
}

fn an_empty_store_is_at_revision_zero(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    if let Some(fresh) = backend.fresh_revision() {
        assert_eq!(r, fresh);
    }
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(store.range("").unwrap(), (vec![], r));
}

fn a_put_creates_the_key_at_a_new_revision(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    assert_eq!(put(&*store, "a", b"1"), r + 1);
    assert_eq!(store.revision(), r + 1);
    assert_eq!(
        store.get("a").unwrap(),
        Some(kv("a", b"1", r + 1, r + 1, 1))
    );
    assert_eq!(store.get("b").unwrap(), None);
}

fn a_put_on_an_existing_key_bumps_its_version_and_keeps_create_revision(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "a", b"1");
    put(&*store, "b", b"x");
    assert_eq!(put(&*store, "a", b"2"), r + 3);
    assert_eq!(
        store.get("a").unwrap(),
        Some(kv("a", b"2", r + 1, r + 3, 2))
    );
    assert_eq!(
        store.get("b").unwrap(),
        Some(kv("b", b"x", r + 2, r + 2, 1))
    );
    assert_eq!(store.revision(), r + 3);
}

fn a_delete_removes_the_key_and_a_later_put_starts_it_over(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "a", b"1");
    put(&*store, "a", b"2");
    assert_eq!(delete(&*store, "a"), r + 3);
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(store.revision(), r + 3);
    assert_eq!(put(&*store, "a", b"3"), r + 4);
    assert_eq!(
        store.get("a").unwrap(),
        Some(kv("a", b"3", r + 4, r + 4, 1))
    );
}

/// As in etcd: a txn whose ops change no key writes nothing, so it takes no revision.
fn a_delete_of_a_missing_key_commits_without_a_new_revision(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "a", b"1");
    assert_eq!(delete(&*store, "missing"), r + 1);
    let two_misses = Txn::default()
        .then(Op::Delete("missing".into()))
        .then(Op::Delete("also-missing".into()));
    assert_eq!(committed(store.txn(two_misses)), r + 1);
    assert_eq!(store.revision(), r + 1);
    assert_eq!(
        store.range("").unwrap(),
        (vec![kv("a", b"1", r + 1, r + 1, 1)], r + 1)
    );
    assert_eq!(
        put(&*store, "b", b"2"),
        r + 2,
        "the next write takes the next revision"
    );
}

fn a_txn_without_ops_does_not_bump_the_revision(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "a", b"1");
    assert_eq!(committed(store.txn(Txn::default())), r + 1);
    let passing = Txn::default().when(Compare::ModRevision("a".into(), r + 1));
    assert_eq!(
        store.txn(passing).unwrap(),
        TxnOutcome::Committed { revision: r + 1 }
    );
    assert_eq!(store.revision(), r + 1);
    assert_eq!(
        put(&*store, "b", b"2"),
        r + 2,
        "the next write takes the next revision"
    );
}

fn range_returns_the_prefix_sorted_with_its_revision(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    let keys = ["b/2", "a", "b/10", "b", "b/1", "c", "b0", "b/"];
    let mut txn = Txn::default();
    for key in keys {
        txn.ops.push(Op::Put(key.into(), key.as_bytes().to_vec()));
    }
    committed(store.txn(txn));
    put(&*store, "b/2", b"two");

    let (found, revision) = store.range("b/").unwrap();
    assert_eq!(revision, r + 2);
    let found: Vec<_> = found
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
        .collect();
    assert_eq!(
        found,
        [
            ("b/", &b"b/"[..]),
            ("b/1", b"b/1"),
            ("b/10", b"b/10"),
            ("b/2", b"two")
        ]
    );

    let (all, _) = store.range("").unwrap();
    let all: Vec<_> = all.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(all, ["a", "b", "b/", "b/1", "b/10", "b/2", "b0", "c"]);
    assert_eq!(store.range("d").unwrap(), (vec![], r + 2));
}

/// A leased put is refused before anything is written, even the txn's other ops.
fn a_leased_put_is_refused_where_there_are_no_leases(backend: &dyn Backend) {
    let store = backend.open();
    assert!(store.leases().is_none());
    let r = store.revision();
    let txn = Txn::default()
        .then(Op::Put("plain".into(), b"1".to_vec()))
        .then(Op::PutLeased("leased".into(), b"1".to_vec(), 7));
    match store.txn(txn) {
        Err(StoreError::Unsupported(message)) => assert!(message.contains("leased"), "{message}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_eq!(store.revision(), r);
    assert_eq!(store.get("plain").unwrap(), None);
}
