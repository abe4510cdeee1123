//! `aviary canary start|status|list|pause|resume|promote|abort|history`: start and steer
//! canaries, and watch them decide.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use client::Client;
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
            print!(
                "{}",
                list_table(&client.list_objects(&mesh, "canaries").await?)
            );
            Ok(())
        }
        CanaryCommand::History { name, mesh } => {
            let mesh = resolve_mesh(client, mesh.as_deref()).await?;
            let canary = get(client, &mesh, &name).await?;
            print!("{}", history_table(&canary));
            Ok(())
        }
        CanaryCommand::Pause { name, mesh } => {
            command_and_show(client, mesh, &name, "pause", None).await
        }
        CanaryCommand::Resume { name, mesh } => {
            command_and_show(client, mesh, &name, "resume", None).await
        }
        CanaryCommand::Promote { name, mesh } => {
            command_and_show(client, mesh, &name, "promote", None).await
        }
        CanaryCommand::Abort { name, mesh, reason } => {
            command_and_show(client, mesh, &name, "abort", reason).await
        }
    }
}

async fn start(client: &Client, opts: CanaryStartOpts) -> anyhow::Result<()> {
    let mesh = resolve_mesh(client, opts.mesh.as_deref()).await?;
    let spec = spec_from(&opts, &mesh)?;
    let canary = client
        .post_object(
            &mesh,
            "canaries",
            &json!({ "name": opts.name, "spec": spec }),
        )
        .await?;
    println!(
        "canary/{} started: {} at {}%",
        opts.name, opts.canary, canary["state"]["canaryWeight"]
    );
    Ok(())
}

/// The `CanarySpec` JSON the flags describe; the control plane validates it.
pub fn spec_from(opts: &CanaryStartOpts, mesh: &str) -> anyhow::Result<Value> {
    let strategy = match (&opts.weights, opts.initial, opts.step_weight) {
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
    Ok(json!({
        "mesh": mesh,
        "router": opts.router,
        "route": opts.route,
        "stableNode": opts.stable,
        "canaryNode": opts.canary,
        "strategy": strategy,
        "analysis": analysis,
        "onSuccess": { "removeStable": opts.remove_stable },
        "onFailure": { "removeCanary": opts.remove_canary },
    }))
}

async fn get(client: &Client, mesh: &str, name: &str) -> anyhow::Result<Value> {
    client
        .get_object(mesh, "canaries", name)
        .await?
        .with_context(|| format!("canary '{name}' not found in mesh '{mesh}'"))
}

async fn command_and_show(
    client: &Client,
    mesh: Option<String>,
    name: &str,
    command: &str,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let mesh = resolve_mesh(client, mesh.as_deref()).await?;
    let body = reason
        .map(|r| json!({ "reason": r }))
        .unwrap_or_else(|| json!({}));
    let canary = client
        .post_object(&mesh, &format!("canaries/{name}/{command}"), &body)
        .await?;
    println!(
        "canary/{name} {}: canary at {}%",
        canary["state"]["phase"].as_str().unwrap_or("?"),
        canary["state"]["canaryWeight"]
    );
    Ok(())
}

async fn status(client: &Client, mesh: &str, name: &str, watch: bool) -> anyhow::Result<()> {
    let clear = watch && std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let canary = get(client, mesh, name).await?;
        let stats = client.stats(mesh, "10s").await.unwrap_or(Value::Null);
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", status_view(&canary, &stats, now_millis()));
        std::io::stdout().flush()?;
        if !watch || settled(&canary) {
            return Ok(());
        }
        println!();
    }
}

/// The canary has ended and the controller has acted on its last decision (the route and any
/// removal are done): it stores a decision before acting on it, so the phase alone is early.
pub fn settled(canary: &Value) -> bool {
    let history = canary["state"]["history"].as_array().map_or(0, Vec::len);
    let acted = canary["acted"].as_u64().unwrap_or(0) as usize == history;
    let ended = matches!(
        canary["state"]["phase"].as_str(),
        Some("succeeded" | "failed" | "aborted")
    );
    acted && ended
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The live view: weights, step i of n, time to the next step, stable vs canary traffic, and
/// the last decision with its reason.
pub fn status_view(canary: &Value, stats: &Value, now: u64) -> String {
    let spec = &canary["spec"];
    let state = &canary["state"];
    let steps = state["steps"].as_array().map_or(0, Vec::len);
    let step = state["step"].as_u64().unwrap_or(0) as usize;
    let weight = state["canaryWeight"].as_u64().unwrap_or(0);
    let phase = state["phase"].as_str().unwrap_or("?");
    let mut out = format!(
        "canary {}   mesh {}   route {}/{}\n",
        canary["name"].as_str().unwrap_or("?"),
        spec["mesh"].as_str().unwrap_or("?"),
        spec["router"].as_str().unwrap_or("?"),
        spec["route"].as_str().unwrap_or("?"),
    );
    out.push_str(&format!(
        "phase {phase}   step {} of {}   weights {} {} / {} {}\n",
        (step + 1).min(steps + 1),
        steps + 1,
        spec["stableNode"].as_str().unwrap_or("?"),
        100 - weight.min(100),
        spec["canaryNode"].as_str().unwrap_or("?"),
        weight
    ));
    if phase == "progressing" {
        let interval = spec["strategy"]["interval"]
            .as_str()
            .or(spec["strategy"]["duration"].as_str())
            .and_then(|t| crate::args::parse_duration(t).ok())
            .unwrap_or_default();
        let due = state["stepStartedAt"].as_u64().unwrap_or(0) + interval.as_millis() as u64;
        let left = due.saturating_sub(now) as f64 / 1000.0;
        out.push_str(&format!(
            "next step in {left:.1}s (when the analysis passes)\n"
        ));
    }
    out.push_str(&format!(
        "{:<8} {:<24} {:>9} {:>9} {:>9}\n",
        "", "NODE", "REQ/S", "ERRORS", "P99"
    ));
    for (role, node) in [
        ("stable", &spec["stableNode"]),
        ("canary", &spec["canaryNode"]),
    ] {
        let found = stats["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["virtualNode"] == *node))
            .cloned()
            .unwrap_or(Value::Null);
        let p99 = found["p99Ms"]
            .as_f64()
            .map_or("-".into(), |m| format!("{m:.1}ms"));
        out.push_str(&format!(
            "{role:<8} {:<24} {:>9.1} {:>8.1}% {:>9}\n",
            node.as_str().unwrap_or("?"),
            found["requestsPerSecond"].as_f64().unwrap_or(0.0),
            found["errorRate"].as_f64().unwrap_or(0.0) * 100.0,
            p99
        ));
    }
    if let Some(last) = state["history"].as_array().and_then(|h| h.last()) {
        out.push_str(&format!(
            "last: {} at {}%: {}\n",
            last["event"].as_str().unwrap_or("?"),
            last["canaryWeight"],
            last["reason"].as_str().unwrap_or("")
        ));
    }
    out
}

pub fn list_table(canaries: &[Value]) -> String {
    let mut out = format!(
        "{:<20} {:<24} {:<16} {:<16} {:<15} {:>6}\n",
        "NAME", "ROUTE", "STABLE", "CANARY", "PHASE", "WEIGHT"
    );
    for canary in canaries {
        let spec = &canary["spec"];
        out.push_str(&format!(
            "{:<20} {:<24} {:<16} {:<16} {:<15} {:>5}%\n",
            canary["name"].as_str().unwrap_or("?"),
            format!(
                "{}/{}",
                spec["router"].as_str().unwrap_or("?"),
                spec["route"].as_str().unwrap_or("?")
            ),
            spec["stableNode"].as_str().unwrap_or("?"),
            spec["canaryNode"].as_str().unwrap_or("?"),
            canary["state"]["phase"].as_str().unwrap_or("?"),
            canary["state"]["canaryWeight"],
        ));
    }
    out
}

pub fn history_table(canary: &Value) -> String {
    let mut out = format!(
        "{:<26} {:<11} {:>6}  {}\n",
        "AT (UTC)", "EVENT", "CANARY", "REASON"
    );
    for entry in canary["state"]["history"].as_array().into_iter().flatten() {
        let at = entry["at"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "{:<26} {:<11} {:>5}%  {}\n",
            utc(at),
            entry["event"].as_str().unwrap_or("?"),
            entry["canaryWeight"],
            entry["reason"].as_str().unwrap_or("")
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
