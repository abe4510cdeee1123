//! Which mesh and which resource a command means: a `--mesh`, `--router` or `--gateway` that names nothing is said to, by its own name.

use anyhow::{Context, bail};
use client::Client;
use model::{Kind, ResourcePath};

use crate::args::Selector;

/// Fails unless `mesh` exists, so a mistyped `--mesh` is named as such rather than as whatever
/// the mesh lacked ("route not found", or an empty list). A token that may not read meshes (a
/// proxy's) passes: it gets what it may read of the mesh.
pub async fn require_mesh(client: &Client, mesh: &str) -> anyhow::Result<()> {
    match client.describe(&ResourcePath::mesh(mesh)).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => bail!("mesh '{mesh}' not found"),
        Err(client::ClientError::Api { status: 403, .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Fails unless the virtual router (of a route) or virtual gateway (of a gateway route) named
/// `parent` exists in `mesh`; nothing to check for other kinds or without a name.
pub async fn require_parent(
    client: &Client,
    mesh: &str,
    kind: Kind,
    parent: Option<&str>,
) -> anyhow::Result<()> {
    let (Some(parent_kind), Some(name)) = (kind.parent(), parent) else {
        return Ok(());
    };
    let path = ResourcePath {
        kind: parent_kind,
        mesh: mesh.to_string(),
        parent: None,
        name: name.to_string(),
    };
    if client.describe(&path).await?.is_none() {
        bail!(
            "{} '{name}' not found in mesh '{mesh}'",
            parent_kind.human()
        );
    }
    Ok(())
}

/// The `--router` or `--gateway` a selector gives for `kind`'s parent.
pub fn parent_of(selector: &Selector, kind: Kind) -> Option<&str> {
    match kind {
        Kind::Route => selector.router.as_deref(),
        Kind::GatewayRoute => selector.gateway.as_deref(),
        _ => None,
    }
}

/// The one App Mesh resource a selector names (delete needs a name, and a parent for routes).
pub async fn selected_path(client: &Client, selector: &Selector) -> anyhow::Result<ResourcePath> {
    let kind = crate::get::parse_kind(&selector.kind)?;
    let name = selector
        .name
        .clone()
        .with_context(|| format!("which {}? give its name", kind.human()))?;
    let mesh = match kind {
        Kind::Mesh => name.clone(),
        _ => crate::get::resolve_mesh(client, selector.mesh.as_deref()).await?,
    };
    let parent = match kind {
        Kind::Route => Some(selector.router.clone().context("a route needs --router")?),
        Kind::GatewayRoute => Some(
            selector
                .gateway
                .clone()
                .context("a gateway route needs --gateway")?,
        ),
        _ => None,
    };
    Ok(ResourcePath {
        kind,
        mesh,
        parent,
        name,
    })
}
