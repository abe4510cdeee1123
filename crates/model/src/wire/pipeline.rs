//! Pipelines on the wire: a [`PipelineSpec`] (repository, branch, build, deploy settings,
//! stages) is stored as a [`PipelineRecord`]; each commit it takes becomes a [`RunRecord`] whose
//! stages (Source → Build → [Approval] → Deploy) are stored before they are acted on.

use serde::{Deserialize, Serialize};

use crate::Problem;

/// `POST /v1/meshes/{mesh}/pipelines` `{"name", "spec"}`, or `kind: Pipeline` in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    /// A path or any URL `git` can fetch.
    pub repository: String,
    #[serde(default = "main_branch")]
    pub branch: String,
    /// Seconds between looks for a new commit (default 30); 0: only `aviary pipeline trigger`.
    #[serde(default = "half_a_minute")]
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

fn half_a_minute() -> u64 {
    30
}

fn ten_minutes() -> u64 {
    600
}

/// Longest build timeout, and longest poll interval.
pub const MAX_BUILD_SECONDS: u64 = 6 * 3600;
pub const MAX_POLL_SECONDS: u64 = 86_400;

impl PipelineSpec {
    /// Every problem at once, each naming its field.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.repository.trim().is_empty() {
            problems.push(Problem::new("repository", "must not be empty"));
        }
        if self.repository.starts_with('-') {
            problems.push(Problem::new("repository", "must not start with '-'"));
        }
        if !branch_name_ok(&self.branch) {
            problems.push(Problem::new(
                "branch",
                format!(
                    "'{}' is not a branch name (letters, digits, - _ . /, not starting with '-')",
                    self.branch
                ),
            ));
        }
        if self.poll_seconds > MAX_POLL_SECONDS {
            problems.push(Problem::new(
                "pollSeconds",
                format!("at most {MAX_POLL_SECONDS} (0: only `aviary pipeline trigger`)"),
            ));
        }
        if self.build.command.trim().is_empty() {
            problems.push(Problem::new("build.command", "must not be empty"));
        }
        if self.build.timeout_seconds == 0 || self.build.timeout_seconds > MAX_BUILD_SECONDS {
            problems.push(Problem::new(
                "build.timeoutSeconds",
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
            problems.push(Problem::new(
                "deployFile",
                "must be a path inside the checkout (relative, no '..')",
            ));
        }
        problems
    }
}

fn branch_name_ok(branch: &str) -> bool {
    !branch.is_empty()
        && branch.len() <= 255
        && !branch.starts_with('-')
        && !branch.contains("..")
        && branch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
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
    /// The run that rolled out `version`: its artifact is what the serving version runs, so it
    /// is kept whatever the run count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_run: Option<u64>,
}

/// `POST /v1/meshes/{mesh}/pipelines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePipeline {
    pub name: String,
    pub spec: PipelineSpec,
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
    /// The process group of the build under way, on the leader's host: a new leader on that
    /// host ends it before building again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_pid: Option<u32>,
    /// The replica that runs it (its advertised URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_host: Option<String>,
    /// Who approved or rejected it, and when (Approval stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The deploy file as the build left it (Deploy reads it from here: it may run on another
    /// leader than the build did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_file: Option<String>,
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
    /// A queued run of `commit`, its stages pending: Source, Build, Approval when the pipeline
    /// has one, Deploy.
    pub fn queued(
        pipeline: &PipelineRecord,
        number: u64,
        commit: &str,
        trigger: &str,
        now: u64,
    ) -> RunRecord {
        let mut names = vec![StageName::Source, StageName::Build];
        if pipeline.spec.approval {
            names.push(StageName::Approval);
        }
        names.push(StageName::Deploy);
        RunRecord {
            pipeline: pipeline.name.clone(),
            mesh: pipeline.mesh.clone(),
            number,
            commit: commit.to_string(),
            trigger: trigger.to_string(),
            phase: RunPhase::Queued,
            stages: names
                .into_iter()
                .map(|name| Stage {
                    name,
                    state: StageState::Pending,
                    started_at: None,
                    ended_at: None,
                    detail: None,
                })
                .collect(),
            build_attempts: 0,
            build_pid: None,
            build_host: None,
            approved_by: None,
            deploy_file: None,
            deploy: None,
            version: None,
            reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether its Deploy stage has begun: from then on it is never superseded, since a
    /// rollout under way is ended by its canary, not by a newer commit.
    pub fn deploying(&self) -> bool {
        self.stage(StageName::Deploy)
            .is_some_and(|s| s.state != StageState::Pending)
    }

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

/// `POST .../pipelines/{name}/runs/{n}/approve`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> PipelineSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_are_the_aws_pipelines_and_problems_name_their_field() {
        let good = spec(
            serde_json::json!({"repository": "/src/app", "build": {"command": "sh specfiles/build.sh"}}),
        );
        assert_eq!(good.branch, "main");
        assert_eq!(good.deploy_file, "specfiles/deploy.json");
        assert_eq!(good.poll_seconds, 30);
        assert_eq!(good.build.timeout_seconds, 600);
        assert!(good.problems().is_empty());
        let bad = spec(serde_json::json!({
            "repository": "-u", "branch": "x..y", "pollSeconds": 100000,
            "build": {"command": " ", "timeoutSeconds": 0}, "deployFile": "../etc/passwd"
        }));
        let fields: Vec<String> = bad.problems().into_iter().map(|p| p.path).collect();
        assert_eq!(
            fields,
            [
                "repository",
                "branch",
                "pollSeconds",
                "build.command",
                "build.timeoutSeconds",
                "deployFile"
            ]
        );
        let unknown = serde_json::from_value::<PipelineSpec>(
            serde_json::json!({"repository": "r", "build": {"command": "c"}, "brnach": "x"}),
        );
        assert!(unknown.unwrap_err().to_string().contains("brnach"));
    }

    #[test]
    fn a_run_has_the_approval_stage_only_when_the_pipeline_asks_for_it() {
        let mut pipeline = PipelineRecord {
            name: "p".into(),
            mesh: "m".into(),
            spec: spec(serde_json::json!({"repository": "r", "build": {"command": "c"}})),
            created_at: 0,
            last_commit: None,
            next_run: 1,
            version: 0,
            serving_run: None,
        };
        let names = |run: &RunRecord| run.stages.iter().map(|s| s.name).collect::<Vec<_>>();
        let plain = RunRecord::queued(&pipeline, 1, "abc", "create", 5);
        assert_eq!(
            names(&plain),
            [StageName::Source, StageName::Build, StageName::Deploy]
        );
        assert_eq!(plain.current().map(|s| s.name), Some(StageName::Source));
        assert!(!plain.deploying());
        pipeline.spec.approval = true;
        let gated = RunRecord::queued(&pipeline, 2, "abc", "trigger", 5);
        assert_eq!(
            names(&gated),
            [
                StageName::Source,
                StageName::Build,
                StageName::Approval,
                StageName::Deploy
            ]
        );
    }
}
