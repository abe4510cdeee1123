//! `Resources`: the App Mesh resource operations (create, describe, update, delete, list, tags)
//! over the store, with validation, references and in-use checks.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use model::{Kind, Problem, Problems};
use serde_json::{Value, json};
use store::{Compare, Op, Store, Txn};

use crate::consistency::Guard;

use crate::endpoints;
use crate::error::ApiError;
use crate::objects::{self, ObjectKind};
use model::ResourcePath;
use model::wire::Workload;

use crate::records::{
    Metadata, Record, Tag, arn, key, kind_prefix, mesh_prefix, path_from_arn, path_from_key,
};

/// Largest `tags` list App Mesh allows on one resource (TagList max).
const MAX_TAGS: usize = 50;

/// Who owns what we create: App Mesh needs an account and region for ARNs; locally they are
/// fixed strings chosen at start-up.
#[derive(Debug, Clone)]
pub struct Identity {
    pub account: String,
    pub region: String,
}

pub struct Resources {
    store: Arc<dyn Store>,
    identity: Identity,
}

/// A page of a list operation: App Mesh `*Ref` shapes and the token for the next page.
pub struct Page {
    pub items: Vec<Value>,
    pub next_token: Option<String>,
}

impl Resources {
    pub fn new(store: Arc<dyn Store>, identity: Identity) -> Resources {
        Resources { store, identity }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn describe(&self, id: &ResourcePath) -> Result<Value, ApiError> {
        validate_names(id)?;
        self.check_scope(id).await?;
        let (record, _) = self.require(id).await?;
        Ok(record.data(id, "ACTIVE"))
    }

    /// `body` is the whole request body of `Create<Kind>`; `id.name` was taken from it.
    pub async fn create(&self, id: &ResourcePath, body: &Value) -> Result<Value, ApiError> {
        self.create_fenced(id, body, &[]).await
    }

    /// [`Resources::create`] for a leader's deploy: the write also carries `fence`.
    pub(crate) async fn create_fenced(
        &self,
        id: &ResourcePath,
        body: &Value,
        fence: &[Compare],
    ) -> Result<Value, ApiError> {
        validate_request(&id.kind.operation("Create"), id, body)?;
        let spec = spec_of(id.kind, body);
        let client_token = body["clientToken"].as_str().map(str::to_string);
        let tags = &tags_of(body)?;
        let (spec, client_token) = (&spec, &client_token);

        self.guarded(&id.mesh, fence, |guard| async move {
            self.check_scope(id).await?;
            if let Some((existing, _)) = self.read(id).await? {
                // A retried create (same token, same spec) answers what the first one made; a
                // token reused for a different spec is a conflict, as the service model says.
                if client_token.is_some()
                    && existing.client_token == *client_token
                    && existing.spec == *spec
                {
                    return Ok(existing.data(id, "ACTIVE"));
                }
                return Err(ApiError::Conflict(format!("{} already exists", id)));
            }
            self.check_references(id, spec).await?;

            let now = now_seconds();
            let record = Record {
                spec: spec.clone(),
                metadata: Metadata {
                    arn: arn(id, &self.identity.region, &self.identity.account),
                    uid: uuid::Uuid::new_v4().to_string(),
                    version: 1,
                    created_at: now,
                    last_updated_at: now,
                    mesh_owner: self.identity.account.clone(),
                    resource_owner: self.identity.account.clone(),
                },
                tags: tags.clone(),
                client_token: client_token.clone(),
            };
            self.write(&guard, id, &record, 0).await?;
            Ok(record.data(id, "ACTIVE"))
        })
        .await
    }

    pub async fn update(&self, id: &ResourcePath, body: &Value) -> Result<Value, ApiError> {
        self.update_fenced(id, body, &[]).await
    }

    /// [`Resources::update`] for a leader's canary: the write also carries `fence`.
    pub(crate) async fn update_fenced(
        &self,
        id: &ResourcePath,
        body: &Value,
        fence: &[Compare],
    ) -> Result<Value, ApiError> {
        validate_request(&id.kind.operation("Update"), id, body)?;
        self.guarded(&id.mesh, fence, |guard| async move {
            self.check_scope(id).await?;
            let (mut record, mod_revision) = self.require(id).await?;
            if id.kind != Kind::Mesh || given_spec(body).is_some() {
                record.spec = spec_of(id.kind, body);
            }
            self.check_references(id, &record.spec).await?;
            record.metadata.version += 1;
            record.metadata.last_updated_at = now_seconds();
            self.write(&guard, id, &record, mod_revision).await?;
            Ok(record.data(id, "ACTIVE"))
        })
        .await
    }

    pub async fn delete(&self, id: &ResourcePath) -> Result<Value, ApiError> {
        self.delete_fenced(id, &[]).await
    }

    /// [`Resources::delete`] for a leader's canary: the write also carries `fence`.
    pub(crate) async fn delete_fenced(
        &self,
        id: &ResourcePath,
        fence: &[Compare],
    ) -> Result<Value, ApiError> {
        validate_names(id)?;
        self.guarded(&id.mesh, fence, |guard| async move {
            self.check_scope(id).await?;
            let (record, mod_revision) = self.require(id).await?;
            let dependents = self.dependents(id).await?;
            if !dependents.is_empty() {
                let shown: Vec<&str> = dependents.iter().take(5).map(String::as_str).collect();
                let more = dependents.len().saturating_sub(shown.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                return Err(ApiError::ResourceInUse(format!(
                    "{} is in use by {}{more}; delete or change those first",
                    id,
                    shown.join(", ")
                )));
            }
            let mut ops = vec![Op::Delete(key(id))];
            if id.kind == Kind::VirtualNode {
                // Endpoints are runtime registrations of the node: they go with it.
                let (endpoints, _) = self
                    .range(&endpoints::node_prefix(&id.mesh, &id.name))
                    .await?;
                ops.extend(endpoints.into_iter().map(|kv| Op::Delete(kv.key)));
            }
            if id.kind == Kind::Mesh {
                // A mesh with no nodes has no deploy under way: its history goes with it.
                let (deploys, _) = self.range(&format!("deploys/{}/", id.mesh)).await?;
                ops.extend(deploys.into_iter().map(|kv| Op::Delete(kv.key)));
            }
            let txn = Txn {
                compares: vec![Compare::ModRevision(key(id), mod_revision)],
                ops,
            };
            self.commit_guarded(&guard, txn).await?;
            Ok(record.data(id, "DELETED"))
        })
        .await
    }

    /// Lists `kind` in the scope of `id` (mesh and parent; `id.name` unused), sorted by name.
    /// The names of every resource of `id.kind` in its scope (mesh, or router/gateway).
    pub(crate) async fn list_names(&self, id: &ResourcePath) -> Result<Vec<String>, ApiError> {
        let prefix = kind_prefix(&id.mesh, id.kind, id.parent.as_deref());
        let (kvs, _) = self.range(&prefix).await?;
        Ok(kvs
            .iter()
            .filter_map(|kv| path_from_key(&kv.key))
            .filter(|found| found.kind == id.kind)
            .map(|found| found.name)
            .collect())
    }

    pub async fn list(
        &self,
        id: &ResourcePath,
        limit: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        if id.kind != Kind::Mesh {
            self.check_scope(id).await?;
        }
        let prefix = match id.kind {
            Kind::Mesh => "meshes/".to_string(),
            kind => kind_prefix(&id.mesh, kind, id.parent.as_deref()),
        };
        let (kvs, _) = self.range(&prefix).await?;
        let mut records = Vec::new();
        for kv in kvs {
            let Some(found) = path_from_key(&kv.key) else {
                continue;
            };
            if found.kind == id.kind {
                records.push((found, decode(&kv.value)?));
            }
        }
        let after = match next_token {
            Some(token) => Some(decode_token(token)?),
            None => None,
        };
        let limit = limit.unwrap_or(usize::MAX);
        let mut remaining = records
            .into_iter()
            .filter(|(found, _)| after.as_ref().is_none_or(|after| &found.name > after));
        let items: Vec<(ResourcePath, Record)> = remaining.by_ref().take(limit).collect();
        let next_token = match (remaining.next(), items.last()) {
            (Some(_), Some((last, _))) => Some(encode_token(&last.name)),
            _ => None,
        };
        Ok(Page {
            items: items.iter().map(|(id, r)| r.reference(id)).collect(),
            next_token,
        })
    }

    pub async fn list_tags(&self, arn: &str) -> Result<Vec<Tag>, ApiError> {
        let id = id_from_arn(arn)?;
        Ok(self.require(&id).await?.0.tags)
    }

    pub async fn tag(&self, arn: &str, body: &Value) -> Result<(), ApiError> {
        validate_body("TagResource", body)?;
        let new_tags = tags_of(body)?;
        let id = &id_from_arn(arn)?;
        let new_tags = &new_tags;
        self.guarded(&id.mesh, &[], |guard| async move {
            let (mut record, mod_revision) = self.require(id).await?;
            for tag in new_tags.iter().cloned() {
                match record.tags.iter_mut().find(|t| t.key == tag.key) {
                    Some(existing) => existing.value = tag.value,
                    None => record.tags.push(tag),
                }
            }
            if record.tags.len() > MAX_TAGS {
                return Err(ApiError::TooManyTags(format!(
                    "{} would have {} tags; at most {MAX_TAGS} are allowed",
                    id,
                    record.tags.len()
                )));
            }
            self.write(&guard, id, &record, mod_revision).await
        })
        .await
    }

    pub async fn untag(&self, arn: &str, body: &Value) -> Result<(), ApiError> {
        validate_body("UntagResource", body)?;
        let id = id_from_arn(arn)?;
        let keys: Vec<&str> = body["tagKeys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let (id, keys) = (&id, &keys);
        self.guarded(&id.mesh, &[], |guard| async move {
            let (mut record, mod_revision) = self.require(id).await?;
            record.tags.retain(|t| !keys.contains(&t.key.as_str()));
            self.write(&guard, id, &record, mod_revision).await
        })
        .await
    }

    /// The mesh (and the parent router or gateway) must exist before anything in it is touched.
    /// Only the scope's names are checked here: a list has no own name.
    pub(crate) async fn check_scope(&self, id: &ResourcePath) -> Result<(), ApiError> {
        into_result(scope_problems(id))?;
        if id.kind == Kind::Mesh {
            return Ok(());
        }
        let mesh = ResourcePath::mesh(&id.mesh);
        self.require(&mesh).await?;
        if let (Some(parent_kind), Some(parent)) = (id.kind.parent(), &id.parent) {
            let parent = ResourcePath {
                kind: parent_kind,
                mesh: id.mesh.clone(),
                parent: None,
                name: parent.clone(),
            };
            self.require(&parent).await?;
        }
        Ok(())
    }

    /// Every resource the spec names must exist; a missing one is App Mesh's
    /// `NotFoundException` (404), all of them named at once with the field that names them.
    async fn check_references(&self, id: &ResourcePath, spec: &Value) -> Result<(), ApiError> {
        let mut missing = Vec::new();
        for site in model::reference_sites(id.kind, spec) {
            let target = ResourcePath::new(site.kind, &id.mesh, None, &site.name);
            if self.read(&target).await?.is_none() {
                missing.push(Problem::new(site.path, format!("{target} does not exist")));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::missing(&missing))
        }
    }

    /// What would dangle if `id` went away: its children (routes of a router, gateway routes of
    /// a gateway, everything of a mesh) and every resource whose spec refers to it.
    /// Workloads count too: they name the node they run.
    async fn dependents(&self, id: &ResourcePath) -> Result<Vec<String>, ApiError> {
        let (kvs, _) = self.range(&mesh_prefix(&id.mesh)).await?;
        let mut dependents = Vec::new();
        for kv in kvs {
            if let Some(object) = objects::parse_key(&kv.key) {
                let runs_node = || -> Result<bool, ApiError> {
                    let workload: Workload = objects::decode(&kv.value)?;
                    Ok(id.kind == Kind::VirtualNode && workload.virtual_node == id.name)
                };
                if object.kind == ObjectKind::Workload && (id.kind == Kind::Mesh || runs_node()?) {
                    dependents.push(format!("workload '{}'", object.name));
                }
                continue;
            }
            let Some(other) = path_from_key(&kv.key) else {
                continue;
            };
            if &other == id {
                continue;
            }
            let is_child = id.kind == Kind::Mesh
                || (other.kind.parent() == Some(id.kind)
                    && other.parent.as_deref() == Some(&id.name));
            let refers = || -> Result<bool, ApiError> {
                let record = decode(&kv.value)?;
                Ok(model::references(other.kind, &record.spec)
                    .iter()
                    .any(|(kind, name)| *kind == id.kind && *name == id.name))
            };
            if is_child || refers()? {
                dependents.push(other.to_string());
            }
        }
        if id.kind == Kind::Mesh {
            // A pipeline deploys into its mesh: it must be deleted first, by its owner.
            let (pipelines, _) = self.range(&format!("pipelines/{}/", id.mesh)).await?;
            for kv in pipelines {
                let name = kv.key.rsplit('/').next().unwrap_or_default();
                dependents.push(format!("pipeline '{name}'"));
            }
        }
        Ok(dependents)
    }

    pub(crate) async fn require(&self, id: &ResourcePath) -> Result<(Record, u64), ApiError> {
        self.read(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("{id} not found")))
    }

    async fn read(&self, id: &ResourcePath) -> Result<Option<(Record, u64)>, ApiError> {
        let kv = self.get_raw(&key(id)).await?;
        kv.map(|kv| Ok((decode(&kv.value)?, kv.mod_revision)))
            .transpose()
    }

    pub(crate) async fn get_raw(&self, key: &str) -> Result<Option<store::KeyValue>, ApiError> {
        let store = self.store.clone();
        let key = key.to_string();
        Ok(blocking(move || store.get(&key)).await??)
    }

    pub(crate) async fn range(
        &self,
        prefix: &str,
    ) -> Result<(Vec<store::KeyValue>, u64), ApiError> {
        let store = self.store.clone();
        let prefix = prefix.to_string();
        Ok(blocking(move || store.range(&prefix)).await??)
    }

    /// Stores `record` if the key's mod revision is still `expected` (0: absent).
    async fn write(
        &self,
        guard: &Guard,
        id: &ResourcePath,
        record: &Record,
        expected: u64,
    ) -> Result<(), ApiError> {
        let value = serde_json::to_vec(record).map_err(|e| ApiError::Internal(e.to_string()))?;
        let txn = Txn {
            compares: vec![Compare::ModRevision(key(id), expected)],
            ops: vec![Op::Put(key(id), value)],
        };
        self.commit_guarded(guard, txn).await.map(drop)
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))
}

pub fn decode(bytes: &[u8]) -> Result<Record, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::Internal(format!("corrupt record: {e}")))
}

/// The names of the scope a resource lives in: its mesh, and its router or gateway.
fn scope_problems(id: &ResourcePath) -> Vec<Problem> {
    let mut problems = model::validate_name("meshName", &id.mesh);
    if let (Some(parent_kind), Some(parent)) = (id.kind.parent(), &id.parent) {
        problems.extend(model::validate_name(parent_kind.name_field(), parent));
    }
    problems
}

/// Every name in the path (and, for a create, the one taken from the body): mesh, parent, own.
/// An empty name is a problem like any other, so `.../virtualNodes/` never means a node ''.
fn name_problems(id: &ResourcePath) -> Vec<Problem> {
    let mut problems = scope_problems(id);
    if id.kind != Kind::Mesh {
        problems.extend(model::validate_name(id.kind.name_field(), &id.name));
    }
    problems
}

pub(crate) fn validate_names(id: &ResourcePath) -> Result<(), ApiError> {
    into_result(name_problems(id))
}

fn validate_body(operation: &str, body: &Value) -> Result<(), ApiError> {
    into_result(model::validate_input_body(operation, body))
}

/// Path names, the body against the operation's input shape, and the spec's semantic rules,
/// all reported at once.
fn validate_request(operation: &str, id: &ResourcePath, body: &Value) -> Result<(), ApiError> {
    if let Some(too_big) = body
        .get("spec")
        .and_then(|spec| model::size_problem("spec", spec))
    {
        // Checked first and alone: walking an oversize spec against the model is the cost the
        // limit avoids.
        let mut problems = name_problems(id);
        problems.push(too_big);
        return into_result(problems);
    }
    let own_field = id.kind.name_field();
    // A create takes its own name from the body: when that is no string, the body check says
    // so ("is required", "must be a string"), and "must have at least 1 character" would only
    // repeat it.
    let name_is_no_string =
        operation.starts_with("Create") && !body.get(own_field).is_some_and(Value::is_string);
    let mut problems: Vec<Problem> = name_problems(id)
        .into_iter()
        .filter(|p| !(name_is_no_string && p.path == own_field))
        .collect();
    for problem in model::validate_input_body(operation, body) {
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    if let Some(spec) = given_spec(body) {
        for problem in model::validate_spec(id.kind, spec) {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    into_result(problems)
}

fn into_result(problems: Vec<Problem>) -> Result<(), ApiError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::BadRequest(Problems(problems).to_string()))
    }
}

/// The body's `spec`; a `null` one counts as absent, as every `null` member does.
fn given_spec(body: &Value) -> Option<&Value> {
    body.get("spec").filter(|spec| !spec.is_null())
}

/// A mesh created without a spec is stored with `{}`, as App Mesh describes it back.
fn spec_of(kind: Kind, body: &Value) -> Value {
    match given_spec(body) {
        Some(spec) => spec.clone(),
        None if kind == Kind::Mesh => json!({}),
        None => Value::Null,
    }
}

fn tags_of(body: &Value) -> Result<Vec<Tag>, ApiError> {
    match body.get("tags").filter(|tags| !tags.is_null()) {
        None => Ok(Vec::new()),
        Some(tags) => serde_json::from_value(tags.clone())
            .map_err(|e| ApiError::BadRequest(format!("tags: {e}"))),
    }
}

fn id_from_arn(arn: &str) -> Result<ResourcePath, ApiError> {
    let id = path_from_arn(arn).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "resourceArn: '{arn}' is not an App Mesh resource ARN"
        ))
    })?;
    validate_names(&id)?;
    Ok(id)
}

/// Page tokens are opaque to callers; inside they carry the last name of the previous page.
fn encode_token(last_name: &str) -> String {
    last_name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::BadRequest(format!("nextToken: '{token}' is not a valid token"));
    // Pairs of bytes, not of chars: slicing a str at an odd byte panics inside a character.
    let digits = token.as_bytes();
    if !digits.len().is_multiple_of(2) || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid());
    }
    let bytes = digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            u8::from_str_radix(pair, 16).map_err(|_| invalid())
        })
        .collect::<Result<Vec<u8>, _>>()?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

pub(crate) fn now_seconds() -> f64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Millisecond precision, as App Mesh answers.
    (since_epoch.as_millis() as f64) / 1000.0
}
