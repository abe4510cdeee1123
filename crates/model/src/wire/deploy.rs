//! Deploys on the wire: `POST /v1/meshes/{mesh}/deploys` takes the AWS canary pipeline's
//! `deploy.json` ([`DeploySpec`]); the control plane stores a [`DeployRecord`] before it acts and
//! drives it to an end (the new version healthy, then its canary promoted or rolled back).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The pipeline's `deploy.json`, as `aviary deploy` sends it. Kubernetes fields are accepted
/// and unused here (`unused()` names them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    pub microservice_name: String,
    pub percentage_step: u32,
    /// Seconds between traffic shifts.
    pub wait_time: u64,
    /// Most 5xx allowed in `failure_threshold_time` before rollback: the pipeline's default, 0,
    /// unless `compare` is given, which then judges errors alone unless this is set too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold_value: Option<u64>,
    /// Seconds over which 5xx are counted.
    #[serde(default = "ten_minutes")]
    pub failure_threshold_time: u64,
    /// argv of the new version, run like any workload (PORT, HTTP_PROXY); `container_image`
    /// (the build's artifact) when that is given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The artifact a build made, the local meaning of the pipeline's image: a command line
    /// (split on whitespace) or an argv array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<Value>,
    /// The deploy template, base64 (the pipeline's `kubernetes_template.yml`, here written as
    /// aviary manifests), with `${MICROSERVICE_NAME}`, `${CONTAINER_IMAGE}`,
    /// `${CANARY_VERSION}`, `${CANARY_ROUTES}` and `${KUBERNETES_NAMESPACE}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    /// Create the service when none matches `microservice_name` (else that is an error).
    #[serde(default, skip_serializing_if = "is_false")]
    pub create: bool,
    /// Seconds the new version has to pass its health check (default 120).
    #[serde(default = "two_minutes")]
    pub health_timeout: u64,
    /// aviary's own: judge the new version against the one serving, statistically (see
    /// `rollout::Compare`), e.g. `{"confidence": 0.99, "maxErrorRateIncrease": 0.005}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<rollout::Compare>,
    /// aviary's own: what a step does when its interval is over and no request reached the new
    /// version: `pass` (the default here, the reference pipeline's meaning: no 5xx counted is
    /// healthy; each such step is reported), `wait` or `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_traffic: Option<rollout::NoTraffic>,
    /// Must name the path's mesh when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_namespace: Option<Value>,
}

fn is_false(value: &bool) -> bool {
    !value
}

fn ten_minutes() -> u64 {
    600
}

fn two_minutes() -> u64 {
    120
}

/// The longest 5xx window the control plane keeps.
pub const MAX_FAILURE_WINDOW: u64 = 600;

/// Most seconds a new version may take to become healthy.
pub const MAX_HEALTH_TIMEOUT: u64 = 3600;

impl DeploySpec {
    /// Every problem of the file's values at once, each naming its field.
    pub fn problems(&self) -> Vec<crate::Problem> {
        let mut problems = Vec::new();
        let mut problem =
            |field: &str, text: String| problems.push(crate::Problem::new(field, text));
        if !crate::validate_name("microservice_name", &self.microservice_name).is_empty() {
            problem(
                "microservice_name",
                format!("'{}' is not a valid name", self.microservice_name),
            );
        }
        if !(1..=100).contains(&self.percentage_step) {
            problem(
                "percentage_step",
                format!("{} is not from 1 to 100", self.percentage_step),
            );
        }
        if self.wait_time == 0 || self.wait_time > 86_400 {
            problem(
                "wait_time",
                format!("{} is not from 1 to 86400 seconds", self.wait_time),
            );
        }
        if self.failure_threshold_time == 0 || self.failure_threshold_time > MAX_FAILURE_WINDOW {
            problem(
                "failure_threshold_time",
                format!(
                    "{} is not from 1 to {MAX_FAILURE_WINDOW} seconds",
                    self.failure_threshold_time
                ),
            );
        }
        if self.health_timeout == 0 || self.health_timeout > MAX_HEALTH_TIMEOUT {
            problem(
                "health_timeout",
                format!(
                    "{} is not from 1 to {MAX_HEALTH_TIMEOUT} seconds",
                    self.health_timeout
                ),
            );
        }
        match (&self.container_image, self.command.is_empty()) {
            (Some(image), _) => {
                if self.argv_of_image(image).is_none() {
                    problem(
                        "container_image",
                        "must be a command line or an argv array of strings, not empty".into(),
                    );
                }
            }
            (None, true) => problem(
                "command",
                "give the new version's argv (or a build's container_image), e.g. [\"aviary-demo\", \"product\", \"--version\", \"2.0\"]".into(),
            ),
            (None, false) => {
                if self.command[0].trim().is_empty() {
                    problem("command", "its program (the first element) is empty".into());
                }
            }
        }
        problems
    }

    fn argv_of_image(&self, image: &Value) -> Option<Vec<String>> {
        let argv: Vec<String> = match image {
            Value::String(line) => line.split_whitespace().map(str::to_string).collect(),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()?,
            _ => return None,
        };
        (!argv.is_empty() && !argv[0].trim().is_empty()).then_some(argv)
    }

    /// What the new version runs: the artifact when there is one, else `command`.
    pub fn argv(&self) -> Vec<String> {
        self.container_image
            .as_ref()
            .and_then(|image| self.argv_of_image(image))
            .unwrap_or_else(|| self.command.clone())
    }

    /// The 5xx limit the canary checks: `failure_threshold_value`, else 0 without `compare`.
    pub fn max_5xx(&self) -> Option<u64> {
        match (self.failure_threshold_value, &self.compare) {
            (Some(limit), _) => Some(limit),
            (None, None) => Some(0),
            (None, Some(_)) => None,
        }
    }

    /// The fields given that only mean something on Kubernetes.
    pub fn unused(&self) -> Vec<&'static str> {
        [
            ("cluster_name", self.cluster_name.is_some()),
            ("kubernetes_namespace", self.kubernetes_namespace.is_some()),
        ]
        .into_iter()
        .filter(|(_, given)| *given)
        .map(|(k, _)| k)
        .collect()
    }
}

/// Where a deploy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeployPhase {
    /// The new version's resources are made (or being made) and it must pass its health check.
    Starting,
    /// Its canary runs.
    Canary,
    /// The new version serves all traffic; the old one is removed.
    Succeeded,
    /// Its canary failed or was aborted: the old version serves all traffic, the new one is removed.
    RolledBack,
    /// It never got traffic: it could not start, never became healthy, or its resources could
    /// not be made; whatever was made is removed.
    Failed,
}

impl DeployPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeployPhase::Succeeded | DeployPhase::RolledBack | DeployPhase::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeployPhase::Starting => "starting",
            DeployPhase::Canary => "canary",
            DeployPhase::Succeeded => "succeeded",
            DeployPhase::RolledBack => "rolledBack",
            DeployPhase::Failed => "failed",
        }
    }
}

impl std::fmt::Display for DeployPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a deploy's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployEvent {
    /// Unix milliseconds.
    pub at: u64,
    pub text: String,
}

/// Most history lines a deploy keeps (the canary keeps its own).
pub const MAX_DEPLOY_EVENTS: usize = 64;

/// Which pipeline run started a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployOrigin {
    pub pipeline: String,
    pub run: u64,
}

/// One stored deploy (`deploys/{mesh}/{name}`), as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRecord {
    /// `<node>-<attempt>`, e.g. `product-2-1`; its canary has the same name.
    pub name: String,
    pub mesh: String,
    pub spec: DeploySpec,
    pub phase: DeployPhase,
    /// The version number N: the new node and workload are `<microservice_name>-<N>`.
    pub version: u64,
    pub node: String,
    /// The node serving the route when the deploy began; none for a first deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_node: Option<String>,
    pub service: String,
    pub router: String,
    pub route: String,
    /// The new version's resources have been made.
    #[serde(default)]
    pub applied: bool,
    /// The canary rolling it out, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<DeployOrigin>,
    /// Unix milliseconds.
    pub created_at: u64,
    pub updated_at: u64,
    /// Why it ended, for anything but success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub events: Vec<DeployEvent>,
}

impl DeployRecord {
    /// Appends to the history, keeping the first line and the newest ones.
    pub fn note(&mut self, at: u64, text: impl Into<String>) {
        self.events.push(DeployEvent {
            at,
            text: text.into(),
        });
        if self.events.len() > MAX_DEPLOY_EVENTS {
            self.events.remove(1);
        }
        self.updated_at = at;
    }
}

/// `GET /v1/meshes/{mesh}/deploys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeployList {
    pub deploys: Vec<DeployRecord>,
}

/// A replica that could not start, or ended before it was ever healthy, as its supervisor
/// reports it (`PUT /v1/meshes/{mesh}/workloads/{name}/failures/{replica}`): what makes a
/// deploy fail at once instead of waiting out its health timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFailure {
    pub replica: String,
    /// "cannot start 'x': No such file or directory (os error 2)", "exit status: 1".
    pub reason: String,
    /// Unix milliseconds.
    pub at: u64,
    /// The last lines of its log, at most [`MAX_FAILURE_LOG_LINES`].
    #[serde(default)]
    pub log: Vec<String>,
}

pub const MAX_FAILURE_LOG_LINES: usize = 10;

/// `GET /v1/meshes/{mesh}/workloads/{name}/failures`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFailures {
    pub failures: Vec<ReplicaFailure>,
}
