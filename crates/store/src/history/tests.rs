//! Unit tests of the ring's bookkeeping: eviction, gaps, and where a watcher may start.

use super::History;
use crate::{Event, EventKind, KeyValue, StoreError};

fn put(key: &str, revision: u64) -> Vec<Event> {
    vec![Event {
        kind: EventKind::Put,
        kv: KeyValue {
            key: key.to_owned(),
            value: b"v".to_vec(),
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
    let history = History::new(3, 0);
    for revision in 1..=5 {
        history.publish(revision, put("k", revision));
    }
    assert_eq!(history.revision(), 5);
    assert_eq!(oldest_watchable(&history), 2);
    assert!(history.watch("", 2).is_ok());
}

#[test]
fn a_gap_in_revisions_restarts_the_history() {
    let history = History::new(10, 0);
    history.publish(1, put("a", 1));
    history.publish(4, put("b", 4));
    assert_eq!(history.revision(), 4);
    assert_eq!(oldest_watchable(&history), 3);
}

#[test]
fn zero_capacity_still_serves_a_watcher_that_keeps_up() {
    let history = History::new(0, 7);
    let mut watcher = history.watch("", 7).expect("watch at head");
    history.publish(8, put("k", 8));
    let (revision, events) = watcher.poll().expect("not compacted").expect("one batch");
    assert_eq!((revision, events.len()), (8, 1));
}
