//! Pipelines: the AWS canary pipeline (Source → Build → [Approval] → Deploy) for one
//! microservice, as a durable server-side operation (`/v1/meshes/{mesh}/pipelines`).
//!
//! - **Source**: a new commit on the branch (polled every `pollSeconds`, or `trigger`) makes a
//!   run; one run at a time per pipeline, a newer commit waits (only the newest waiting one
//!   stays) or supersedes the run under way unless that one already deploys. The leader clones
//!   the commit into the run's directory under the builds directory.
//! - **Build**: the pipeline's command, `sh -c` in the checkout, with `ARTIFACT_DIR` (kept for
//!   the run: what the new version runs from), `COMMIT`, `PIPELINE`, `RUN` and `MESH`. Its
//!   output is stored, bounded. A failed build ends the run with the reason; nothing deploys.
//! - **Approval** (optional): waits for `approve` (or a rejection with a reason).
//! - **Deploy**: the checkout's deploy file, as the build left it, becomes a deploy
//!   ([`crate::deploys`]) with this run as its origin; its outcome is the run's.
//!
//! Durability: every run and stage is stored before it is acted on. A stage whose process died
//! with a control plane is started again by the next leader: Source at once (a clone is
//! idempotent), Build once more (after ending the old build's process group if it is still
//! there), then it fails. Deploy is the deploy's own durable operation, found again by its
//! origin, so no new version is ever left with traffic and no canary watching it.
//!
//! Bounds: [`KEPT_RUNS`] runs per pipeline (their logs and directories go with them, except
//! the run whose artifact serves now), each stage's log at most `MAX_STAGE_LOG_BYTES`.

mod job;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::wire::{
    ApproveBody, CreatePipeline, DeployOrigin, DeploySpec, KEPT_RUNS, PipelineRecord, PipelineView,
    RECENT_RUNS, RunPhase, RunRecord, StageLog, StageName, StageState,
};
use model::{Problems, ResourcePath};
use store::{Compare, Op, Txn};
use tokio_util::sync::CancellationToken;

use crate::App;
use crate::clock::now_millis;
use crate::deploys::{commit_if, put_if, read_all};
use crate::error::ApiError;
use crate::leader::Term;
use crate::objects;

use job::{Job, Step};

/// How often the leader looks at pipelines.
const TICK: Duration = Duration::from_millis(500);

/// A running stage's detail before its job started: past it, a missing job died with a leader.
const STARTING: &str = "starting";

/// How often a running stage's output is stored (and at its end).
const LOG_EVERY: Duration = Duration::from_secs(2);

/// How often run directories no run needs are removed.
const TIDY_EVERY: Duration = Duration::from_secs(30);

/// Longest deploy file read from a checkout (a deploy's spec is bounded the same).
const MAX_DEPLOY_FILE_BYTES: u64 = 64 * 1024;

/// A build is started this often at most for one run: once, and once more after a control
/// plane died under it.
const MAX_BUILD_ATTEMPTS: u32 = 2;

fn pipeline_key(mesh: &str, name: &str) -> String {
    format!("pipelines/{mesh}/{name}")
}

fn runs_prefix(mesh: &str, pipeline: &str) -> String {
    format!("runs/{mesh}/{pipeline}/")
}

/// Zero-padded, so the store's key order is the runs' order.
fn run_key(mesh: &str, pipeline: &str, number: u64) -> String {
    format!("{}{number:012}", runs_prefix(mesh, pipeline))
}

fn log_key(mesh: &str, pipeline: &str, number: u64, stage: StageName) -> String {
    format!("runlogs/{mesh}/{pipeline}/{number:012}/{stage}")
}

fn job_key(run: &RunRecord, stage: StageName) -> String {
    format!("{}/{}/{}/{stage}", run.mesh, run.pipeline, run.number)
}

/// The leader's side of pipelines: where runs check out and build, and what runs now. Only the
/// leader starts jobs; any replica answers from the store.
pub struct Runner {
    /// `None`: this control plane builds nothing, and refuses pipelines.
    dir: Option<PathBuf>,
    jobs: tokio::sync::Mutex<HashMap<String, Job>>,
    /// When each pipeline's branch was last looked at (`mesh/name`).
    polled: std::sync::Mutex<HashMap<String, Instant>>,
    /// When run directories were last tidied.
    tidied: std::sync::Mutex<Option<Instant>>,
}

impl Runner {
    /// `dir` is made absolute: builds see it as `ARTIFACT_DIR`, and workloads run from it.
    pub fn new(dir: Option<PathBuf>) -> Runner {
        Runner {
            dir: dir.map(|dir| std::path::absolute(&dir).unwrap_or(dir)),
            jobs: Default::default(),
            polled: Default::default(),
            tidied: Default::default(),
        }
    }

    fn run_dir(&self, run: &RunRecord) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(&run.mesh)
                .join(&run.pipeline)
                .join(run.number.to_string()),
        )
    }
}

/// What a new commit does to the runs there are: the ones it supersedes.
fn superseded_by_new(pipeline: &PipelineRecord, runs: &[(RunRecord, u64)]) -> Vec<usize> {
    runs.iter()
        .enumerate()
        .filter(|(_, (run, _))| match run.phase {
            RunPhase::Queued => true,
            RunPhase::Running => {
                pipeline.spec.on_new_commit == model::wire::pipeline::NewCommit::Supersede
                    && !run.deploying()
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

/// The ended runs to remove so that, with one more, at most [`KEPT_RUNS`] stay: oldest first,
/// never the one whose artifact serves now, never one under way.
fn runs_to_forget(pipeline: &PipelineRecord, runs: &[(RunRecord, u64)]) -> Vec<usize> {
    let kept = KEPT_RUNS as usize;
    let excess = (runs.len() + 1).saturating_sub(kept);
    runs.iter()
        .enumerate()
        .filter(|(_, (run, _))| run.phase.is_terminal() && Some(run.number) != pipeline.serving_run)
        .map(|(i, _)| i)
        .take(excess)
        .collect()
}

impl App {
    /// `POST /v1/meshes/{mesh}/pipelines`: checks the spec and that git can read the branch,
    /// stores the pipeline and its first run (the branch's newest commit).
    pub async fn create_pipeline(
        &self,
        mesh: &str,
        body: CreatePipeline,
    ) -> Result<PipelineView, ApiError> {
        let mut problems = model::validate_name("name", &body.name);
        problems.extend(body.spec.problems());
        Problems::check(problems).map_err(|p| ApiError::BadRequest(p.to_string()))?;
        if self.pipelines.dir.is_none() {
            return Err(ApiError::BadRequest(
                "this control plane has no builds directory (it keeps builds under its data directory)".into(),
            ));
        }
        self.resources.require(&ResourcePath::mesh(mesh)).await?;
        let key = pipeline_key(mesh, &body.name);
        if self.resources.get_raw(&key).await?.is_some() {
            return Err(ApiError::Conflict(format!(
                "pipeline '{}' already exists in mesh '{mesh}'",
                body.name
            )));
        }
        let commit = job::head_commit(&body.spec.repository, &body.spec.branch)
            .await
            .map_err(|why| ApiError::BadRequest(format!("repository: {why}")))?;
        let now = now_millis();
        let pipeline = PipelineRecord {
            name: body.name,
            mesh: mesh.to_string(),
            spec: body.spec,
            created_at: now,
            last_commit: Some(commit.clone()),
            next_run: 2,
            version: 0,
            serving_run: None,
        };
        let run = RunRecord::queued(&pipeline, 1, &commit, "create", now);
        let txn = Txn::default()
            .when(Compare::ModRevision(key.clone(), 0))
            .then(Op::Put(key, encode(&pipeline)?))
            .then(Op::Put(run_key(mesh, &pipeline.name, 1), encode(&run)?));
        self.commit(txn, "pipeline was created meanwhile").await?;
        Ok(PipelineView {
            record: pipeline,
            runs: vec![run],
        })
    }

    pub async fn list_pipelines(&self, mesh: &str) -> Result<Vec<PipelineView>, ApiError> {
        self.resources.require(&ResourcePath::mesh(mesh)).await?;
        let pipelines: Vec<(PipelineRecord, u64)> =
            read_all(self, &format!("pipelines/{mesh}/")).await?;
        let mut views = Vec::new();
        for (record, _) in pipelines {
            let mut runs = self.runs(mesh, &record.name).await?;
            runs.truncate(RECENT_RUNS);
            views.push(PipelineView { record, runs });
        }
        Ok(views)
    }

    pub async fn get_pipeline(&self, mesh: &str, name: &str) -> Result<PipelineView, ApiError> {
        let (record, _) = self.read_pipeline(mesh, name).await?;
        let mut runs = self.runs(mesh, name).await?;
        runs.truncate(RECENT_RUNS);
        Ok(PipelineView { record, runs })
    }

    /// Removes the pipeline, its runs and their logs. A deploy it started goes on (its canary
    /// watches it); the leader ends a build under way and removes the directories.
    pub async fn delete_pipeline(&self, mesh: &str, name: &str) -> Result<(), ApiError> {
        let (_, revision) = self.read_pipeline(mesh, name).await?;
        let key = pipeline_key(mesh, name);
        let mut txn = Txn::default()
            .when(Compare::ModRevision(key.clone(), revision))
            .then(Op::Delete(key));
        for prefix in [runs_prefix(mesh, name), format!("runlogs/{mesh}/{name}/")] {
            let (kvs, _) = self.resources.range(&prefix).await?;
            for kv in kvs {
                txn = txn.then(Op::Delete(kv.key));
            }
        }
        self.commit(
            txn,
            "pipeline changed while it was being deleted; try again",
        )
        .await
    }

    /// Every kept run, newest first.
    pub async fn runs(&self, mesh: &str, pipeline: &str) -> Result<Vec<RunRecord>, ApiError> {
        let mut runs: Vec<RunRecord> = read_all(self, &runs_prefix(mesh, pipeline))
            .await?
            .into_iter()
            .map(|(run, _)| run)
            .collect();
        runs.reverse();
        Ok(runs)
    }

    pub async fn get_run(
        &self,
        mesh: &str,
        pipeline: &str,
        number: u64,
    ) -> Result<RunRecord, ApiError> {
        Ok(self.read_run(mesh, pipeline, number).await?.0)
    }

    /// `POST .../pipelines/{name}/trigger`: a run of the branch's newest commit, now (as
    /// CodePipeline's "Release change"), even when that commit ran before.
    pub async fn trigger_pipeline(&self, mesh: &str, name: &str) -> Result<RunRecord, ApiError> {
        let (pipeline, _) = self.read_pipeline(mesh, name).await?;
        let commit = job::head_commit(&pipeline.spec.repository, &pipeline.spec.branch)
            .await
            .map_err(ApiError::Conflict)?;
        self.new_run(mesh, name, &commit, "trigger").await
    }

    /// Stores run `next_run` of `commit`, and what it supersedes, in one transaction with the
    /// pipeline's counter; another writer in between is a retry.
    async fn new_run(
        &self,
        mesh: &str,
        name: &str,
        commit: &str,
        trigger: &str,
    ) -> Result<RunRecord, ApiError> {
        let mut last = None;
        for _ in 0..3 {
            let (mut pipeline, revision) = self.read_pipeline(mesh, name).await?;
            let runs: Vec<(RunRecord, u64)> = read_all(self, &runs_prefix(mesh, name)).await?;
            let now = now_millis();
            let number = pipeline.next_run;
            let run = RunRecord::queued(&pipeline, number, commit, trigger, now);
            pipeline.next_run += 1;
            pipeline.last_commit = Some(commit.to_string());
            let key = pipeline_key(mesh, name);
            let mut txn = Txn::default()
                .when(Compare::ModRevision(key.clone(), revision))
                .then(Op::Put(key, encode(&pipeline)?))
                .then(Op::Put(run_key(mesh, name, number), encode(&run)?));
            for i in superseded_by_new(&pipeline, &runs) {
                let (mut old, old_revision) = runs[i].clone();
                let short = &commit[..commit.len().min(8)];
                end_run(
                    &mut old,
                    RunPhase::Superseded,
                    format!("superseded by run {number} (commit {short})"),
                    now,
                );
                let at = run_key(mesh, name, old.number);
                txn = txn
                    .when(Compare::ModRevision(at.clone(), old_revision))
                    .then(Op::Put(at, encode(&old)?));
            }
            for i in runs_to_forget(&pipeline, &runs) {
                let (old, old_revision) = &runs[i];
                let at = run_key(mesh, name, old.number);
                txn = txn
                    .when(Compare::ModRevision(at.clone(), *old_revision))
                    .then(Op::Delete(at));
                for stage in &old.stages {
                    txn = txn.then(Op::Delete(log_key(mesh, name, old.number, stage.name)));
                }
            }
            match self.commit(txn, "pipeline changed meanwhile").await {
                Ok(()) => return Ok(run),
                Err(ApiError::Conflict(why)) => last = Some(why),
                Err(error) => return Err(error),
            }
        }
        Err(ApiError::Conflict(last.unwrap_or_default()))
    }

    /// `POST .../runs/{n}/approve`: the Approval stage passes, or with `approve: false` fails
    /// the run with the reason.
    pub async fn approve_run(
        &self,
        mesh: &str,
        pipeline: &str,
        number: u64,
        body: ApproveBody,
        who: &str,
    ) -> Result<RunRecord, ApiError> {
        let (mut run, revision) = self.read_run(mesh, pipeline, number).await?;
        let waiting = run
            .stage(StageName::Approval)
            .is_some_and(|s| s.state == StageState::Waiting);
        if !waiting {
            let now = run
                .current()
                .map(|s| format!("its current stage is {} ({})", s.name, s.state))
                .unwrap_or_else(|| format!("it has ended ({})", run.phase));
            return Err(ApiError::Conflict(format!(
                "run {number} of pipeline '{pipeline}' is not waiting for approval: {now}"
            )));
        }
        let now = now_millis();
        run.approved_by = Some(who.to_string());
        if body.approve {
            set_stage(
                &mut run,
                StageName::Approval,
                StageState::Succeeded,
                now,
                format!("approved by {who}"),
            );
        } else {
            let why = body.reason.unwrap_or_else(|| "no reason given".into());
            set_stage(
                &mut run,
                StageName::Approval,
                StageState::Failed,
                now,
                format!("rejected by {who}: {why}"),
            );
            end_run(
                &mut run,
                RunPhase::Failed,
                format!("rejected by {who}: {why}"),
                now,
            );
        }
        put_if(
            self.resources.store(),
            &run_key(mesh, pipeline, number),
            &run,
            revision,
            &[],
        )
        .await?;
        Ok(run)
    }

    /// A stage's output: a running stage's from the leader's memory when this replica leads,
    /// else as last stored. Deploy's is its deploy's history.
    pub async fn stage_log(
        &self,
        mesh: &str,
        pipeline: &str,
        number: u64,
        stage: StageName,
    ) -> Result<StageLog, ApiError> {
        let run = self.get_run(mesh, pipeline, number).await?;
        if run.stage(stage).is_none() {
            return Err(ApiError::NotFound(format!(
                "run {number} of pipeline '{pipeline}' has no {stage} stage"
            )));
        }
        if stage == StageName::Deploy {
            let text = match &run.deploy {
                Some(name) => match self.get_deploy(mesh, name).await {
                    Ok(deploy) => deploy
                        .events
                        .iter()
                        .map(|e| format!("{}  {}\n", e.at, e.text))
                        .collect(),
                    Err(ApiError::NotFound(_)) => format!("deploy {name} is no longer kept\n"),
                    Err(error) => return Err(error),
                },
                None => String::new(),
            };
            return Ok(StageLog {
                stage: stage.to_string(),
                text,
                truncated: false,
            });
        }
        if let Some(job) = self.pipelines.jobs.lock().await.get(&job_key(&run, stage)) {
            let (text, truncated, _) = job.tail.lock().expect("tail lock").snapshot();
            return Ok(StageLog {
                stage: stage.to_string(),
                text,
                truncated,
            });
        }
        match self
            .resources
            .get_raw(&log_key(mesh, pipeline, number, stage))
            .await?
        {
            Some(kv) => objects::decode(&kv.value),
            None => Ok(StageLog {
                stage: stage.to_string(),
                text: String::new(),
                truncated: false,
            }),
        }
    }

    async fn read_pipeline(
        &self,
        mesh: &str,
        name: &str,
    ) -> Result<(PipelineRecord, u64), ApiError> {
        match self.resources.get_raw(&pipeline_key(mesh, name)).await? {
            Some(kv) => Ok((objects::decode(&kv.value)?, kv.mod_revision)),
            None => Err(ApiError::NotFound(format!(
                "pipeline '{name}' not found in mesh '{mesh}'"
            ))),
        }
    }

    async fn read_run(
        &self,
        mesh: &str,
        pipeline: &str,
        number: u64,
    ) -> Result<(RunRecord, u64), ApiError> {
        match self
            .resources
            .get_raw(&run_key(mesh, pipeline, number))
            .await?
        {
            Some(kv) => Ok((objects::decode(&kv.value)?, kv.mod_revision)),
            None => Err(ApiError::NotFound(format!(
                "run {number} of pipeline '{pipeline}' not found in mesh '{mesh}'"
            ))),
        }
    }

    async fn commit(&self, txn: Txn, conflict: &str) -> Result<(), ApiError> {
        let store = self.resources.store().clone();
        match crate::resources::blocking(move || store.txn(txn)).await?? {
            store::TxnOutcome::Committed { .. } => Ok(()),
            store::TxnOutcome::Failed { .. } => Err(ApiError::Conflict(conflict.to_string())),
        }
    }

    /// One pass of the leader over every pipeline: look for new commits where due, start the
    /// next run, move the run under way on, and end what no run needs any more.
    async fn drive_pipelines(&self, term: &Term) -> Result<(), ApiError> {
        let pipelines: Vec<(PipelineRecord, u64)> = read_all(self, "pipelines/").await?;
        let mut live = Vec::new();
        for (pipeline, _) in &pipelines {
            if let Err(error) = self.poll(pipeline).await {
                tracing::warn!(pipeline = %pipeline.name, %error, "cannot look for new commits");
            }
            match self.drive_pipeline(pipeline, term).await {
                Ok(Some(run)) => live.push(run),
                Ok(None) => {}
                Err(ApiError::Deposed) => return Err(ApiError::Deposed),
                Err(error) => {
                    // Its jobs stay: the next pass sees where it is.
                    live.push(format!("{}/{}/", pipeline.mesh, pipeline.name));
                    tracing::warn!(pipeline = %pipeline.name, %error, "pipeline tick failed; retrying next tick")
                }
            }
        }
        // Jobs of runs that ended meanwhile (superseded, deleted): end them.
        let mut jobs = self.pipelines.jobs.lock().await;
        jobs.retain(|key, _| live.iter().any(|k| key.starts_with(k.as_str())));
        drop(jobs);
        let due = {
            let mut tidied = self.pipelines.tidied.lock().expect("tidy lock");
            let due = tidied.is_none_or(|at| at.elapsed() >= TIDY_EVERY);
            if due {
                *tidied = Some(Instant::now());
            }
            due
        };
        if due {
            self.tidy_dirs(&pipelines).await;
        }
        Ok(())
    }

    /// A run of the branch's newest commit, if it is new and the pipeline polls and is due.
    async fn poll(&self, pipeline: &PipelineRecord) -> Result<(), ApiError> {
        if pipeline.spec.poll_seconds == 0 {
            return Ok(());
        }
        let id = format!("{}/{}", pipeline.mesh, pipeline.name);
        let every = Duration::from_secs(pipeline.spec.poll_seconds);
        {
            let mut polled = self.pipelines.polled.lock().expect("poll lock");
            if polled.get(&id).is_some_and(|at| at.elapsed() < every) {
                return Ok(());
            }
            polled.insert(id, Instant::now());
        }
        let commit = job::head_commit(&pipeline.spec.repository, &pipeline.spec.branch)
            .await
            .map_err(ApiError::Conflict)?;
        if pipeline.last_commit.as_deref() != Some(commit.as_str()) {
            let run = self
                .new_run(&pipeline.mesh, &pipeline.name, &commit, "poll")
                .await?;
            tracing::info!(pipeline = %pipeline.name, run = run.number, %commit, "new commit");
        }
        Ok(())
    }

    /// Starts the oldest queued run when none runs, and moves the running one on. Returns the
    /// prefix of the jobs the running run may have (`mesh/pipeline/run/`).
    async fn drive_pipeline(
        &self,
        pipeline: &PipelineRecord,
        term: &Term,
    ) -> Result<Option<String>, ApiError> {
        let (mesh, name) = (&pipeline.mesh, &pipeline.name);
        let runs: Vec<(RunRecord, u64)> = read_all(self, &runs_prefix(mesh, name)).await?;
        let running = runs.iter().find(|(r, _)| r.phase == RunPhase::Running);
        let (mut run, mut revision) = match running {
            Some(found) => found.clone(),
            None => match runs.iter().find(|(r, _)| r.phase == RunPhase::Queued) {
                Some((queued, revision)) => {
                    let mut run = queued.clone();
                    run.phase = RunPhase::Running;
                    run.updated_at = now_millis();
                    let at = run_key(mesh, name, run.number);
                    let revision =
                        put_if(self.resources.store(), &at, &run, *revision, &term.fence).await?;
                    (run, revision)
                }
                None => return Ok(None),
            },
        };
        let prefix = format!("{mesh}/{name}/{}/", run.number);
        // A few steps per tick: each stores before the next acts.
        for _ in 0..4 {
            let Some(changed) = self.step_run(pipeline, &mut run, term).await? else {
                break;
            };
            revision = self.store_run(&changed, revision, term).await?;
            run = changed;
            if run.phase.is_terminal() {
                if let Some(dir) = self.pipelines.run_dir(&run) {
                    let _ = std::fs::remove_dir_all(dir.join("src"));
                }
                break;
            }
        }
        Ok(Some(prefix))
    }

    /// One step of the run's current stage: the run as it must be stored next, or `None` when
    /// it waits.
    async fn step_run(
        &self,
        pipeline: &PipelineRecord,
        run: &mut RunRecord,
        term: &Term,
    ) -> Result<Option<RunRecord>, ApiError> {
        let Some(stage) = run.current().cloned() else {
            return Ok(None);
        };
        let now = now_millis();
        let dir = self
            .pipelines
            .run_dir(run)
            .ok_or_else(|| ApiError::Internal("no builds directory".into()))?;
        let mut next = run.clone();
        let key = job_key(run, stage.name);
        match (stage.name, stage.state) {
            (StageName::Approval, StageState::Pending) => {
                set_stage(
                    &mut next,
                    StageName::Approval,
                    StageState::Waiting,
                    now,
                    format!(
                        "waiting for `aviary pipeline approve {} {}`",
                        run.pipeline, run.number
                    ),
                );
            }
            (StageName::Approval, _) => return Ok(None),
            (StageName::Source | StageName::Build, StageState::Pending) => {
                set_stage(
                    &mut next,
                    stage.name,
                    StageState::Running,
                    now,
                    STARTING.into(),
                );
                if stage.name == StageName::Build {
                    next.build_attempts += 1;
                }
            }
            (StageName::Source | StageName::Build, _) => {
                let mut jobs = self.pipelines.jobs.lock().await;
                let Some(job) = jobs.get_mut(&key) else {
                    // Stored as running, not running here: this leader is new, or restarted.
                    drop(jobs);
                    return self.start_job(pipeline, run, stage.name, &dir, now).await;
                };
                if job.pid().is_some() && job.pid() != run.build_pid {
                    next.build_pid = job.pid();
                    next.build_host = Some(self.advertise_url.clone());
                    return Ok(Some(next));
                }
                let outcome = job.finished().await;
                let (text, truncated, changes) = job.tail.lock().expect("tail lock").snapshot();
                let log_due = changes != job.stored
                    && (outcome.is_some() || job.stored_at.elapsed() >= LOG_EVERY);
                if log_due {
                    let log = StageLog {
                        stage: stage.name.to_string(),
                        text,
                        truncated,
                    };
                    self.store_log(run, stage.name, &log, term).await?;
                    job.stored = changes;
                    job.stored_at = Instant::now();
                }
                let Some(outcome) = outcome else {
                    return Ok(None);
                };
                jobs.remove(&key);
                drop(jobs);
                next.build_pid = None;
                next.build_host = None;
                match outcome {
                    Ok(done) if stage.name == StageName::Build => {
                        // Kept with the run: Deploy may run on another leader, without this
                        // checkout.
                        let file = dir.join("src").join(&pipeline.spec.deploy_file);
                        match read_deploy_text(&file, &pipeline.spec.deploy_file) {
                            Ok(text) => {
                                next.deploy_file = Some(text);
                                set_stage(&mut next, stage.name, StageState::Succeeded, now, done);
                            }
                            Err(why) => {
                                let why = format!("the build left no deploy file: {why}");
                                set_stage(
                                    &mut next,
                                    stage.name,
                                    StageState::Failed,
                                    now,
                                    why.clone(),
                                );
                                end_run(
                                    &mut next,
                                    RunPhase::Failed,
                                    format!("build failed; nothing was deployed: {why}"),
                                    now,
                                );
                            }
                        }
                    }
                    Ok(done) => set_stage(&mut next, stage.name, StageState::Succeeded, now, done),
                    Err(why) => {
                        set_stage(&mut next, stage.name, StageState::Failed, now, why.clone());
                        let what = if stage.name == StageName::Build {
                            "build failed; nothing was deployed"
                        } else {
                            "cannot check the commit out"
                        };
                        end_run(&mut next, RunPhase::Failed, format!("{what}: {why}"), now);
                    }
                }
            }
            (StageName::Deploy, StageState::Pending) => {
                set_stage(
                    &mut next,
                    StageName::Deploy,
                    StageState::Running,
                    now,
                    "starting the deploy".into(),
                );
            }
            (StageName::Deploy, _) => return self.step_deploy(pipeline, run, now).await,
        }
        Ok(Some(next))
    }

    /// Starts Source's clone or Build's command for a stage stored as running. A stage whose
    /// detail is past "starting" ran under an earlier leader: Source starts again, Build once
    /// more (after its old process group is ended), then fails.
    async fn start_job(
        &self,
        pipeline: &PipelineRecord,
        run: &RunRecord,
        stage: StageName,
        dir: &Path,
        now: u64,
    ) -> Result<Option<RunRecord>, ApiError> {
        let mut next = run.clone();
        let interrupted = run
            .stage(stage)
            .and_then(|s| s.detail.as_deref())
            .is_some_and(|d| d != STARTING);
        if let (Some(pid), Some(host)) = (run.build_pid, &run.build_host)
            && *host == self.advertise_url
        {
            job::end_stale_build(pid, &dir.join("src"));
        }
        next.build_pid = None;
        next.build_host = None;
        let spec = &pipeline.spec;
        let source = dir.join("src");
        let mut detail = format!("{stage} running");
        let job = if stage == StageName::Source {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir)
                .map_err(|e| ApiError::Internal(format!("cannot make {}: {e}", dir.display())))?;
            let short = &run.commit[..run.commit.len().min(8)];
            Job::start(
                job::checkout_steps(&spec.repository, &spec.branch, &run.commit, &source),
                job::GIT_TIMEOUT,
                format!("checked out {short} of {}", spec.branch),
            )
        } else {
            if interrupted {
                if run.build_attempts >= MAX_BUILD_ATTEMPTS {
                    let why = format!(
                        "the control plane stopped during this build {} times; not building again",
                        run.build_attempts
                    );
                    set_stage(&mut next, stage, StageState::Failed, now, why.clone());
                    end_run(
                        &mut next,
                        RunPhase::Failed,
                        format!("build failed; nothing was deployed: {why}"),
                        now,
                    );
                    return Ok(Some(next));
                }
                next.build_attempts += 1;
                detail = format!(
                    "the control plane stopped during the build; building again (attempt {})",
                    next.build_attempts
                );
            }
            let artifact = dir.join("artifact");
            let _ = std::fs::remove_dir_all(&artifact);
            std::fs::create_dir_all(&artifact).map_err(|e| {
                ApiError::Internal(format!("cannot make {}: {e}", artifact.display()))
            })?;
            let env = vec![
                ("ARTIFACT_DIR".to_string(), artifact.display().to_string()),
                ("COMMIT".to_string(), run.commit.clone()),
                ("PIPELINE".to_string(), run.pipeline.clone()),
                ("RUN".to_string(), run.number.to_string()),
                ("MESH".to_string(), run.mesh.clone()),
            ];
            // A leader that did not run Source (it took over mid-build) checks out first.
            let mut steps = Vec::new();
            if !source.join(".git").exists() {
                let _ = std::fs::remove_dir_all(&source);
                steps = job::checkout_steps(&spec.repository, &spec.branch, &run.commit, &source);
            }
            steps.push(Step {
                argv: vec!["sh".into(), "-c".into(), spec.build.command.clone()],
                cwd: source,
                env,
                shown: spec.build.command.clone(),
            });
            Job::start(
                steps,
                Duration::from_secs(spec.build.timeout_seconds),
                format!("built into {}", artifact.display()),
            )
        };
        set_stage(&mut next, stage, StageState::Running, now, detail);
        self.pipelines
            .jobs
            .lock()
            .await
            .insert(job_key(run, stage), job);
        Ok(Some(next))
    }

    /// Deploy: starts the deploy (or finds the one an earlier pass started), then takes its
    /// outcome.
    async fn step_deploy(
        &self,
        pipeline: &PipelineRecord,
        run: &RunRecord,
        now: u64,
    ) -> Result<Option<RunRecord>, ApiError> {
        let mut next = run.clone();
        let (mesh, name) = (&run.mesh, &run.pipeline);
        let deploy_name = match &run.deploy {
            Some(deploy) => deploy.clone(),
            None => {
                let origin = DeployOrigin {
                    pipeline: name.clone(),
                    run: run.number,
                };
                let started = self
                    .list_deploys(mesh)
                    .await?
                    .into_iter()
                    .find(|d| d.origin.as_ref() == Some(&origin));
                let deploy = match started {
                    Some(deploy) => deploy,
                    None => {
                        let text = run.deploy_file.as_deref().unwrap_or_default();
                        let spec = match parse_deploy_file(text, &pipeline.spec.deploy_file) {
                            Ok(spec) => spec,
                            Err(why) => return Ok(Some(fail_deploy(next, why, now))),
                        };
                        match self.create_deploy(mesh, spec, Some(origin)).await {
                            Ok(deploy) => deploy,
                            Err(ApiError::BadRequest(why) | ApiError::Conflict(why)) => {
                                let why = format!("{}: {why}", pipeline.spec.deploy_file);
                                return Ok(Some(fail_deploy(next, why, now)));
                            }
                            Err(error) => return Err(error),
                        }
                    }
                };
                next.deploy = Some(deploy.name.clone());
                next.version = Some(deploy.version);
                set_stage(
                    &mut next,
                    StageName::Deploy,
                    StageState::Running,
                    now,
                    format!(
                        "deploy {} of {} version {}",
                        deploy.name, deploy.service, deploy.version
                    ),
                );
                return Ok(Some(next));
            }
        };
        let deploy = match self.get_deploy(mesh, &deploy_name).await {
            Ok(deploy) => deploy,
            Err(ApiError::NotFound(_)) => {
                return Ok(Some(fail_deploy(
                    next,
                    format!("deploy {deploy_name} was removed"),
                    now,
                )));
            }
            Err(error) => return Err(error),
        };
        if !deploy.phase.is_terminal() {
            return Ok(None);
        }
        let said = deploy
            .events
            .last()
            .map(|e| e.text.clone())
            .unwrap_or_default();
        if deploy.phase == model::wire::DeployPhase::Succeeded {
            set_stage(
                &mut next,
                StageName::Deploy,
                StageState::Succeeded,
                now,
                said,
            );
            end_run(
                &mut next,
                RunPhase::Succeeded,
                format!("{} serves all traffic", deploy.node),
                now,
            );
        } else {
            let why = deploy.reason.clone().unwrap_or(said);
            let what = if deploy.phase == model::wire::DeployPhase::RolledBack {
                "rolled back"
            } else {
                "deploy failed"
            };
            next = fail_deploy(next, format!("{what}: {why}"), now);
        }
        Ok(Some(next))
    }

    /// Stores the run at `revision` under the term's fence. A run that succeeded advances the
    /// pipeline's counter in the same transaction: the counter moves only with a successful
    /// rollout, and never misses one.
    async fn store_run(
        &self,
        run: &RunRecord,
        revision: u64,
        term: &Term,
    ) -> Result<u64, ApiError> {
        let at = run_key(&run.mesh, &run.pipeline, run.number);
        if run.phase != RunPhase::Succeeded {
            return put_if(self.resources.store(), &at, run, revision, &term.fence).await;
        }
        let (mut pipeline, pipeline_revision) =
            self.read_pipeline(&run.mesh, &run.pipeline).await?;
        pipeline.version = run.version.unwrap_or(pipeline.version);
        pipeline.serving_run = Some(run.number);
        let key = pipeline_key(&run.mesh, &run.pipeline);
        let txn = Txn::default()
            .when(Compare::ModRevision(at.clone(), revision))
            .when(Compare::ModRevision(key.clone(), pipeline_revision))
            .then(Op::Put(at, encode(run)?))
            .then(Op::Put(key, encode(&pipeline)?));
        let conflict = format!("run {} changed while it was being written", run.number);
        commit_if(self.resources.store(), txn, &term.fence, &conflict).await
    }

    async fn store_log(
        &self,
        run: &RunRecord,
        stage: StageName,
        log: &StageLog,
        term: &Term,
    ) -> Result<(), ApiError> {
        let at = log_key(&run.mesh, &run.pipeline, run.number, stage);
        let txn = Txn::default().then(Op::Put(at, encode(log)?));
        commit_if(self.resources.store(), txn, &term.fence, "deposed")
            .await
            .map(drop)
    }

    /// Removes run directories of runs no longer kept (and of pipelines no longer there),
    /// keeping the artifact of each pipeline's serving run.
    async fn tidy_dirs(&self, pipelines: &[(PipelineRecord, u64)]) {
        let Some(root) = &self.pipelines.dir else {
            return;
        };
        let Ok(meshes) = std::fs::read_dir(root) else {
            return;
        };
        for mesh in meshes.flatten() {
            let mesh_name = mesh.file_name().to_string_lossy().to_string();
            let Ok(dirs) = std::fs::read_dir(mesh.path()) else {
                continue;
            };
            for dir in dirs.flatten() {
                let name = dir.file_name().to_string_lossy().to_string();
                let Some((pipeline, _)) = pipelines
                    .iter()
                    .find(|(p, _)| p.mesh == mesh_name && p.name == name)
                else {
                    let _ = std::fs::remove_dir_all(dir.path());
                    continue;
                };
                let Ok(kept) = self.runs(&mesh_name, &name).await else {
                    continue;
                };
                let Ok(numbers) = std::fs::read_dir(dir.path()) else {
                    continue;
                };
                for number in numbers.flatten() {
                    let n = number.file_name().to_string_lossy().parse::<u64>().ok();
                    let run = n.and_then(|n| kept.iter().find(|r| r.number == n));
                    let serving = n.is_some() && n == pipeline.serving_run;
                    match run {
                        // An ended run's checkout is not needed; its artifact may run.
                        Some(run) if run.phase.is_terminal() => {
                            let _ = std::fs::remove_dir_all(number.path().join("src"));
                        }
                        Some(_) => {}
                        None if serving => {}
                        None => {
                            let _ = std::fs::remove_dir_all(number.path());
                        }
                    }
                }
            }
        }
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))
}

fn set_stage(run: &mut RunRecord, name: StageName, state: StageState, now: u64, detail: String) {
    if let Some(stage) = run.stage_mut(name) {
        if stage.started_at.is_none() && state != StageState::Pending {
            stage.started_at = Some(now);
        }
        if matches!(
            state,
            StageState::Succeeded | StageState::Failed | StageState::Skipped
        ) {
            stage.ended_at = Some(now);
        }
        stage.state = state;
        stage.detail = Some(detail);
    }
    run.updated_at = now;
}

/// Ends the run: stages not yet run are skipped.
fn end_run(run: &mut RunRecord, phase: RunPhase, reason: String, now: u64) {
    for stage in &mut run.stages {
        if matches!(
            stage.state,
            StageState::Pending | StageState::Running | StageState::Waiting
        ) {
            stage.state = StageState::Skipped;
            stage.ended_at = Some(now);
        }
    }
    if phase != RunPhase::Succeeded {
        run.reason = Some(reason);
    }
    run.phase = phase;
    run.updated_at = now;
}

fn fail_deploy(mut run: RunRecord, why: String, now: u64) -> RunRecord {
    set_stage(
        &mut run,
        StageName::Deploy,
        StageState::Failed,
        now,
        why.clone(),
    );
    end_run(&mut run, RunPhase::Failed, why, now);
    run
}

/// The checkout's deploy file as the build left it.
fn read_deploy_text(file: &Path, shown: &str) -> Result<String, String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("{shown}: cannot read it: {e}"))?;
    if meta.len() > MAX_DEPLOY_FILE_BYTES {
        return Err(format!(
            "{shown}: larger than {MAX_DEPLOY_FILE_BYTES} bytes"
        ));
    }
    std::fs::read_to_string(file).map_err(|e| format!("{shown}: cannot read it: {e}"))
}

fn parse_deploy_file(text: &str, shown: &str) -> Result<DeploySpec, String> {
    let spec: DeploySpec =
        serde_json::from_str(text).map_err(|e| format!("{shown} is not a deploy.json: {e}"))?;
    Problems::check(spec.problems()).map_err(|p| format!("{shown}: {p}"))?;
    Ok(spec)
}

/// The driver: while this replica leads, moves every pipeline on every [`TICK`], until
/// shutdown. Its own loop, so a slow `git` never delays a canary's rollback.
pub async fn drive(app: Arc<App>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(term) = app.leadership.term() else {
            // A follower runs nothing: a new leader starts again what was under way.
            app.pipelines.jobs.lock().await.clear();
            continue;
        };
        if let Err(error) = app.drive_pipelines(&term).await {
            tracing::warn!(%error, "pipeline driver pass failed");
        }
    }
    app.pipelines.jobs.lock().await.clear();
}

#[cfg(test)]
mod tests;
