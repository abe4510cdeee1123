//! Deploys: the AWS canary pipeline's deploy step as a durable server-side operation
//! (`/v1/meshes/{mesh}/deploys`). A deploy is planned and stored when it is asked for (the
//! service, its route, the node serving it, the new version N), then driven by the leader
//! beside the canaries: the new version's node and workload `<svc>-<N>` are made (from the
//! deploy template when one is given, else modelled on the serving node), it must pass its
//! health check (a replica that cannot start fails it at once), then a canary rolls it out and
//! removes the loser.
//!
//! Durability: every step is stored before it is acted on, and acting is idempotent (made only
//! when absent or different; a canary that exists under the deploy's name is its own), so a
//! `kill -9` at any point resumes where it was. A new version is never left with traffic and no
//! canary watching it: it gets traffic only from its canary.

mod template;

use std::sync::Arc;
use std::time::Duration;

use model::wire::{DeployOrigin, DeployPhase, DeployRecord, DeploySpec, ReplicaFailure, Workload};
use model::{Kind, Problem, Problems, ResourcePath};
use rollout::{CanarySpec, Phase};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use store::{Compare, Op, Txn};

use crate::App;
use crate::clock::now_millis;
use crate::error::ApiError;
use crate::leader::Term;
use crate::objects;

/// Ended deploys kept per mesh (with the one being made); older ones are removed.
pub const KEPT_DEPLOYS: usize = 50;

fn key(mesh: &str, name: &str) -> String {
    format!("deploys/{mesh}/{name}")
}

/// Where a workload's replica failures are kept: outside `meshes/`, so no watcher carries them.
pub(crate) fn failures_prefix(mesh: &str, workload: &str) -> String {
    format!("failures/{mesh}/{workload}/")
}

/// Stores `value` at `key` if its mod revision is still `expected` (0: absent) and `fence`
/// holds; returns the new revision. A failed compare is a conflict, or `Deposed` when it was
/// the fence.
pub(crate) async fn put_if<T: Serialize>(
    store: &Arc<dyn store::Store>,
    key: &str,
    value: &T,
    expected: u64,
    fence: &[Compare],
) -> Result<u64, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    let txn = Txn {
        compares: vec![Compare::ModRevision(key.to_string(), expected)],
        ops: vec![Op::Put(key.to_string(), bytes)],
    };
    commit_if(
        store,
        txn,
        fence,
        &format!("{key} changed while it was being written; try again"),
    )
    .await
}

/// Commits `txn` with `fence` added to its compares; returns the new revision. A failed
/// compare is `Deposed` when it was the fence's, else a conflict saying `conflict`.
pub(crate) async fn commit_if(
    store: &Arc<dyn store::Store>,
    mut txn: Txn,
    fence: &[Compare],
    conflict: &str,
) -> Result<u64, ApiError> {
    txn.compares.extend(fence.iter().cloned());
    let store = store.clone();
    match crate::resources::blocking(move || store.txn(txn)).await?? {
        store::TxnOutcome::Committed { revision } => Ok(revision),
        store::TxnOutcome::Failed { key: failed, .. }
            if fence
                .iter()
                .any(|Compare::ModRevision(fenced, _)| *fenced == failed) =>
        {
            Err(ApiError::Deposed)
        }
        store::TxnOutcome::Failed { .. } => Err(ApiError::Conflict(conflict.to_string())),
    }
}

/// Every value under `prefix`, decoded, with its mod revision.
pub(crate) async fn read_all<T: DeserializeOwned>(
    app: &App,
    prefix: &str,
) -> Result<Vec<(T, u64)>, ApiError> {
    let (kvs, _) = app.resources.range(prefix).await?;
    kvs.iter()
        .map(|kv| Ok((objects::decode(&kv.value)?, kv.mod_revision)))
        .collect()
}

/// What a deploy works on, found when it is asked for.
struct Plan {
    service: String,
    router: String,
    route: String,
    stable: Option<String>,
}

impl App {
    /// `POST /v1/meshes/{mesh}/deploys`: checks the file and the mesh, plans, stores. The
    /// leader's driver acts on it from there.
    pub async fn create_deploy(
        &self,
        mesh: &str,
        spec: DeploySpec,
        origin: Option<DeployOrigin>,
    ) -> Result<DeployRecord, ApiError> {
        let mut problems = spec.problems();
        if let Some(given) = spec.mesh.as_deref().filter(|given| *given != mesh) {
            problems.push(Problem::new(
                "mesh",
                format!("'{given}' does not match the path's '{mesh}'"),
            ));
        }
        Problems::check(problems).map_err(|p| ApiError::BadRequest(p.to_string()))?;
        self.resources.require(&ResourcePath::mesh(mesh)).await?;
        let svc = &spec.microservice_name;
        let plan = self.plan(mesh, &spec).await?;
        let _deploys = self.deploy_lock.lock().await;
        let existing: Vec<(DeployRecord, u64)> =
            read_all(self, &format!("deploys/{mesh}/")).await?;
        if let Some((busy, _)) = existing
            .iter()
            .find(|(d, _)| !d.phase.is_terminal() && d.service == plan.service)
        {
            return Err(ApiError::Conflict(format!(
                "deploy '{}' of {} is still {}; wait for it or abort its canary",
                busy.name, plan.service, busy.phase
            )));
        }
        let nodes = self
            .resources
            .list_names(&ResourcePath::new(Kind::VirtualNode, mesh, None, ""))
            .await?;
        let version = next_version(svc, &nodes);
        let node = format!("{svc}-{version}");
        let attempts = existing.iter().filter(|(d, _)| d.node == node).count()
            + self
                .list_canaries(mesh)
                .await?
                .iter()
                .filter(|c| c.name.starts_with(&format!("{node}-")))
                .count();
        let name = format!("{node}-{}", attempts + 1);
        if let Some(text) = &spec.config_file {
            // Rendered again when applied; here only to refuse a template that cannot work.
            let vars = template::Vars::new(&spec, version, &node, plan.stable.as_deref());
            template::render(text, &vars, mesh).map_err(ApiError::BadRequest)?;
        }
        let now = now_millis();
        let mut record = DeployRecord {
            name: name.clone(),
            mesh: mesh.to_string(),
            spec,
            phase: DeployPhase::Starting,
            version,
            node: node.clone(),
            stable_node: plan.stable.clone(),
            service: plan.service.clone(),
            router: plan.router,
            route: plan.route,
            applied: false,
            canary: None,
            origin,
            created_at: now,
            updated_at: now,
            reason: None,
            events: Vec::new(),
        };
        let first = match &plan.stable {
            Some(stable) => format!("{stable} serves {}; deploying {node}", plan.service),
            None => format!("first deploy of {}: {node} gets all traffic", plan.service),
        };
        record.note(now, first);
        put_if(self.resources.store(), &key(mesh, &name), &record, 0, &[]).await?;
        self.forget_old_deploys(mesh, existing).await;
        Ok(record)
    }

    /// Removes the oldest ended deploys of the mesh past [`KEPT_DEPLOYS`]: the history is
    /// bounded by a count, not by how often anyone deploys. Best effort; the next create tries
    /// again.
    async fn forget_old_deploys(&self, mesh: &str, existing: Vec<(DeployRecord, u64)>) {
        let old = to_forget(existing);
        if old.is_empty() {
            return;
        }
        let mut txn = Txn::default();
        for (name, revision) in old {
            let at = key(mesh, &name);
            txn = txn
                .when(Compare::ModRevision(at.clone(), revision))
                .then(Op::Delete(at));
        }
        let store = self.resources.store().clone();
        match crate::resources::blocking(move || store.txn(txn)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot forget old deploys"),
            Err(error) => tracing::warn!(%error, "cannot forget old deploys"),
        }
    }

    /// The service `microservice_name` names, its router and route, and the node serving it.
    async fn plan(&self, mesh: &str, spec: &DeploySpec) -> Result<Plan, ApiError> {
        let svc = &spec.microservice_name;
        let services = self
            .resources
            .list_names(&ResourcePath::new(Kind::VirtualService, mesh, None, ""))
            .await?;
        let matching: Vec<&String> = services
            .iter()
            .filter(|s| *s == svc || s.starts_with(&format!("{svc}.")))
            .collect();
        let service = match matching.as_slice() {
            [] if spec.create => {
                return Ok(Plan {
                    service: format!("{svc}.{mesh}.local"),
                    router: format!("{svc}-vr"),
                    route: format!("{svc}-r"),
                    stable: None,
                });
            }
            [] => {
                let there = if services.is_empty() {
                    "none".to_string()
                } else {
                    services.join(", ")
                };
                return Err(ApiError::BadRequest(format!(
                    "microservice_name: '{svc}' matches no virtual service of mesh '{mesh}' (its services: {there}); to create it, add \"create\": true"
                )));
            }
            [one] => (*one).clone(),
            many => {
                return Err(ApiError::BadRequest(format!(
                    "microservice_name: '{svc}' matches several virtual services: {}",
                    many.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        let path = ResourcePath::new(Kind::VirtualService, mesh, None, &service);
        let (record, _) = self.resources.require(&path).await?;
        let router = record.spec["provider"]["virtualRouter"]["virtualRouterName"]
            .as_str()
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "virtual service '{service}' is provided by a node, not a router; a deploy needs a router to shift traffic"
                ))
            })?
            .to_string();
        let routes = self
            .resources
            .list_names(&ResourcePath::new(
                Kind::Route,
                mesh,
                Some(router.clone()),
                "",
            ))
            .await?;
        let route = match routes.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(ApiError::BadRequest(format!(
                    "virtual router '{router}' has no route to deploy through"
                )));
            }
            many => {
                return Err(ApiError::BadRequest(format!(
                    "virtual router '{router}' has {} routes ({}); a deploy needs exactly one",
                    many.len(),
                    many.join(", ")
                )));
            }
        };
        let (route_record, _) = self
            .resources
            .require(&ResourcePath::new(
                Kind::Route,
                mesh,
                Some(router.clone()),
                &route,
            ))
            .await?;
        let targets = model::typed::route_targets(&route_record.spec);
        let serving: Vec<_> = targets.iter().filter(|t| t.weight > 0).collect();
        let stable = match serving.as_slice() {
            [one] => one.virtual_node.clone(),
            _ => {
                let shown: Vec<String> = targets
                    .iter()
                    .map(|t| format!("{}:{}", t.virtual_node, t.weight))
                    .collect();
                return Err(ApiError::Conflict(format!(
                    "route '{route}' splits traffic ({}); finish or roll back that release first",
                    shown.join(" ")
                )));
            }
        };
        Ok(Plan {
            service,
            router,
            route,
            stable: Some(stable),
        })
    }

    pub async fn get_deploy(&self, mesh: &str, name: &str) -> Result<DeployRecord, ApiError> {
        Ok(self.read_deploy(mesh, name).await?.0)
    }

    /// Newest first.
    pub async fn list_deploys(&self, mesh: &str) -> Result<Vec<DeployRecord>, ApiError> {
        let mut deploys: Vec<DeployRecord> = read_all(self, &format!("deploys/{mesh}/"))
            .await?
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        deploys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.name.cmp(&a.name)));
        Ok(deploys)
    }

    async fn read_deploy(&self, mesh: &str, name: &str) -> Result<(DeployRecord, u64), ApiError> {
        match self.resources.get_raw(&key(mesh, name)).await? {
            Some(kv) => Ok((objects::decode(&kv.value)?, kv.mod_revision)),
            None => Err(ApiError::NotFound(format!(
                "deploy '{name}' not found in mesh '{mesh}'"
            ))),
        }
    }

    /// `PUT .../workloads/{name}/failures/{replica}`: a supervisor's report.
    pub async fn report_failure(
        &self,
        mesh: &str,
        workload: &str,
        replica: &str,
        body: Value,
    ) -> Result<(), ApiError> {
        let mut failure: ReplicaFailure = model::wire::strict(body)
            .map_err(|e| ApiError::BadRequest(format!("failure report: {e}")))?;
        let mut problems = model::validate_name("workload", workload);
        problems.extend(model::validate_name("replica", replica));
        if failure.replica != replica {
            problems.push(Problem::new(
                "replica",
                format!(
                    "'{}' does not match the path's '{replica}'",
                    failure.replica
                ),
            ));
        }
        Problems::check(problems).map_err(|p| ApiError::BadRequest(p.to_string()))?;
        failure.reason.truncate(1024);
        failure.log.truncate(model::wire::MAX_FAILURE_LOG_LINES);
        for line in &mut failure.log {
            line.truncate(512);
        }
        self.resources.get_workload(mesh, workload).await?;
        let key = format!("{}{replica}", failures_prefix(mesh, workload));
        let bytes = serde_json::to_vec(&failure).map_err(|e| ApiError::Internal(e.to_string()))?;
        let store = self.resources.store().clone();
        crate::resources::blocking(move || store.txn(Txn::default().then(Op::Put(key, bytes))))
            .await??;
        Ok(())
    }

    pub async fn workload_failures(
        &self,
        mesh: &str,
        workload: &str,
    ) -> Result<Vec<ReplicaFailure>, ApiError> {
        Ok(read_all(self, &failures_prefix(mesh, workload))
            .await?
            .into_iter()
            .map(|(f, _)| f)
            .collect())
    }

    /// One pass over every deploy still under way (the leader's, after the canaries').
    pub(crate) async fn drive_deploys(&self, term: &Term) -> Result<(), ApiError> {
        let (kvs, _) = self.resources.range("deploys/").await?;
        for kv in kvs {
            let seen: DeployRecord = objects::decode(&kv.value)?;
            if seen.phase.is_terminal() {
                continue;
            }
            let _deploys = self.deploy_lock.lock().await;
            match self.drive_deploy(seen, kv.mod_revision, term).await {
                Ok(()) => {}
                Err(ApiError::Deposed) => return Err(ApiError::Deposed),
                Err(error) => {
                    tracing::warn!(%error, "deploy tick failed; retrying next tick");
                }
            }
        }
        Ok(())
    }

    async fn drive_deploy(
        &self,
        mut record: DeployRecord,
        mod_revision: u64,
        term: &Term,
    ) -> Result<(), ApiError> {
        let now = now_millis();
        let fence = &term.fence;
        let store = self.resources.store().clone();
        let at = key(&record.mesh, &record.name);
        match record.phase {
            DeployPhase::Starting if !record.applied => {
                match self.make_version(&record, fence).await {
                    Ok(()) => {
                        record.applied = true;
                        record.note(
                            now,
                            format!(
                                "virtualnode/{0} and workload/{0} made; waiting for its health check",
                                record.node
                            ),
                        );
                    }
                    Err(ApiError::Deposed) => return Err(ApiError::Deposed),
                    Err(error) => {
                        let why = format!("cannot make {}: {error}", record.node);
                        self.fail(&mut record, now, why, fence).await;
                    }
                }
                put_if(&store, &at, &record, mod_revision, fence).await?;
            }
            DeployPhase::Starting => {
                if let Some(failure) = self.start_failure(&record).await? {
                    self.fail(&mut record, now, failure, fence).await;
                } else if self.healthy(&record).await? {
                    let waited = Duration::from_millis(now.saturating_sub(record.created_at));
                    record.note(
                        now,
                        format!(
                            "{} is healthy after {:.1}s",
                            record.node,
                            waited.as_secs_f64()
                        ),
                    );
                    match record.stable_node.clone() {
                        Some(_) => {
                            let canary = self.start_deploy_canary(&record).await?;
                            record.note(
                                now,
                                format!(
                                    "canary {canary} started: {}% every {}s",
                                    record.spec.percentage_step, record.spec.wait_time
                                ),
                            );
                            record.canary = Some(canary);
                            record.phase = DeployPhase::Canary;
                        }
                        None => {
                            self.finish_first_deploy(&record, fence).await?;
                            record.note(
                                now,
                                format!("{} serves all traffic of {}", record.node, record.service),
                            );
                            record.phase = DeployPhase::Succeeded;
                        }
                    }
                } else if now.saturating_sub(record.created_at)
                    > record.spec.health_timeout.saturating_mul(1000)
                {
                    let why = format!(
                        "{} never passed its health check within {}s; no traffic was shifted (see `aviary logs {}`)",
                        record.node, record.spec.health_timeout, record.node
                    );
                    self.fail(&mut record, now, why, fence).await;
                } else {
                    return Ok(());
                }
                put_if(&store, &at, &record, mod_revision, fence).await?;
            }
            DeployPhase::Canary => {
                let name = record.canary.clone().unwrap_or_else(|| record.name.clone());
                let canary = match self.get_canary(&record.mesh, &name).await {
                    Ok(canary) => canary,
                    Err(ApiError::NotFound(_)) => {
                        record.phase = DeployPhase::Failed;
                        record.reason = Some(format!("its canary '{name}' was deleted"));
                        record.note(now, format!("canary {name} was deleted"));
                        put_if(&store, &at, &record, mod_revision, fence).await?;
                        return Ok(());
                    }
                    Err(error) => return Err(error),
                };
                if !canary.settled() {
                    return Ok(());
                }
                let removal = if canary.notes.is_empty() {
                    "removed"
                } else {
                    "may not be fully removed (see the canary's notes)"
                };
                let stable = record.stable_node.clone().unwrap_or_default();
                if canary.state.phase == Phase::Succeeded {
                    record.phase = DeployPhase::Succeeded;
                    record.note(
                        now,
                        format!("{} serves all traffic; {stable} {removal}", record.node),
                    );
                } else {
                    let why = canary
                        .state
                        .reason
                        .clone()
                        .unwrap_or_else(|| "no reason recorded".into());
                    record.phase = DeployPhase::RolledBack;
                    record.note(
                        now,
                        format!(
                            "rolled back ({}): {why}; {} {removal}, {stable} serves all traffic",
                            canary.state.phase, record.node
                        ),
                    );
                    record.reason = Some(why);
                }
                put_if(&store, &at, &record, mod_revision, fence).await?;
            }
            DeployPhase::Succeeded | DeployPhase::RolledBack | DeployPhase::Failed => {}
        }
        Ok(())
    }

    /// Ends a deploy that never got traffic, removing what it made.
    async fn fail(&self, record: &mut DeployRecord, now: u64, why: String, fence: &[Compare]) {
        let removed = match self.remove_new_version(record, fence).await {
            Ok(()) => format!("removed {}", record.node),
            Err(error) => format!("{} may not be fully removed: {error}", record.node),
        };
        record.note(now, format!("{why}; {removed}"));
        record.reason = Some(why);
        record.phase = DeployPhase::Failed;
    }

    /// The new version's node and workload, made if absent or different (idempotent).
    async fn make_version(&self, record: &DeployRecord, fence: &[Compare]) -> Result<(), ApiError> {
        let mesh = &record.mesh;
        let mut workload: Option<Workload> = None;
        if let Some(text) = &record.spec.config_file {
            let vars = template::Vars::new(
                &record.spec,
                record.version,
                &record.node,
                record.stable_node.as_deref(),
            );
            let manifests = template::render(text, &vars, mesh).map_err(ApiError::BadRequest)?;
            for manifest in manifests {
                match &manifest.kind {
                    model::manifest::ManifestKind::AppMesh(kind) => {
                        let path = ResourcePath {
                            kind: *kind,
                            mesh: mesh.clone(),
                            parent: manifest.parent_name().map(str::to_string),
                            name: manifest.metadata.name.clone(),
                        };
                        self.ensure(&path, &manifest.spec, fence).await?;
                    }
                    _ => {
                        let mut body = manifest.spec.clone();
                        body["name"] = json!(manifest.metadata.name);
                        let declared: Workload = serde_json::from_value(body).map_err(|e| {
                            ApiError::BadRequest(format!("config_file: {}: {e}", manifest.source))
                        })?;
                        if declared.virtual_node == record.node {
                            workload = Some(declared);
                        }
                    }
                }
            }
        }
        let node_path = ResourcePath::new(Kind::VirtualNode, mesh, None, &record.node);
        if self
            .resources
            .get_raw(&crate::records::key(&node_path))
            .await?
            .is_none()
        {
            let spec = self.node_like(record).await?;
            self.ensure(&node_path, &spec, fence).await?;
        }
        let workload = match workload {
            Some(workload) => workload,
            None => self.workload_like(record).await?,
        };
        let body =
            serde_json::to_value(&workload).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.resources
            .put_workload_fenced(mesh, &workload.name, &body, fence)
            .await
            .map(drop)
    }

    /// Creates `path` with `spec`, or updates it where its spec differs.
    async fn ensure(
        &self,
        path: &ResourcePath,
        spec: &Value,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        match self.resources.get_raw(&crate::records::key(path)).await? {
            None => {
                let body = json!({ path.kind.name_field(): path.name, "spec": spec });
                self.resources
                    .create_fenced(path, &body, fence)
                    .await
                    .map(drop)
            }
            Some(kv) => {
                let existing = crate::resources::decode(&kv.value)?;
                if existing.spec == *spec {
                    return Ok(());
                }
                self.resources
                    .update_fenced(path, &json!({ "spec": spec }), fence)
                    .await
                    .map(drop)
            }
        }
    }

    /// The serving node's spec with the new version's DNS name; a default http node on 8080
    /// with `/health` for a first deploy.
    async fn node_like(&self, record: &DeployRecord) -> Result<Value, ApiError> {
        let hostname = format!("{}.{}.local", record.node, record.mesh);
        let Some(stable) = &record.stable_node else {
            return Ok(json!({
                "listeners": [{ "portMapping": { "port": 8080, "protocol": "http" },
                    "healthCheck": { "protocol": "http", "path": "/health", "healthyThreshold": 2,
                        "unhealthyThreshold": 2, "timeoutMillis": 2000, "intervalMillis": 5000 } }],
                "serviceDiscovery": { "dns": { "hostname": hostname } },
            }));
        };
        let path = ResourcePath::new(Kind::VirtualNode, &record.mesh, None, stable);
        let (old, _) = self.resources.require(&path).await?;
        let mut spec = old.spec;
        if spec["serviceDiscovery"]["dns"].is_object() {
            spec["serviceDiscovery"]["dns"]["hostname"] = json!(hostname);
        }
        Ok(spec)
    }

    /// The serving version's workload (its env, replicas and hosts) running the new argv, with
    /// `CANARY_VERSION` set to the new version's number.
    async fn workload_like(&self, record: &DeployRecord) -> Result<Workload, ApiError> {
        let workloads = self.resources.list_workloads(&record.mesh).await?;
        let old: Vec<&Workload> = workloads
            .iter()
            .filter(|w| Some(&w.virtual_node) == record.stable_node.as_ref())
            .collect();
        let replicas = old
            .iter()
            .map(|w| w.replicas)
            .sum::<u32>()
            .clamp(1, model::wire::MAX_REPLICAS);
        Ok(Workload {
            name: record.node.clone(),
            virtual_node: record.node.clone(),
            command: record.spec.argv(),
            env: {
                // The version it is, as the template's variable says it: its answers can tell.
                let mut env = old.first().map(|w| w.env.clone()).unwrap_or_default();
                env.insert("CANARY_VERSION".into(), record.version.to_string());
                env
            },
            replicas,
            hosts: old.first().map(|w| w.hosts.clone()).unwrap_or_default(),
        })
    }

    /// A replica of the new version that could not start, or ended before it was ever
    /// healthy, since this deploy began: the reason, with the last lines of its log.
    async fn start_failure(&self, record: &DeployRecord) -> Result<Option<String>, ApiError> {
        let failures = self.workload_failures(&record.mesh, &record.node).await?;
        Ok(failures
            .into_iter()
            .filter(|f| f.at >= record.created_at)
            .min_by_key(|f| f.at)
            .map(|f| {
                let tail = f
                    .log
                    .last()
                    .map(|line| format!("; its log ends: {line}"))
                    .unwrap_or_default();
                format!(
                    "{} could not start ({}: {}){tail}",
                    record.node, f.replica, f.reason
                )
            }))
    }

    async fn healthy(&self, record: &DeployRecord) -> Result<bool, ApiError> {
        let prefix = objects::prefix(
            objects::ObjectKind::Endpoint,
            &record.mesh,
            Some(&record.node),
        );
        let endpoints: Vec<(model::wire::Endpoint, u64)> = read_all(self, &prefix).await?;
        Ok(endpoints.iter().any(|(e, _)| e.healthy))
    }

    /// The canary spec of a deploy: the file's step, wait and 5xx threshold.
    fn deploy_canary_spec(&self, record: &DeployRecord) -> Result<CanarySpec, ApiError> {
        let spec = &record.spec;
        serde_json::from_value(json!({
            "mesh": record.mesh,
            "router": record.router,
            "route": record.route,
            "stableNode": record.stable_node,
            "canaryNode": record.node,
            "strategy": {"type": "steps", "stepWeight": spec.percentage_step, "interval": format!("{}s", spec.wait_time)},
            "analysis": {
                "max5xx": spec.max_5xx(),
                "failureWindow": format!("{}s", spec.failure_threshold_time),
                // Showing a version no worse takes thousands of its requests (bench/README.md,
                // judgement): a comparing deploy gets at least half an hour.
                "progressDeadline": format!("{}s", (spec.wait_time * 10).max(if spec.compare.is_some() { 1800 } else { 600 })),
                "compare": spec.compare,
                "noTraffic": spec.no_traffic.unwrap_or(rollout::NoTraffic::Pass),
            },
            "onSuccess": {"removeStable": true},
            "onFailure": {"removeCanary": true},
        }))
        .map_err(|e| ApiError::Internal(format!("deploy canary spec: {e}")))
    }

    /// Starts the deploy's canary, named as the deploy; one that exists under that name is
    /// the one an earlier pass started.
    async fn start_deploy_canary(&self, record: &DeployRecord) -> Result<String, ApiError> {
        let spec = self.deploy_canary_spec(record)?;
        let body = json!({ "name": record.name, "spec": spec });
        match self.create_canary(&record.mesh, &body).await {
            Ok(canary) => Ok(canary.name),
            Err(ApiError::Conflict(why)) => match self.get_canary(&record.mesh, &record.name).await
            {
                Ok(canary) if canary.spec.canary_node == record.node => Ok(canary.name),
                _ => Err(ApiError::Conflict(why)),
            },
            Err(error) => Err(error),
        }
    }

    /// A first deploy without a template: router, route at 100% and service, made once the
    /// version is healthy (with a template they were made with it).
    async fn finish_first_deploy(
        &self,
        record: &DeployRecord,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        let mesh = &record.mesh;
        let router = ResourcePath::new(Kind::VirtualRouter, mesh, None, &record.router);
        let route = ResourcePath::new(
            Kind::Route,
            mesh,
            Some(record.router.clone()),
            &record.route,
        );
        let service = ResourcePath::new(Kind::VirtualService, mesh, None, &record.service);
        if record.spec.config_file.is_none() {
            self.ensure(
                &router,
                &json!({ "listeners": [{ "portMapping": { "port": 8080, "protocol": "http" } }] }),
                fence,
            )
            .await?;
            self.ensure(
                &route,
                &json!({ "httpRoute": { "match": { "prefix": "/" },
                    "action": { "weightedTargets": [{ "virtualNode": record.node, "weight": 100 }] } } }),
                fence,
            )
            .await?;
            self.ensure(
                &service,
                &json!({ "provider": { "virtualRouter": { "virtualRouterName": record.router } } }),
                fence,
            )
            .await?;
        }
        Ok(())
    }

    /// The new version's workload, and its node unless something still refers to it.
    async fn remove_new_version(
        &self,
        record: &DeployRecord,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        let mesh = &record.mesh;
        if let Some(stable) = &record.stable_node {
            // The template may have put it on the route at weight 0: take it off first.
            let spec = self.deploy_canary_spec(record)?;
            return match self
                .remove_version(&spec, &record.node, stable, fence)
                .await
            {
                Ok(()) | Err(ApiError::NotFound(_)) => Ok(()),
                Err(error) => Err(error),
            };
        }
        match self
            .resources
            .delete_workload_fenced(mesh, &record.node, fence)
            .await
        {
            Ok(()) | Err(ApiError::NotFound(_)) => {}
            Err(error) => return Err(error),
        }
        let node = ResourcePath::new(Kind::VirtualNode, mesh, None, &record.node);
        match self.resources.delete_fenced(&node, fence).await {
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The ended deploys (name, mod revision) to remove so that, with one more, at most
/// [`KEPT_DEPLOYS`] ended ones stay: the oldest first. Deploys under way always stay.
fn to_forget(mut existing: Vec<(DeployRecord, u64)>) -> Vec<(String, u64)> {
    existing.retain(|(d, _)| d.phase.is_terminal());
    let excess = (existing.len() + 1).saturating_sub(KEPT_DEPLOYS);
    existing.sort_by_key(|(d, _)| d.created_at);
    existing
        .into_iter()
        .take(excess)
        .map(|(d, revision)| (d.name, revision))
        .collect()
}

/// `1 + the highest N of the nodes named <svc>-<N>`; a version removed after a rollback is
/// free again, so the counter advances only with a version that stays.
fn next_version(svc: &str, nodes: &[String]) -> u64 {
    let prefix = format!("{svc}-");
    nodes
        .iter()
        .filter_map(|n| n.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1
}

#[cfg(test)]
mod tests;
