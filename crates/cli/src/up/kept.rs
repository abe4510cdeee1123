//! What a restarted `aviary up` or `aviary demo` found in its data directory, told before its manifests are applied over it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use client::Client;
use model::manifest::{Manifest, ManifestKind};
use model::{Kind, ResourcePath};

/// Names listed per kind at most; past that, a count.
const NAMES_SHOWN: usize = 8;

/// The store's meshes before this start, as lines for the banner; empty on a first start.
pub async fn survey(client: &Client, manifests: &[Manifest]) -> anyhow::Result<Vec<String>> {
    // Keyed by mesh too: `web-vn` declared in mesh A says nothing of a `web-vn` kept in B.
    let declared: BTreeSet<(String, String, String, String)> = manifests
        .iter()
        .map(|m| {
            let parent = m.parent_name().unwrap_or_default().to_string();
            let (mesh, name) = (m.metadata.mesh.clone(), m.metadata.name.clone());
            (mesh, m.kind.as_str().to_string(), parent, name)
        })
        .collect();
    let declares = |mesh: &str, kind: &str, parent: &str, name: &str| {
        declared.contains(&(
            mesh.to_string(),
            kind.to_string(),
            parent.to_string(),
            name.to_string(),
        ))
    };
    let declared_meshes: BTreeSet<&str> = manifests
        .iter()
        .filter(|m| m.kind == ManifestKind::AppMesh(Kind::Mesh))
        .map(|m| m.metadata.name.as_str())
        .collect();

    let mut lines = Vec::new();
    for mesh in client.list(&ResourcePath::meshes()).await? {
        let Some(mesh) = mesh["meshName"].as_str() else {
            continue;
        };
        let snapshot = client.snapshot(mesh).await?;
        let mut counts = Vec::new();
        let mut extra = Vec::new();
        for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Mesh) {
            let items = snapshot.resources(kind);
            if items.is_empty() {
                continue;
            }
            counts.push(count(items.len(), kind.human()));
            let undeclared: Vec<String> = items
                .iter()
                .filter_map(|item| {
                    let name = item[kind.name_field()].as_str()?;
                    let parent = kind
                        .parent()
                        .and_then(|p| item[p.name_field()].as_str())
                        .unwrap_or_default();
                    (!declares(mesh, kind.as_str(), parent, name)).then(|| name.to_string())
                })
                .collect();
            if !undeclared.is_empty() {
                extra.push(format!("{}: {}", plural(kind.human()), names(&undeclared)));
            }
        }
        let workloads: Vec<String> = snapshot.workloads.iter().map(|w| w.name.clone()).collect();
        if !workloads.is_empty() {
            counts.push(count(workloads.len(), "workload"));
            let undeclared: Vec<String> = workloads
                .into_iter()
                .filter(|w| !declares(mesh, "Workload", "", w))
                .collect();
            if !undeclared.is_empty() {
                extra.push(format!("workloads: {}", names(&undeclared)));
            }
        }
        // The snapshot holds the canaries already; one that does not decode is still named.
        let canaries: Vec<String> = snapshot
            .canaries
            .iter()
            .map(|raw| match raw.decode() {
                Ok(c) => format!("{} {}", c.name, c.state.phase),
                Err(_) => format!("{} ?", raw.as_value()["name"].as_str().unwrap_or("?")),
            })
            .collect();
        if !canaries.is_empty() {
            counts.push(count(canaries.len(), "canary"));
        }

        let mut line = format!("  mesh {mesh}");
        if !declared_meshes.contains(mesh) {
            line.push_str(" (in no manifest now: stored and served, its workloads not run)");
        }
        let _ = write!(
            line,
            ": {}",
            if counts.is_empty() {
                "empty".to_string()
            } else {
                counts.join(", ")
            }
        );
        lines.push(line);
        if !extra.is_empty() {
            lines.push(format!("    not in the manifests: {}", extra.join("; ")));
        }
        if !canaries.is_empty() {
            lines.push(format!("    canaries: {}", names(&canaries)));
        }
    }
    Ok(lines)
}

/// The banner's account of a restart: where the data is, what it held, how to start clean.
pub fn explain(data_dir: &Path, survey: &[String]) -> String {
    let dir = data_dir.display();
    let mut out = format!("Kept from the last run in {dir} (its store, tokens, keys and logs):\n");
    for line in survey {
        out.push_str(line);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "  The manifests were applied over it: the \"created\" and \"configured\" lines above put back what they declare."
    );
    let _ = writeln!(
        out,
        "  To start clean: stop this (Ctrl-C), then `rm -rf {dir}`, or start with --data-dir NEW_DIR."
    );
    out
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {}", plural(what))
    }
}

fn plural(what: &str) -> String {
    match what {
        "canary" => "canaries".into(),
        "mesh" => "meshes".into(),
        _ => format!("{what}s"),
    }
}

fn names(list: &[String]) -> String {
    if list.len() <= NAMES_SHOWN {
        return list.join(", ");
    }
    format!(
        "{} and {} more",
        list[..NAMES_SHOWN].join(", "),
        list.len() - NAMES_SHOWN
    )
}
