//! The pipeline's pure decisions: what a new commit supersedes, which runs are forgotten, and
//! the bounded stage log.

use model::wire::pipeline::NewCommit;
use model::wire::{
    MAX_STAGE_LOG_BYTES, PipelineRecord, RunPhase, RunRecord, StageName, StageState,
};

use super::job::Tail;
use super::*;

fn pipeline(policy: NewCommit) -> PipelineRecord {
    PipelineRecord {
        name: "p".into(),
        mesh: "m".into(),
        spec: serde_json::from_value(serde_json::json!({
            "repository": "/r", "build": {"command": "true"}
        }))
        .unwrap(),
        created_at: 0,
        last_commit: None,
        next_run: 1,
        version: 0,
        serving_run: None,
    }
    .with_policy(policy)
}

trait WithPolicy {
    fn with_policy(self, policy: NewCommit) -> Self;
}

impl WithPolicy for PipelineRecord {
    fn with_policy(mut self, policy: NewCommit) -> Self {
        self.spec.on_new_commit = policy;
        self
    }
}

fn run(p: &PipelineRecord, number: u64, phase: RunPhase) -> (RunRecord, u64) {
    let mut run = RunRecord::queued(p, number, "c0ffee", "poll", number);
    run.phase = phase;
    (run, number)
}

#[test]
fn a_new_commit_replaces_the_waiting_one_and_supersedes_a_build_only_when_asked() {
    let queue = pipeline(NewCommit::Queue);
    let runs = vec![
        run(&queue, 1, RunPhase::Succeeded),
        run(&queue, 2, RunPhase::Running),
        run(&queue, 3, RunPhase::Queued),
    ];
    assert_eq!(superseded_by_new(&queue, &runs), [2]);
    let supersede = pipeline(NewCommit::Supersede);
    assert_eq!(superseded_by_new(&supersede, &runs), [1, 2]);
    // A run that deploys is never superseded: its canary ends it.
    let mut deploying = runs.clone();
    let deploy = deploying[1].0.stage_mut(StageName::Deploy).unwrap();
    deploy.state = StageState::Running;
    assert_eq!(superseded_by_new(&supersede, &deploying), [2]);
}

#[test]
fn runs_are_bounded_but_the_serving_one_and_the_ones_under_way_stay() {
    let mut p = pipeline(NewCommit::Queue);
    let mut runs: Vec<_> = (1..=KEPT_RUNS)
        .map(|n| run(&p, n, RunPhase::Failed))
        .collect();
    runs[KEPT_RUNS as usize - 1].0.phase = RunPhase::Running;
    p.serving_run = Some(1);
    // 20 kept, one more coming: the oldest ended one that does not serve goes.
    assert_eq!(runs_to_forget(&p, &runs), [1]);
    assert!(runs_to_forget(&p, &runs[..5]).is_empty());
}

#[test]
fn a_stage_log_keeps_its_newest_bytes_and_says_it_dropped_some() {
    let mut tail = Tail::default();
    tail.push(b"first line\n");
    for _ in 0..200 {
        tail.push(&[b'x'; 1000]);
    }
    tail.push("é last\n".as_bytes());
    let (text, truncated, changes) = tail.snapshot();
    assert!(truncated);
    assert!(text.len() <= MAX_STAGE_LOG_BYTES);
    assert!(text.ends_with("é last\n"));
    assert!(!text.contains("first line"));
    assert_eq!(changes, 202);
}

#[tokio::test]
async fn a_job_names_the_command_that_failed_and_its_last_words() {
    let dir = tempfile::tempdir().unwrap();
    let step = |script: &str| job::Step {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        cwd: dir.path().to_path_buf(),
        env: vec![("GREETING".into(), "hi".into())],
        shown: script.into(),
    };
    let mut ok = Job::start(
        vec![step("echo $GREETING")],
        Duration::from_secs(10),
        "done".into(),
    );
    let mut failing = Job::start(
        vec![
            step("echo compiling; echo 'error: no such file' >&2; exit 3"),
            step("echo never"),
        ],
        Duration::from_secs(10),
        "done".into(),
    );
    let mut slow = Job::start(
        vec![step("sleep 30")],
        Duration::from_millis(300),
        "done".into(),
    );
    assert_eq!(wait(&mut ok).await, Ok("done".to_string()));
    assert!(ok.tail.lock().unwrap().snapshot().0.contains("hi"));
    let failed = wait(&mut failing).await.unwrap_err();
    assert!(failed.contains("exit code 3"), "{failed}");
    assert!(failed.contains("error: no such file"), "{failed}");
    assert!(!failing.tail.lock().unwrap().snapshot().0.contains("never"));
    let timed_out = wait(&mut slow).await.unwrap_err();
    assert!(timed_out.contains("timed out"), "{timed_out}");
}

async fn wait(job: &mut Job) -> Result<String, String> {
    for _ in 0..200 {
        if let Some(outcome) = job.finished().await {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job did not end in 10 s");
}
