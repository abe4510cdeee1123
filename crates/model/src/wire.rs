//! aviary's own `/v1` wire contract, one type per payload, shared by the control plane (which
//! builds them) and every client (proxy, supervisor, CLI, client library), so a renamed field
//! is a compile error on both sides rather than a silently empty table.
//!
//! - [`snapshot`]: the mesh snapshot ([`MeshSnapshot`]).
//! - [`watch`]: the watch stream's [`Change`]s (put or delete, one [`Object`] variant per
//!   kind) and [`Relist`], with their SSE framing ([`WatchEvent`]).
//! - [`stats`]: what proxies push ([`StatsReport`]) and the aggregates served back
//!   ([`StatsView`]).
//! - [`canary`]: the stored [`CanaryRecord`] and the [`CanaryView`] served with its derived
//!   `rollout::Status`.
//! - [`console`]: what the web console reads besides those (its session, stats over time,
//!   log tails).
//! - [`deploy`]: deploys ([`DeploySpec`] in, [`DeployRecord`] stored and served) and the
//!   replica failures supervisors report.
//! - [`pipeline`]: pipelines ([`PipelineSpec`] in, [`PipelineRecord`] stored) and their runs
//!   ([`RunRecord`], stages Source → Build → [Approval] → Deploy, [`StageLog`] output).
//! - [`objects`]: registered [`Endpoint`]s and [`Workload`]s; [`ca`]: the mesh CA's requests.
//!
//! Compatibility: the JSON is camelCase and only grows. Views the server sends never deny
//! unknown fields, so a client reads what a newer server adds; request bodies are read with
//! [`strict`], which names an unknown field instead of dropping it. Canaries in snapshots and
//! watch events stay [`Raw`], since a canary's spec (what people write) refuses unknown
//! fields and a proxy must not stop following its mesh over a canary option it does not know.
//! The one exception is that spec inside a [`CanaryView`]: a client older than the server's
//! canary options cannot read a canary that uses a new one (`aviary canary status` fails, naming
//! the field), which is the price of one `CanarySpec` for what people write and what is read.

pub mod ca;
pub mod canary;
pub mod console;
pub mod deploy;
pub mod objects;
pub mod pipeline;
mod raw;
pub mod snapshot;
pub mod stats;
mod strict;
pub mod watch;

pub use ca::{CertificateRequest, IdentityKind, IssuedCertificate, spiffe_id};
pub use canary::{CanaryCommand, CanaryList, CanaryRecord, CanaryView, CommandBody};
pub use console::{
    ConsoleSession, MAX_LOG_LINES, MAX_SERIES_NODES, MAX_SERIES_POINTS, NodeSeries, ReplicaLogTail,
    SeriesPoint, StatsSeries, WorkloadLogs,
};
pub use deploy::{
    DeployEvent, DeployList, DeployOrigin, DeployPhase, DeployRecord, DeploySpec,
    MAX_DEPLOY_EVENTS, MAX_FAILURE_LOG_LINES, ReplicaFailure, ReplicaFailures,
};
pub use objects::{
    Endpoint, EndpointList, HIDDEN, MAX_HOSTS, MAX_REPLICAS, Workload, WorkloadList,
};
pub use pipeline::{
    ApproveBody, CreatePipeline, KEPT_RUNS, MAX_STAGE_LOG_BYTES, PipelineList, PipelineRecord,
    PipelineSpec, PipelineView, RECENT_RUNS, RunList, RunPhase, RunRecord, Stage, StageLog,
    StageName, StageState,
};
pub use raw::Raw;
pub use snapshot::MeshSnapshot;
pub use stats::{
    LATENCY_BUCKETS_MS, MAX_REPORT_BYTES, MAX_REPORT_NODES, MAX_REPORT_REQUESTS, NodeStats,
    NodeView, StatsReport, StatsView, latency_bucket, node_window, quantile_ms,
};
pub use strict::{fields_of, strict};
pub use watch::{AviaryKind, Change, ChangeType, Object, ObjectKind, Op, Relist, WatchEvent};

#[cfg(test)]
mod tests;
