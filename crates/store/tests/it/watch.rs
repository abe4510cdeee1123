//! Watch: every change after a revision exactly once, in order, filtered by prefix, within the history.

use std::collections::HashMap;

use store::{Event, EventKind, KeyValue, Op, StoreError, Txn};

use crate::support::{
    Backend, block_on, committed, delete, keys_and_values, next_batch, put, revisions,
};

conformance!(
    a_watch_sees_every_later_change_once_in_order,
    a_watch_filters_by_prefix_and_skips_unrelated_revisions,
    a_watch_from_a_future_revision_waits_for_it,
    concurrent_writers_are_seen_once_each_in_revision_order,
    a_watcher_drains_then_ends_when_the_store_is_dropped;
    // About our own in-memory history bound; etcd's history is etcd's (see etcd.rs for its
    // compaction).
    local: a_watch_from_before_the_history_is_compacted,
    a_watcher_that_falls_behind_the_history_is_compacted,
    a_watcher_that_keeps_up_outlives_a_small_history,
);

// Revisions are counted from `r`, the store's revision when the test starts (see kv.rs).

fn a_watch_sees_every_later_change_once_in_order(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    put(&*store, "a", b"1");
    put(&*store, "b", b"1");
    let mut watcher = store.watch("", r + 1).unwrap();
    put(&*store, "a", b"2");
    delete(&*store, "b");

    block_on(async {
        let batch = next_batch(&mut watcher).await;
        assert_eq!(keys_and_values(&batch), (r + 2, vec![("b", &b"1"[..])]));
        let (revision, events) = next_batch(&mut watcher).await;
        assert_eq!(revision, r + 3);
        assert_eq!(
            events,
            [Event {
                kind: EventKind::Put,
                kv: KeyValue {
                    key: "a".into(),
                    value: b"2".to_vec(),
                    create_revision: r + 1,
                    mod_revision: r + 3,
                    version: 2
                }
            }]
        );
        let (revision, events) = next_batch(&mut watcher).await;
        assert_eq!(revision, r + 4);
        assert_eq!(
            events,
            [Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: "b".into(),
                    value: vec![],
                    create_revision: 0,
                    mod_revision: r + 4,
                    version: 0
                }
            }]
        );
        put(&*store, "c", b"1");
        let batch = next_batch(&mut watcher).await;
        assert_eq!(keys_and_values(&batch), (r + 5, vec![("c", &b"1"[..])]));
    });
}

fn a_watch_filters_by_prefix_and_skips_unrelated_revisions(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    let mut watcher = store.watch("app/", r).unwrap();
    put(&*store, "other", b"1");
    let both = Txn::default()
        .then(Op::Put("other".into(), b"2".to_vec()))
        .then(Op::Put("app/x".into(), b"x".to_vec()));
    assert_eq!(committed(store.txn(both)), r + 2);
    put(&*store, "apple", b"1");
    delete(&*store, "app/missing");
    delete(&*store, "app/x");

    block_on(async {
        let batch = next_batch(&mut watcher).await;
        assert_eq!(keys_and_values(&batch), (r + 2, vec![("app/x", &b"x"[..])]));
        let (revision, events) = next_batch(&mut watcher).await;
        assert_eq!(
            revision,
            r + 4,
            "the delete of a missing key took no revision"
        );
        let events: Vec<_> = events.iter().map(|e| (e.kind, e.kv.key.as_str())).collect();
        assert_eq!(events, [(EventKind::Delete, "app/x")]);
    });
}

fn a_watch_from_a_future_revision_waits_for_it(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    let mut watcher = store.watch("", r + 2).unwrap();
    for key in ["a", "b", "c"] {
        put(&*store, key, b"1");
    }
    let batch = block_on(next_batch(&mut watcher));
    assert_eq!(keys_and_values(&batch), (r + 3, vec![("c", &b"1"[..])]));
}

/// Writers on several threads while the watcher waits: every acknowledged revision under the
/// prefix arrives exactly once, in increasing order, and nothing else does.
fn concurrent_writers_are_seen_once_each_in_revision_order(backend: &dyn Backend) {
    const WRITERS: usize = 4;
    const PUTS: usize = 40;
    let store = backend.open();
    put(&*store, "before", b"1");
    let mut watcher = store.watch("w/", store.revision()).unwrap();

    let (acked, seen) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = &*store;
                s.spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..PUTS {
                        acked.push(put(store, &format!("w/{w}"), i.to_string().as_bytes()));
                        if i % 4 == 0 {
                            put(store, &format!("noise/{w}"), b"-");
                        }
                    }
                    acked
                })
            })
            .collect();
        let seen = block_on(async {
            let mut seen = Vec::new();
            while seen.len() < WRITERS * PUTS {
                let (revision, events) = next_batch(&mut watcher).await;
                assert_eq!(events.len(), 1, "one put per revision at {revision}");
                seen.push((revision, events.into_iter().next().unwrap()));
            }
            seen
        });
        let mut acked: Vec<u64> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        acked.sort_unstable();
        (acked, seen)
    });

    let revisions: Vec<u64> = seen.iter().map(|(revision, _)| *revision).collect();
    assert_eq!(
        revisions, acked,
        "exactly the acknowledged revisions, in order"
    );
    let mut next_value: HashMap<&str, usize> = HashMap::new();
    for (revision, event) in &seen {
        assert_eq!(event.kv.mod_revision, *revision);
        let expected = next_value.entry(&event.kv.key).or_default();
        assert_eq!(
            event.kv.value,
            expected.to_string().as_bytes(),
            "{}",
            event.kv.key
        );
        assert_eq!(event.kv.version, *expected as u64 + 1);
        *expected += 1;
    }
    assert_eq!(next_value.len(), WRITERS);
}

fn a_watch_from_before_the_history_is_compacted(backend: &dyn Backend) {
    let store = backend.open_with_history(revisions(4));
    for i in 0..10 {
        put(&*store, "k", i.to_string().as_bytes());
    }
    match store.watch("", 5) {
        Err(StoreError::Compacted { requested, oldest }) => assert_eq!((requested, oldest), (5, 6)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut watcher = store.watch("", 6).unwrap();
    block_on(async {
        for revision in 7..=10 {
            let batch = next_batch(&mut watcher).await;
            let value = (revision - 1).to_string();
            assert_eq!(
                keys_and_values(&batch),
                (revision, vec![("k", value.as_bytes())])
            );
        }
    });
}

fn a_watcher_that_falls_behind_the_history_is_compacted(backend: &dyn Backend) {
    let store = backend.open_with_history(revisions(4));
    put(&*store, "k", b"0");
    let mut watcher = store.watch("", 1).unwrap();
    for i in 1..=10 {
        put(&*store, "k", i.to_string().as_bytes());
    }
    block_on(async {
        for _ in 0..2 {
            match watcher.next().await {
                Some(Err(StoreError::Compacted { requested, oldest })) => {
                    assert_eq!((requested, oldest), (1, 7))
                }
                other => panic!("expected Compacted, got {other:?}"),
            }
        }
    });
}

fn a_watcher_that_keeps_up_outlives_a_small_history(backend: &dyn Backend) {
    let store = backend.open_with_history(revisions(2));
    let mut watcher = store.watch("", 0).unwrap();
    block_on(async {
        for revision in 1..=20 {
            put(&*store, "k", b"v");
            assert_eq!(next_batch(&mut watcher).await.0, revision);
        }
    });
}

fn a_watcher_drains_then_ends_when_the_store_is_dropped(backend: &dyn Backend) {
    let store = backend.open();
    let r = store.revision();
    let mut watcher = store.watch("", r).unwrap();
    put(&*store, "k", b"last");
    drop(store);
    block_on(async {
        let batch = next_batch(&mut watcher).await;
        assert_eq!(keys_and_values(&batch), (r + 1, vec![("k", &b"last"[..])]));
        assert!(watcher.next().await.is_none());
    });
}
