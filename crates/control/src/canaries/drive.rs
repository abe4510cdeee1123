//! The driver: while this replica leads, every `TICK` it looks at each canary the index names,
//! finishes what was stored but not acted on, and feeds the live ones what the stats say.

use std::sync::Arc;
use std::time::Duration;

use model::wire::{CanaryRecord, CanaryView, node_window};
use rollout::{Input, Millis, NodeWindow, Observation, Phase, Version};
use tokio_util::sync::CancellationToken;

use store::{Op, Txn};

use super::records::commit_fenced;
use super::{INDEX, TICK, index_key};
use crate::App;
use crate::error::ApiError;
use crate::leader::Term;
use crate::objects::{self, ObjectKind};
use crate::stats::SLOT;

impl App {
    /// What the stats say about one canary now. `driving_since`: when this replica started
    /// driving canaries (its term), since it has no stats from before.
    async fn observe(
        &self,
        record: &CanaryRecord,
        now: Millis,
        driving_since: Option<Millis>,
    ) -> Result<Observation, ApiError> {
        let spec = &record.spec;
        // The analysis window in whole stats slots, rounded down: consecutive windows then
        // never share a slot, so no request is counted in two (the part of a slot before a
        // window's start is lost instead, which only delays a decision).
        let window_ms = rollout::analysis_window(&record.state, now);
        let slot = SLOT.as_millis() as Millis;
        let slots = window_ms / slot;
        let window = |version: Version<'_>| {
            if slots == 0 {
                return NodeWindow::default();
            }
            let span = Duration::from_millis(slots * slot);
            node_window(
                &self
                    .stats
                    .version(&spec.mesh, version.node, version.workload, span),
            )
        };
        // Nothing from before the canary started counts against it.
        let started = record.state.history.first().map_or(now, |entry| entry.at);
        let age = Duration::from_millis(now.saturating_sub(started));
        let failure_window = spec.analysis.failure_window.min(age);
        let canary = spec.canary_version();
        let failure =
            (self.stats).version(&spec.mesh, canary.node, canary.workload, failure_window);
        let covered = driving_since.map(|since| now.saturating_sub(since));
        Ok(Observation {
            canary: window(canary),
            stable: window(spec.stable_version()),
            canary_5xx_in_failure_window: failure.status_5xx.saturating_add(failure.failures),
            webhooks: self.webhook_results(record).await?,
            metrics: self.metric_results(record, now.saturating_sub(window_ms)),
            covered_ms: covered.filter(|covered| *covered < window_ms),
        })
    }

    /// The record with its status now: this replica's clock, and for a progressing step the
    /// observation the driver would make now (on a follower, from the stats pushed to it).
    pub async fn canary_view(&self, record: CanaryRecord) -> CanaryView {
        let now = self.clock.now();
        let seen = if record.state.phase == Phase::Progressing {
            let since = self.leadership.term().map(|term| term.since);
            match self.observe(&record, now, since).await {
                Ok(seen) => Some(seen),
                Err(error) => {
                    tracing::warn!(canary = %record.name, %error, "status without stats");
                    None
                }
            }
        } else {
            None
        };
        let status = rollout::status(&record.spec, &record.state, now, seen.as_ref());
        CanaryView { record, status }
    }

    /// One pass over every canary the index names, or at the first pass of a term over every
    /// canary in the store (a store written before the index existed, or anything it missed:
    /// that pass stores every unsettled canary again, index entry included): finish what was
    /// stored but not acted on, then tick the active ones.
    async fn drive_once(&self, term: &Term, first_pass: bool) -> Result<(), ApiError> {
        let canaries = if first_pass {
            self.unsettled_canaries().await?
        } else {
            let (kvs, _) = self.resources.range(INDEX).await?;
            kvs.iter()
                .filter_map(|kv| {
                    let (mesh, name) = kv.key.strip_prefix(INDEX)?.split_once('/')?;
                    Some((mesh.to_string(), name.to_string()))
                })
                .collect()
        };
        for (mesh, name) in canaries {
            match self.drive_one(&mesh, &name, term, first_pass).await {
                Ok(()) => {}
                Err(ApiError::Deposed) => return Err(ApiError::Deposed),
                Err(ApiError::NotFound(_)) => {
                    // Its mesh was deleted, record and all: the index entry goes too, and
                    // whatever this replica kept of it.
                    self.metrics.forget(&mesh, &name);
                    self.loads.stop(&mesh, &name);
                    let txn = Txn {
                        compares: term.fence.clone(),
                        ops: vec![Op::Delete(index_key(&mesh, &name))],
                    };
                    commit_fenced(self.resources.store(), txn).await?;
                }
                // One canary's trouble (say a conflicting write) must not stop the others.
                Err(error) => {
                    tracing::warn!(canary = %name, %error, "canary tick failed; retrying next tick")
                }
            }
        }
        Ok(())
    }

    /// Mesh and name of every canary in the store that is not settled.
    async fn unsettled_canaries(&self) -> Result<Vec<(String, String)>, ApiError> {
        let (kvs, _) = self.resources.range("meshes/").await?;
        let mut out = Vec::new();
        for kv in kvs {
            let Some(object) = objects::parse_key(&kv.key) else {
                continue;
            };
            if object.kind != ObjectKind::Canary {
                continue;
            }
            let seen: CanaryRecord = objects::decode(&kv.value)?;
            if !seen.settled() {
                out.push((object.mesh.to_string(), object.name.to_string()));
            }
        }
        Ok(out)
    }

    /// One canary's tick, under the canary lock, from a fresh read (an API command may have
    /// changed it since the pass's range).
    async fn drive_one(
        &self,
        mesh: &str,
        name: &str,
        term: &Term,
        first_pass: bool,
    ) -> Result<(), ApiError> {
        let _canaries = self.canary_lock.lock().await;
        let (record, mod_revision) = self.read_canary(mesh, name).await?;
        // What was stored but not acted on (a crash, a former leader, a command taken by
        // another replica), and, at the start of a term, every live canary: its webhooks'
        // calls died with whoever made them. Acting is idempotent.
        let unacted = record.acted < record.state.history.len();
        if unacted || (first_pass && record.is_active()) {
            let actions = rollout::reconcile(&record.spec, &record.state);
            tracing::info!(canary = %name, ?actions, "reconciling");
            self.act(record, mod_revision, actions, term).await;
            return Ok(());
        }
        if !record.is_active() {
            return Ok(());
        }
        self.drive_load(&record);
        let now = self.clock.now();
        // Only the driver queries Prometheus: a status read uses what it last got.
        self.refresh_metrics(&record, now, rollout::analysis_window(&record.state, now));
        let observation = self.observe(&record, now, Some(term.since)).await?;
        let input = &Input::Tick { now, observation };
        let (record, revision, actions) = self
            .resources
            .guarded(mesh, &term.fence, |guard| async move {
                let (record, mod_revision) = self.read_canary(mesh, name).await?;
                self.advance(&guard, record, mod_revision, input.clone())
                    .await
            })
            .await?;
        if !actions.is_empty() {
            self.act(record, revision, actions, term).await;
        }
        Ok(())
    }
}

/// The driver: while this replica leads, ticks every canary, then every deploy, every `TICK`,
/// until shutdown.
pub async fn drive(app: Arc<App>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The term the last pass completed in: a new term starts with a first pass.
    let mut driven: Option<Arc<Term>> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(term) = app.leadership.term() else {
            driven = None;
            continue;
        };
        let first_pass = driven.as_ref() != Some(&term);
        match app.drive_once(&term, first_pass).await {
            Ok(()) => driven = Some(term.clone()),
            Err(error) => tracing::warn!(%error, "canary driver pass failed"),
        }
        // Deploys after canaries: a deploy reads its canary's outcome.
        if let Err(error) = app.drive_deploys(&term).await {
            tracing::warn!(%error, "deploy driver pass failed");
        }
    }
}
