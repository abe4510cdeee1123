//! `aviary pipeline`: the AWS canary pipeline for one microservice, carried out by the control
//! plane (`/v1/meshes/{mesh}/pipelines`). This command makes pipelines, starts and approves
//! runs, and shows runs, their stages and their output; closing the terminal stops nothing.

use std::time::Duration;

use anyhow::{Context, bail};
use client::Client;
use model::wire::{
    ApproveBody, CreatePipeline, PipelineSpec, RunPhase, RunRecord, StageName, StageState,
};

use crate::args::{PipelineCommand, PipelineCreateOpts};
use crate::canary::utc;
use crate::get::resolve_mesh;

pub async fn run(client: &Client, command: PipelineCommand) -> anyhow::Result<()> {
    match command {
        PipelineCommand::Create(opts) => create(client, *opts).await,
        PipelineCommand::List { mesh } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            let pipelines = client.pipelines(&mesh).await?;
            if pipelines.is_empty() {
                println!("no pipelines in mesh '{mesh}'");
                return Ok(());
            }
            println!(
                "{:<20} {:<8} {:<12} {:<28} {:>7}  REPOSITORY",
                "NAME", "VERSION", "BRANCH", "NEWEST RUN", "POLL"
            );
            for view in pipelines {
                let newest = view
                    .runs
                    .first()
                    .map(|r| format!("#{} {} {}", r.number, r.phase, short(&r.commit)))
                    .unwrap_or_else(|| "-".into());
                let poll = match view.record.spec.poll_seconds {
                    0 => "trigger".to_string(),
                    s => format!("{s}s"),
                };
                println!(
                    "{:<20} {:<8} {:<12} {:<28} {:>7}  {}",
                    view.record.name,
                    view.record.version,
                    view.record.spec.branch,
                    newest,
                    poll,
                    view.record.spec.repository
                );
            }
            Ok(())
        }
        PipelineCommand::Status { name, mesh, watch } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            status(client, &mesh, &name, watch).await
        }
        PipelineCommand::History { name, mesh } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            let runs = client.runs(&mesh, &name).await?;
            println!(
                "{:<5} {:<11} {:<9} {:<8} {:<23} {:<8} WHY",
                "RUN", "PHASE", "COMMIT", "TRIGGER", "STARTED", "VERSION"
            );
            for run in runs {
                println!(
                    "{:<5} {:<11} {:<9} {:<8} {:<23} {:<8} {}",
                    run.number,
                    run.phase.to_string(),
                    short(&run.commit),
                    run.trigger,
                    utc(run.created_at),
                    run.version.map(|v| v.to_string()).unwrap_or("-".into()),
                    run.reason.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        PipelineCommand::Trigger { name, mesh } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            let run = client.trigger_pipeline(&mesh, &name).await?;
            println!(
                "run {} of pipeline {name} queued for commit {}",
                run.number,
                short(&run.commit)
            );
            Ok(())
        }
        PipelineCommand::Approve {
            name,
            run,
            reject,
            mesh,
        } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            let number = match run {
                Some(number) => number,
                None => client
                    .runs(&mesh, &name)
                    .await?
                    .into_iter()
                    .find(|r| {
                        r.stage(StageName::Approval)
                            .is_some_and(|s| s.state == StageState::Waiting)
                    })
                    .map(|r| r.number)
                    .with_context(|| format!("no run of pipeline {name} waits for approval"))?,
            };
            let body = ApproveBody {
                approve: reject.is_none(),
                reason: reject,
            };
            let run = client.approve_run(&mesh, &name, number, &body).await?;
            let verdict = if body.approve { "approved" } else { "rejected" };
            println!("run {} of pipeline {name} {verdict}", run.number);
            Ok(())
        }
        PipelineCommand::Logs {
            name,
            run,
            stage,
            mesh,
        } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            let stage = StageName::parse(&stage).context("unknown stage")?;
            let number = match run {
                Some(number) => number,
                None => newest(client, &mesh, &name).await?.number,
            };
            let log = client.run_logs(&mesh, &name, number, stage).await?;
            if log.truncated {
                println!("[aviary] earlier output was dropped (a stage keeps its last 64 KiB)");
            }
            print!("{}", log.text);
            Ok(())
        }
        PipelineCommand::Delete { name, mesh } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            client.delete_pipeline(&mesh, &name).await?;
            println!("pipeline {name} deleted");
            Ok(())
        }
    }
}

async fn create(client: &Client, opts: PipelineCreateOpts) -> anyhow::Result<()> {
    let mesh = resolve_mesh(client, opts.mesh.as_deref()).await?;
    // A local path is sent absolute: the control plane clones from its own working directory.
    let local = std::path::Path::new(&opts.repository);
    let repository = match local.exists() {
        true => std::path::absolute(local)?.display().to_string(),
        false => opts.repository,
    };
    let spec: PipelineSpec = serde_json::from_value(serde_json::json!({
        "repository": repository,
        "branch": opts.branch,
        "pollSeconds": opts.poll,
        "build": { "command": opts.build, "timeoutSeconds": opts.build_timeout },
        "deployFile": opts.deploy_file,
        "approval": opts.approval,
        "onNewCommit": if opts.supersede { "supersede" } else { "queue" },
    }))?;
    let problems = spec.problems();
    if !problems.is_empty() {
        bail!("{}", model::Problems(problems));
    }
    let view = client
        .create_pipeline(
            &mesh,
            &CreatePipeline {
                name: opts.name.clone(),
                spec,
            },
        )
        .await?;
    let first = view.runs.first().map(|r| r.commit.as_str()).unwrap_or("");
    println!(
        "pipeline {} created; run 1 builds commit {} (follow it with `aviary pipeline status {} --watch`)",
        opts.name,
        short(first),
        opts.name
    );
    Ok(())
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(8)]
}

async fn newest(client: &Client, mesh: &str, name: &str) -> anyhow::Result<RunRecord> {
    client
        .runs(mesh, name)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("pipeline {name} has no runs"))
}

/// Prints the pipeline and its newest run; with `watch`, every change of that run until it
/// ends, failing when it did not succeed.
async fn status(client: &Client, mesh: &str, name: &str, watch: bool) -> anyhow::Result<()> {
    let view = client.pipeline(mesh, name).await?;
    let record = &view.record;
    println!(
        "pipeline {} (mesh {mesh}): {} branch {}, version {}",
        record.name, record.spec.repository, record.spec.branch, record.version
    );
    let Some(first) = view.runs.first() else {
        println!("no runs yet");
        return Ok(());
    };
    let number = first.number;
    let mut shown: Vec<String> = Vec::new();
    loop {
        let run = client.run(mesh, name, number).await?;
        let lines = describe(&run);
        if watch {
            for line in lines.iter().filter(|l| !shown.contains(l)) {
                println!("{line}");
            }
        } else {
            for line in &lines {
                println!("{line}");
            }
        }
        shown = lines;
        if !watch {
            return Ok(());
        }
        match run.phase {
            RunPhase::Succeeded => return Ok(()),
            RunPhase::Failed | RunPhase::Superseded => bail!(
                "run {number} {}: {}",
                run.phase,
                run.reason.as_deref().unwrap_or("no reason recorded")
            ),
            RunPhase::Queued | RunPhase::Running => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
        }
    }
}

/// The run as lines: its heading, then one line per stage.
fn describe(run: &RunRecord) -> Vec<String> {
    let mut lines = vec![format!(
        "run {} ({} of {}): {}{}",
        run.number,
        run.trigger,
        short(&run.commit),
        run.phase,
        run.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )];
    for stage in &run.stages {
        let took = match (stage.started_at, stage.ended_at) {
            (Some(start), Some(end)) => {
                format!(" ({:.1}s)", end.saturating_sub(start) as f64 / 1000.0)
            }
            _ => String::new(),
        };
        lines.push(format!(
            "  {:<9} {:<10}{took}  {}",
            stage.name.to_string(),
            stage.state.to_string(),
            stage.detail.as_deref().unwrap_or("")
        ));
    }
    lines
}
