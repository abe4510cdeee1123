//! Carrying out the state machine's actions with the leader's fence: the route's weights (or
//! a replicas canary's replica counts), removal of the losing version, and the webhooks of a
//! step.

use model::wire::CanaryRecord;
use model::{Kind, ResourcePath};
use rollout::{Action, CanarySpec, ReplicaSplit, WebhookResult};
use serde_json::{Value, json};
use store::{Compare, Op, Txn};

use super::records::commit_fenced;
use super::{objects, webhooks_prefix};
use crate::App;
use crate::error::ApiError;
use crate::leader::Term;

impl App {
    /// Only the leader acts: on any other replica a command is stored, and the leader's next
    /// tick sees that its history was not acted on and carries it out.
    pub(super) async fn act_if_leading(
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
    pub(super) async fn act(
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
                Action::RemoveStable if let Some(split) = record.spec.replicas() => {
                    self.remove_workload(&record.spec, split, true, fence).await
                }
                Action::RemoveCanary if let Some(split) = record.spec.replicas() => {
                    self.remove_workload(&record.spec, split, false, fence)
                        .await
                }
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
                        .push(format!("at {} ms: {error}", self.clock.now()));
                }
            }
        }
        let fresh = &record.state.history[record.acted.min(record.state.history.len())..];
        if !fresh.is_empty() {
            self.notify(&record, fresh);
        }
        if !record.is_active() {
            self.metrics.forget(&record.spec.mesh, &record.name);
            self.loads.stop(&record.spec.mesh, &record.name);
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
    /// already so. With `only_survivor` the node at weight 0 leaves the route entirely. A
    /// replicas canary's weights are replica counts instead.
    async fn set_weights(
        &self,
        spec: &CanarySpec,
        stable: u32,
        canary: u32,
        only_survivor: bool,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        if let Some(split) = spec.replicas() {
            return self.set_replicas(spec, split, canary, fence).await;
        }
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

    /// Gives the two workloads of a replicas canary their share of its replicas for
    /// `canary_weight`, the growing one first, so the node never runs fewer than `total`
    /// replicas on purpose (the new ones must pass their health checks before they serve).
    /// A workload already at its count is not written.
    async fn set_replicas(
        &self,
        spec: &CanarySpec,
        split: ReplicaSplit<'_>,
        canary_weight: u32,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        let (stable, canary) = split.counts(canary_weight);
        let mut writes = Vec::new();
        for (name, replicas) in [
            (split.stable_workload, stable),
            (split.canary_workload, canary),
        ] {
            let workload = match self.resources.get_workload(&spec.mesh, name).await {
                // The loser, removed by an earlier pass: nothing to scale down.
                Err(ApiError::NotFound(_)) if replicas == 0 => continue,
                other => other?,
            };
            if workload.replicas != replicas {
                writes.push((replicas > workload.replicas, workload, replicas));
            }
        }
        // Growing (true) before shrinking (false).
        writes.sort_by_key(|(grows, _, _)| !*grows);
        for (_, mut workload, replicas) in writes {
            workload.replicas = replicas;
            let body =
                serde_json::to_value(&workload).map_err(|e| ApiError::Internal(e.to_string()))?;
            (self.resources)
                .put_workload_fenced(&spec.mesh, &workload.name, &body, fence)
                .await?;
        }
        Ok(())
    }

    /// A replicas canary's promotion (`canary_won`) or rollback: the survivor's workload runs
    /// every replica, then the loser's workload goes; the node stays, it is the survivor's too.
    async fn remove_workload(
        &self,
        spec: &CanarySpec,
        split: ReplicaSplit<'_>,
        canary_won: bool,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        let (weight, loser) = match canary_won {
            true => (100, split.stable_workload),
            false => (0, split.canary_workload),
        };
        self.set_replicas(spec, split, weight, fence).await?;
        match (self.resources)
            .delete_workload_fenced(&spec.mesh, loser, fence)
            .await
        {
            // Acting is idempotent: a second pass finds it gone.
            Err(ApiError::NotFound(_)) => Ok(()),
            other => other,
        }
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
    pub(super) async fn webhook_results(
        &self,
        record: &CanaryRecord,
    ) -> Result<Vec<WebhookResult>, ApiError> {
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
}
