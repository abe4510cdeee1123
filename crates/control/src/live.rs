//! `/v1` views that change while one looks at them, for the web console and scripts: stats
//! pushed every second as server-sent events, stats over time, and the tail of a workload's
//! logs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::wire::{MAX_LOG_LINES, MAX_SERIES_NODES, ReplicaLogTail, WorkloadLogs};

use crate::App;
use crate::appmesh::json_response;
use crate::error::ApiError;
use crate::stats::{MAX_WINDOW, parse_window};
use crate::v1::ApiPath;

/// How often the stats stream sends: the proxies push every 250 ms, a page needs no more.
const STREAM_EVERY: Duration = Duration::from_secs(1);

/// Where the replicas' logs of a mesh can be read: the supervisor's log files on this machine
/// (`aviary up`), implemented by `workloads`, which the control plane must not know.
pub trait LogSource: Send + Sync {
    /// The last `lines` lines of each replica of `workload`; `Err` says why there are none
    /// here (no such workload's logs on this machine).
    fn tail(&self, mesh: &str, workload: &str, lines: usize)
    -> Result<Vec<ReplicaLogTail>, String>;
}

/// A [`LogSource`] in [`crate::Config`].
#[derive(Clone)]
pub struct Logs(pub Arc<dyn LogSource>);

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logs")
    }
}

/// `?window=` as `GET .../stats` takes it: `10s`, `500ms`, `2m`, up to ten minutes.
pub fn window_param(
    query: &HashMap<String, String>,
    name: &str,
    default: Duration,
) -> Result<Duration, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => parse_window(text)
            .filter(|w| !w.is_zero() && *w <= MAX_WINDOW)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name}: '{text}' is not a duration from 1ms to 10m (e.g. 10s, 500ms)"
                ))
            }),
    }
}

/// `GET /v1/meshes/{mesh}/stats/stream?window=10s`: `event: stats` with what
/// `GET .../stats?window=` answers, now and every second after, until the client goes or the
/// control plane stops.
pub async fn stats_stream(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let window = window_param(&query, "window", Duration::from_secs(10))?;
    let shutdown = app.shutdown.clone();
    let guard = app.telemetry.watch_opened();
    let stream = futures_util::stream::unfold(
        (app, mesh, guard, true),
        move |(app, mesh, guard, first)| {
            let shutdown = shutdown.clone();
            async move {
                if !first {
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(STREAM_EVERY) => {}
                    }
                }
                let view =
                    serde_json::to_string(&app.stats.aggregate(&mesh, window)).unwrap_or_default();
                let chunk = Bytes::from(format!("event: stats\ndata: {view}\n\n"));
                Some((Ok::<_, Infallible>(chunk), (app, mesh, guard, false)))
            }
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /v1/meshes/{mesh}/stats/series?nodes=a,b&window=10m&step=5s`.
pub async fn stats_series(
    State(app): State<Arc<App>>,
    ApiPath(mesh): ApiPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let window = window_param(&query, "window", Duration::from_secs(600))?;
    let step = window_param(&query, "step", Duration::from_secs(5))?;
    let nodes: Vec<String> = query
        .get("nodes")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if nodes.is_empty() {
        return Err(ApiError::BadRequest(
            "nodes: name the virtual nodes, comma-separated (nodes=a,b)".into(),
        ));
    }
    if nodes.len() > MAX_SERIES_NODES {
        return Err(ApiError::BadRequest(format!(
            "nodes: {} named; at most {MAX_SERIES_NODES} per request",
            nodes.len()
        )));
    }
    let series = app
        .stats
        .series(&mesh, &nodes, window, step, crate::clock::now_millis());
    Ok(json_response(StatusCode::OK, &series))
}

/// `GET /v1/meshes/{mesh}/workloads/{name}/logs?lines=50`.
pub async fn workload_logs(
    State(app): State<Arc<App>>,
    ApiPath((mesh, name)): ApiPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let lines = match query.get("lines") {
        None => 50,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LOG_LINES).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "lines: '{text}' is not a number from 1 to {MAX_LOG_LINES}"
                ))
            })?,
    };
    let Some(logs) = app.logs.clone() else {
        return Err(ApiError::NotFound(format!(
            "this control plane runs no workloads, so it has no logs of '{name}': they are kept \
             on the host of the agent that runs it (aviary logs there)"
        )));
    };
    let (mesh_name, workload) = (mesh.clone(), name.clone());
    let replicas = crate::resources::blocking(move || logs.0.tail(&mesh_name, &workload, lines))
        .await?
        .map_err(ApiError::NotFound)?;
    let view = WorkloadLogs {
        workload: name,
        replicas,
    };
    Ok(json_response(StatusCode::OK, &view))
}
