//! aviary's own `/v1` API for proxies: a mesh snapshot at one revision, and a server-sent-event
//! watch stream of every later change.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use store::{EventKind, StoreError};

use crate::App;
use crate::appmesh::json_response;
use crate::auth::{Caller, Role, tokens};
use crate::body::{MAX_BODY_BYTES, read_json};
use crate::error::ApiError;

use crate::objects::{self, ObjectKind};
use crate::records::{mesh_prefix, path_from_key};
use crate::resources::{blocking, decode};
use crate::stats::{check_known, check_report};
use model::ResourcePath;
use model::wire::{
    ApproveBody, CanaryCommand, CanaryList, Change, CommandBody, CreatePipeline, DeployList,
    DeploySpec, EndpointList, MAX_REPORT_BYTES, MeshSnapshot, Object, Op, PipelineList, Raw,
    Relist, ReplicaFailures, RunList, StageName, StatsReport, WatchEvent, Workload, WorkloadList,
};

/// axum's `Path`, but a segment it cannot decode (invalid UTF-8 once percent-decoded) is
/// answered like every other bad name: a 400 in App Mesh's error shape naming the segment. A
/// `{mesh}` segment is also checked as a mesh name here, once for every `/v1` handler.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => {
                // Path decoded every segment already, so the raw params decode too.
                if let Ok(raw) = RawPathParams::from_request_parts(parts, state).await
                    && let Some((_, mesh)) = raw.iter().find(|(key, _)| *key == "mesh")
                {
                    check_mesh(mesh)?;
                }
                Ok(ApiPath(value))
            }
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => Err(ApiError::BadRequest(format!(
                    "{key}: is not valid UTF-8 once percent-decoded"
                ))),
                _ => Err(ApiError::BadRequest(format!("path: {}", e.body_text()))),
            },
            Err(other) => Err(ApiError::BadRequest(format!("path: {}", other.body_text()))),
        }
    }
}

/// Idle streams carry a comment this often, so dead peers are noticed and proxies between
/// us keep the connection open.
const KEEPALIVE: Duration = Duration::from_secs(15);

pub async fn snapshot(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ApiPath(mesh): ApiPath<String>,
) -> Result<Response, ApiError> {
    let store = app.resources.store().clone();
    let prefix = mesh_prefix(&mesh);
    let (kvs, revision) = tokio::task::spawn_blocking(move || store.range(&prefix))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut snapshot = MeshSnapshot {
        revision,
        ..MeshSnapshot::default()
    };
    for kv in kvs {
        if let Some(object) = objects::parse_key(&kv.key) {
            match object.kind {
                ObjectKind::Endpoint => snapshot.endpoints.push(objects::decode(&kv.value)?),
                ObjectKind::Workload => snapshot
                    .workloads
                    .push(visible(caller.role, objects::decode(&kv.value)?)),
                ObjectKind::Canary => snapshot
                    .canaries
                    .push(Raw::from_value(objects::decode(&kv.value)?)),
            }
            continue;
        }
        let Some(id) = path_from_key(&kv.key) else {
            continue;
        };
        let data = decode(&kv.value)?.data(&id, "ACTIVE");
        match snapshot.resources_mut(id.kind) {
            Some(list) => list.push(data),
            None => snapshot.mesh = Some(data),
        }
    }
    if snapshot.mesh.is_none() {
        return Err(ApiError::NotFound(format!("mesh '{mesh}' not found")));
    }
    Ok(json_response(StatusCode::OK, &snapshot))
}

/// `GET /v1/meshes/{mesh}/watch?fromRevision=R`: every change after R, in order, exactly once.
/// A client that asks for history we no longer hold, or falls behind it, gets `event: relist`
/// and the stream ends: it must fetch a new snapshot. Nothing is ever skipped silently.
pub async fn watch(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ApiPath(mesh): ApiPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let store = app.resources.store().clone();
    let from = match query.get("fromRevision") {
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "fromRevision: must be a non-negative integer, got '{raw}'"
            ))
        })?),
        None => None,
    };
    let role = caller.role;
    let guard = app.telemetry.watch_opened();
    let shutdown = app.shutdown.clone();
    // Both may be a network round trip (etcd): off the async workers.
    let prefix = mesh_prefix(&mesh);
    let (from, opened) = crate::resources::blocking(move || {
        let from = from.unwrap_or_else(|| store.revision());
        (from, store.watch(&prefix, from))
    })
    .await?;
    let first = match opened {
        Ok(watcher) => Ok(watcher),
        Err(StoreError::Compacted { oldest, .. }) => Err(relist(from, oldest)),
        Err(other) => return Err(other.into()),
    };
    let stream = futures_util::stream::unfold(
        (first, guard, shutdown),
        move |(state, guard, shutdown)| async move {
            let mut watcher = match state {
                Ok(watcher) => watcher,
                // The relist event was sent; end the stream.
                Err(None) => return None,
                Err(Some(relist)) => return Some((Ok(relist), (Err(None), guard, shutdown))),
            };
            let chunk = tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(KEEPALIVE) => Bytes::from_static(b": keepalive\n\n"),
                next = watcher.next() => match next {
                    None => return None,
                    Some(Ok((revision, events))) => encode_batch(revision, &events, role),
                    Some(Err(StoreError::Compacted { requested, oldest })) => {
                        return Some((Ok(relist(requested, oldest).unwrap_or_default()), (Err(None), guard, shutdown)));
                    }
                    Some(Err(other)) => {
                        tracing::error!(error = %other, "watch failed");
                        return None;
                    }
                },
            };
            Some((Ok::<_, Infallible>(chunk), (Ok(watcher), guard, shutdown)))
        },
    );
    // A comment first: the answer's head goes out now, not with the first change, so a client
    // knows at once that it is watching (Firefox's EventSource opens only then).
    let opened = futures_util::stream::once(async { Ok(Bytes::from_static(b": watching\n\n")) });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(futures_util::StreamExt::chain(opened, stream)),
    )
        .into_response())
}

fn relist(requested: u64, oldest: u64) -> Option<Bytes> {
    let event = WatchEvent::Relist(Relist::new(requested, oldest));
    Some(Bytes::from(event.to_sse()))
}

fn encode_batch(revision: u64, events: &[store::Event], role: Role) -> Bytes {
    let mut out = String::new();
    for event in events {
        if let Some(change) = change_of(revision, event, role) {
            out.push_str(&WatchEvent::Change(change).to_sse());
        }
    }
    Bytes::from(out)
}

/// The change one store event made, as watchers see it; `None` for keys that are no resource
/// or object of the mesh, and for a put whose value does not read (logged).
fn change_of(revision: u64, event: &store::Event, role: Role) -> Option<Change> {
    let put = matches!(event.kind, EventKind::Put);
    let bytes = &event.kv.value;
    let (mesh, parent, name, kind, object) = if let Some(key) = objects::parse_key(&event.kv.key) {
        let object = match key.kind {
            _ if !put => None,
            ObjectKind::Endpoint => objects::decode(bytes).ok().map(Object::Endpoint),
            ObjectKind::Workload => objects::decode(bytes)
                .ok()
                .map(|w| Object::Workload(visible(role, w))),
            ObjectKind::Canary => objects::decode(bytes)
                .ok()
                .map(|v| Object::Canary(Raw::from_value(v))),
        };
        let (mesh, parent, name) = (
            key.mesh.to_string(),
            key.parent.map(str::to_string),
            key.name.to_string(),
        );
        (
            mesh,
            parent,
            name,
            model::wire::ObjectKind::Aviary(key.kind),
            object,
        )
    } else {
        let path = path_from_key(&event.kv.key)?;
        let object = put
            .then(|| decode(bytes).ok())
            .flatten()
            .map(|r| Object::of_app_mesh(path.kind, r.data(&path, "ACTIVE")));
        let kind = model::wire::ObjectKind::AppMesh(path.kind);
        (path.mesh, path.parent, path.name, kind, object)
    };
    let op = match (put, object) {
        (false, _) => Op::Delete(kind),
        (true, Some(object)) => Op::Put(object),
        (true, None) => {
            tracing::error!(key = %event.kv.key, revision, "a stored value does not read; left out of the watch");
            return None;
        }
    };
    Some(Change {
        revision,
        mesh,
        parent,
        name,
        op,
    })
}

pub async fn put_endpoint(
    State(app): State<Arc<App>>,
    ApiPath((mesh, node, id)): ApiPath<(String, String, String)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_BODY_BYTES).await?;
    let endpoint = app.resources.put_endpoint(&mesh, &node, &id, &body).await?;
    Ok(json_response(StatusCode::OK, &endpoint))
}

pub async fn delete_endpoint(
    State(app): State<Arc<App>>,
    ApiPath((mesh, node, id)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    app.resources.delete_endpoint(&mesh, &node, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn create_canary(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_BODY_BYTES).await?;
    let canary = app.create_canary(&mesh, &body).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &app.canary_view(canary).await,
    ))
}

pub async fn list_canaries(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
) -> Result<Response, ApiError> {
    let mut canaries = Vec::new();
    for record in app.list_canaries(&mesh).await? {
        canaries.push(app.canary_view(record).await);
    }
    Ok(json_response(StatusCode::OK, &CanaryList { canaries }))
}

pub async fn get_canary(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let canary = app.get_canary(&mesh, &name).await?;
    Ok(json_response(
        StatusCode::OK,
        &app.canary_view(canary).await,
    ))
}

/// `POST .../canaries/{name}/pause|resume|promote|abort`, optional body `{"reason": "..."}`.
pub async fn command_canary(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name, command)): ApiPath<(String, String, String)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let Some(command) = CanaryCommand::parse(&command) else {
        return Err(ApiError::NotFound(format!(
            "no canary command '{command}'; use pause, resume, promote or abort"
        )));
    };
    let body = read_json(request, MAX_BODY_BYTES).await?;
    // Strict, as every request body: `{"reson": ...}` is a 400, not an abort without a reason.
    let reason = model::wire::strict::<CommandBody>(body)
        .map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
        .reason;
    let canary = app.command_canary(&mesh, &name, command, reason).await?;
    Ok(json_response(
        StatusCode::OK,
        &app.canary_view(canary).await,
    ))
}

pub async fn create_deploy(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_BODY_BYTES).await?;
    if let Some(too_big) = model::size_problem("deploy", &body) {
        return Err(ApiError::BadRequest(too_big.to_string()));
    }
    let spec = serde_json::from_value::<DeploySpec>(body)
        .map_err(|e| ApiError::BadRequest(format!("not a deploy.json: {e}")))?;
    let deploy = app.create_deploy(&mesh, spec, None).await?;
    Ok(json_response(StatusCode::CREATED, &deploy))
}

pub async fn list_deploys(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
) -> Result<Response, ApiError> {
    app.resources.require(&ResourcePath::mesh(&mesh)).await?;
    let deploys = app.list_deploys(&mesh).await?;
    Ok(json_response(StatusCode::OK, &DeployList { deploys }))
}

pub async fn get_deploy(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let deploy = app.get_deploy(&mesh, &name).await?;
    Ok(json_response(StatusCode::OK, &deploy))
}

pub async fn put_failure(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name, replica)): ApiPath<(String, String, String)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_BODY_BYTES).await?;
    app.report_failure(&mesh, &name, &replica, body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_failures(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    app.resources.get_workload(&mesh, &name).await?;
    let failures = app.workload_failures(&mesh, &name).await?;
    Ok(json_response(StatusCode::OK, &ReplicaFailures { failures }))
}

pub async fn create_pipeline(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_BODY_BYTES).await?;
    let body = model::wire::strict::<CreatePipeline>(body)
        .map_err(|e| ApiError::BadRequest(format!("pipeline: {e}")))?;
    let view = app.create_pipeline(&mesh, body).await?;
    Ok(json_response(StatusCode::CREATED, &view))
}

pub async fn list_pipelines(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
) -> Result<Response, ApiError> {
    let pipelines = app.list_pipelines(&mesh).await?;
    Ok(json_response(StatusCode::OK, &PipelineList { pipelines }))
}

pub async fn get_pipeline(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let view = app.get_pipeline(&mesh, &name).await?;
    Ok(json_response(StatusCode::OK, &view))
}

pub async fn delete_pipeline(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    app.delete_pipeline(&mesh, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn trigger_pipeline(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let run = app.trigger_pipeline(&mesh, &name).await?;
    Ok(json_response(StatusCode::CREATED, &run))
}

pub async fn list_runs(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    app.get_pipeline(&mesh, &name).await?;
    let runs = app.runs(&mesh, &name).await?;
    Ok(json_response(StatusCode::OK, &RunList { runs }))
}

/// A run number in a path: a 400 naming it when it is not one.
fn run_number(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("run: '{raw}' is not a run number")))
}

pub async fn get_run(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name, number)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let run = app.get_run(&mesh, &name, run_number(&number)?).await?;
    Ok(json_response(StatusCode::OK, &run))
}

pub async fn approve_run(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ApiPath((mesh, name, number)): ApiPath<(String, String, String)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let number = run_number(&number)?;
    let body = read_json(request, MAX_BODY_BYTES).await?;
    let body = model::wire::strict::<ApproveBody>(body)
        .map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let run = app
        .approve_run(&mesh, &name, number, body, &caller.name)
        .await?;
    Ok(json_response(StatusCode::OK, &run))
}

/// `?stage=source|build|approval|deploy`, default build.
pub async fn run_logs(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name, number)): ApiPath<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let number = run_number(&number)?;
    let stage = match query.get("stage") {
        None => StageName::Build,
        Some(raw) => StageName::parse(raw).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "stage: '{raw}' is not a stage; use source, build, approval or deploy"
            ))
        })?,
    };
    let log = app.stage_log(&mesh, &name, number, stage).await?;
    Ok(json_response(StatusCode::OK, &log))
}

pub async fn put_workload(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_BODY_BYTES).await?;
    let workload = app.resources.put_workload(&mesh, &name, &body).await?;
    Ok(json_response(StatusCode::OK, &workload))
}

pub async fn get_workload(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let workload = app.resources.get_workload(&mesh, &name).await?;
    Ok(json_response(
        StatusCode::OK,
        &visible(caller.role, workload),
    ))
}

pub async fn delete_workload(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    app.resources.delete_workload(&mesh, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_workloads(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ApiPath(mesh): ApiPath<String>,
) -> Result<Response, ApiError> {
    let workloads: Vec<Workload> = app
        .resources
        .list_workloads(&mesh)
        .await?
        .into_iter()
        .map(|workload| visible(caller.role, workload))
        .collect();
    Ok(json_response(StatusCode::OK, &WorkloadList { workloads }))
}

/// A workload's `env` may hold passwords: roles that do not run workloads see only its keys.
fn visible(role: Role, workload: Workload) -> Workload {
    if role.sees_secrets() {
        workload
    } else {
        workload.without_secrets()
    }
}

/// `GET /v1/meshes/{mesh}/ca`: the mesh CA's certificate (PEM), made on first use.
pub async fn trust_bundle(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
) -> Result<Response, ApiError> {
    let bundle = app.trust_bundle(&mesh).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        bundle,
    )
        .into_response())
}

/// `POST /v1/meshes/{mesh}/certificates` `{"kind", "name", "publicKey"}`: a certificate for
/// the caller's key naming the node or gateway (`model::wire::CertificateRequest`).
pub async fn issue_certificate(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_BODY_BYTES).await?;
    let issued = app.issue_certificate(&mesh, body).await?;
    Ok(json_response(StatusCode::OK, &issued))
}

/// `POST /v1/tokens` `{"name", "role", "mesh"?}`: a new token, whose text is shown only here.
pub async fn create_token(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let body = read_json(request, MAX_BODY_BYTES).await?;
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let role_text = body["role"].as_str().unwrap_or_default();
    let role = Role::parse(role_text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "role: '{role_text}' is not one of admin, operator, proxy, viewer"
        ))
    })?;
    let mesh = body["mesh"].as_str().map(str::to_string);
    let store = app.resources.store().clone();
    let issued = blocking(move || {
        tokens::issue(
            &store,
            &name,
            role,
            mesh.as_deref(),
            tokens::SameName::Refuse,
        )
    })
    .await??;
    let mut out = json!(issued.record.public());
    out["token"] = json!(issued.token);
    Ok(json_response(StatusCode::CREATED, &out))
}

pub async fn list_tokens(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let store = app.resources.store().clone();
    let list = blocking(move || tokens::list(&store)).await??;
    Ok(json_response(StatusCode::OK, &json!({ "tokens": list })))
}

pub async fn revoke_token(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let store = app.resources.store().clone();
    let key = id.clone();
    let found = blocking(move || tokens::revoke(&store, &key)).await??;
    if found {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("token '{id}' not found")))
    }
}

pub async fn list_endpoints(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
) -> Result<Response, ApiError> {
    let endpoints = app.resources.list_endpoints(&mesh).await?;
    Ok(json_response(StatusCode::OK, &EndpointList { endpoints }))
}

/// `POST /v1/meshes/{mesh}/stats`: a proxy's counts since its last report. Counted only whole,
/// and only for virtual nodes the mesh has, so what callers send cannot grow the window beyond
/// one ring per existing node.
pub async fn post_stats(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let forwarded = request.headers().contains_key(crate::stats::FORWARDED);
    let body = read_json(request, MAX_REPORT_BYTES).await?;
    let report: StatsReport = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("stats report: {e}")))?;
    check_report(&report)?;
    let Some(known) = app.known_nodes.of(app.resources.store(), &mesh).await? else {
        return Err(ApiError::NotFound(format!(
            "{} not found",
            ResourcePath::mesh(&mesh)
        )));
    };
    check_known(&mesh, &report, &known)?;
    app.stats.record(&mesh, &report.nodes);
    // Canary analysis happens on the leader: a follower passes what it got on (once).
    if !forwarded
        && app.leadership.term().is_none()
        && let Some(leader) = app.leadership.leader_url()
        && let Ok(bytes) = serde_json::to_vec(&report)
    {
        app.peers.forward(&leader, &mesh, authorization, bytes);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/meshes/{mesh}/stats?window=10s`: per-node aggregates over the window.
pub async fn get_stats(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let window = crate::live::window_param(&query, "window", Duration::from_secs(10))?;
    Ok(json_response(
        StatusCode::OK,
        &app.stats.aggregate(&mesh, window),
    ))
}

/// The `{mesh}` of a `/v1/meshes/{mesh}/...` path is a name like any App Mesh name: an empty
/// or malformed one is a 400 naming it, never a mesh '' that is merely not found.
fn check_mesh(mesh: &str) -> Result<(), ApiError> {
    let problems = model::validate_name("meshName", mesh);
    Ok(model::Problems::check(problems)?)
}

/// 200 when this replica can reach its store now, else 503 naming why: what a load balancer
/// in front of replicas needs to route around one cut off from etcd.
pub async fn healthz(State(app): State<Arc<App>>) -> Response {
    let store = app.resources.store().clone();
    let backend = store.backend();
    let leading = if app.leadership.term().is_some() {
        "leader"
    } else {
        "follower"
    };
    match crate::resources::blocking(move || store.check()).await {
        Ok(Ok(())) => (StatusCode::OK, format!("ok ({backend}, {leading})\n")).into_response(),
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unreachable ({backend}): {error}\n"),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let store = app.resources.store().clone();
    // A network round trip on etcd: off the async workers.
    let revision = crate::resources::blocking(move || store.revision())
        .await
        .unwrap_or(0);
    let body = app.telemetry.render(
        revision,
        app.leadership.term().is_some(),
        app.peers.dropped.load(std::sync::atomic::Ordering::Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
