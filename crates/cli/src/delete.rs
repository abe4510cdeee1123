//! `aviary delete KIND NAME`: one App Mesh resource, workload or registered endpoint.

use anyhow::{Context, bail};
use client::Client;
use model::wire::AviaryKind;

use crate::args::DeleteOpts;
use crate::get::{object_collection, resolve_mesh};
use crate::scope::selected_path;

pub async fn run(client: &Client, opts: DeleteOpts) -> anyhow::Result<()> {
    let selector = &opts.selector;
    let Some(collection) = object_collection(&selector.kind) else {
        let path = selected_path(client, selector).await?;
        if let Err(error) = client.delete(&path).await {
            if error.is_not_found() {
                // Say which is missing: the router or gateway, or the resource in it.
                let parent = path.parent.as_deref();
                crate::scope::require_parent(client, &path.mesh, path.kind, parent).await?;
            }
            return Err(error.into());
        }
        println!(
            "{}/{} deleted",
            path.kind.as_str().to_lowercase(),
            path.name
        );
        return Ok(());
    };
    let singular = collection.as_str().to_ascii_lowercase();
    let name = selector
        .name
        .as_deref()
        .with_context(|| format!("which {singular}? give its name"))?;
    let mesh = resolve_mesh(client, selector.mesh.as_deref()).await?;
    if collection == AviaryKind::Workload {
        // Its replicas stop: the agents running them see it go.
        client
            .delete_object(&mesh, collection.plural(), name)
            .await?;
    } else {
        let node = endpoint_node(client, &mesh, name, opts.node.as_deref()).await?;
        client
            .delete_object(&mesh, &format!("endpoints/{node}"), name)
            .await?;
    }
    println!("{singular}/{name} deleted");
    Ok(())
}

/// The virtual node whose endpoint `id` is: `--node`, or the only node with an endpoint of that
/// id (ids are unique per node, and in practice across them: `<workload>-<n>[.<host>]`).
async fn endpoint_node(
    client: &Client,
    mesh: &str,
    id: &str,
    node: Option<&str>,
) -> anyhow::Result<String> {
    let mut nodes: Vec<String> = client
        .endpoints(mesh)
        .await?
        .into_iter()
        .filter(|e| e.id == id)
        .map(|e| e.virtual_node)
        .filter(|n| node.is_none_or(|wanted| wanted == n))
        .collect();
    nodes.sort();
    nodes.dedup();
    match nodes.as_slice() {
        [one] => Ok(one.clone()),
        [] => match node {
            Some(node) => {
                bail!("endpoint '{id}' of virtual node '{node}' not found in mesh '{mesh}'")
            }
            None => bail!("endpoint '{id}' not found in mesh '{mesh}'"),
        },
        many => bail!(
            "endpoint '{id}' is registered for {} virtual nodes ({}): give --node",
            many.len(),
            many.join(", ")
        ),
    }
}
