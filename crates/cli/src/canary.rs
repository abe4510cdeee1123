//! `aviary canary start|status|list|pause|resume|promote|abort|history`: start and steer
//! canaries, and watch them decide.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use client::Client;
use model::wire::{CanaryCommand as Command, CanaryRecord, CanaryView, StatsView};
use serde_json::{Value, json};

use crate::args::{CanaryCommand, CanaryStartOpts};
use crate::get::resolve_mesh;

pub async fn run(client: &Client, command: CanaryCommand) -> anyhow::Result<()> {
    match command {
        CanaryCommand::Start(opts) => start(client, *opts).await,
        CanaryCommand::Status { name, mesh, watch } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            status(client, &mesh, &name, watch).await
        }
        CanaryCommand::List { mesh } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            print!("{}", list_table(&client.canaries(&mesh).await?));
            Ok(())
        }
        CanaryCommand::History { name, mesh } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            let canary = get(client, &mesh, &name).await?;
            print!("{}", history_table(&canary.record));
            Ok(())
        }
        CanaryCommand::Pause { name, mesh } => {
            command_and_show(client, mesh, &name, Command::Pause, None).await
        }
        CanaryCommand::Resume { name, mesh } => {
            command_and_show(client, mesh, &name, Command::Resume, None).await
        }
        CanaryCommand::Promote { name, mesh } => {
            command_and_show(client, mesh, &name, Command::Promote, None).await
        }
        CanaryCommand::Abort { name, mesh, reason } => {
            command_and_show(client, mesh, &name, Command::Abort, reason).await
        }
    }
}

async fn start(client: &Client, opts: CanaryStartOpts) -> anyhow::Result<()> {
    let mesh = resolve_mesh(client, opts.mesh.as_deref()).await?;
    let mut spec = spec_from(&opts, &mesh)?;
    if opts.replicas.is_some() {
        // Both workloads run one node: the stable one's.
        let workload = client
            .get_object(&mesh, "workloads", &opts.stable)
            .await?
            .with_context(|| {
                format!(
                    "--stable: workload '{}' not found in mesh '{mesh}'",
                    opts.stable
                )
            })?;
        spec["stableNode"] = workload["virtualNode"].clone();
    }
    let canary = client.create_canary(&mesh, &opts.name, &spec).await?;
    println!(
        "canary/{} started: {} at {}%",
        opts.name, opts.canary, canary.record.state.canary_weight
    );
    Ok(())
}

/// The `CanarySpec` JSON the flags describe; the control plane validates it.
pub fn spec_from(opts: &CanaryStartOpts, mesh: &str) -> anyhow::Result<Value> {
    let strategy = match (&opts.weights, opts.initial, opts.step_weight) {
        (weights, initial, step)
            if opts.replicas.is_some()
                && (weights.is_some() || initial.is_some() || step.is_some()) =>
        {
            bail!(
                "--replicas moves one replica per step: it takes no --weights, --initial or \
                 --step-weight"
            )
        }
        (None, None, None) if let Some(total) = opts.replicas => json!({
            "type": "replicas",
            "stableWorkload": opts.stable,
            "canaryWorkload": opts.canary,
            "total": total,
            "interval": opts.interval,
        }),
        (Some(weights), None, None) => {
            let steps: Vec<Value> = weights
                .split(',')
                .map(|w| match w.trim() {
                    "gate" => Ok(json!("gate")),
                    n => n.parse::<u32>().map(|n| json!(n)).with_context(|| {
                        format!("--weights: '{n}' is neither a weight nor 'gate'")
                    }),
                })
                .collect::<anyhow::Result<_>>()?;
            json!({ "type": "weights", "weights": steps, "interval": opts.interval })
        }
        (None, Some(weight), None) => {
            json!({ "type": "initial", "weight": weight, "duration": opts.interval })
        }
        (None, None, step) => json!({
            "type": "steps",
            "stepWeight": step.unwrap_or(10),
            "interval": opts.interval,
            "maxWeight": opts.max_weight,
        }),
        _ => bail!("give one strategy: --step-weight, --weights or --initial"),
    };
    let mut analysis = json!({
        "failureWindow": opts.failure_window,
        "minRequests": opts.min_requests,
        "progressDeadline": opts.progress_deadline,
    });
    if let Some(max) = opts.max_5xx {
        analysis["max5xx"] = json!(max);
    }
    if let Some(rate) = opts.max_error_rate {
        analysis["maxErrorRate"] = json!(rate);
    }
    if let Some(p99) = opts.max_p99_ms {
        analysis["maxP99Ms"] = json!(p99);
    }
    if opts.compare {
        let mut compare = json!({});
        if let Some(confidence) = opts.confidence {
            compare["confidence"] = json!(confidence);
        }
        if let Some(increase) = opts.max_error_rate_increase {
            compare["maxErrorRateIncrease"] = json!(increase);
        }
        if let Some(quantile) = opts.compare_latency {
            compare["latency"] = json!({ "quantile": quantile });
        }
        analysis["compare"] = compare;
    }
    if let Some(policy) = &opts.no_traffic {
        analysis["noTraffic"] = json!(policy);
    }
    let hooks: Vec<Value> = opts
        .webhooks
        .iter()
        .map(|hook| {
            let (name, url) = hook
                .split_once('=')
                .with_context(|| format!("--webhook '{hook}' is not NAME=URL"))?;
            Ok(json!({ "name": name, "url": url }))
        })
        .collect::<anyhow::Result<_>>()?;
    analysis["webhooks"] = json!(hooks);
    if let Some(url) = &opts.load {
        analysis["load"] = json!({ "url": url, "rate": opts.load_rate });
        if let Some(host) = &opts.load_host {
            analysis["load"]["host"] = json!(host);
        }
    }
    let mut rules = Vec::new();
    for (flag, kind, list) in [
        ("--match-header", "header", &opts.match_headers),
        ("--match-cookie", "cookie", &opts.match_cookies),
    ] {
        for rule in list {
            let (name, value) = rule
                .split_once('=')
                .with_context(|| format!("{flag} '{rule}' is not NAME=VALUE"))?;
            rules.push(json!({ kind: name, "exact": value }));
        }
    }
    let mut spec = json!({
        "mesh": mesh,
        "stableNode": opts.stable,
        "canaryNode": opts.canary,
        "strategy": strategy,
        "analysis": analysis,
        "onSuccess": { "removeStable": opts.remove_stable },
        "onFailure": { "removeCanary": opts.remove_canary },
        "notify": opts.notify.iter().map(|url| json!({ "url": url })).collect::<Vec<_>>(),
    });
    match (&opts.router, &opts.route) {
        (Some(router), Some(route)) => {
            spec["router"] = json!(router);
            spec["route"] = json!(route);
        }
        // A replicas canary: one node (set by the caller), no route.
        _ => {
            if let Some(fields) = spec.as_object_mut() {
                fields.remove("canaryNode");
            }
        }
    }
    if let Some(percent) = opts.mirror {
        spec["mirror"] = json!({ "percent": percent });
    }
    if !rules.is_empty() {
        spec["match"] = json!(rules);
    }
    if opts.sticky {
        spec["sticky"] = json!({});
    }
    Ok(spec)
}

async fn get(client: &Client, mesh: &str, name: &str) -> anyhow::Result<CanaryView> {
    client
        .canary(mesh, name)
        .await?
        .with_context(|| format!("canary '{name}' not found in mesh '{mesh}'"))
}

async fn command_and_show(
    client: &Client,
    mesh: Option<String>,
    name: &str,
    command: Command,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let mesh = resolve_mesh(client, mesh.as_deref()).await?;
    let canary = client.command_canary(&mesh, name, command, reason).await?;
    let state = &canary.record.state;
    println!(
        "canary/{name} {}: canary at {}%",
        state.phase, state.canary_weight
    );
    Ok(())
}

async fn status(client: &Client, mesh: &str, name: &str, watch: bool) -> anyhow::Result<()> {
    let clear = watch && std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let canary = get(client, mesh, name).await?;
        let stats = client.stats(mesh, "10s").await.ok();
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", status_view(&canary, stats.as_ref()));
        std::io::stdout().flush()?;
        if !watch || canary.record.settled() {
            return Ok(());
        }
        println!();
    }
}

/// The live view: weights, the control plane's status (step i of n, what the step waits for),
/// stable vs canary traffic, and the last decision with its reason.
pub fn status_view(canary: &CanaryView, stats: Option<&StatsView>) -> String {
    let CanaryView { record, status } = canary;
    let (spec, state) = (&record.spec, &record.state);
    let mut out = format!(
        "canary {}   mesh {}   {}\n",
        record.name,
        spec.mesh,
        drives(spec)
    );
    let shares = match spec.replicas() {
        Some(split) => {
            let (stable, canary) = split.counts(state.canary_weight);
            format!(
                "replicas {} {stable} / {} {canary}",
                split.stable_workload, split.canary_workload
            )
        }
        None => format!(
            "weights {} {} / {} {}",
            spec.stable_node,
            state.stable_weight(),
            spec.canary_node,
            state.canary_weight
        ),
    };
    out.push_str(&format!(
        "phase {}   step {} of {}   {shares}\n",
        state.phase, status.step, status.steps,
    ));
    out.push_str(&format!("status: {}\n", status.summary));
    out.push_str(&format!(
        "{:<8} {:<24} {:>9} {:>9} {:>9}\n",
        "", "NODE", "REQ/S", "ERRORS", "P99"
    ));
    for (role, version) in [
        ("stable", spec.stable_version()),
        ("canary", spec.canary_version()),
    ] {
        let found = stats.and_then(|stats| stats.version(version.node, version.workload));
        let name = version.to_string();
        out.push_str(&format!(
            "{role:<8} {name:<24} {:>9.1} {:>8.1}% {:>9}\n",
            found.map_or(0.0, |n| n.requests_per_second),
            found.map_or(0.0, |n| n.error_rate) * 100.0,
            crate::top::millis(found.and_then(|n| n.p99_ms)),
        ));
    }
    if let Some(last) = state.history.last() {
        out.push_str(&format!(
            "last: {} at {}%: {}\n",
            last.event, last.canary_weight, last.reason
        ));
    }
    out
}

/// What a canary moves: `route r/rt`, or `replicas of node web-vn`.
fn drives(spec: &rollout::CanarySpec) -> String {
    match spec.replicas() {
        Some(_) => format!("replicas of node {}", spec.stable_node),
        None => format!("route {}/{}", spec.router, spec.route),
    }
}

pub fn list_table(canaries: &[CanaryView]) -> String {
    let mut out = format!(
        "{:<20} {:<24} {:<16} {:<16} {:<15} {:>6}  {}\n",
        "NAME", "ROUTE", "STABLE", "CANARY", "PHASE", "WEIGHT", "STATUS"
    );
    for CanaryView { record, status } in canaries {
        let spec = &record.spec;
        out.push_str(&format!(
            "{:<20} {:<24} {:<16} {:<16} {:<15} {:>5}%  {}\n",
            record.name,
            match spec.replicas() {
                Some(_) => format!("({})", spec.stable_node),
                None => format!("{}/{}", spec.router, spec.route),
            },
            spec.stable_version().to_string(),
            spec.canary_version().to_string(),
            record.state.phase.to_string(),
            record.state.canary_weight,
            status.summary,
        ));
    }
    out
}

pub fn history_table(canary: &CanaryRecord) -> String {
    let mut out = format!(
        "{:<26} {:<11} {:>6}  {}\n",
        "AT (UTC)", "EVENT", "CANARY", "REASON"
    );
    for entry in &canary.state.history {
        out.push_str(&format!(
            "{:<26} {:<11} {:>5}%  {}\n",
            utc(entry.at),
            entry.event.to_string(),
            entry.canary_weight,
            entry.reason
        ));
    }
    out
}

/// `2026-11-21 23:59:01.123` from milliseconds since the epoch (UTC).
pub fn utc(millis: u64) -> String {
    let secs = millis / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let (year, month, day) = model::civil::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{:03}",
        millis % 1000
    )
}

#[cfg(test)]
mod tests;
