//! `aviary route set`: replace a route's weighted targets in one write.

use anyhow::{Context, bail};
use client::Client;
use model::{Kind, ResourcePath};
use serde_json::{Value, json};

use crate::args::RouteSetOpts;

pub async fn set(client: &Client, opts: RouteSetOpts) -> anyhow::Result<()> {
    let targets = parse_targets(&opts.targets)?;
    let mesh = crate::get::resolve_mesh(client, opts.mesh.as_deref()).await?;
    let path = ResourcePath {
        kind: Kind::Route,
        mesh: mesh.clone(),
        parent: Some(opts.router.clone()),
        name: opts.route.clone(),
    };
    let Some(route) = client.describe(&path).await? else {
        // Say which is missing: the router, or the route in it.
        crate::scope::require_parent(client, &mesh, Kind::Route, Some(&opts.router)).await?;
        bail!(
            "route '{}' of router '{}' not found in mesh '{}'",
            opts.route,
            opts.router,
            mesh
        );
    };
    let spec = with_targets(&route["spec"], &targets)?;
    let updated = client.update(&path, &spec).await?;
    let shown: Vec<String> = targets.iter().map(|(n, w)| format!("{n}={w}")).collect();
    println!(
        "route/{} set: {} (version {})",
        opts.route,
        shown.join(" "),
        updated["metadata"]["version"]
    );
    Ok(())
}

/// `["a=75", "b=25"]` → `[("a", 75), ("b", 25)]`, refusing anything else with the offending text.
pub fn parse_targets(args: &[String]) -> anyhow::Result<Vec<(String, u64)>> {
    args.iter()
        .map(|arg| {
            let (node, weight) = arg
                .split_once('=')
                .with_context(|| format!("'{arg}' is not NODE=WEIGHT"))?;
            let weight = weight.parse::<u64>().with_context(|| {
                format!("'{arg}': weight '{weight}' is not a non-negative integer")
            })?;
            if node.is_empty() {
                bail!("'{arg}': node name is empty");
            }
            Ok((node.to_string(), weight))
        })
        .collect()
}

/// The route spec with its action's weighted targets replaced; match, retries and timeouts stay.
fn with_targets(spec: &Value, targets: &[(String, u64)]) -> anyhow::Result<Value> {
    let mut spec = spec.clone();
    let body = ["httpRoute", "http2Route", "grpcRoute", "tcpRoute"]
        .iter()
        .find(|k| spec.get(**k).is_some())
        .context("route has no httpRoute, http2Route, grpcRoute or tcpRoute")?;
    spec[*body]["action"]["weightedTargets"] = targets
        .iter()
        .map(|(node, weight)| json!({ "virtualNode": node, "weight": weight }))
        .collect();
    Ok(spec)
}
