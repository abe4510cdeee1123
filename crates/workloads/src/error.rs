//! `WorkloadsError`: what can go wrong at the supervisor's boundary.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadsError {
    /// The log directory cannot be created: nothing could be supervised without losing output.
    #[error("cannot create the log directory {dir}: {source}")]
    LogDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// `aviary logs` found nothing to show.
    #[error(
        "no logs for workload '{workload}' of mesh '{mesh}' in {dir} (is it running under this data directory?)"
    )]
    NoLogs {
        workload: String,
        mesh: String,
        dir: PathBuf,
    },
    #[error("cannot read {path}: {source}")]
    ReadLog {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The HTTP client for health checks cannot be built (its resolver or connector failed to initialise).
    #[error("cannot build the health-check HTTP client: {0}")]
    HttpClient(String),
    /// The control plane's client cannot be built (a CA file that cannot be used).
    #[error(transparent)]
    Control(client::ClientError),
    /// The supervisor's own task panicked; its children were killed when it was dropped.
    #[error("the supervisor task failed: {0}")]
    Task(String),
}
