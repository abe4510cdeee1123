//! An etcd watch as a [`crate::Watcher`]: batches per revision, resumed across broken streams;
//! and the store's own watch that keeps its revision current.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::task::TaskTracker;

use super::{MAX_RESPONSE, Shared, bounded, key_value, strip};
use crate::{Event, EventKind, KeyValue, StoreError};

/// Batches a watch task may get ahead of its reader.
const BUFFER: usize = 64;
/// First and longest wait between attempts to reopen a broken watch.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MOST: Duration = Duration::from_secs(1);

type Batch = (u64, Vec<Event>);

/// The reading end of one watch task, which owns the etcd stream and resumes it.
pub(crate) struct EtcdWatcher {
    batches: mpsc::Receiver<Result<Batch, StoreError>>,
    /// Set by the first `Compacted`, which every later `next` repeats.
    compacted: Option<(u64, u64)>,
    key: String,
}

/// Where a watch task is: the etcd keys it watches and the last revision it delivered.
struct Task {
    shared: Shared,
    /// The full etcd prefix watched, store prefix included.
    key: String,
    /// The store's prefix, stripped from every key delivered.
    prefix: String,
    cursor: u64,
    batches: mpsc::Sender<Result<Batch, StoreError>>,
}

impl EtcdWatcher {
    /// Opens the etcd watch (so an unreachable cluster is reported now) and hands it to a task
    /// that `tasks` tracks.
    pub(crate) async fn start(
        shared: Shared,
        tasks: TaskTracker,
        key: String,
        prefix: String,
        from_revision: u64,
    ) -> Result<Self, StoreError> {
        let timeout = shared.timeout;
        let stream = match bounded(timeout, || open(&shared, &key, from_revision)).await {
            Ok(stream) => stream,
            Err(failed) => return Err(failed.into_error(&shared.endpoints, timeout)),
        };
        let (tx, rx) = mpsc::channel(BUFFER);
        let task = Task {
            shared,
            key: key.clone(),
            prefix,
            cursor: from_revision,
            batches: tx,
        };
        tasks.spawn(task.run(stream));
        Ok(EtcdWatcher {
            batches: rx,
            compacted: None,
            key,
        })
    }

    /// See [`crate::Watcher::next`]; cancel-safe because `mpsc::Receiver::recv` is.
    pub(crate) async fn next(&mut self) -> Option<Result<Batch, StoreError>> {
        if let Some((requested, oldest)) = self.compacted {
            return Some(Err(StoreError::Compacted { requested, oldest }));
        }
        let next = self.batches.recv().await;
        if let Some(Err(StoreError::Compacted { requested, oldest })) = &next {
            self.compacted = Some((*requested, *oldest));
        }
        next
    }
}

impl fmt::Debug for EtcdWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdWatcher")
            .field("key", &self.key)
            .field("compacted", &self.compacted)
            .finish_non_exhaustive()
    }
}

/// A watch of every key under `key` from the revision after `cursor`.
async fn open(shared: &Shared, key: &str, cursor: u64) -> Result<WatchStream, etcd_client::Error> {
    let mut client = shared
        .client
        .watch_client()
        .max_decoding_message_size(MAX_RESPONSE);
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(cursor as i64 + 1);
    client.watch(key, Some(options)).await
}

/// What reading a stream came to.
enum Ended {
    /// The stream broke or etcd cancelled it: reopen from the cursor.
    Broken,
    /// The reader is gone, the store was dropped and the watcher drained, or the watch failed
    /// for good (its error delivered): stop.
    Done,
}

impl Task {
    async fn run(mut self, stream: WatchStream) {
        let mut stream = Some(stream);
        let mut retry = RETRY_FIRST;
        loop {
            let current = match stream.take() {
                Some(current) => current,
                None => match self.reopen().await {
                    Some(Ok(reopened)) => {
                        retry = RETRY_FIRST;
                        reopened
                    }
                    Some(Err(())) => {
                        // Unreachable or no quorum: keep trying, a little slower each time.
                        tokio::select! {
                            _ = self.shared.shutdown.cancelled() => return,
                            _ = self.batches.closed() => return,
                            _ = sleep(retry) => {}
                        }
                        retry = (retry * 2).min(RETRY_MOST);
                        continue;
                    }
                    None => return,
                },
            };
            match self.read(current).await {
                Ended::Broken => {}
                Ended::Done => return,
            }
        }
    }

    /// A new stream from the cursor on whichever member answers; `None` to stop.
    async fn reopen(&self) -> Option<Result<WatchStream, ()>> {
        let attempt = tokio::time::timeout(
            self.shared.timeout,
            open(&self.shared, &self.key, self.cursor),
        );
        tokio::select! {
            _ = self.shared.shutdown.cancelled() => None,
            _ = self.batches.closed() => None,
            opened = attempt => Some(match opened {
                Ok(Ok(stream)) => Ok(stream),
                _ => Err(()),
            }),
        }
    }

    /// Delivers what `stream` brings until it breaks or the watch is over. Once the store is
    /// dropped it keeps reading only until it has delivered the last revision the store saw.
    async fn read(&mut self, mut stream: WatchStream) -> Ended {
        let mut drain: Option<(u64, Instant)> = None;
        loop {
            let message = match drain {
                Some((target, deadline)) => {
                    if self.cursor >= target {
                        return Ended::Done;
                    }
                    tokio::select! {
                        _ = sleep_until(deadline) => return Ended::Done,
                        _ = self.batches.closed() => return Ended::Done,
                        message = stream.message() => message,
                    }
                }
                None => tokio::select! {
                    _ = self.shared.shutdown.cancelled() => {
                        let target = self.shared.seen.load(Ordering::Relaxed);
                        drain = Some((target, Instant::now() + self.shared.timeout));
                        continue;
                    }
                    _ = self.batches.closed() => return Ended::Done,
                    message = stream.message() => message,
                },
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) if drain.is_some() => return Ended::Done,
                Ok(None) | Err(_) => return Ended::Broken,
            };
            if response.canceled() {
                if response.compact_revision() > 0 {
                    let compacted = StoreError::Compacted {
                        requested: self.cursor,
                        oldest: response.compact_revision() as u64,
                    };
                    let _ = self.batches.send(Err(compacted)).await;
                    return Ended::Done;
                }
                // Cancelled for another reason (the member lost its leader): resume elsewhere.
                return if drain.is_some() {
                    Ended::Done
                } else {
                    Ended::Broken
                };
            }
            match batches(&self.prefix, self.cursor, response.events()) {
                Ok(found) => {
                    for (revision, events) in found {
                        self.cursor = revision;
                        if self.batches.send(Ok((revision, events))).await.is_err() {
                            return Ended::Done;
                        }
                    }
                }
                Err(corrupt) => {
                    let _ = self.batches.send(Err(corrupt)).await;
                    return Ended::Done;
                }
            }
        }
    }
}

/// One response's events as batches per revision, in order, without those at or before
/// `cursor` (already delivered before a resume). etcd never splits one revision's events over
/// two responses (it cuts batches at revision boundaries, and we do not ask for fragments).
fn batches(
    prefix: &str,
    cursor: u64,
    events: &[etcd_client::Event],
) -> Result<Vec<Batch>, StoreError> {
    let mut found: Vec<Batch> = Vec::new();
    for event in events {
        let Some(kv) = event.kv() else { continue };
        let revision = kv.mod_revision().max(0) as u64;
        if revision <= cursor {
            continue;
        }
        let event = match event.event_type() {
            EventType::Put => Event {
                kind: EventKind::Put,
                kv: key_value(prefix, kv)?,
            },
            EventType::Delete => Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: strip(prefix, kv.key())?,
                    value: Vec::new(),
                    create_revision: 0,
                    mod_revision: revision,
                    version: 0,
                },
            },
        };
        match found.last_mut() {
            Some((last, events)) if *last == revision => events.push(event),
            _ => found.push((revision, vec![event])),
        }
    }
    Ok(found)
}

/// Keeps `shared.seen` at the newest revision etcd reports for a watch of everything under the
/// store's `prefix` (every response's header carries the cluster's revision), so
/// [`crate::Store::revision`] sees other replicas' writes without asking; reopened from `seen`
/// whenever the stream breaks, until the store is dropped.
pub(crate) async fn follow_revision(shared: Shared, prefix: String) {
    let mut retry = RETRY_FIRST;
    loop {
        let cursor = shared.seen.load(Ordering::Relaxed);
        let opened = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            opened = tokio::time::timeout(shared.timeout, open(&shared, &prefix, cursor)) => opened,
        };
        if let Ok(Ok(mut stream)) = opened {
            retry = RETRY_FIRST;
            loop {
                let message = tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    message = stream.message() => message,
                };
                let Ok(Some(response)) = message else { break };
                if let Some(header) = response.header() {
                    shared
                        .seen
                        .fetch_max(header.revision().max(0) as u64, Ordering::Relaxed);
                }
                // Compacted (the header moved `seen` past it) or the member lost its leader.
                if response.canceled() {
                    break;
                }
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MOST);
    }
}
