//! Configuration from the control plane: fetch a snapshot, follow the watch stream, install
//! each change as a new `RouteTable` in one atomic swap; a lost stream is reopened on the next
//! control-plane URL from the last revision received (`client::MeshWatch`), and only a relist
//! (or an event that cannot be applied) fetches a new snapshot; bounded backoff while no
//! replica answers; save every installed snapshot to the state directory, and start from it
//! when the control plane cannot be reached.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use client::{Client, Watched};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::snapshot::{Applied, Snapshot};
use crate::table::RouteTable;
use crate::telemetry::{
    ConfigApplied, ConfigSource, ControlUnreachable, SnapshotFetched, SnapshotNotSaved,
    WatchInterrupted,
};

/// How long the first snapshot may take before the proxy starts from its state directory.
pub const INITIAL_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Compiles `snapshot` and swaps it in; requests already running keep the table they loaded.
pub fn install(shared: &Shared, snapshot: Arc<Snapshot>, source: ConfigSource) {
    let started = Instant::now();
    let previous = shared.table.load_full();
    let table = RouteTable::compile(
        &shared.mesh,
        snapshot,
        source,
        &shared.role,
        Some(&previous),
        &shared.telemetry,
    );
    let event = ConfigApplied {
        revision: table.revision,
        source,
        virtual_services: table.service_count(),
        problems: table.problems.len(),
        elapsed: started.elapsed(),
    };
    shared.table.store(Arc::new(table));
    shared
        .applied_at
        .store(unix_micros(), std::sync::atomic::Ordering::Relaxed);
    shared.applied.send_replace(event.revision);
    event.emit(&shared.telemetry);
}

/// Wall-clock time, for `/config`'s `appliedAtUnixMicros`: benchmarks compare it with the time
/// the control plane acknowledged a change, across processes.
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Fetches one snapshot of the mesh, from whichever control-plane URL answers.
pub async fn fetch(client: &Client, shared: &Shared) -> Result<Snapshot, String> {
    let wire = client
        .snapshot(&shared.mesh)
        .await
        .map_err(|e| e.to_string())?;
    let snapshot = Snapshot::from_wire(wire)?;
    SnapshotFetched {
        revision: snapshot.revision,
        control: client.base_url(),
    }
    .emit(&shared.telemetry);
    Ok(snapshot)
}

/// The snapshot to start with: the control plane's if it answers in time, else the saved one.
pub async fn initial(
    client: &Client,
    shared: &Shared,
    state_dir: Option<&PathBuf>,
) -> Option<(Snapshot, ConfigSource)> {
    let error = match tokio::time::timeout(INITIAL_TIMEOUT, fetch(client, shared)).await {
        Ok(Ok(snapshot)) => return Some((snapshot, ConfigSource::Control)),
        Ok(Err(error)) => error,
        Err(_) => format!("no answer within {INITIAL_TIMEOUT:?}"),
    };
    ControlUnreachable {
        error: &error,
        retry_in: BACKOFF_MIN,
    }
    .emit(&shared.telemetry);
    let dir = state_dir?;
    match Snapshot::load(dir, &shared.mesh) {
        Ok(Some(snapshot)) => Some((snapshot, ConfigSource::StateDir)),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot load the saved snapshot");
            None
        }
    }
}

/// Saves the snapshot atomically, off the async threads.
pub async fn save(dir: PathBuf, mesh: String, snapshot: Arc<Snapshot>) {
    let result = tokio::task::spawn_blocking(move || {
        let outcome = snapshot.save(&dir, &mesh);
        (dir, outcome)
    })
    .await;
    if let Ok((dir, Err(error))) = result {
        SnapshotNotSaved {
            path: &dir,
            error: &error,
        }
        .emit();
    }
}

/// Writes the latest snapshot handed to it, skipping intermediate ones when writes lag; on
/// shutdown it writes what is pending, then ends.
pub async fn saver(
    dir: PathBuf,
    mesh: String,
    mut latest: watch::Receiver<Option<Arc<Snapshot>>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = shutdown.cancelled() => {
                if latest.has_changed().unwrap_or(false) {
                    let pending = latest.borrow_and_update().clone();
                    if let Some(snapshot) = pending {
                        save(dir.clone(), mesh.clone(), snapshot).await;
                    }
                }
                return;
            }
        }
        let pending = latest.borrow_and_update().clone();
        if let Some(snapshot) = pending {
            save(dir.clone(), mesh.clone(), snapshot).await;
        }
    }
}

/// Keeps the proxy's configuration current until shutdown.
pub struct Syncer {
    pub shared: Arc<Shared>,
    pub client: Client,
    /// Receives every installed snapshot for the state directory.
    pub saved: Option<watch::Sender<Option<Arc<Snapshot>>>>,
}

enum StreamEnd {
    /// Fetch a new snapshot (relist, or an event we cannot apply).
    Resnapshot(String),
    Shutdown,
}

impl Syncer {
    fn install(&self, snapshot: &Snapshot) {
        let snapshot = Arc::new(snapshot.clone());
        install(&self.shared, snapshot.clone(), ConfigSource::Control);
        if let Some(saved) = &self.saved {
            saved.send_replace(Some(snapshot));
        }
    }

    /// `current` is the control plane's snapshot already installed, if the proxy has one.
    pub async fn run(self, mut current: Option<Snapshot>, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let snapshot = match current.take() {
                Some(snapshot) => snapshot,
                None => {
                    let fetched = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        fetched = fetch(&self.client, &self.shared) => fetched,
                    };
                    match fetched {
                        Ok(snapshot) => {
                            if snapshot.revision != self.shared.table.load().revision
                                || self.shared.table.load().source != Some(ConfigSource::Control)
                            {
                                self.install(&snapshot);
                            }
                            snapshot
                        }
                        Err(error) => {
                            let retry_in = jitter(backoff);
                            ControlUnreachable {
                                error: &error,
                                retry_in,
                            }
                            .emit(&self.shared.telemetry);
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(retry_in) => {}
                            }
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            continue;
                        }
                    }
                }
            };
            backoff = BACKOFF_MIN;
            match self.follow(snapshot, &shutdown).await {
                StreamEnd::Shutdown => return,
                StreamEnd::Resnapshot(why) => {
                    tracing::info!(reason = %why, "fetching a new snapshot");
                }
            }
        }
    }

    /// Applies watch events to `snapshot` until a relist. Events already received are applied
    /// together, so a change that spans several resources of one revision is installed whole.
    /// A lost stream is counted and reopened by the watch itself, from its last whole revision.
    async fn follow(&self, mut snapshot: Snapshot, shutdown: &CancellationToken) -> StreamEnd {
        let mut watch = self
            .client
            .follow(&self.shared.mesh, snapshot.revision)
            .with_backoff(BACKOFF_MIN, BACKOFF_MAX);
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return StreamEnd::Shutdown,
                next = watch.next() => next,
            };
            let mut changed = false;
            let mut next = Some(next);
            while let Some(event) = next.take() {
                match event {
                    Watched::Change(change) => match snapshot.apply(&change) {
                        Ok(Applied::Changed) => changed = true,
                        Ok(Applied::Ignored) => {}
                        Err(error) => {
                            return StreamEnd::Resnapshot(format!("bad watch event: {error}"));
                        }
                    },
                    Watched::Relist => {
                        return StreamEnd::Resnapshot(
                            "the control plane asked for a relist".into(),
                        );
                    }
                    Watched::Interrupted { error, retry_in } => {
                        WatchInterrupted {
                            error: &error,
                            resume_after: watch.resume_revision(),
                            retry_in,
                        }
                        .emit(&self.shared.telemetry);
                        break;
                    }
                }
                // Anything already buffered belongs with this change; zero timeout polls once.
                next = tokio::time::timeout(Duration::ZERO, watch.next())
                    .await
                    .ok();
            }
            // Installed even when the stream broke right after: a cut-off revision is received
            // again in full from the next stream, and applying it twice changes nothing.
            if changed {
                self.install(&snapshot);
            }
        }
    }
}

/// `base` ± 25%, so many proxies do not retry in lockstep.
fn jitter(base: Duration) -> Duration {
    base.mul_f64(0.75 + fastrand::f64() * 0.5)
}
