//! The watch history's byte budget: big values push old revisions out, memory stays under the
//! budget, and watchers behind what was evicted are told to re-list, exactly as for the count.

use store::{Store, StoreError};

use crate::support::{Backend, block_on, bytes, keys_and_values, next_batch, put};

// All about our own in-memory history's byte budget; etcd keeps its history itself.
conformance!(;
    local: big_values_evict_old_revisions_and_the_history_stays_under_its_budget,
    a_watch_from_a_revision_evicted_for_bytes_is_compacted,
    a_watch_from_a_retained_revision_sees_every_later_event_in_order,
    a_watcher_that_falls_behind_the_byte_budget_is_compacted,
);

const BUDGET: usize = 64 * 1024;
const VALUE: usize = 10 * 1024;

/// Twenty 10 KiB values into a 64 KiB history: only the last few revisions fit.
fn fill(store: &dyn Store) -> Vec<Vec<u8>> {
    (0..20u8)
        .map(|i| {
            let value = vec![b'a' + i; VALUE];
            put(store, &format!("big/{i}"), &value);
            let usage = store.history_usage();
            assert!(
                usage.bytes <= BUDGET,
                "after revision {}: {usage:?} is over {BUDGET}",
                i + 1
            );
            value
        })
        .collect()
}

fn big_values_evict_old_revisions_and_the_history_stays_under_its_budget(backend: &dyn Backend) {
    let store = backend.open_with_history(bytes(BUDGET));
    fill(&*store);
    let usage = store.history_usage();
    // Six 10 KiB values (plus keys and per-event overhead) fit in 64 KiB, seven do not.
    assert_eq!(usage.revisions, 6, "{usage:?}");
    assert_eq!(usage.oldest, 14, "{usage:?}");
    assert!(
        usage.bytes > 6 * VALUE && usage.bytes <= BUDGET,
        "{usage:?}"
    );
    // Everything is still in the store itself: only the history forgot.
    let (kvs, revision) = store.range("big/").unwrap();
    assert_eq!((kvs.len(), revision), (20, 20));
}

fn a_watch_from_a_revision_evicted_for_bytes_is_compacted(backend: &dyn Backend) {
    let store = backend.open_with_history(bytes(BUDGET));
    fill(&*store);
    for from in [0, 5, 13] {
        match store.watch("", from) {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (from, 14))
            }
            other => panic!("watch from {from}: expected Compacted, got {other:?}"),
        }
    }
}

fn a_watch_from_a_retained_revision_sees_every_later_event_in_order(backend: &dyn Backend) {
    let store = backend.open_with_history(bytes(BUDGET));
    let values = fill(&*store);
    let mut watcher = store.watch("big/", 14).unwrap();
    block_on(async {
        for revision in 15..=20u64 {
            let batch = next_batch(&mut watcher).await;
            let i = (revision - 1) as usize;
            let key = format!("big/{i}");
            assert_eq!(
                keys_and_values(&batch),
                (revision, vec![(key.as_str(), values[i].as_slice())])
            );
        }
        put(&*store, "big/next", b"small");
        let batch = next_batch(&mut watcher).await;
        assert_eq!(
            keys_and_values(&batch),
            (21, vec![("big/next", &b"small"[..])])
        );
    });
}

fn a_watcher_that_falls_behind_the_byte_budget_is_compacted(backend: &dyn Backend) {
    let store = backend.open_with_history(bytes(BUDGET));
    put(&*store, "big/first", b"1");
    let mut watcher = store.watch("", 1).unwrap();
    fill(&*store);
    block_on(async {
        for _ in 0..2 {
            match watcher.next().await {
                Some(Err(StoreError::Compacted { requested, oldest })) => {
                    assert_eq!((requested, oldest), (1, 15))
                }
                other => panic!("expected Compacted, got {other:?}"),
            }
        }
    });
}
