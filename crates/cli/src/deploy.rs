//! `aviary deploy deploy.json`: the App Mesh canary pipeline's deploy step. The control plane
//! stores the deploy and carries it out (`/v1/meshes/{mesh}/deploys`): the new version becomes
//! node and workload `<svc>-<N>`, passes its health check and rolls out as a canary; after
//! success the old version is removed, after a rollback the new one. This command starts it and
//! follows it; closing the terminal stops nothing.

use std::time::Duration;

use anyhow::{Context, bail};
use client::Client;
use model::wire::{DeployPhase, DeployRecord, DeploySpec};
use serde_json::Value;

use crate::args::DeployOpts;
use crate::get::resolve_mesh;

pub async fn run(client: &Client, opts: DeployOpts) -> anyhow::Result<()> {
    let (mesh, name) = match (&opts.file, &opts.follow) {
        (_, Some(name)) => (
            resolve_mesh(client, opts.mesh.as_deref()).await?,
            name.clone(),
        ),
        (Some(file), None) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            if let Some(timeout) = opts.health_timeout {
                body["health_timeout"] = timeout.as_secs().max(1).into();
            }
            // Read here too, so a bad file is named as the file before anything is sent.
            let spec: DeploySpec = serde_json::from_value(body.clone())
                .with_context(|| format!("{} is not a deploy.json", file.display()))?;
            let problems = spec.problems();
            if !problems.is_empty() {
                bail!("{}: {}", file.display(), model::Problems(problems));
            }
            let unused = spec.unused();
            if !unused.is_empty() {
                println!("not used in local mode: {}", unused.join(", "));
            }
            let mesh = resolve_mesh(client, spec.mesh.as_deref().or(opts.mesh.as_deref())).await?;
            let deploy = client.create_deploy(&mesh, &body).await?;
            println!("deploy {} started in the control plane", deploy.name);
            if opts.detach {
                println!(
                    "follow it with `aviary deploy --follow {} --mesh {mesh}`",
                    deploy.name
                );
                return Ok(());
            }
            (mesh, deploy.name)
        }
        (None, None) => bail!("give a deploy.json, or --follow NAME"),
    };
    tokio::select! {
        outcome = follow(client, &mesh, &name) => outcome,
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "stopped following; deploy {name} goes on in the control plane: follow it with `aviary deploy --follow {name} --mesh {mesh}`, stop its rollout with `aviary canary abort {name} --mesh {mesh}`"
            );
            Ok(())
        }
    }
}

/// Prints the deploy's history and its canary's decisions until it ends; fails with the reason
/// when it did not succeed.
async fn follow(client: &Client, mesh: &str, name: &str) -> anyhow::Result<()> {
    let (mut shown, mut canary_shown) = (0, 0);
    // The kinds of what the canary's step waits for (beyond its interval), when last printed.
    let mut waits_shown: Vec<std::mem::Discriminant<rollout::Wait>> = Vec::new();
    loop {
        let deploy: DeployRecord = client
            .deploy(mesh, name)
            .await?
            .with_context(|| format!("deploy '{name}' not found in mesh '{mesh}'"))?;
        for event in deploy.events.iter().skip(shown) {
            println!("{}  {}", crate::canary::utc(event.at), event.text);
        }
        shown = deploy.events.len();
        if let Some(canary) = &deploy.canary
            && let Some(view) = client.canary(mesh, canary).await?
        {
            let history = &view.record.state.history;
            for entry in history.iter().skip(canary_shown) {
                println!(
                    "{}  {:<11} {:>3}%  {}",
                    crate::canary::utc(entry.at),
                    entry.event.to_string(),
                    entry.canary_weight,
                    entry.reason
                );
                if entry.reason.contains("passed without traffic") {
                    eprintln!("warning: {}", entry.reason);
                }
            }
            canary_shown = history.len();
            // Said once when it starts waiting for something new: traffic, evidence, a webhook.
            let waits: Vec<&rollout::Waiting> = view
                .status
                .waiting
                .iter()
                .filter(|w| !matches!(w.wait, rollout::Wait::Interval { .. }))
                .collect();
            let kinds: Vec<_> = waits
                .iter()
                .map(|w| std::mem::discriminant(&w.wait))
                .collect();
            if kinds != waits_shown {
                for wait in &waits {
                    println!("{:<24}   waiting: {}", "", wait.text);
                }
                waits_shown = kinds;
            }
        }
        match deploy.phase {
            DeployPhase::Succeeded => return Ok(()),
            DeployPhase::RolledBack | DeployPhase::Failed => bail!(
                "deploy {name} {}: {}",
                if deploy.phase == DeployPhase::Failed {
                    "failed"
                } else {
                    "rolled back"
                },
                deploy.reason.as_deref().unwrap_or("no reason recorded")
            ),
            DeployPhase::Starting | DeployPhase::Canary => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
        }
    }
}
