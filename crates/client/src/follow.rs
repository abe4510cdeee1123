//! `MeshWatch`: a mesh's watch that outlives its stream, resuming on the next URL from the last
//! revision it received whole, so a lost replica costs a reconnect, not a re-list.

use std::time::Duration;

use model::wire::Change;
use tokio::time::Instant;

use crate::{Client, WatchEvent, WatchStream};

/// Longest wait for a watch stream to open; past it the next URL is tried.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`MeshWatch::next`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Watched {
    /// A resource was created, updated (`put`) or deleted. A change may come twice after an
    /// interruption (its revision was cut off halfway); applying a put or a delete again
    /// changes nothing.
    Change(Change),
    /// The history this watch needs is gone: fetch a new snapshot and watch from its revision.
    Relist,
    /// The stream ended, failed or did not open (`error` says which, naming every URL tried);
    /// the next call reopens it on the next URL after `retry_in`.
    Interrupted { error: String, retry_in: Duration },
}

/// Follows `/v1/meshes/{mesh}/watch` across streams and replicas.
pub struct MeshWatch {
    client: Client,
    mesh: String,
    stream: Option<WatchStream>,
    /// The index of the URL the open stream came from, to move off it when the stream ends.
    opened_on: usize,
    /// Every change up to this revision has been received.
    complete: u64,
    /// The newest change's revision; its other changes may still be on the way.
    newest: u64,
    reopen_at: Option<Instant>,
    backoff: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl MeshWatch {
    /// Waits between reopening attempts, growing from `min` to `max` while none opens; the
    /// defaults are 50 ms and 1 s.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> MeshWatch {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self.backoff = min;
        self
    }

    /// The revision a reopened stream resumes after.
    pub fn resume_revision(&self) -> u64 {
        self.complete
    }

    /// The next change; never ends by itself (call it in a `select!` with shutdown). Cancel-safe:
    /// dropping the future loses nothing.
    pub async fn next(&mut self) -> Watched {
        if self.stream.is_none() {
            if let Some(at) = self.reopen_at {
                tokio::time::sleep_until(at).await;
            }
            let opened =
                tokio::time::timeout(OPEN_TIMEOUT, self.client.watch(&self.mesh, self.complete))
                    .await;
            match opened {
                Ok(Ok(stream)) => {
                    self.opened_on = self.client.current_index();
                    self.stream = Some(stream);
                    self.reopen_at = None;
                    self.backoff = self.backoff_min;
                }
                Ok(Err(error)) => return self.interrupted(format!("cannot watch: {error}"), true),
                Err(_) => {
                    let error = format!("the watch did not open within {OPEN_TIMEOUT:?}");
                    return self.interrupted(error, true);
                }
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            unreachable!("opened just above")
        };
        match stream.next().await {
            Ok(Some(WatchEvent::Change(change))) => {
                if change.revision > self.newest {
                    self.complete = self.newest;
                    self.newest = change.revision;
                }
                Watched::Change(change)
            }
            Ok(Some(WatchEvent::Relist(_))) => {
                self.stream = None;
                Watched::Relist
            }
            Ok(None) => {
                // The server ends a stream only between revisions.
                self.complete = self.newest;
                self.interrupted("the watch stream ended".into(), false)
            }
            Err(error) => self.interrupted(format!("the watch stream failed: {error}"), false),
        }
    }

    /// Drops the stream, leaves its URL, and schedules the next attempt.
    fn interrupted(&mut self, error: String, failed_to_open: bool) -> Watched {
        if self.stream.take().is_some() {
            self.client.leave(self.opened_on);
        }
        let retry_in = jitter(self.backoff);
        if failed_to_open {
            self.backoff = (self.backoff * 2).min(self.backoff_max);
        }
        self.reopen_at = Some(Instant::now() + retry_in);
        Watched::Interrupted { error, retry_in }
    }
}

impl Client {
    /// A watch of `mesh` from `from_revision` (a snapshot's), reopened on the next URL whenever
    /// its stream ends; see [`MeshWatch`]. Opens lazily, on the first `next`.
    pub fn follow(&self, mesh: &str, from_revision: u64) -> MeshWatch {
        let backoff_min = Duration::from_millis(50);
        MeshWatch {
            client: self.clone(),
            mesh: mesh.to_string(),
            stream: None,
            opened_on: 0,
            complete: from_revision,
            newest: from_revision,
            reopen_at: None,
            backoff: backoff_min,
            backoff_min,
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// `base` ± 25%, so many watchers do not reconnect in lockstep.
fn jitter(base: Duration) -> Duration {
    base.mul_f64(0.75 + fastrand::f64() * 0.5)
}
