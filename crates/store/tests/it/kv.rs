//! Reads and single writes: keys, values, versions, revisions, and prefix ranges.

use store::{Compare, KeyValue, Op, Txn, TxnOutcome};

use crate::support::{Backend, committed, delete, put};

conformance!(
    an_empty_store_is_at_revision_zero,
    a_put_creates_the_key_at_a_new_revision,
    a_put_on_an_existing_key_bumps_its_version_and_keeps_create_revision,
    a_delete_removes_the_key_and_a_later_put_starts_it_over,
    a_delete_of_a_missing_key_commits_but_changes_no_key,
    a_txn_without_ops_does_not_bump_the_revision,
    range_returns_the_prefix_sorted_with_its_revision,
);

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
    assert_eq!(store.revision(), 0);
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(store.range("").unwrap(), (vec![], 0));
}

fn a_put_creates_the_key_at_a_new_revision(backend: &dyn Backend) {
    let store = backend.open();
    assert_eq!(put(&*store, "a", b"1"), 1);
    assert_eq!(store.revision(), 1);
    assert_eq!(store.get("a").unwrap(), Some(kv("a", b"1", 1, 1, 1)));
    assert_eq!(store.get("b").unwrap(), None);
}

fn a_put_on_an_existing_key_bumps_its_version_and_keeps_create_revision(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, "a", b"1");
    put(&*store, "b", b"x");
    assert_eq!(put(&*store, "a", b"2"), 3);
    assert_eq!(store.get("a").unwrap(), Some(kv("a", b"2", 1, 3, 2)));
    assert_eq!(store.get("b").unwrap(), Some(kv("b", b"x", 2, 2, 1)));
    assert_eq!(store.revision(), 3);
}

fn a_delete_removes_the_key_and_a_later_put_starts_it_over(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, "a", b"1");
    put(&*store, "a", b"2");
    assert_eq!(delete(&*store, "a"), 3);
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(store.revision(), 3);
    assert_eq!(put(&*store, "a", b"3"), 4);
    assert_eq!(store.get("a").unwrap(), Some(kv("a", b"3", 4, 4, 1)));
}

fn a_delete_of_a_missing_key_commits_but_changes_no_key(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, "a", b"1");
    assert_eq!(delete(&*store, "missing"), 2);
    assert_eq!(store.revision(), 2);
    assert_eq!(store.range("").unwrap(), (vec![kv("a", b"1", 1, 1, 1)], 2));
}

fn a_txn_without_ops_does_not_bump_the_revision(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, "a", b"1");
    assert_eq!(committed(store.txn(Txn::default())), 1);
    let passing = Txn::default().when(Compare::ModRevision("a".into(), 1));
    assert_eq!(
        store.txn(passing).unwrap(),
        TxnOutcome::Committed { revision: 1 }
    );
    assert_eq!(store.revision(), 1);
    assert_eq!(
        put(&*store, "b", b"2"),
        2,
        "the next write takes the next revision"
    );
}

fn range_returns_the_prefix_sorted_with_its_revision(backend: &dyn Backend) {
    let store = backend.open();
    let keys = ["b/2", "a", "b/10", "b", "b/1", "c", "b0", "b/"];
    let mut txn = Txn::default();
    for key in keys {
        txn.ops.push(Op::Put(key.into(), key.as_bytes().to_vec()));
    }
    committed(store.txn(txn));
    put(&*store, "b/2", b"two");

    let (found, revision) = store.range("b/").unwrap();
    assert_eq!(revision, 2);
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
    assert_eq!(store.range("d").unwrap(), (vec![], 2));
}
