//! The bounded ring of recent revisions' events that every backend publishes to and watchers read.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::{Event, StoreError};

/// The publishing side, owned by one store. Dropping it closes its watchers once they have read
/// what was published.
pub(crate) struct History {
    ring: Arc<Mutex<Ring>>,
    /// Carries the newest published revision; wakes watchers.
    head: watch::Sender<u64>,
}

struct Ring {
    cap: usize,
    /// Revisions up to and including `floor` are gone; watching from `floor` on is served.
    floor: u64,
    /// `entries[i]` holds the events of revision `floor + 1 + i`: one entry per revision, empty for
    /// a revision whose ops changed nothing, so a revision is found by index.
    entries: VecDeque<Arc<[Event]>>,
}

impl Ring {
    fn head(&self) -> u64 {
        self.floor + self.entries.len() as u64
    }
}

/// Nothing in a `Ring` is left half-updated by a panic, so a poisoned lock is safe to reuse.
fn lock(ring: &Mutex<Ring>) -> MutexGuard<'_, Ring> {
    ring.lock().unwrap_or_else(PoisonError::into_inner)
}

impl History {
    /// An empty history at `revision`, keeping the events of the last `cap` revisions (at least 1).
    pub(crate) fn new(cap: usize, revision: u64) -> Self {
        let ring = Ring {
            cap: cap.max(1),
            floor: revision,
            entries: VecDeque::new(),
        };
        History {
            ring: Arc::new(Mutex::new(ring)),
            head: watch::Sender::new(revision),
        }
    }

    /// Records the events of a committed revision. Callers publish in revision order.
    pub(crate) fn publish(&self, revision: u64, events: Vec<Event>) {
        let mut ring = lock(&self.ring);
        debug_assert!(revision > ring.head(), "revisions are published in order");
        if revision != ring.head() + 1 {
            // A commit whose outcome the backend could not see (an error from commit that still
            // reached the disk) left a gap: watchers behind it must re-list.
            ring.entries.clear();
            ring.floor = revision - 1;
        }
        ring.entries.push_back(events.into());
        while ring.entries.len() > ring.cap {
            ring.entries.pop_front();
            ring.floor += 1;
        }
        drop(ring);
        self.head.send_replace(revision);
    }

    /// The newest published revision.
    pub(crate) fn revision(&self) -> u64 {
        *self.head.borrow()
    }

    pub(crate) fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, StoreError> {
        let ring = lock(&self.ring);
        if from_revision < ring.floor {
            return Err(StoreError::Compacted {
                requested: from_revision,
                oldest: ring.floor,
            });
        }
        Ok(Watcher {
            ring: Arc::clone(&self.ring),
            head: self.head.subscribe(),
            prefix: prefix.to_owned(),
            cursor: from_revision,
            closed: false,
        })
    }
}

/// A stream of a store's events under one prefix, from [`crate::Store::watch`].
///
/// It reads the store's shared history by revision and buffers nothing of its own, so a watcher
/// that falls more than the history's length behind gets [`StoreError::Compacted`].
pub struct Watcher {
    ring: Arc<Mutex<Ring>>,
    head: watch::Receiver<u64>,
    prefix: String,
    /// The last revision delivered or skipped.
    cursor: u64,
    /// The store is gone; return what is left in the ring, then `None`.
    closed: bool,
}

impl Watcher {
    /// next batch of events (all events of one revision, filtered to the prefix; revisions with
    /// no matching events are skipped). Err(Compacted) if the watcher fell behind the bounded
    /// history: caller must re-list. Returns None only when the store was dropped/closed.
    ///
    /// Cancel-safe: dropping the future before it completes loses no events. After a
    /// `Compacted` error every later call returns it again.
    pub async fn next(&mut self) -> Option<Result<(u64, Vec<Event>), StoreError>> {
        loop {
            // Mark the current head seen before reading the ring, so a publish racing with the
            // read below still wakes `changed`.
            self.head.borrow_and_update();
            match self.poll() {
                Ok(None) => {}
                found => return found.transpose(),
            }
            if self.closed {
                return None;
            }
            if self.head.changed().await.is_err() {
                // Read the ring once more: the last publish may have landed after the poll.
                self.closed = true;
            }
        }
    }

    /// The next revision after the cursor with events under the prefix, if one is published.
    fn poll(&mut self) -> Result<Option<(u64, Vec<Event>)>, StoreError> {
        let (revision, events) = {
            let ring = lock(&self.ring);
            if self.cursor < ring.floor {
                return Err(StoreError::Compacted {
                    requested: self.cursor,
                    oldest: ring.floor,
                });
            }
            let mut found = None;
            while self.cursor < ring.head() {
                self.cursor += 1;
                let events = &ring.entries[(self.cursor - ring.floor - 1) as usize];
                if events.iter().any(|e| e.kv.key.starts_with(&self.prefix)) {
                    found = Some((self.cursor, Arc::clone(events)));
                    break;
                }
            }
            match found {
                Some(found) => found,
                None => return Ok(None),
            }
        };
        // Copy values outside the lock; writers wait on it.
        let events = events
            .iter()
            .filter(|e| e.kv.key.starts_with(&self.prefix))
            .cloned()
            .collect();
        Ok(Some((revision, events)))
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("prefix", &self.prefix)
            .field("cursor", &self.cursor)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
