//! Pipelines on the wire: a [`PipelineSpec`] (repository, branch, build, deploy settings,
//! stages) is stored as a [`PipelineRecord`]; each commit it takes becomes a [`RunRecord`] whose
//! stages (Source → Build → [Approval] → Deploy) are stored before they are acted on.

use serde::{Deserialize, Serialize};

/// `POST /v1/meshes/{mesh}/pipelines` `{"name", "spec"}`, or `kind: Pipeline` in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    /// A path or any URL `git` can fetch.
    pub repository: String,
    #[serde(default = "main_branch")]
    pub branch: String,
    /// Seconds between looks for a new commit; 0: only `aviary pipeline trigger`.
    #[serde(default)]
    pub poll_seconds: u64,
    pub build: BuildSpec,
    /// The deploy settings in the checkout, as the AWS pipeline keeps them.
    #[serde(default = "deploy_file")]
    pub deploy_file: String,
    /// A manual approval stage before Deploy (`aviary pipeline approve`).
    #[serde(default)]
    pub approval: bool,
    /// What a newer commit does while a run is under way.
    #[serde(default)]
    pub on_new_commit: NewCommit,
}

/// Commands run in a checkout of the commit, `sh -c` with the checkout as working directory and
/// `ARTIFACT_DIR` (an empty directory kept for the run), `COMMIT`, `PIPELINE`, `RUN`, `MESH` in
/// the environment. It may rewrite the deploy file (adding `container_image` and
/// `config_file`, as the AWS pipeline's build does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildSpec {
    pub command: String,
    /// Seconds before the build is stopped and fails (default 600).
    #[serde(default = "ten_minutes")]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NewCommit {
    /// It waits for the run under way, then runs (only the newest waiting commit).
    #[default]
    Queue,
    /// It ends the run under way, unless that one already deploys, and runs at once.
    Supersede,
}

fn main_branch() -> String {
    "main".into()
}

fn deploy_file() -> String {
    "specfiles/deploy.json".into()
}

fn ten_minutes() -> u64 {
    600
}

/// Longest build timeout, and longest poll interval.
pub const MAX_BUILD_SECONDS: u64 = 6 * 3600;
pub const MAX_POLL_SECONDS: u64 = 86_400;

impl PipelineSpec {
    /// Every problem at once, each naming its field.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.repository.trim().is_empty() {
            problems.push(("repository".into(), "must not be empty".into()));
        }
        if self.repository.starts_with('-') || self.branch.starts_with('-') {
            problems.push((
                "repository".into(),
                "neither repository nor branch may start with '-'".into(),
            ));
        }
        let branch_ok = !self.branch.is_empty()
            && self.branch.len() <= 255
            && self
                .branch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            && !self.branch.contains("..");
        if !branch_ok {
            problems.push((
                "branch".into(),
                format!(
                    "'{}' is not a branch name (letters, digits, - _ . /)",
                    self.branch
                ),
            ));
        }
        if self.poll_seconds > MAX_POLL_SECONDS {
            problems.push(("pollSeconds".into(), format!("at most {MAX_POLL_SECONDS}")));
        }
        if self.build.command.trim().is_empty() {
            problems.push(("build.command".into(), "must not be empty".into()));
        }
        if self.build.timeout_seconds == 0 || self.build.timeout_seconds > MAX_BUILD_SECONDS {
            problems.push((
                "build.timeoutSeconds".into(),
                format!("from 1 to {MAX_BUILD_SECONDS}"),
            ));
        }
        let relative = std::path::Path::new(&self.deploy_file);
        if self.deploy_file.is_empty()
            || relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            problems.push((
                "deployFile".into(),
                "must be a path inside the checkout (relative, no '..')".into(),
            ));
        }
        problems
    }
}

/// One stored pipeline (`pipelines/{mesh}/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRecord {
    pub name: String,
    pub mesh: String,
    pub spec: PipelineSpec,
    /// Unix milliseconds.
    pub created_at: u64,
    /// The newest commit of the branch a run was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<String>,
    /// The number the next run gets.
    pub next_run: u64,
    /// The version the last successful run rolled out (the pipeline's counter: it advances
    /// only after a successful rollout).
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StageName {
    Source,
    Build,
    Approval,
    Deploy,
}

impl StageName {
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Source => "source",
            StageName::Build => "build",
            StageName::Approval => "approval",
            StageName::Deploy => "deploy",
        }
    }

    pub fn parse(text: &str) -> Option<StageName> {
        [
            StageName::Source,
            StageName::Build,
            StageName::Approval,
            StageName::Deploy,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StageState {
    Pending,
    Running,
    /// Approval only: waiting for `aviary pipeline approve`.
    Waiting,
    Succeeded,
    Failed,
    /// Not run: an earlier stage failed, or the run was superseded.
    Skipped,
}

impl StageState {
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Pending => "pending",
            StageState::Running => "running",
            StageState::Waiting => "waiting",
            StageState::Succeeded => "succeeded",
            StageState::Failed => "failed",
            StageState::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for StageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub name: StageName,
    pub state: StageState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// What it did or why it failed, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunPhase {
    /// Waiting for the run before it to end.
    Queued,
    Running,
    Succeeded,
    Failed,
    /// A newer commit took its place before it deployed.
    Superseded,
}

impl RunPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunPhase::Succeeded | RunPhase::Failed | RunPhase::Superseded
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Queued => "queued",
            RunPhase::Running => "running",
            RunPhase::Succeeded => "succeeded",
            RunPhase::Failed => "failed",
            RunPhase::Superseded => "superseded",
        }
    }
}

impl std::fmt::Display for RunPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of a pipeline (`runs/{mesh}/{pipeline}/{number:012}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub pipeline: String,
    pub mesh: String,
    pub number: u64,
    pub commit: String,
    /// `poll`, `trigger` or `create`.
    pub trigger: String,
    pub phase: RunPhase,
    pub stages: Vec<Stage>,
    /// How often its build was started (a control plane that died mid-build starts it again
    /// once, then fails the stage).
    #[serde(default)]
    pub build_attempts: u32,
    /// The deploy it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// The version its deploy rolled out (or tried to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl RunRecord {
    pub fn stage(&self, name: StageName) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub fn stage_mut(&mut self, name: StageName) -> Option<&mut Stage> {
        self.stages.iter_mut().find(|s| s.name == name)
    }

    /// The first stage not yet ended.
    pub fn current(&self) -> Option<&Stage> {
        self.stages.iter().find(|s| {
            matches!(
                s.state,
                StageState::Pending | StageState::Running | StageState::Waiting
            )
        })
    }
}

/// A pipeline and its newest runs, as `GET /v1/meshes/{mesh}/pipelines[/{name}]` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineView {
    #[serde(flatten)]
    pub record: PipelineRecord,
    /// Newest first, at most [`RECENT_RUNS`].
    pub runs: Vec<RunRecord>,
}

pub const RECENT_RUNS: usize = 5;

/// Runs a pipeline keeps (older ones, and their logs and directories, are removed).
pub const KEPT_RUNS: u64 = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineList {
    pub pipelines: Vec<PipelineView>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunRecord>,
}

/// `GET .../runs/{n}/logs?stage=build`: the stage's output, its tail when longer than
/// [`MAX_STAGE_LOG_BYTES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageLog {
    pub stage: String,
    pub text: String,
    /// Earlier output was dropped to keep the bound.
    pub truncated: bool,
}

pub const MAX_STAGE_LOG_BYTES: usize = 64 * 1024;

/// `POST .../pipelines/{name}/trigger` answers the run it made (or the one already waiting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveBody {
    /// `false` rejects: the run fails with the reason.
    #[serde(default = "yes")]
    pub approve: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

fn yes() -> bool {
    true
}
