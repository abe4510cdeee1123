//! Canaries: the stored `Canary` (its spec and the rollout state machine's state), its `/v1`
//! API, and the driver that feeds `rollout` fresh stats every tick and carries out its actions.
//!
//! Durability: every transition is stored before it is acted on. A record counts how many of its
//! history entries have been acted on (`acted`); whatever is stored but not acted on (a crash
//! between storing and acting, a former leader, a command taken by a follower) the leader's
//! next pass finishes. Acting is idempotent (weights are written only when the route differs),
//! so no step is applied twice.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model::wire::{CanaryCommand, CanaryRecord, CanaryView, NodeView};
use model::{Kind, Problem, Problems, ResourcePath};
use rollout::{Action, CanarySpec, Input, Millis, Observation, Phase, WebhookResult};
use serde_json::{Value, json};
use store::{Compare, Op, Txn};
use tokio_util::sync::CancellationToken;

use crate::App;
use crate::consistency::Guard;
use crate::error::ApiError;
use crate::leader::Term;
use crate::objects::{self, ObjectKind};
use crate::webhooks::MAX_WEBHOOK_TIMEOUT;

/// How often the driver looks at every active canary: the bound on how late a broken canary
/// is noticed after its stats arrive.
pub const TICK: Duration = Duration::from_millis(250);

pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

fn key(mesh: &str, name: &str) -> String {
    objects::key(ObjectKind::Canary, mesh, None, name)
}

/// Where the answers of a canary's webhooks are stored, one key per webhook of the current
/// step: a new leader reads them there, where the one that called them left them. Outside
/// `meshes/`, so no proxy's watch carries them.
fn webhooks_prefix(mesh: &str, name: &str) -> String {
    format!("webhooks/{mesh}/{name}/")
}

impl App {
    /// `POST /v1/meshes/{mesh}/canaries`: validates, stores the first state, acts on it.
    pub async fn create_canary(&self, mesh: &str, body: &Value) -> Result<CanaryRecord, ApiError> {
        let mut problems = Vec::new();
        let name = body["name"].as_str().unwrap_or_default().to_string();
        problems.extend(model::validate_name("name", &name));
        let mut spec_json = body.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(too_big) = model::size_problem("spec", &spec_json) {
            problems.push(too_big);
            return Err(ApiError::BadRequest(Problems(problems).to_string()));
        }
        if let Some(fields) = spec_json.as_object_mut() {
            match fields.get("mesh").and_then(Value::as_str) {
                Some(given) if given != mesh => problems.push(Problem::new(
                    "spec.mesh",
                    format!("'{given}' does not match the path's '{mesh}'"),
                )),
                _ => {
                    fields.insert("mesh".into(), mesh.into());
                }
            }
        }
        if let Some(extra) = body
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "name" && *k != "spec"))
        {
            problems.push(Problem::new(
                extra.as_str(),
                "unknown field; expected name and spec",
            ));
        }
        let spec = match serde_json::from_value::<CanarySpec>(spec_json) {
            Ok(spec) => {
                problems.extend(
                    rollout::validate(&spec)
                        .into_iter()
                        .map(|p| Problem::new(format!("spec.{}", p.path), p.message)),
                );
                problems.extend(self.webhook_problems(&spec));
                Some(spec)
            }
            Err(e) => {
                problems.push(Problem::new("spec", e.to_string()));
                None
            }
        };
        let spec = match spec {
            Some(spec) if problems.is_empty() => spec,
            _ => return Err(ApiError::BadRequest(Problems(problems).to_string())),
        };

        let _canaries = self.canary_lock.lock().await;
        let now = now_millis();
        let (spec, name) = (&spec, &name);
        let (record, revision, actions) = self
            .resources
            .guarded(mesh, &[], |guard| async move {
                self.resources.require(&ResourcePath::mesh(mesh)).await?;
                self.check_canary_targets(spec).await?;
                if self.resources.get_raw(&key(mesh, name)).await?.is_some() {
                    return Err(ApiError::Conflict(format!(
                        "canary '{name}' already exists in mesh '{mesh}'"
                    )));
                }
                if let Some(other) = self.list_canaries(mesh).await?.into_iter().find(|c| {
                    c.is_active() && c.spec.router == spec.router && c.spec.route == spec.route
                }) {
                    return Err(ApiError::Conflict(format!(
                        "route '{}' of router '{}' already has an active canary, '{}'; abort or finish it first",
                        spec.route, spec.router, other.name
                    )));
                }
                let (state, actions) = rollout::start(spec, now);
                let record = CanaryRecord {
                    name: name.clone(),
                    spec: spec.clone(),
                    state,
                    acted: 0,
                    notes: Vec::new(),
                };
                let revision = self.store_canary(&guard, &record, 0).await?;
                Ok((record, revision, actions))
            })
            .await?;
        self.stats
            .forget(&record.spec.mesh, &record.spec.canary_node);
        Ok(self.act_if_leading(record, revision, actions).await)
    }

    /// Webhooks this control plane will not call: outside `--webhook-allow`, or waiting longer
    /// than any call may.
    fn webhook_problems(&self, spec: &CanarySpec) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, hook) in spec.analysis.webhooks.iter().enumerate() {
            let path = format!("spec.analysis.webhooks[{i}]");
            if let Err(reason) = self.webhook_policy.check(&hook.url) {
                problems.push(Problem::new(
                    format!("{path}.url"),
                    format!("webhook {:?}: {reason}", hook.name),
                ));
            }
            if hook.timeout > MAX_WEBHOOK_TIMEOUT {
                problems.push(Problem::new(
                    format!("{path}.timeout"),
                    format!(
                        "webhook {:?}: must be at most {}s",
                        hook.name,
                        MAX_WEBHOOK_TIMEOUT.as_secs()
                    ),
                ));
            }
        }
        problems
    }

    /// References a canary needs: its router and route, both nodes, and traffic on the stable one.
    /// Anything missing is a 404 naming every missing one; a stable node without traffic a 400.
    async fn check_canary_targets(&self, spec: &CanarySpec) -> Result<(), ApiError> {
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        let route_path = ResourcePath::new(
            Kind::Route,
            &spec.mesh,
            Some(spec.router.clone()),
            &spec.route,
        );
        let route = match self.resources.require(&route_path).await {
            Ok((route, _)) => Some(route),
            Err(_) => {
                missing.push(Problem::new(
                    "spec.route",
                    format!("{route_path} does not exist"),
                ));
                None
            }
        };
        for (field, node) in [
            ("spec.stableNode", &spec.stable_node),
            ("spec.canaryNode", &spec.canary_node),
        ] {
            let path = ResourcePath::new(Kind::VirtualNode, &spec.mesh, None, node);
            if self.resources.require(&path).await.is_err() {
                missing.push(Problem::new(field, format!("{path} does not exist")));
            }
        }
        if let Some(route) = route {
            let targets = model::typed::route_targets(&route.spec);
            let serving = targets
                .iter()
                .any(|t| t.virtual_node == spec.stable_node && t.weight > 0);
            if !serving {
                let shown: Vec<String> = targets
                    .iter()
                    .map(|t| format!("{}:{}", t.virtual_node, t.weight))
                    .collect();
                problems.push(Problem::new(
                    "spec.stableNode",
                    format!(
                        "route '{}' sends no traffic to '{}' (its targets: {})",
                        spec.route,
                        spec.stable_node,
                        shown.join(" ")
                    ),
                ));
            }
        }
        if !missing.is_empty() {
            Err(ApiError::missing(&missing))
        } else if !problems.is_empty() {
            Err(ApiError::BadRequest(Problems(problems).to_string()))
        } else {
            Ok(())
        }
    }

    pub async fn get_canary(&self, mesh: &str, name: &str) -> Result<CanaryRecord, ApiError> {
        Ok(self.read_canary(mesh, name).await?.0)
    }

    pub async fn list_canaries(&self, mesh: &str) -> Result<Vec<CanaryRecord>, ApiError> {
        let (kvs, _) = self
            .resources
            .range(&objects::prefix(ObjectKind::Canary, mesh, None))
            .await?;
        kvs.iter().map(|kv| objects::decode(&kv.value)).collect()
    }

    /// Pause, resume, promote or abort: one input to the state machine, stored, then acted on.
    pub async fn command_canary(
        &self,
        mesh: &str,
        name: &str,
        command: CanaryCommand,
        reason: Option<String>,
    ) -> Result<CanaryRecord, ApiError> {
        let now = now_millis();
        let input = match command {
            CanaryCommand::Pause => Input::Pause { now },
            CanaryCommand::Resume => Input::Resume { now },
            CanaryCommand::Promote => Input::Promote { now },
            CanaryCommand::Abort => Input::Abort {
                now,
                reason: reason.unwrap_or_else(|| "aborted by request".into()),
            },
        };
        let _canaries = self.canary_lock.lock().await;
        let input = &input;
        let (record, revision, actions) = self
            .resources
            .guarded(mesh, &[], |guard| async move {
                let (record, mod_revision) = self.read_canary(mesh, name).await?;
                if record.state.phase.is_terminal() {
                    return Err(ApiError::Conflict(format!(
                        "canary '{name}' has already ended ({}); nothing to {}",
                        record.state.phase,
                        command.as_str()
                    )));
                }
                self.advance(&guard, record, mod_revision, input.clone())
                    .await
            })
            .await?;
        Ok(self.act_if_leading(record, revision, actions).await)
    }

    async fn read_canary(&self, mesh: &str, name: &str) -> Result<(CanaryRecord, u64), ApiError> {
        match self.resources.get_raw(&key(mesh, name)).await? {
            Some(kv) => Ok((objects::decode(&kv.value)?, kv.mod_revision)),
            None => Err(ApiError::NotFound(format!(
                "canary '{name}' not found in mesh '{mesh}'"
            ))),
        }
    }

    /// Stores `record` if its key is still at `expected` (0: absent), under `guard`; returns
    /// the new revision, which is then the key's mod revision.
    async fn store_canary(
        &self,
        guard: &Guard,
        record: &CanaryRecord,
        expected: u64,
    ) -> Result<u64, ApiError> {
        let key = key(&record.spec.mesh, &record.name);
        let value = serde_json::to_vec(record).map_err(|e| ApiError::Internal(e.to_string()))?;
        let txn = Txn::default()
            .when(Compare::ModRevision(key.clone(), expected))
            .then(Op::Put(key, value));
        self.resources.commit_guarded(guard, txn).await
    }

    /// Feeds one input and stores the new state (before anyone acts on it); returns it, its
    /// revision and the actions it calls for. Nothing is stored for an input that changes
    /// nothing.
    async fn advance(
        &self,
        guard: &Guard,
        record: CanaryRecord,
        mod_revision: u64,
        input: Input,
    ) -> Result<(CanaryRecord, u64, Vec<Action>), ApiError> {
        let (state, actions) = rollout::step(&record.spec, &record.state, input);
        if state == record.state && actions.is_empty() {
            return Ok((record, mod_revision, actions));
        }
        let next = CanaryRecord { state, ..record };
        let revision = self.store_canary(guard, &next, mod_revision).await?;
        Ok((next, revision, actions))
    }

    /// Only the leader acts: on any other replica a command is stored, and the leader's next
    /// tick sees that its history was not acted on and carries it out.
    async fn act_if_leading(
        &self,
        record: CanaryRecord,
        revision: u64,
        actions: Vec<Action>,
    ) -> CanaryRecord {
        match self.leadership.term() {
            Some(term) => self.act(record, revision, actions, &term).await,
            None => record,
        }
    }

    /// Carries out `actions` with the term's fence, then records that the history so far has
    /// been acted on, if the record is still the one stored at `revision` (a command stored
    /// since is acted on at the next tick; see `drive_one`).
    async fn act(
        &self,
        mut record: CanaryRecord,
        revision: u64,
        actions: Vec<Action>,
        term: &Term,
    ) -> CanaryRecord {
        let fence = &term.fence;
        for action in actions {
            let outcome = match action {
                Action::SetWeights { stable, canary } => {
                    self.set_weights(&record.spec, stable, canary, false, fence)
                        .await
                }
                Action::CallWebhooks => self.call_webhooks(&record, fence).await,
                Action::RemoveStable => {
                    self.remove_version(
                        &record.spec,
                        &record.spec.stable_node,
                        &record.spec.canary_node,
                        fence,
                    )
                    .await
                }
                Action::RemoveCanary => {
                    self.remove_version(
                        &record.spec,
                        &record.spec.canary_node,
                        &record.spec.stable_node,
                        fence,
                    )
                    .await
                }
            };
            match outcome {
                Ok(()) => {}
                Err(ApiError::Deposed) => {
                    tracing::warn!(canary = %record.name, "no longer leading; the new leader acts");
                    return record;
                }
                Err(error) => {
                    tracing::warn!(canary = %record.name, %error, "canary action failed");
                    record
                        .notes
                        .push(format!("at {} ms: {error}", now_millis()));
                }
            }
        }
        record.acted = record.state.history.len();
        let done = &record;
        let stored = self
            .resources
            .guarded(&done.spec.mesh, fence, |guard| async move {
                self.store_canary(&guard, done, revision).await
            })
            .await;
        if let Err(error) = stored {
            tracing::warn!(canary = %record.name, %error, "cannot record the canary's actions as done; the next tick will");
        }
        record
    }

    /// Writes the route's weights for the two nodes (others keep theirs), unless they are
    /// already so. With `only_survivor` the node at weight 0 leaves the route entirely.
    async fn set_weights(
        &self,
        spec: &CanarySpec,
        stable: u32,
        canary: u32,
        only_survivor: bool,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        let path = ResourcePath::new(
            Kind::Route,
            &spec.mesh,
            Some(spec.router.clone()),
            &spec.route,
        );
        let (route, _) = self.resources.require(&path).await?;
        let mut route_spec = route.spec.clone();
        let body = ["httpRoute", "http2Route", "grpcRoute", "tcpRoute"]
            .into_iter()
            .find(|k| route_spec.get(*k).is_some())
            .ok_or_else(|| ApiError::BadRequest(format!("{path} has no route body")))?;
        let wanted = [(&spec.stable_node, stable), (&spec.canary_node, canary)];
        let mut targets: Vec<Value> = route_spec[body]["action"]["weightedTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !wanted.iter().any(|(node, _)| t["virtualNode"] == ***node))
            .collect();
        for (node, weight) in wanted {
            if !(only_survivor && weight == 0) {
                targets.push(json!({ "virtualNode": node, "weight": weight }));
            }
        }
        let current = route_spec[body]["action"]["weightedTargets"].clone();
        let same = current.as_array().is_some_and(|list| {
            list.len() == targets.len() && targets.iter().all(|t| list.contains(t))
        });
        if same {
            return Ok(());
        }
        route_spec[body]["action"]["weightedTargets"] = Value::Array(targets);
        self.resources
            .update_fenced(&path, &json!({ "spec": route_spec }), fence)
            .await
            .map(drop)
    }

    /// After a promotion or a rollback: the route names only the survivor, then the loser's
    /// workloads and node go.
    pub(crate) async fn remove_version(
        &self,
        spec: &CanarySpec,
        loser: &str,
        survivor: &str,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        let (stable, canary) = if survivor == spec.stable_node {
            (100, 0)
        } else {
            (0, 100)
        };
        self.set_weights(spec, stable, canary, true, fence).await?;
        for workload in self.resources.list_workloads(&spec.mesh).await? {
            if workload.virtual_node == loser {
                self.resources
                    .delete_workload_fenced(&spec.mesh, &workload.name, fence)
                    .await?;
            }
        }
        let node = ResourcePath::new(Kind::VirtualNode, &spec.mesh, None, loser);
        self.resources.delete_fenced(&node, fence).await.map(drop)
    }

    /// Clears the stored answers of the canary's webhooks, then calls each in the background;
    /// every answer is stored under the step it was called for, with the term's fence.
    async fn call_webhooks(
        &self,
        record: &CanaryRecord,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        let prefix = webhooks_prefix(&record.spec.mesh, &record.name);
        let (old, _) = self.resources.range(&prefix).await?;
        let clear = Txn {
            compares: fence.to_vec(),
            ops: old.into_iter().map(|kv| Op::Delete(kv.key)).collect(),
        };
        commit_fenced(self.resources.store(), clear).await?;
        let payload = json!({
            "name": record.name,
            "mesh": record.spec.mesh,
            "route": record.spec.route,
            "stableNode": record.spec.stable_node,
            "canaryNode": record.spec.canary_node,
            "canaryWeight": record.state.canary_weight,
            "step": record.state.step,
            "phase": record.state.phase,
        });
        let step_prefix = format!("{prefix}{}/", record.state.step);
        for (i, hook) in record.spec.analysis.webhooks.iter().cloned().enumerate() {
            let store = self.resources.store().clone();
            let policy = self.webhook_policy.clone();
            let payload = payload.clone();
            let key = format!("{step_prefix}{i}");
            let fence = fence.to_vec();
            tokio::spawn(async move {
                let result = policy.call(&hook, &payload).await;
                let stored = match serde_json::to_vec(&result) {
                    Ok(value) => {
                        let txn = Txn {
                            compares: fence,
                            ops: vec![Op::Put(key, value)],
                        };
                        commit_fenced(&store, txn).await
                    }
                    Err(e) => Err(ApiError::Internal(e.to_string())),
                };
                if let Err(error) = stored {
                    tracing::warn!(webhook = %hook.name, %error, "cannot store the webhook's answer");
                }
            });
        }
        Ok(())
    }

    /// The stored webhook answers of the canary's current step; no store read for a canary
    /// without webhooks (most of them, read every tick).
    async fn webhook_results(&self, record: &CanaryRecord) -> Result<Vec<WebhookResult>, ApiError> {
        if record.spec.analysis.webhooks.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = format!(
            "{}{}/",
            webhooks_prefix(&record.spec.mesh, &record.name),
            record.state.step
        );
        let (kvs, _) = self.resources.range(&prefix).await?;
        kvs.iter().map(|kv| objects::decode(&kv.value)).collect()
    }

    /// What the stats say about one canary now. `driving_since`: when this replica started
    /// driving canaries (its term), since it has no stats from before.
    async fn observe(
        &self,
        record: &CanaryRecord,
        now: Millis,
        driving_since: Option<Millis>,
    ) -> Result<Observation, ApiError> {
        let spec = &record.spec;
        let step_window = Duration::from_millis(now.saturating_sub(record.state.step_started_at));
        let window = |node: &str| {
            let counts = self.stats.node(&spec.mesh, node, step_window);
            NodeView::of(&counts, 1.0).window()
        };
        // Nothing from before the canary started counts against it.
        let started = record.state.history.first().map_or(now, |entry| entry.at);
        let age = Duration::from_millis(now.saturating_sub(started));
        let failure_window = spec.analysis.failure_window.min(age);
        let failure = self
            .stats
            .node(&spec.mesh, &spec.canary_node, failure_window);
        let step_elapsed = now.saturating_sub(record.state.step_started_at);
        let covered = driving_since.map(|since| now.saturating_sub(since));
        Ok(Observation {
            canary: window(&spec.canary_node),
            stable: window(&spec.stable_node),
            canary_5xx_in_failure_window: failure.status_5xx.saturating_add(failure.failures),
            webhooks: self.webhook_results(record).await?,
            covered_ms: covered.filter(|covered| *covered < step_elapsed),
        })
    }

    /// The record with its status now: this replica's clock, and for a progressing step the
    /// observation the driver would make now (on a follower, from the stats pushed to it).
    pub async fn canary_view(&self, record: CanaryRecord) -> CanaryView {
        let now = now_millis();
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

    /// One pass over every canary of every mesh: finish what was stored but not acted on,
    /// then tick the active ones. `first_pass`: the first of this term.
    async fn drive_once(&self, term: &Term, first_pass: bool) -> Result<(), ApiError> {
        let (kvs, _) = self.resources.range("meshes/").await?;
        for kv in kvs {
            let Some(object) = objects::parse_key(&kv.key) else {
                continue;
            };
            if object.kind != ObjectKind::Canary {
                continue;
            }
            // Finished canaries need nothing unless their last decision was stored but not
            // acted on: skip them without the lock or a second read.
            let seen: CanaryRecord = objects::decode(&kv.value)?;
            if seen.settled() {
                continue;
            }
            let (mesh, name) = (object.mesh.to_string(), object.name.to_string());
            match self.drive_one(&mesh, &name, term, first_pass).await {
                Ok(()) => {}
                Err(ApiError::Deposed) => return Err(ApiError::Deposed),
                // One canary's trouble (say a conflicting write) must not stop the others.
                Err(error) => {
                    tracing::warn!(canary = %name, %error, "canary tick failed; retrying next tick")
                }
            }
        }
        Ok(())
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
        let now = now_millis();
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

/// A leader's write outside any mesh (`txn`'s compares are its fence): it holds only while the
/// fence does.
async fn commit_fenced(store: &Arc<dyn store::Store>, txn: Txn) -> Result<(), ApiError> {
    if txn.ops.is_empty() {
        return Ok(());
    }
    let store = store.clone();
    match crate::resources::blocking(move || store.txn(txn)).await?? {
        store::TxnOutcome::Committed { .. } => Ok(()),
        store::TxnOutcome::Failed { .. } => Err(ApiError::Deposed),
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
