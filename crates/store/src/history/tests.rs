//! Unit tests of the ring's bookkeeping: eviction, gaps, and where a watcher may start.

use super::{History, weight};
use crate::{Event, EventKind, HistoryLimits, KeyValue, StoreError};

fn revisions(revisions: usize) -> HistoryLimits {
    HistoryLimits {
        revisions,
        ..HistoryLimits::default()
    }
}

fn bytes(bytes: usize) -> HistoryLimits {
    HistoryLimits {
        bytes,
        ..HistoryLimits::default()
    }
}

fn put(key: &str, revision: u64) -> Vec<Event> {
    put_sized(key, revision, 1)
}

fn put_sized(key: &str, revision: u64, value_len: usize) -> Vec<Event> {
    vec![Event {
        kind: EventKind::Put,
        kv: KeyValue {
            key: key.to_owned(),
            value: vec![b'v'; value_len],
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        },
    }]
}

fn oldest_watchable(history: &History) -> u64 {
    match history.watch("", 0) {
        Ok(_) => 0,
        Err(StoreError::Compacted { oldest, .. }) => oldest,
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn keeps_only_the_last_cap_revisions() {
    let history = History::new(revisions(3), 0);
    for revision in 1..=5 {
        history.publish(revision, put("k", revision));
    }
    assert_eq!(history.revision(), 5);
    assert_eq!(oldest_watchable(&history), 2);
    assert!(history.watch("", 2).is_ok());
}

#[test]
fn a_gap_in_revisions_restarts_the_history() {
    let history = History::new(revisions(10), 0);
    history.publish(1, put("a", 1));
    history.publish(4, put("b", 4));
    assert_eq!(history.revision(), 4);
    assert_eq!(oldest_watchable(&history), 3);
}

#[test]
fn zero_capacity_still_serves_a_watcher_that_keeps_up() {
    let history = History::new(revisions(0), 7);
    let mut watcher = history.watch_history("", 7).expect("watch at head");
    history.publish(8, put("k", 8));
    let (revision, events) = watcher.poll().expect("not compacted").expect("one batch");
    assert_eq!((revision, events.len()), (8, 1));
}

#[test]
fn keeps_only_what_fits_in_the_byte_budget() {
    let one = weight(&put_sized("k", 1, 1000));
    let history = History::new(bytes(3 * one), 0);
    for revision in 1..=10 {
        history.publish(revision, put_sized("k", revision, 1000));
        let usage = history.usage();
        assert!(
            usage.bytes <= 3 * one,
            "{usage:?} after revision {revision}"
        );
    }
    let usage = history.usage();
    assert_eq!(
        (usage.oldest, usage.revisions, usage.bytes),
        (7, 3, 3 * one)
    );
    assert_eq!(oldest_watchable(&history), 7);
}

#[test]
fn empty_revisions_cost_nothing_but_still_count_as_revisions() {
    let history = History::new(
        HistoryLimits {
            revisions: 4,
            bytes: 1,
        },
        0,
    );
    for revision in 1..=6 {
        history.publish(revision, Vec::new());
    }
    let usage = history.usage();
    assert_eq!((usage.oldest, usage.revisions, usage.bytes), (2, 4, 0));
}

#[test]
fn the_newest_revision_stays_even_when_it_alone_is_over_the_budget() {
    let history = History::new(bytes(100), 0);
    history.publish(1, put_sized("small", 1, 10));
    let mut watcher = history.watch_history("", 1).expect("watch at head");
    history.publish(2, put_sized("big", 2, 500));
    let usage = history.usage();
    assert_eq!((usage.oldest, usage.revisions), (1, 1), "{usage:?}");
    let (revision, events) = watcher.poll().expect("not compacted").expect("one batch");
    assert_eq!((revision, events[0].kv.value.len()), (2, 500));
}

#[test]
fn a_gap_forgets_the_bytes_of_what_it_dropped() {
    let history = History::new(bytes(10_000), 0);
    history.publish(1, put_sized("a", 1, 4000));
    history.publish(5, put_sized("b", 5, 10));
    assert_eq!(history.usage().bytes, weight(&put_sized("b", 5, 10)));
}
