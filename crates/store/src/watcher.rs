//! The one watcher type every backend hands out, over a local history or an etcd watch.

use std::fmt;

use crate::history::HistoryWatcher;
use crate::{Event, StoreError};

/// A stream of a store's events under one prefix, from [`crate::Store::watch`].
pub struct Watcher {
    source: Source,
}

enum Source {
    History(HistoryWatcher),
    #[cfg(feature = "etcd")]
    Etcd(crate::etcd::EtcdWatcher),
}

impl Watcher {
    pub(crate) fn local(watcher: HistoryWatcher) -> Self {
        Watcher {
            source: Source::History(watcher),
        }
    }

    #[cfg(feature = "etcd")]
    pub(crate) fn etcd(watcher: crate::etcd::EtcdWatcher) -> Self {
        Watcher {
            source: Source::Etcd(watcher),
        }
    }

    /// next batch of events (all events of one revision, filtered to the prefix; revisions with
    /// no matching events are skipped). Err(Compacted) if the watcher fell behind the history
    /// (the local stores' bounded one, or etcd's compaction): caller must re-list. Returns None
    /// only when the store was dropped/closed.
    ///
    /// Cancel-safe: dropping the future before it completes loses no events. After a
    /// `Compacted` error every later call returns it again.
    pub async fn next(&mut self) -> Option<Result<(u64, Vec<Event>), StoreError>> {
        match &mut self.source {
            Source::History(watcher) => watcher.next().await,
            #[cfg(feature = "etcd")]
            Source::Etcd(watcher) => watcher.next().await,
        }
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::History(watcher) => watcher.fmt(f),
            #[cfg(feature = "etcd")]
            Source::Etcd(watcher) => watcher.fmt(f),
        }
    }
}
