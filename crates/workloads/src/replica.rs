//! One replica's life: start the process, check its health, keep its endpoint registered while
//! it is healthy, restart it with backoff when it exits, and stop it when told.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::wire::Workload;
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::process::Child;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, STABLE_AFTER};
use crate::desired::Desired;
use crate::health::{Health, Policy, Tracker};
use crate::process::{self, Ports};
use crate::{ReplicaState, ReplicaStatus, SupervisorConfig, lock, logs};

/// Longest wait for one call to the control plane: a hung control plane must not hang a replica.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// What every replica shares.
pub struct Context {
    pub config: SupervisorConfig,
    pub control: client::Client,
    /// For HTTP health checks: no proxy (the supervisor's own `HTTP_PROXY` must not apply), no
    /// redirects.
    pub probes: reqwest::Client,
    pub desired: watch::Receiver<Arc<Desired>>,
    pub ports: Arc<Ports>,
}

/// How one run of the process ended.
enum Outcome {
    /// Told to stop; the process is stopped.
    Cancelled,
    /// The process exited (or could not start); `stable` when it had been healthy long enough
    /// to reset the backoff; `was_healthy` when it passed its health check at all.
    Ended {
        why: String,
        stable: bool,
        was_healthy: bool,
    },
}

/// What woke the supervision loop.
enum Wake {
    Cancel,
    Exit(std::io::Result<std::process::ExitStatus>),
    Tick,
}

pub struct Replica {
    ctx: Arc<Context>,
    workload: Arc<Workload>,
    id: String,
    log: PathBuf,
    status: Arc<Mutex<ReplicaStatus>>,
    cancel: CancellationToken,
    /// Whether the control plane may hold this replica's endpoint: `true` until a delete is
    /// confirmed, so that a failed one is tried again. (`status.registered` is the confirmed
    /// state.)
    registered: bool,
}

impl Replica {
    pub fn new(
        ctx: Arc<Context>,
        workload: Arc<Workload>,
        index: u32,
        status: Arc<Mutex<ReplicaStatus>>,
        cancel: CancellationToken,
    ) -> Replica {
        let id = ctx.config.endpoint_id(&workload.name, index);
        let log = logs::log_path(
            &ctx.config.data_dir,
            &ctx.config.mesh,
            &workload.name,
            index,
        );
        Replica {
            ctx,
            workload,
            id,
            log,
            status,
            cancel,
            registered: false,
        }
    }

    /// Runs until cancelled, then leaves no process and no endpoint behind. `previous` is the
    /// replica this one replaces under the same id: it must be gone first, or its
    /// deregistration could remove this one's endpoint.
    pub async fn run(mut self, previous: Option<CancellationToken>) {
        if let Some(previous) = previous {
            previous.cancelled().await;
        }
        if !self.cancel.is_cancelled() {
            // A supervisor that died without stopping may have left this id registered.
            self.registered = true;
            self.sync_registration(false, 0).await;
            self.supervise().await;
        }
        // Only does something if an earlier deregistration failed.
        self.sync_registration(false, 0).await;
        self.update(|status| {
            status.state = ReplicaState::Stopped;
            status.pid = None;
            status.port = None;
        });
    }

    async fn supervise(&mut self) {
        let mut backoff = Backoff::default();
        loop {
            let (why, stable) = match self.run_once().await {
                Outcome::Cancelled => return,
                Outcome::Ended {
                    why,
                    stable,
                    was_healthy,
                } => {
                    if !was_healthy {
                        self.report_failure(&why).await;
                    }
                    (why, stable)
                }
            };
            if stable {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            tracing::warn!(replica = %self.id, %why, retry_in = ?delay, "replica ended; restarting");
            process::note(
                &self.log,
                &format!("{} ended ({why}); restarting in {delay:?}", self.id),
            );
            self.update(|status| {
                status.state = ReplicaState::Backoff;
                status.pid = None;
                status.port = None;
                status.last_exit = Some(why);
            });
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            self.update(|status| status.restarts += 1);
        }
    }

    /// Starts the process once and supervises it until it exits or the replica is cancelled.
    async fn run_once(&mut self) -> Outcome {
        let lease = match self.ctx.ports.lease() {
            Ok(lease) => lease,
            Err(error) => return ended(format!("no free port: {error}")),
        };
        let port = lease.port();
        let config = &self.ctx.config;
        let outbound = match &config.network {
            Some(network) => match network.outbound(&self.workload.virtual_node).await {
                Ok(url) => Some(url),
                Err(error) => return ended(format!("no outbound proxy for it: {error}")),
            },
            None => config.http_proxy.clone(),
        };
        let env = process::child_env(
            &self.workload.env,
            port,
            outbound.as_deref(),
            &config.extra_path,
            std::env::var_os("PATH"),
        );
        let argv = self.workload.command.join(" ");
        let mut child = match process::spawn(&self.workload.command, env, &self.log) {
            Ok(child) => child,
            Err(error) => {
                return ended(format!(
                    "cannot start '{}': {error}",
                    self.workload.command[0]
                ));
            }
        };
        let Some(pid) = child.id() else {
            return ended("the process ended before its pid was read".into());
        };
        process::note(
            &self.log,
            &format!("{} started: pid {pid}, PORT={port}: {argv}", self.id),
        );
        tracing::info!(replica = %self.id, pid, port, "replica started");
        self.update(|status| {
            status.state = ReplicaState::Starting;
            status.pid = Some(pid);
            status.port = Some(port);
        });

        let mut tracker = Tracker::default();
        let mut healthy_since: Option<Instant> = None;
        let mut was_healthy = false;
        let mut stable = false;
        loop {
            let policy = self.policy();
            let wake = tokio::select! {
                _ = self.cancel.cancelled() => Wake::Cancel,
                exit = child.wait() => Wake::Exit(exit),
                _ = tokio::time::sleep(policy.interval) => Wake::Tick,
            };
            match wake {
                Wake::Tick => {}
                Wake::Cancel => {
                    self.stop(&mut child, pid).await;
                    return Outcome::Cancelled;
                }
                Wake::Exit(exit) => {
                    let why = match exit {
                        Ok(status) => status.to_string(),
                        Err(error) => format!("cannot wait for it: {error}"),
                    };
                    // Whatever it spawned into its group goes with it.
                    process::signal_group(pid, Signal::SIGKILL);
                    self.sync_registration(false, port).await;
                    let stable =
                        stable || healthy_since.is_some_and(|t| t.elapsed() >= STABLE_AFTER);
                    return Outcome::Ended {
                        why,
                        stable,
                        was_healthy,
                    };
                }
            }
            let checked = tokio::select! {
                _ = self.cancel.cancelled() => None,
                checked = policy.check(&self.ctx.probes, port) => Some(checked),
            };
            let Some(checked) = checked else {
                self.stop(&mut child, pid).await;
                return Outcome::Cancelled;
            };
            if let Err(reason) = &checked {
                tracing::debug!(replica = %self.id, %reason, "health check failed");
            }
            match tracker.record(checked.is_ok(), &policy) {
                Some(Health::Healthy) => {
                    tracing::info!(replica = %self.id, port, "replica healthy");
                    healthy_since = Some(Instant::now());
                    was_healthy = true;
                }
                Some(Health::Unhealthy) => {
                    let reason = checked.err().unwrap_or_default();
                    tracing::warn!(replica = %self.id, %reason, "replica unhealthy");
                    process::note(&self.log, &format!("{} unhealthy: {reason}", self.id));
                    healthy_since = None;
                }
                _ => {}
            }
            stable = stable || healthy_since.is_some_and(|t| t.elapsed() >= STABLE_AFTER);
            let health = tracker.health();
            self.update(|status| {
                status.state = match health {
                    Health::Starting => ReplicaState::Starting,
                    Health::Healthy => ReplicaState::Healthy,
                    Health::Unhealthy => ReplicaState::Unhealthy,
                };
            });
            self.sync_registration(health == Health::Healthy, port)
                .await;
        }
    }

    /// Deregisters, then stops the process group (SIGTERM, grace, SIGKILL).
    async fn stop(&mut self, child: &mut Child, pid: u32) {
        self.update(|status| status.state = ReplicaState::Stopping);
        self.sync_registration(false, 0).await;
        let grace = self.ctx.config.grace;
        let ended = process::stop(child, pid, grace).await;
        tracing::info!(replica = %self.id, pid, %ended, "replica stopped");
        process::note(&self.log, &format!("{} stopped: {ended}", self.id));
        self.update(|status| status.last_exit = Some(ended));
    }

    fn policy(&self) -> Policy {
        let desired = self.ctx.desired.borrow();
        Policy::new(
            desired.nodes.get(&self.workload.virtual_node),
            self.ctx.config.health_interval,
        )
    }

    /// Makes the control plane hold this replica's endpoint (healthy, at `port`) or not. A
    /// failed call is logged and tried again at the next health check.
    async fn sync_registration(&mut self, want: bool, port: u16) {
        if want == self.registered {
            return;
        }
        let control = &self.ctx.control;
        let (mesh, node) = (&self.ctx.config.mesh, &self.workload.virtual_node);
        let collection = format!("endpoints/{node}");
        let result = if want {
            let (address, port) = match &self.ctx.config.network {
                Some(network) => match network.inbound(node, &self.id, port).await {
                    Ok(addr) => (addr.ip().to_string(), addr.port()),
                    Err(error) => {
                        tracing::warn!(replica = %self.id, %node, %error, "no inbound listener for the replica");
                        return;
                    }
                },
                None => ("127.0.0.1".to_string(), port),
            };
            let mut body = json!({
                "address": address,
                "port": port,
                "healthy": true,
                "workload": self.workload.name,
            });
            if self.ctx.config.mesh_tls {
                body["meshTls"] = true.into();
            }
            tokio::time::timeout(
                CONTROL_TIMEOUT,
                control.put_object(mesh, &collection, &self.id, &body),
            )
            .await
            .map(|answer| answer.map(drop))
        } else {
            tokio::time::timeout(
                CONTROL_TIMEOUT,
                control.delete_object(mesh, &collection, &self.id),
            )
            .await
            .map(|answer| match answer {
                Err(error) if error.is_not_found() => Ok(()),
                other => other,
            })
        };
        match result {
            Ok(Ok(())) => {
                self.registered = want;
                self.update(|status| status.registered = want);
                if want {
                    tracing::info!(replica = %self.id, %node, port, "endpoint registered");
                } else {
                    tracing::info!(replica = %self.id, %node, "endpoint deregistered");
                    if let Some(network) = &self.ctx.config.network {
                        network.close_inbound(&self.id);
                    }
                }
            }
            Ok(Err(error)) => {
                tracing::warn!(replica = %self.id, %node, register = want, %error, "cannot update the endpoint");
            }
            Err(_) => {
                tracing::warn!(replica = %self.id, %node, register = want, "the control plane did not answer in time");
            }
        }
    }

    /// Tells the control plane this replica could not start or ended before it was ever
    /// healthy (a deploy of a new version fails on it at once), with the end of its log.
    /// Best effort: a failed report is logged, and the deploy then waits out its health timeout.
    async fn report_failure(&self, why: &str) {
        let failure = model::wire::ReplicaFailure {
            replica: self.id.clone(),
            reason: why.to_string(),
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            log: logs::tail_file(&self.log, model::wire::MAX_FAILURE_LOG_LINES).unwrap_or_default(),
        };
        let report =
            self.ctx
                .control
                .report_failure(&self.ctx.config.mesh, &self.workload.name, &failure);
        match tokio::time::timeout(CONTROL_TIMEOUT, report).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(replica = %self.id, %error, "cannot report the failed start")
            }
            Err(_) => {
                tracing::warn!(replica = %self.id, "the control plane did not answer in time")
            }
        }
    }

    fn update(&self, change: impl FnOnce(&mut ReplicaStatus)) {
        change(&mut lock(&self.status));
    }
}

fn ended(why: String) -> Outcome {
    Outcome::Ended {
        why,
        stable: false,
        was_healthy: false,
    }
}
