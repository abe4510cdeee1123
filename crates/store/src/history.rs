//! The ring of recent revisions' events, bounded by count and by bytes, that every backend
//! publishes to and watchers read.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::{Event, HistoryLimits, HistoryUsage, StoreError, Watcher};

/// The publishing side, owned by one store. Dropping it closes its watchers once they have read
/// what was published.
pub(crate) struct History {
    ring: Arc<Mutex<Ring>>,
    /// Carries the newest published revision; wakes watchers.
    head: watch::Sender<u64>,
}

struct Ring {
    limits: HistoryLimits,
    /// Revisions up to and including `floor` are gone; watching from `floor` on is served.
    floor: u64,
    /// `entries[i]` holds the events of revision `floor + 1 + i`: one entry per revision, empty for
    /// a revision whose ops changed nothing, so a revision is found by index.
    entries: VecDeque<Arc<[Event]>>,
    /// [`weight`] of everything in `entries`.
    bytes: usize,
}

impl Ring {
    fn head(&self) -> u64 {
        self.floor + self.entries.len() as u64
    }

    /// Evicts the oldest revisions until both limits hold. The newest revision stays even when it
    /// alone is over the byte budget, so a watcher that keeps up is never compacted by one big
    /// write; its size is bounded by what one transaction may hold.
    fn evict(&mut self) {
        while self.entries.len() > 1
            && (self.entries.len() > self.limits.revisions || self.bytes > self.limits.bytes)
        {
            if let Some(oldest) = self.entries.pop_front() {
                self.bytes -= weight(&oldest);
                self.floor += 1;
            }
        }
    }
}

/// What one revision's events cost in the history: key and value bytes plus the fixed size of
/// each event, so a revision of many tiny events is not free.
fn weight(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| e.kv.key.len() + e.kv.value.len() + std::mem::size_of::<Event>())
        .sum()
}

/// Nothing in a `Ring` is left half-updated by a panic, so a poisoned lock is safe to reuse.
fn lock(ring: &Mutex<Ring>) -> MutexGuard<'_, Ring> {
    ring.lock().unwrap_or_else(PoisonError::into_inner)
}

impl History {
    /// An empty history at `revision`, keeping what `limits` allow.
    pub(crate) fn new(limits: HistoryLimits, revision: u64) -> Self {
        let ring = Ring {
            limits,
            floor: revision,
            entries: VecDeque::new(),
            bytes: 0,
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
            ring.bytes = 0;
            ring.floor = revision - 1;
        }
        ring.bytes += weight(&events);
        ring.entries.push_back(events.into());
        ring.evict();
        drop(ring);
        self.head.send_replace(revision);
    }

    /// The newest published revision.
    pub(crate) fn revision(&self) -> u64 {
        *self.head.borrow()
    }

    pub(crate) fn usage(&self) -> HistoryUsage {
        let ring = lock(&self.ring);
        HistoryUsage {
            oldest: ring.floor,
            revisions: ring.entries.len(),
            bytes: ring.bytes,
        }
    }

    pub(crate) fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, StoreError> {
        self.watch_history(prefix, from_revision)
            .map(Watcher::local)
    }

    pub(crate) fn watch_history(
        &self,
        prefix: &str,
        from_revision: u64,
    ) -> Result<HistoryWatcher, StoreError> {
        let ring = lock(&self.ring);
        if from_revision < ring.floor {
            return Err(StoreError::Compacted {
                requested: from_revision,
                oldest: ring.floor,
            });
        }
        Ok(HistoryWatcher {
            ring: Arc::clone(&self.ring),
            head: self.head.subscribe(),
            prefix: prefix.to_owned(),
            cursor: from_revision,
            closed: false,
        })
    }
}

/// A [`crate::Watcher`] of a local store.
///
/// It reads the store's shared history by revision and buffers nothing of its own, so a watcher
/// that falls behind what the history keeps (by revisions or by bytes) gets
/// [`StoreError::Compacted`].
pub(crate) struct HistoryWatcher {
    ring: Arc<Mutex<Ring>>,
    head: watch::Receiver<u64>,
    prefix: String,
    /// The last revision delivered or skipped.
    cursor: u64,
    /// The store is gone; return what is left in the ring, then `None`.
    closed: bool,
}

impl HistoryWatcher {
    /// [`Watcher::next`]; a watcher that fell behind the bounded history gets Err(Compacted).
    pub(crate) async fn next(&mut self) -> Option<Result<(u64, Vec<Event>), StoreError>> {
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

impl fmt::Debug for HistoryWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryWatcher")
            .field("prefix", &self.prefix)
            .field("cursor", &self.cursor)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
