//! Workloads: how to run the replicas of a virtual node, stored for the supervisor to act on.

use model::wire::{MAX_HOSTS, MAX_REPLICAS, Workload};
use model::{Kind, Problem, Problems, ResourcePath};
use serde_json::Value;
use store::{Compare, Op, Txn};

use crate::error::ApiError;
use crate::objects::{self, ObjectKind};
use crate::resources::Resources;

impl Resources {
    /// Creates or replaces a workload; its virtual node must exist.
    pub async fn put_workload(
        &self,
        mesh: &str,
        name: &str,
        body: &Value,
    ) -> Result<Workload, ApiError> {
        self.put_workload_fenced(mesh, name, body, &[]).await
    }

    /// [`Resources::put_workload`] for a leader's deploy: the write also carries `fence`.
    pub(crate) async fn put_workload_fenced(
        &self,
        mesh: &str,
        name: &str,
        body: &Value,
        fence: &[Compare],
    ) -> Result<Workload, ApiError> {
        let mut problems = model::validate_name("name", name);
        if let Some(too_big) = model::size_problem("workload", body) {
            problems.push(too_big);
            return Err(ApiError::BadRequest(Problems(problems).to_string()));
        }
        let mut body = body.clone();
        if let Some(fields) = body.as_object_mut() {
            match fields.get("name").and_then(Value::as_str) {
                Some(given) if given != name => problems.push(Problem::new(
                    "name",
                    format!("'{given}' does not match the path's '{name}'"),
                )),
                _ => {
                    fields.insert("name".into(), name.into());
                }
            }
        }
        let workload = match model::wire::strict::<Workload>(body) {
            Ok(workload) => {
                problems.extend(validate(&workload));
                Some(workload)
            }
            Err(e) => {
                problems.push(Problem::new("spec", e.to_string()));
                None
            }
        };
        let workload = match workload {
            Some(workload) if problems.is_empty() => workload,
            _ => return Err(ApiError::BadRequest(Problems(problems).to_string())),
        };
        let value = serde_json::to_vec(&workload).map_err(|e| ApiError::Internal(e.to_string()))?;
        let node = ResourcePath::new(Kind::VirtualNode, mesh, None, &workload.virtual_node);
        let (node, value) = (&node, &value);
        self.guarded(mesh, fence, |guard| async move {
            self.require(&ResourcePath::mesh(mesh)).await?;
            if self.require(node).await.is_err() {
                // A reference to what does not exist is a 404, as App Mesh answers for its own.
                return Err(ApiError::NotFound(format!(
                    "virtualNode: {node} does not exist"
                )));
            }
            let key = objects::key(ObjectKind::Workload, mesh, None, name);
            let txn = Txn::default().then(Op::Put(key, value.clone()));
            self.commit_guarded(&guard, txn).await
        })
        .await?;
        Ok(workload)
    }

    pub async fn get_workload(&self, mesh: &str, name: &str) -> Result<Workload, ApiError> {
        let key = objects::key(ObjectKind::Workload, mesh, None, name);
        match self.get_raw(&key).await? {
            Some(kv) => objects::decode(&kv.value),
            None => Err(not_found(mesh, name)),
        }
    }

    pub async fn delete_workload(&self, mesh: &str, name: &str) -> Result<(), ApiError> {
        self.delete_workload_fenced(mesh, name, &[]).await
    }

    /// [`Resources::delete_workload`] for a leader's canary: the write also carries `fence`.
    pub(crate) async fn delete_workload_fenced(
        &self,
        mesh: &str,
        name: &str,
        fence: &[Compare],
    ) -> Result<(), ApiError> {
        let key = &objects::key(ObjectKind::Workload, mesh, None, name);
        self.guarded(mesh, fence, |guard| async move {
            if self.get_raw(key).await?.is_none() {
                return Err(not_found(mesh, name));
            }
            // Its replicas' failure reports go with it: a workload made again under the name
            // starts with none.
            let (failures, _) = self
                .range(&crate::deploys::failures_prefix(mesh, name))
                .await?;
            let mut txn = Txn::default().then(Op::Delete(key.clone()));
            for kv in failures {
                txn = txn.then(Op::Delete(kv.key));
            }
            self.commit_guarded(&guard, txn).await.map(drop)
        })
        .await
    }

    pub async fn list_workloads(&self, mesh: &str) -> Result<Vec<Workload>, ApiError> {
        self.require(&ResourcePath::mesh(mesh)).await?;
        let (kvs, _) = self
            .range(&objects::prefix(ObjectKind::Workload, mesh, None))
            .await?;
        kvs.iter().map(|kv| objects::decode(&kv.value)).collect()
    }
}

fn not_found(mesh: &str, name: &str) -> ApiError {
    ApiError::NotFound(format!("workload '{name}' not found in mesh '{mesh}'"))
}

/// Every problem with a workload's own fields (the node's existence is checked at write time).
pub fn validate(workload: &Workload) -> Vec<Problem> {
    let mut problems = model::validate_name("virtualNode", &workload.virtual_node);
    match workload.command.first() {
        None => problems.push(Problem::new("command", "must name a program")),
        Some(program) if program.trim().is_empty() => {
            problems.push(Problem::new("command[0]", "must name a program"))
        }
        Some(_) => {}
    }
    if workload.command.iter().any(|arg| arg.contains('\0')) {
        problems.push(Problem::new("command", "arguments must not contain NUL"));
    }
    for key in workload.env.keys() {
        if key.is_empty() || key.contains(['=', '\0']) {
            problems.push(Problem::new(
                format!("env.{key}"),
                "is not a valid variable name",
            ));
        }
    }
    for (i, host) in workload.hosts.iter().enumerate() {
        problems.extend(model::validate_name(&format!("hosts[{i}]"), host));
        if workload.hosts[..i].contains(host) {
            problems.push(Problem::new(
                format!("hosts[{i}]"),
                format!("'{host}' is named twice"),
            ));
        }
    }
    if workload.hosts.len() > MAX_HOSTS {
        problems.push(Problem::new(
            "hosts",
            format!("must name at most {MAX_HOSTS} hosts"),
        ));
    }
    if workload.replicas > MAX_REPLICAS {
        problems.push(Problem::new(
            "replicas",
            format!("must be at most {MAX_REPLICAS}"),
        ));
    }
    problems
}
