//! `aviary apply -f FILE|DIR`: create or update every resource a set of manifests declares.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use client::Client;
use model::ResourcePath;
use model::manifest::{Manifest, ManifestKind, parse_manifests};
use serde_json::{Value, json};

use crate::args::ApplyOpts;

/// What apply did to one resource.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Configured,
    Unchanged,
}

pub async fn run(client: &Client, opts: ApplyOpts) -> anyhow::Result<()> {
    let manifests = load(&opts.files)?;
    for manifest in manifests {
        let ManifestKind::AppMesh(kind) = manifest.kind else {
            bail!(
                "{}: kind {} is not supported by this version of aviary yet",
                manifest.source,
                manifest.kind
            );
        };
        let path = ResourcePath {
            kind,
            mesh: manifest.metadata.mesh.clone(),
            parent: manifest.parent_name().map(str::to_string),
            name: manifest.metadata.name.clone(),
        };
        let applied = apply_one(client, &path, &manifest)
            .await
            .with_context(|| manifest.describe())?;
        let verb = match applied {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        };
        println!("{}/{} {verb}", kind.as_str().to_lowercase(), path.name);
    }
    Ok(())
}

/// Every manifest of every file, all validated before anything is sent, in the order that
/// satisfies references: meshes, nodes, routers, routes, services, gateways, gateway routes.
pub fn load(files: &[PathBuf]) -> anyhow::Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for file in expand(files)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        match parse_manifests(&text, &file.display().to_string()) {
            Ok(found) => manifests.extend(found),
            Err(found) => problems.extend(found.0),
        }
    }
    if !problems.is_empty() {
        bail!("{}", model::Problems(problems));
    }
    manifests.sort_by_key(|m| match &m.kind {
        ManifestKind::AppMesh(kind) => Some(*kind),
        ManifestKind::Other(_) => None,
    });
    Ok(manifests)
}

fn expand(files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for file in files {
        if file.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(file)
                .with_context(|| format!("cannot read directory {}", file.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_manifest(p))
                .collect();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(file.clone());
        }
    }
    Ok(out)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

async fn apply_one(
    client: &Client,
    path: &ResourcePath,
    manifest: &Manifest,
) -> anyhow::Result<Applied> {
    match client.describe(path).await? {
        None => {
            let tags: Option<Value> = (!manifest.tags.is_empty()).then(|| {
                manifest
                    .tags
                    .iter()
                    .map(|t| json!({ "key": t.key, "value": t.value }))
                    .collect()
            });
            client.create(path, &manifest.spec, tags.as_ref()).await?;
            Ok(Applied::Created)
        }
        Some(existing) if existing["spec"] == manifest.spec => Ok(Applied::Unchanged),
        Some(_) => {
            client.update(path, &manifest.spec).await?;
            Ok(Applied::Configured)
        }
    }
}
