//! `aviary apply -f FILE|DIR`: create or update every resource a set of manifests declares.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use client::Client;
use model::ResourcePath;
use model::manifest::{Manifest, ManifestKind, parse_texts};
use model::wire::Workload;
use serde_json::{Value, json};

use crate::args::ApplyOpts;

/// What apply did to one resource.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Configured,
    Unchanged,
}

impl Applied {
    fn verb(&self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// A `Canary` manifest starts a canary. A canary cannot be changed once started: the same spec
/// again is unchanged, another one is refused (abort it, then start a new one).
async fn apply_canary(client: &Client, manifest: &Manifest) -> anyhow::Result<Applied> {
    let (mesh, name) = (&manifest.metadata.mesh, &manifest.metadata.name);
    let mut spec = manifest.spec.clone();
    spec["mesh"] = json!(mesh);
    if let Some(existing) = client.get_object(mesh, "canaries", name).await? {
        let started: Value = existing["spec"].clone();
        let wanted: rollout::CanarySpec = serde_json::from_value(spec)
            .map_err(|e| anyhow::anyhow!("{}: spec: {e}", manifest.source))?;
        let running: rollout::CanarySpec = serde_json::from_value(started)?;
        if wanted == running {
            return Ok(Applied::Unchanged);
        }
        anyhow::bail!(
            "canary '{name}' already exists with another spec; a canary cannot change: abort it and start a new one"
        );
    }
    client
        .post_object(mesh, "canaries", &json!({ "name": name, "spec": spec }))
        .await?;
    Ok(Applied::Created)
}

/// A `Workload` manifest: its spec plus its name is the `/v1` workload.
async fn apply_workload(client: &Client, manifest: &Manifest) -> anyhow::Result<Applied> {
    let (mesh, name) = (&manifest.metadata.mesh, &manifest.metadata.name);
    let mut body = manifest.spec.clone();
    body["name"] = json!(name);
    let wanted: Workload = serde_json::from_value(body.clone())
        .map_err(|e| anyhow::anyhow!("{}: spec: {e}", manifest.source))?;
    let existing = client.get_object(mesh, "workloads", name).await?;
    let applied = match existing.map(serde_json::from_value::<Workload>) {
        Some(Ok(existing)) if existing == wanted => return Ok(Applied::Unchanged),
        Some(_) => Applied::Configured,
        None => Applied::Created,
    };
    client.put_object(mesh, "workloads", name, &body).await?;
    Ok(applied)
}

pub async fn run(client: &Client, opts: ApplyOpts) -> anyhow::Result<()> {
    let manifests = load_for(&opts.files, opts.mesh.as_deref())?;
    if opts.dry_run {
        return dry_run(client, &manifests).await;
    }
    apply_all(client, manifests).await
}

/// `--dry-run`: what apply would do to each resource, reading only.
async fn dry_run(client: &Client, manifests: &[Manifest]) -> anyhow::Result<()> {
    for manifest in manifests {
        let (what, exists) = match &manifest.kind {
            ManifestKind::AppMesh(kind) => {
                let path = path_of(*kind, manifest);
                let found = client.describe(&path).await?;
                let what = format!("{}/{}", kind.as_str().to_lowercase(), path.name);
                (what, found.map(|found| found["spec"] == manifest.spec))
            }
            ManifestKind::Other(other) => {
                let collection = match other.as_str() {
                    "Workload" => "workloads",
                    _ => "canaries",
                };
                let (mesh, name) = (&manifest.metadata.mesh, &manifest.metadata.name);
                let found = client.get_object(mesh, collection, name).await?;
                let what = format!("{}/{name}", other.to_lowercase());
                let mut wanted = manifest.spec.clone();
                wanted["name"] = json!(name);
                let same = |found: &Value| match other.as_str() {
                    "Workload" => {
                        serde_json::from_value::<Workload>(found.clone()).ok()
                            == serde_json::from_value::<Workload>(wanted.clone()).ok()
                    }
                    _ => found["spec"] == wanted,
                };
                (what, found.map(|found| same(&found)))
            }
        };
        let verb = match exists {
            None => "would be created",
            Some(false) => "would be configured",
            Some(true) => "unchanged",
        };
        println!("{what} {verb} (dry run)");
    }
    Ok(())
}

fn path_of(kind: model::Kind, manifest: &Manifest) -> ResourcePath {
    ResourcePath {
        kind,
        mesh: manifest.metadata.mesh.clone(),
        parent: manifest.parent_name().map(str::to_string),
        name: manifest.metadata.name.clone(),
    }
}

/// Creates or updates each manifest in order, printing one line per resource; stops at the
/// first server error.
pub async fn apply_all(client: &Client, manifests: Vec<Manifest>) -> anyhow::Result<()> {
    for manifest in manifests {
        let kind = match &manifest.kind {
            ManifestKind::AppMesh(kind) => *kind,
            ManifestKind::Other(other) if other == "Workload" => {
                let applied = apply_workload(client, &manifest)
                    .await
                    .with_context(|| manifest.describe())?;
                println!("workload/{} {}", manifest.metadata.name, applied.verb());
                continue;
            }
            ManifestKind::Other(other) if other == "Canary" => {
                let applied = apply_canary(client, &manifest)
                    .await
                    .with_context(|| manifest.describe())?;
                println!("canary/{} {}", manifest.metadata.name, applied.verb());
                continue;
            }
            ManifestKind::Other(other) => bail!(
                "{}: kind {other} is not supported by this version of aviary yet",
                manifest.source
            ),
        };
        let path = path_of(kind, &manifest);
        let applied = apply_one(client, &path, &manifest)
            .await
            .with_context(|| manifest.describe())?;
        println!(
            "{}/{} {}",
            kind.as_str().to_lowercase(),
            path.name,
            applied.verb()
        );
    }
    Ok(())
}

/// Every manifest of every file, all validated before anything is sent, in the order that
/// satisfies references: meshes, nodes, routers, routes, services, gateways, gateway routes,
/// then workloads.
/// `-` is standard input.
pub fn load(files: &[PathBuf]) -> anyhow::Result<Vec<Manifest>> {
    load_for(files, None)
}

/// [`load`], with `--mesh` for App Mesh controller resources that name none.
pub fn load_for(files: &[PathBuf], mesh: Option<&str>) -> anyhow::Result<Vec<Manifest>> {
    let stdin = Path::new("-");
    if files.iter().filter(|f| f.as_path() == stdin).count() > 1 {
        bail!("-f - (standard input) may be given only once");
    }
    let mut texts = Vec::new();
    for file in expand(files)? {
        let text = if file == stdin {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read standard input")?;
            ("<stdin>".to_string(), text)
        } else {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            (file.display().to_string(), text)
        };
        texts.push(text);
    }
    parse_for(&texts, mesh)
}

/// Parses `(source, text)` pairs: every problem of every document at once, or the manifests
/// in apply order.
pub fn parse_all(texts: &[(String, String)]) -> anyhow::Result<Vec<Manifest>> {
    parse_for(texts, None)
}

/// [`parse_all`], with `--mesh`. Documents of kinds aviary does not use (a Deployment, a
/// Service) are listed on standard error, one line each.
fn parse_for(texts: &[(String, String)], mesh: Option<&str>) -> anyhow::Result<Vec<Manifest>> {
    let parsed = parse_texts(texts, mesh).map_err(|problems| anyhow::anyhow!("{problems}"))?;
    for unused in &parsed.unused {
        eprintln!(
            "not used by aviary: {} '{}' ({})",
            unused.kind, unused.name, unused.source
        );
    }
    let mut manifests = parsed.manifests;
    // aviary's own kinds (workloads) name App Mesh resources, so they come last.
    manifests.sort_by_key(|m| match &m.kind {
        ManifestKind::AppMesh(kind) => (0, Some(*kind)),
        ManifestKind::Other(_) => (1, None),
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
