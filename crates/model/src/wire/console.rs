//! `/v1` views the web console reads besides the snapshot and watch: who is signed in, stats
//! over time, and the tail of a workload's logs.

use serde::{Deserialize, Serialize};

/// `GET`/`POST /ui/session`: the signed-in caller, and the CSRF token its actions must send
/// as `X-CSRF-Token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSession {
    pub name: String,
    pub role: String,
    /// Whether the role may pause, resume, promote and abort canaries.
    pub can_act: bool,
    pub csrf_token: String,
}

/// Most nodes one series request may ask for.
pub const MAX_SERIES_NODES: usize = 16;
/// Most points one series answer holds per node.
pub const MAX_SERIES_POINTS: usize = 600;

/// `GET /v1/meshes/{mesh}/stats/series?nodes=a,b&window=10m&step=5s`: per node, one point per
/// step, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSeries {
    pub mesh: String,
    pub step_seconds: f64,
    pub nodes: Vec<NodeSeries>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSeries {
    pub virtual_node: String,
    pub points: Vec<SeriesPoint>,
}

/// One step of one node: what its callers reported in the step ending at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// Unix milliseconds at the end of the step.
    pub at: u64,
    pub requests: u64,
    pub requests_per_second: f64,
    /// 5xx and failed requests over all requests; `None` without requests.
    pub error_rate: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Most log lines one answer holds per replica.
pub const MAX_LOG_LINES: usize = 200;

/// `GET /v1/meshes/{mesh}/workloads/{name}/logs?lines=N`: the last lines of each replica's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadLogs {
    pub workload: String,
    pub replicas: Vec<ReplicaLogTail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaLogTail {
    pub replica: u32,
    pub lines: Vec<String>,
}
