//! Many threads at once: compare-and-swap loses no acknowledged write, and readers see whole txns.

use std::sync::atomic::{AtomicBool, Ordering};

use store::{Compare, Op, Store, Txn, TxnOutcome};

use crate::support::{Backend, committed};

conformance!(
    concurrent_cas_increments_lose_no_acknowledged_write,
    readers_never_see_half_a_txn,
);

/// Increments `counter` by compare-and-swap until it commits; returns the value and revision.
fn increment(store: &dyn Store) -> (u64, u64) {
    for _attempt in 0..10_000 {
        let current = store.get("counter").unwrap();
        let (seen, mod_revision) = current.map_or((0, 0), |kv| {
            let value = String::from_utf8(kv.value).unwrap();
            (value.parse::<u64>().unwrap(), kv.mod_revision)
        });
        let txn = Txn::default()
            .when(Compare::ModRevision("counter".into(), mod_revision))
            .then(Op::Put(
                "counter".into(),
                (seen + 1).to_string().into_bytes(),
            ));
        match store.txn(txn).unwrap() {
            TxnOutcome::Committed { revision } => return (seen + 1, revision),
            TxnOutcome::Failed { .. } => {}
        }
    }
    panic!("no increment committed in 10000 attempts");
}

fn concurrent_cas_increments_lose_no_acknowledged_write(backend: &dyn Backend) {
    const THREADS: u64 = 8;
    const INCREMENTS: u64 = 100;
    let store = backend.open();
    let r = store.revision();
    let mut acked: Vec<(u64, u64)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let store = &*store;
                s.spawn(move || {
                    (0..INCREMENTS)
                        .map(|_| increment(store))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });

    let total = THREADS * INCREMENTS;
    acked.sort_unstable();
    let values: Vec<u64> = acked.iter().map(|(value, _)| *value).collect();
    assert_eq!(
        values,
        (1..=total).collect::<Vec<_>>(),
        "each value acknowledged once"
    );
    assert!(
        acked.windows(2).all(|w| w[0].1 < w[1].1),
        "higher values were committed at higher revisions"
    );
    let counter = store.get("counter").unwrap().unwrap();
    assert_eq!(counter.value, total.to_string().into_bytes());
    assert_eq!((counter.version, counter.mod_revision), (total, r + total));
    assert_eq!(
        store.revision(),
        r + total,
        "failed compares bumped nothing"
    );
}

/// Writers keep `left` and `right` equal, one txn per change; snapshots must never differ.
fn readers_never_see_half_a_txn(backend: &dyn Backend) {
    const WRITES: u64 = 60;
    let store = backend.open();
    let r = store.revision();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, done) = (&*store, &done);
                s.spawn(move || {
                    let mut snapshots = 0;
                    loop {
                        let (kvs, revision) = store.range("pair/").unwrap();
                        let values: Vec<_> = kvs.iter().map(|kv| kv.value.clone()).collect();
                        assert!(
                            values.is_empty() || (values.len() == 2 && values[0] == values[1]),
                            "torn snapshot at {revision}: {values:?}"
                        );
                        assert!(kvs.iter().all(|kv| kv.mod_revision <= revision));
                        snapshots += 1;
                        if done.load(Ordering::Acquire) || snapshots == 100_000 {
                            return snapshots;
                        }
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let store = &*store;
                s.spawn(move || {
                    for i in 0..WRITES / 2 {
                        let value = format!("{w}-{i}").into_bytes();
                        let txn = Txn::default()
                            .then(Op::Put("pair/left".into(), value.clone()))
                            .then(Op::Put("pair/right".into(), value));
                        committed(store.txn(txn));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::Release);
        for reader in readers {
            reader.join().unwrap();
        }
    });
    assert_eq!(store.revision(), r + WRITES);
}
