//! `aviary deploy deploy.json`: the App Mesh canary pipeline's deploy step, locally. The new
//! version becomes node and workload `<svc>-<N>`, passes its health check, and is rolled out as
//! a canary; after success the old version is removed, after a rollback the new one is.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use client::Client;
use model::{Kind, ResourcePath};
use rollout::Phase;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::args::DeployOpts;
use crate::get::resolve_mesh;

/// The pipeline's file. Kubernetes fields are accepted and reported as unused here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployFile {
    microservice_name: String,
    percentage_step: u32,
    /// Seconds between traffic shifts.
    wait_time: u64,
    /// Most 5xx allowed in `failure_threshold_time` before rollback.
    #[serde(default)]
    failure_threshold_value: u64,
    /// Seconds over which 5xx are counted.
    #[serde(default = "ten_minutes")]
    failure_threshold_time: u64,
    /// argv of the new version, run like any workload (PORT, HTTP_PROXY).
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    mesh: Option<String>,
    #[serde(default)]
    cluster_name: Option<Value>,
    #[serde(default)]
    kubernetes_namespace: Option<Value>,
    #[serde(default)]
    container_image: Option<Value>,
    #[serde(default)]
    config_file: Option<Value>,
}

fn ten_minutes() -> u64 {
    600
}

/// The longest 5xx window the control plane keeps.
const MAX_FAILURE_WINDOW: u64 = 600;

impl DeployFile {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if model::validate_name("microservice_name", &self.microservice_name)
            .iter()
            .any(|_| true)
        {
            problems.push(format!(
                "microservice_name: '{}' is not a valid name",
                self.microservice_name
            ));
        }
        if !(1..=100).contains(&self.percentage_step) {
            problems.push(format!(
                "percentage_step: {} is not from 1 to 100",
                self.percentage_step
            ));
        }
        if self.wait_time == 0 || self.wait_time > 86_400 {
            problems.push(format!(
                "wait_time: {} is not from 1 to 86400 seconds",
                self.wait_time
            ));
        }
        if self.failure_threshold_time == 0 || self.failure_threshold_time > MAX_FAILURE_WINDOW {
            problems.push(format!(
                "failure_threshold_time: {} is not from 1 to {MAX_FAILURE_WINDOW} seconds",
                self.failure_threshold_time
            ));
        }
        if self.command.first().is_none_or(|c| c.trim().is_empty()) {
            problems.push("command: give the new version's argv, e.g. [\"aviary-demo\", \"product\", \"--version\", \"2.0\"]".into());
        }
        problems
    }

    fn unused(&self) -> Vec<&'static str> {
        [
            ("cluster_name", &self.cluster_name),
            ("kubernetes_namespace", &self.kubernetes_namespace),
            ("container_image", &self.container_image),
            ("config_file", &self.config_file),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k)
        .collect()
    }
}

pub async fn run(client: &Client, opts: DeployOpts) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&opts.file)
        .with_context(|| format!("cannot read {}", opts.file.display()))?;
    let deploy: DeployFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a deploy.json", opts.file.display()))?;
    let problems = deploy.problems();
    if !problems.is_empty() {
        bail!("{}: {}", opts.file.display(), problems.join("; "));
    }
    let unused = deploy.unused();
    if !unused.is_empty() {
        println!("not used in local mode: {}", unused.join(", "));
    }
    let mesh = resolve_mesh(client, deploy.mesh.as_deref()).await?;
    let svc = &deploy.microservice_name;
    let nodes = client
        .list(&ResourcePath::new(Kind::VirtualNode, &mesh, None, ""))
        .await?;
    let version = next_version(svc, &nodes);
    let new_name = format!("{svc}-{version}");

    let Some((router, route, old)) = current_route(client, &mesh, svc).await? else {
        return first_deploy(client, &mesh, svc, &new_name, &deploy, opts.health_timeout).await;
    };
    println!("{svc}: {old} serves route {router}/{route}; deploying {new_name}");
    let old_spec = client
        .describe(&ResourcePath::new(Kind::VirtualNode, &mesh, None, &old))
        .await?
        .with_context(|| format!("virtual node '{old}' vanished"))?["spec"]
        .clone();
    let replicas = client
        .workloads(&mesh)
        .await?
        .iter()
        .filter(|w| w.virtual_node == old)
        .map(|w| u64::from(w.replicas))
        .sum::<u64>()
        .max(1);
    create_version(
        client,
        &mesh,
        &new_name,
        node_like(&old_spec, &new_name, &mesh),
        &deploy,
        replicas,
    )
    .await?;
    wait_healthy(client, &mesh, &new_name, opts.health_timeout).await?;

    let attempt = client
        .canaries(&mesh)
        .await?
        .iter()
        .filter(|c| c.record.name.starts_with(&format!("{new_name}-")))
        .count()
        + 1;
    let canary = format!("{new_name}-{attempt}");
    let spec = json!({
        "mesh": mesh,
        "router": router,
        "route": route,
        "stableNode": old,
        "canaryNode": new_name,
        "strategy": {"type": "steps", "stepWeight": deploy.percentage_step, "interval": format!("{}s", deploy.wait_time)},
        "analysis": {
            "max5xx": deploy.failure_threshold_value,
            "failureWindow": format!("{}s", deploy.failure_threshold_time),
            "progressDeadline": format!("{}s", (deploy.wait_time * 10).max(600)),
        },
        "onSuccess": {"removeStable": true},
        "onFailure": {"removeCanary": true},
    });
    client.create_canary(&mesh, &canary, &spec).await?;
    println!(
        "canary {canary} started: {}% every {}s",
        deploy.percentage_step, deploy.wait_time
    );
    follow(client, &mesh, &canary, &old, &new_name).await
}

/// `1 + the highest N of the nodes named <svc>-<N>`; versions removed after a rollback are free again.
fn next_version(svc: &str, nodes: &[Value]) -> u64 {
    let prefix = format!("{svc}-");
    nodes
        .iter()
        .filter_map(|n| {
            n["virtualNodeName"]
                .as_str()?
                .strip_prefix(&prefix)?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
        + 1
}

/// The service's router, its route, and the node that carries the route's traffic now; `None`
/// when the service does not exist yet.
async fn current_route(
    client: &Client,
    mesh: &str,
    svc: &str,
) -> anyhow::Result<Option<(String, String, String)>> {
    let services = client
        .list(&ResourcePath::new(Kind::VirtualService, mesh, None, ""))
        .await?;
    let names: Vec<&str> = services
        .iter()
        .filter_map(|s| s["virtualServiceName"].as_str())
        .filter(|n| n.starts_with(&format!("{svc}.")))
        .collect();
    let service = match names.as_slice() {
        [] => return Ok(None),
        [one] => one.to_string(),
        many => bail!(
            "microservice_name '{svc}' matches several virtual services: {}",
            many.join(", ")
        ),
    };
    let data = client
        .describe(&ResourcePath::new(
            Kind::VirtualService,
            mesh,
            None,
            &service,
        ))
        .await?
        .with_context(|| format!("virtual service '{service}' vanished"))?;
    let router = data["spec"]["provider"]["virtualRouter"]["virtualRouterName"]
        .as_str()
        .with_context(|| format!("virtual service '{service}' is provided by a node, not a router; a canary needs a router"))?
        .to_string();
    let routes = client
        .list(&ResourcePath::new(
            Kind::Route,
            mesh,
            Some(router.clone()),
            "",
        ))
        .await?;
    let route = match routes.as_slice() {
        [one] => one["routeName"].as_str().unwrap_or_default().to_string(),
        [] => bail!("virtual router '{router}' has no route to deploy through"),
        many => bail!(
            "virtual router '{router}' has {} routes; deploy needs exactly one",
            many.len()
        ),
    };
    let route_data = client
        .describe(&ResourcePath::new(
            Kind::Route,
            mesh,
            Some(router.clone()),
            &route,
        ))
        .await?
        .with_context(|| format!("route '{route}' vanished"))?;
    let targets = model::typed::route_targets(&route_data["spec"]);
    let serving: Vec<_> = targets.iter().filter(|t| t.weight > 0).collect();
    match serving.as_slice() {
        [one] => Ok(Some((router, route, one.virtual_node.clone()))),
        _ => {
            let shown: Vec<String> = targets
                .iter()
                .map(|t| format!("{}:{}", t.virtual_node, t.weight))
                .collect();
            bail!(
                "route '{route}' splits traffic ({}); finish or roll back that release first",
                shown.join(" ")
            )
        }
    }
}

/// The new version's node: the old one's listeners, health check and backends, its own DNS name.
fn node_like(old: &Value, name: &str, mesh: &str) -> Value {
    let mut spec = old.clone();
    if spec["serviceDiscovery"]["dns"].is_object() {
        spec["serviceDiscovery"]["dns"]["hostname"] = json!(format!("{name}.{mesh}.local"));
    }
    spec
}

async fn create_version(
    client: &Client,
    mesh: &str,
    name: &str,
    node: Value,
    deploy: &DeployFile,
    replicas: u64,
) -> anyhow::Result<()> {
    client
        .create(
            &ResourcePath::new(Kind::VirtualNode, mesh, None, name),
            &node,
            None,
        )
        .await?;
    let workload = json!({ "virtualNode": name, "command": deploy.command, "replicas": replicas });
    if let Err(error) = client.put_object(mesh, "workloads", name, &workload).await {
        let _ = client
            .delete(&ResourcePath::new(Kind::VirtualNode, mesh, None, name))
            .await;
        return Err(error.into());
    }
    println!("virtualnode/{name} and workload/{name} created; waiting for its health check");
    Ok(())
}

/// Waits for a healthy endpoint of `node`; on timeout removes the new version and fails.
async fn wait_healthy(
    client: &Client,
    mesh: &str,
    node: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let endpoints = client.endpoints(mesh).await?;
        if endpoints
            .iter()
            .any(|e| e.virtual_node == node && e.healthy)
        {
            println!(
                "{node} is healthy after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() > timeout {
            let _ = client.delete_object(mesh, "workloads", node).await;
            let _ = client
                .delete(&ResourcePath::new(Kind::VirtualNode, mesh, None, node))
                .await;
            bail!(
                "{node} never passed its health check within {}s; removed it, no traffic was shifted (see `aviary logs {node}`)",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Prints each decision until the canary ends; fails with the reason after a rollback.
async fn follow(
    client: &Client,
    mesh: &str,
    canary: &str,
    old: &str,
    new: &str,
) -> anyhow::Result<()> {
    let mut shown = 0;
    loop {
        let record = client
            .canary(mesh, canary)
            .await?
            .with_context(|| format!("canary '{canary}' vanished"))?
            .record;
        let history = &record.state.history;
        for entry in history.iter().skip(shown) {
            println!(
                "{}  {:<11} {:>3}%  {}",
                crate::canary::utc(entry.at),
                entry.event.to_string(),
                entry.canary_weight,
                entry.reason
            );
        }
        shown = history.len();
        if !record.settled() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        for note in &record.notes {
            eprintln!("warning: {note}");
        }
        let phase = record.state.phase;
        let (loser, winner) = if phase == Phase::Succeeded {
            (old, new)
        } else {
            (new, old)
        };
        let removal = if record.notes.is_empty() {
            format!("{loser} removed")
        } else {
            format!("{loser} may not be fully removed (see warnings)")
        };
        if phase == Phase::Succeeded {
            println!("{winner} serves all traffic; {removal}");
            return Ok(());
        }
        bail!(
            "rolled back ({phase}): {}; {removal}, {winner} serves all traffic",
            record
                .state
                .reason
                .as_deref()
                .unwrap_or("no reason recorded")
        );
    }
}

/// No virtual service for the microservice yet: node, workload, router, route at 100% and
/// service, created at once (there is nothing to compare a canary with).
async fn first_deploy(
    client: &Client,
    mesh: &str,
    svc: &str,
    name: &str,
    deploy: &DeployFile,
    timeout: Duration,
) -> anyhow::Result<()> {
    println!("{svc}: first deploy, {name} gets all traffic at once");
    let hostname = format!("{svc}.{mesh}.local");
    let listener = json!([{ "portMapping": { "port": 8080, "protocol": "http" },
        "healthCheck": { "protocol": "http", "path": "/health", "healthyThreshold": 2,
            "unhealthyThreshold": 2, "timeoutMillis": 2000, "intervalMillis": 5000 } }]);
    let node = json!({ "listeners": listener, "serviceDiscovery": { "dns": { "hostname": format!("{name}.{mesh}.local") } } });
    create_version(client, mesh, name, node, deploy, 1).await?;
    wait_healthy(client, mesh, name, timeout).await?;
    let router = format!("{svc}-vr");
    let route = format!("{svc}-r");
    client
        .create(
            &ResourcePath::new(Kind::VirtualRouter, mesh, None, &router),
            &json!({ "listeners": [{ "portMapping": { "port": 8080, "protocol": "http" } }] }),
            None,
        )
        .await?;
    client
        .create(
            &ResourcePath::new(Kind::Route, mesh, Some(router.clone()), &route),
            &json!({ "httpRoute": { "match": { "prefix": "/" },
                "action": { "weightedTargets": [{ "virtualNode": name, "weight": 100 }] } } }),
            None,
        )
        .await?;
    client
        .create(
            &ResourcePath::new(Kind::VirtualService, mesh, None, &hostname),
            &json!({ "provider": { "virtualRouter": { "virtualRouterName": router } } }),
            None,
        )
        .await?;
    let created: BTreeSet<&str> = [router.as_str(), route.as_str(), hostname.as_str()].into();
    println!(
        "{name} serves all traffic of {hostname} (created {})",
        created.into_iter().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
