//! The canary API's side: what a create or a command is checked against (the spec, the
//! webhook policy, the route and nodes it names, one active canary per route), and the reads.

use model::wire::{CanaryCommand, CanaryRecord};
use model::{Kind, Problem, Problems, ResourcePath};
use rollout::{CanarySpec, Input};
use serde_json::Value;

use super::{ObjectKind, key, objects};
use crate::App;
use crate::error::ApiError;
use crate::webhooks::MAX_WEBHOOK_TIMEOUT;

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
            // A replicas canary's versions share one node: naming it once is enough.
            // `get`, not indexing: a `Map` index panics on a missing key.
            let strategy = fields.get("strategy").and_then(|s| s.get("type"));
            let replicas = strategy.and_then(Value::as_str) == Some("replicas");
            if replicas && !fields.contains_key("canaryNode") {
                let node = fields.get("stableNode").cloned().unwrap_or_default();
                fields.insert("canaryNode".into(), node);
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
        let now = self.clock.now();
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
                if let Some(other) = self
                    .list_canaries(mesh)
                    .await?
                    .into_iter()
                    .find(|c| c.is_active() && same_target(&c.spec, spec))
                {
                    let what = match spec.replicas() {
                        Some(_) => format!("the replicas of node '{}'", spec.stable_node),
                        None => format!("route '{}' of router '{}'", spec.route, spec.router),
                    };
                    return Err(ApiError::Conflict(format!(
                        "{what} already has an active canary, '{}'; abort or finish it first",
                        other.name
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
        let canary = record.spec.canary_version();
        self.stats
            .forget(&record.spec.mesh, canary.node, canary.workload);
        Ok(self.act_if_leading(record, revision, actions).await)
    }

    /// Webhooks this control plane will not call: outside `--webhook-allow`, or waiting longer
    /// than any call may.
    fn webhook_problems(&self, spec: &CanarySpec) -> Vec<Problem> {
        let mut problems = Vec::new();
        let urls = spec
            .analysis
            .prometheus
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("spec.analysis.prometheus[{i}].url"), &c.url))
            .chain(
                spec.notify
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (format!("spec.notify[{i}].url"), &n.url)),
            )
            .chain(
                (spec.analysis.load.iter())
                    .map(|load| ("spec.analysis.load.url".to_string(), &load.url)),
            );
        for (path, url) in urls {
            if let Err(reason) = self.webhook_policy.check(url) {
                problems.push(Problem::new(path, reason));
            }
        }
        // The proxies compile these; a pattern they cannot is refused here, not skipped there.
        for (i, rule) in spec.matches.iter().enumerate() {
            if let Some(pattern) = &rule.regex
                && let Err(error) = regex::Regex::new(&format!("^(?:{pattern})$"))
            {
                problems.push(Problem::new(
                    format!("spec.match[{i}].regex"),
                    format!("{pattern:?} is not a regular expression: {error}"),
                ));
            }
        }
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
        if let Some(split) = spec.replicas() {
            return self.check_replica_targets(spec, split).await;
        }
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

    /// A replicas canary's node and both its workloads, each of that node. The stable workload
    /// need not be running yet, nor the canary's: the canary sets both counts.
    async fn check_replica_targets(
        &self,
        spec: &CanarySpec,
        split: rollout::ReplicaSplit<'_>,
    ) -> Result<(), ApiError> {
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        let path = ResourcePath::new(Kind::VirtualNode, &spec.mesh, None, &spec.stable_node);
        if self.resources.require(&path).await.is_err() {
            missing.push(Problem::new(
                "spec.stableNode",
                format!("{path} does not exist"),
            ));
        }
        for (field, name) in [
            ("spec.strategy.stableWorkload", split.stable_workload),
            ("spec.strategy.canaryWorkload", split.canary_workload),
        ] {
            problems.extend(model::validate_name(field, name));
            match self.resources.get_workload(&spec.mesh, name).await {
                Ok(workload) if workload.virtual_node == spec.stable_node => {}
                Ok(workload) => problems.push(Problem::new(
                    field,
                    format!(
                        "workload '{name}' runs node '{}', not '{}'",
                        workload.virtual_node, spec.stable_node
                    ),
                )),
                Err(_) => missing.push(Problem::new(
                    field,
                    format!("workload '{name}' does not exist in mesh '{}'", spec.mesh),
                )),
            }
        }
        if !problems.is_empty() {
            Err(ApiError::BadRequest(Problems(problems).to_string()))
        } else if !missing.is_empty() {
            Err(ApiError::missing(&missing))
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
        let now = self.clock.now();
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
}

/// Whether two canaries would drive the same thing: one route, or one node's replicas.
fn same_target(a: &CanarySpec, b: &CanarySpec) -> bool {
    match (a.replicas(), b.replicas()) {
        (None, None) => a.router == b.router && a.route == b.route,
        (Some(_), Some(_)) => a.stable_node == b.stable_node,
        _ => false,
    }
}
