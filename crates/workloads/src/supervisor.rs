//! The reconcile loop: follow the mesh's snapshot and watch stream, and keep one running
//! `Replica` per wanted (workload, replica index), replacing those whose spec changed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::Watched;
use model::wire::Workload;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::desired::Desired;
use crate::process::Ports;
use crate::replica::{Context, Replica};
use crate::{ReplicaState, ReplicaStatus, SupervisorConfig, WorkloadsError, lock, logs};

/// Longest wait for a snapshot or for a watch stream to open.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// Retry delays while the control plane is unreachable (or the mesh does not exist yet).
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// A running local supervisor. Dropping it without [`Supervisor::shutdown`] still stops every
/// replica, but without waiting for them.
pub struct Supervisor {
    registry: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Every replica the supervisor owns.
#[derive(Default)]
struct Registry {
    /// The wanted replicas, by (workload, index).
    slots: BTreeMap<(String, u32), Slot>,
    /// Replicas being stopped: no longer wanted, or replaced by a new spec.
    retiring: Vec<Slot>,
}

struct Slot {
    workload: Arc<Workload>,
    index: u32,
    status: Arc<Mutex<ReplicaStatus>>,
    cancel: CancellationToken,
    /// Cancelled when the replica's task has ended, however it ended.
    finished: CancellationToken,
}

impl Supervisor {
    /// Starts supervising `config.mesh`; must be called within a tokio runtime. Fails only when
    /// the log directory cannot be created, the CA file cannot be used, or the health-check client
    /// cannot be built.
    pub fn start(config: SupervisorConfig) -> Result<Supervisor, WorkloadsError> {
        let dir = logs::log_dir(&config.data_dir, &config.mesh);
        std::fs::create_dir_all(&dir).map_err(|source| WorkloadsError::LogDir { dir, source })?;
        let options = client::ClientOptions {
            ca: config.ca.clone(),
        };
        // First: it installs the TLS crypto provider that every reqwest client needs here.
        let control = client::Client::with_options(&config.control, &options)
            .map_err(WorkloadsError::Control)?;
        let probes = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WorkloadsError::HttpClient(e.to_string()))?;
        let (desired_tx, desired_rx) = watch::channel(Arc::new(Desired::default()));
        let ctx = Arc::new(Context {
            control: control.with_token(config.token.clone()),
            config,
            probes,
            desired: desired_rx,
            ports: Arc::new(Ports::default()),
        });
        let registry = Arc::new(Mutex::new(Registry::default()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(supervise(
            ctx,
            registry.clone(),
            desired_tx,
            shutdown.clone(),
        ));
        Ok(Supervisor {
            registry,
            shutdown,
            task: Some(task),
        })
    }

    /// Every replica the supervisor owns, wanted or being stopped, by workload and replica.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        let registry = lock(&self.registry);
        let mut all: Vec<ReplicaStatus> = registry
            .slots
            .values()
            .chain(&registry.retiring)
            .filter(|slot| !slot.finished.is_cancelled())
            .map(|slot| lock(&slot.status).clone())
            .collect();
        all.sort_by(|a, b| (&a.workload, a.replica).cmp(&(&b.workload, b.replica)));
        all
    }

    /// Stops every replica (deregistered first, then SIGTERM, SIGKILL after the grace period)
    /// and returns when none is left.
    pub async fn shutdown(mut self) -> Result<(), WorkloadsError> {
        self.shutdown.cancel();
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(()) => Ok(()),
            Err(error) => {
                stop_all(&self.registry).await;
                Err(WorkloadsError::Task(error.to_string()))
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn supervise(
    ctx: Arc<Context>,
    registry: Arc<Mutex<Registry>>,
    desired: watch::Sender<Arc<Desired>>,
    shutdown: CancellationToken,
) {
    let follower = Follower {
        ctx: &ctx,
        registry: &registry,
        desired: &desired,
        shutdown: &shutdown,
    };
    follower.run().await;
    stop_all(&registry).await;
}

/// Cancels every replica and waits until each has stopped its process.
async fn stop_all(registry: &Mutex<Registry>) {
    let finished: Vec<CancellationToken> = {
        let registry = lock(registry);
        registry
            .slots
            .values()
            .chain(&registry.retiring)
            .map(|slot| {
                slot.cancel.cancel();
                slot.finished.clone()
            })
            .collect()
    };
    for finished in finished {
        finished.cancelled().await;
    }
    let mut registry = lock(registry);
    registry.slots.clear();
    registry.retiring.clear();
}

/// Why a watch stream was left.
enum StreamEnd {
    Shutdown,
    Resnapshot(String),
}

struct Follower<'a> {
    ctx: &'a Arc<Context>,
    registry: &'a Mutex<Registry>,
    desired: &'a watch::Sender<Arc<Desired>>,
    shutdown: &'a CancellationToken,
}

impl Follower<'_> {
    /// Snapshot, then watch from its revision; on a relist, a broken stream or an unreachable
    /// control plane, start over after a bounded, growing delay. Returns at shutdown.
    async fn run(&self) {
        let config = &self.ctx.config;
        let mut retry = RETRY_MIN;
        let mut last_problem = String::new();
        loop {
            let fetched = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                fetched = tokio::time::timeout(CONTROL_TIMEOUT, self.ctx.control.snapshot(&config.mesh)) => fetched,
            };
            let problem = match fetched.map(|answer| answer.map(|s| Desired::from_snapshot(&s))) {
                Ok(Ok(Ok(current))) => {
                    if !last_problem.is_empty() {
                        tracing::info!(mesh = %config.mesh, "following the control plane again");
                        last_problem.clear();
                    }
                    let opened_at = Instant::now();
                    self.publish(&current);
                    match self.follow(current).await {
                        StreamEnd::Shutdown => return,
                        StreamEnd::Resnapshot(why) => {
                            tracing::info!(mesh = %config.mesh, reason = %why, "fetching a new snapshot");
                        }
                    }
                    if opened_at.elapsed() >= RETRY_MAX {
                        retry = RETRY_MIN;
                    }
                    None
                }
                Ok(Ok(Err(bad))) => Some(format!("unusable snapshot: {bad}")),
                Ok(Err(error)) if error.is_not_found() => {
                    // Nothing can run in a mesh that does not exist (any more).
                    self.publish(&Desired::default());
                    Some(format!("mesh '{}' not found", config.mesh))
                }
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some(format!("no snapshot within {CONTROL_TIMEOUT:?}")),
            };
            if let Some(problem) = problem
                && problem != last_problem
            {
                tracing::warn!(mesh = %config.mesh, %problem, retry_in = ?retry, "cannot follow the control plane; replicas keep running");
                last_problem = problem;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    /// Applies watch events to `current` until a relist. A lost stream is reopened by the
    /// watch itself, on the next control-plane URL, from the last revision it received whole.
    async fn follow(&self, mut current: Desired) -> StreamEnd {
        let mesh = &self.ctx.config.mesh;
        let mut watch = self
            .ctx
            .control
            .follow(mesh, current.revision)
            .with_backoff(RETRY_MIN, RETRY_MAX);
        let mut last_problem = String::new();
        loop {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => return StreamEnd::Shutdown,
                next = watch.next() => next,
            };
            match next {
                Watched::Change(change) => {
                    last_problem.clear();
                    match current.apply(&change) {
                        Ok(true) => self.publish(&current),
                        Ok(false) => {}
                        Err(bad) => {
                            return StreamEnd::Resnapshot(format!("bad watch event: {bad}"));
                        }
                    }
                }
                Watched::Relist => {
                    return StreamEnd::Resnapshot("the control plane asked for a relist".into());
                }
                // Said once per problem: a control plane that stays down is not news every 2 s.
                Watched::Interrupted { error, retry_in } if error != last_problem => {
                    tracing::warn!(%mesh, %error, ?retry_in, resume_after = watch.resume_revision(), "watch lost; reconnecting, replicas keep running");
                    last_problem = error;
                }
                Watched::Interrupted { error, retry_in } => {
                    tracing::debug!(%mesh, %error, ?retry_in, "watch still lost");
                }
            }
        }
    }

    /// Makes `desired` what replicas see (health checks) and what runs.
    fn publish(&self, desired: &Desired) {
        self.desired.send_replace(Arc::new(desired.clone()));
        reconcile(self.ctx, self.registry, desired);
    }
}

/// Starts the wanted replicas that are not running, and retires the running ones that are no
/// longer wanted or whose spec changed. Never waits: retiring replicas stop on their own, and
/// a replacement waits for the replica it replaces.
fn reconcile(ctx: &Arc<Context>, registry: &Mutex<Registry>, desired: &Desired) {
    let mut registry = lock(registry);
    registry
        .retiring
        .retain(|slot| !slot.finished.is_cancelled());
    let unwanted: Vec<(String, u32)> = registry
        .slots
        .iter()
        .filter(|((name, index), slot)| {
            !desired.workloads.get(name).is_some_and(|wanted| {
                *index < wanted.replicas
                    && same_spec(&slot.workload, wanted)
                    && wanted.runs_on(ctx.config.host.as_deref())
            })
        })
        .map(|(key, _)| key.clone())
        .collect();
    for key in unwanted {
        if let Some(slot) = registry.slots.remove(&key) {
            tracing::info!(replica = %crate::replica_id(&key.0, key.1), "stopping replica");
            slot.cancel.cancel();
            registry.retiring.push(slot);
        }
    }
    for (name, workload) in &desired.workloads {
        let workload = Arc::new(workload.clone());
        if !workload.runs_on(ctx.config.host.as_deref()) {
            continue;
        }
        for index in 0..workload.replicas {
            let key = (name.clone(), index);
            if registry.slots.contains_key(&key) {
                continue;
            }
            let previous = registry
                .retiring
                .iter()
                .rev()
                .find(|slot| slot.workload.name == *name && slot.index == index)
                .map(|slot| slot.finished.clone());
            let slot = start(ctx, workload.clone(), index, previous);
            registry.slots.insert(key, slot);
        }
    }
}

/// Everything but the replica count: a change in any of these replaces the replicas.
fn same_spec(running: &Workload, wanted: &Workload) -> bool {
    running.virtual_node == wanted.virtual_node
        && running.command == wanted.command
        && running.env == wanted.env
}

fn start(
    ctx: &Arc<Context>,
    workload: Arc<Workload>,
    index: u32,
    previous: Option<CancellationToken>,
) -> Slot {
    let status = Arc::new(Mutex::new(ReplicaStatus {
        workload: workload.name.clone(),
        replica: index,
        virtual_node: workload.virtual_node.clone(),
        pid: None,
        port: None,
        state: ReplicaState::Starting,
        restarts: 0,
        registered: false,
        last_exit: None,
    }));
    let cancel = CancellationToken::new();
    let finished = CancellationToken::new();
    let replica = Replica::new(
        ctx.clone(),
        workload.clone(),
        index,
        status.clone(),
        cancel.clone(),
    );
    // Dropped when the task ends, even by a panic, so nobody waits for a replica that is gone.
    let done = finished.clone().drop_guard();
    tokio::spawn(async move {
        let _done = done;
        replica.run(previous).await;
    });
    Slot {
        workload,
        index,
        status,
        cancel,
        finished,
    }
}
