//! `aviary get` (tables, JSON, YAML, live with `--watch`), and the `--mesh` every command resolves.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use client::{Client, WatchEvent};
use model::wire::{AviaryKind, Change, MeshSnapshot, ObjectKind, Op};
use model::{Kind, ResourcePath};
use serde::Serialize;
use serde_json::{Value, json};

use crate::args::{GetOpts, KINDS_HELP, Output};

/// Every resource of one mesh, keyed so that tables list them in a stable order.
type Resources = BTreeMap<(Kind, String, String), Value>;

pub async fn run(client: &Client, opts: GetOpts) -> anyhow::Result<()> {
    if let Some(collection) = object_collection(&opts.selector.kind) {
        return get_objects(client, collection, &opts).await;
    }
    let kind = parse_kind(&opts.selector.kind)?;
    if kind == Kind::Mesh {
        if opts.watch {
            bail!("--watch works within one mesh; use it with a mesh's resources");
        }
        let meshes = list_meshes(client, opts.selector.name.as_deref()).await?;
        return print(kind, &meshes, opts.output, opts.selector.name.is_some());
    }
    let mesh = resolve_mesh(client, opts.selector.mesh.as_deref()).await?;
    if !opts.watch {
        let parent = crate::scope::parent_of(&opts.selector, kind);
        crate::scope::require_parent(client, &mesh, kind, parent).await?;
    }
    let snapshot = client.snapshot(&mesh).await?;
    let mut resources = index(&snapshot);
    show(&resources, kind, &opts)?;
    if !opts.watch {
        return Ok(());
    }
    let mut stream = client.watch(&mesh, snapshot.revision).await?;
    loop {
        match stream.next().await? {
            Some(WatchEvent::Change(change)) => {
                apply_change(&mut resources, &change);
                show(&resources, kind, &opts)?;
            }
            Some(WatchEvent::Relist(_)) | None => {
                // History is gone or the stream ended: start over from a fresh snapshot.
                let snapshot = client.snapshot(&mesh).await?;
                resources = index(&snapshot);
                show(&resources, kind, &opts)?;
                stream = client.watch(&mesh, snapshot.revision).await?;
            }
        }
    }
}

pub fn parse_kind(text: &str) -> anyhow::Result<Kind> {
    Kind::parse(text).with_context(|| format!("unknown kind '{text}'; use {KINDS_HELP}"))
}

/// aviary's own kinds that `get` and `delete` take, through `/v1` rather than the App Mesh API.
pub fn object_collection(text: &str) -> Option<AviaryKind> {
    match text.to_ascii_lowercase().as_str() {
        "workload" | "workloads" | "wl" => Some(AviaryKind::Workload),
        "endpoint" | "endpoints" | "ep" => Some(AviaryKind::Endpoint),
        _ => None,
    }
}

async fn get_objects(client: &Client, kind: AviaryKind, opts: &GetOpts) -> anyhow::Result<()> {
    if opts.watch {
        bail!("--watch is not supported for {} yet", kind.plural());
    }
    let mesh = resolve_mesh(client, opts.selector.mesh.as_deref()).await?;
    let wanted = |name: &str| opts.selector.name.as_deref().is_none_or(|n| n == name);
    match kind {
        AviaryKind::Workload => {
            let mut items = client.workloads(&mesh).await?;
            items.retain(|w| wanted(&w.name));
            let header = ["NAME", "NODE", "REPLICAS", "COMMAND"];
            print_objects(&items, opts.output, &header, |w| {
                vec![
                    w.name.clone(),
                    w.virtual_node.clone(),
                    w.replicas.to_string(),
                    w.command.join(" "),
                ]
            })
        }
        AviaryKind::Endpoint => {
            let mut items = client.endpoints(&mesh).await?;
            items.retain(|e| wanted(&e.id));
            let header = ["NODE", "ID", "ADDRESS", "HEALTHY"];
            print_objects(&items, opts.output, &header, |e| {
                vec![
                    e.virtual_node.clone(),
                    e.id.clone(),
                    format!("{}:{}", e.address, e.port),
                    e.healthy.to_string(),
                ]
            })
        }
        AviaryKind::Canary => bail!("list canaries with `aviary canary list`"),
    }
}

/// `items` as JSON, YAML or a table of `header` and one row of `cells` each.
fn print_objects<T: Serialize>(
    items: &[T],
    output: Output,
    header: &[&str],
    cells: fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(items)?),
        Output::Yaml => println!("{}", serde_saphyr::to_string(&items)?.trim_end()),
        Output::Table => {
            let mut rows = vec![header.iter().map(|h| h.to_string()).collect()];
            rows.extend(items.iter().map(cells));
            print!("{}", align(rows));
        }
    }
    Ok(())
}

/// `--mesh`, or the only mesh there is.
pub async fn resolve_mesh(client: &Client, mesh: Option<&str>) -> anyhow::Result<String> {
    if let Some(mesh) = mesh {
        crate::scope::require_mesh(client, mesh).await?;
        return Ok(mesh.to_string());
    }
    let meshes = client.list(&ResourcePath::meshes()).await?;
    let names: Vec<&str> = meshes
        .iter()
        .filter_map(|m| m["meshName"].as_str())
        .collect();
    match names.as_slice() {
        [only] => Ok(only.to_string()),
        [] => bail!("there is no mesh yet; create one first"),
        many => bail!(
            "--mesh is required: there are {} meshes ({})",
            many.len(),
            many.join(", ")
        ),
    }
}

async fn list_meshes(client: &Client, name: Option<&str>) -> anyhow::Result<Vec<Value>> {
    if let Some(name) = name {
        let path = ResourcePath::mesh(name);
        return match client.describe(&path).await? {
            Some(mesh) => Ok(vec![mesh]),
            None => bail!("mesh '{name}' not found"),
        };
    }
    let mut meshes = Vec::new();
    for reference in client.list(&ResourcePath::meshes()).await? {
        let name = reference["meshName"].as_str().unwrap_or_default();
        if let Some(mesh) = client.describe(&ResourcePath::mesh(name)).await? {
            meshes.push(mesh);
        }
    }
    Ok(meshes)
}

fn index(snapshot: &MeshSnapshot) -> Resources {
    let mut resources = Resources::new();
    for kind in Kind::ALL {
        for data in snapshot.resources(kind) {
            resources.insert(key_of(kind, data), data.clone());
        }
    }
    resources
}

fn key_of(kind: Kind, data: &Value) -> (Kind, String, String) {
    let parent = kind
        .parent()
        .and_then(|p| data[p.name_field()].as_str())
        .unwrap_or_default();
    let name = data[kind.name_field()].as_str().unwrap_or_default();
    (kind, parent.to_string(), name.to_string())
}

/// Applies a change to an App Mesh resource; aviary's own objects are not listed here.
fn apply_change(resources: &mut Resources, change: &Change) {
    let key = |kind| {
        let parent = change.parent.clone().unwrap_or_default();
        (kind, parent, change.name.clone())
    };
    match &change.op {
        Op::Put(object) => {
            if let Some((kind, data)) = object.app_mesh() {
                resources.insert(key(kind), data.clone());
            }
        }
        Op::Delete(ObjectKind::AppMesh(kind)) => {
            resources.remove(&key(*kind));
        }
        Op::Delete(ObjectKind::Aviary(_)) | Op::Unknown { .. } => {}
    }
}

fn show(resources: &Resources, kind: Kind, opts: &GetOpts) -> anyhow::Result<()> {
    let s = &opts.selector;
    let selected: Vec<Value> = resources
        .iter()
        .filter(|((k, parent, name), _)| {
            *k == kind
                && s.name.as_deref().is_none_or(|n| n == name)
                && s.router
                    .as_deref()
                    .is_none_or(|r| kind != Kind::Route || r == parent)
                && s.gateway
                    .as_deref()
                    .is_none_or(|g| kind != Kind::GatewayRoute || g == parent)
        })
        .map(|(_, data)| data.clone())
        .collect();
    if let (Some(name), true, false) = (&s.name, selected.is_empty(), opts.watch) {
        bail!("{} '{name}' not found", kind.human());
    }
    if opts.watch && std::io::stdout().is_terminal() {
        print!("\x1b[2J\x1b[H");
    }
    print(kind, &selected, opts.output, s.name.is_some())?;
    if opts.watch {
        println!();
    }
    std::io::stdout().flush()?;
    Ok(())
}

fn print(kind: Kind, items: &[Value], output: Output, single: bool) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            let value = match (single, items) {
                (true, [one]) => one.clone(),
                _ => Value::Array(items.to_vec()),
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Output::Yaml => {
            for item in items {
                let manifest = as_manifest(kind, item);
                println!("---\n{}", serde_saphyr::to_string(&manifest)?.trim_end());
            }
        }
        Output::Table => print!("{}", table(kind, items)),
    }
    Ok(())
}

/// The manifest that `aviary apply` would take to make this resource: `get -o yaml` round-trips.
fn as_manifest(kind: Kind, data: &Value) -> Value {
    let mut metadata = json!({ "name": data[kind.name_field()] });
    if kind != Kind::Mesh {
        metadata["mesh"] = data["meshName"].clone();
    }
    match kind {
        Kind::Route => metadata["virtualRouter"] = data["virtualRouterName"].clone(),
        Kind::GatewayRoute => metadata["virtualGateway"] = data["virtualGatewayName"].clone(),
        _ => {}
    }
    json!({ "kind": kind.as_str(), "metadata": metadata, "spec": data["spec"] })
}

/// A plain aligned text table; columns depend on the kind.
pub fn table(kind: Kind, items: &[Value]) -> String {
    let mut header: Vec<&str> = Vec::new();
    if let Some(parent) = kind.parent() {
        header.push(match parent {
            Kind::VirtualRouter => "ROUTER",
            _ => "GATEWAY",
        });
    }
    header.push("NAME");
    header.extend(match kind {
        Kind::Mesh => vec!["EGRESS"],
        Kind::VirtualNode => vec!["LISTENERS", "DISCOVERY", "BACKENDS"],
        Kind::VirtualRouter | Kind::VirtualGateway => vec!["LISTENERS"],
        Kind::Route => vec!["MATCH", "TARGETS"],
        Kind::VirtualService => vec!["PROVIDER"],
        Kind::GatewayRoute => vec!["MATCH", "TARGET"],
    });
    header.push("VERSION");
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for data in items {
        let spec = &data["spec"];
        let mut row = Vec::new();
        if let Some(parent) = kind.parent() {
            row.push(text(&data[parent.name_field()]));
        }
        row.push(text(&data[kind.name_field()]));
        row.extend(match kind {
            Kind::Mesh => vec![
                spec["egressFilter"]["type"]
                    .as_str()
                    .unwrap_or("DROP_ALL")
                    .to_string(),
            ],
            Kind::VirtualNode => vec![listeners(spec), discovery(spec), backends(spec)],
            Kind::VirtualRouter | Kind::VirtualGateway => vec![listeners(spec)],
            Kind::Route => {
                let route = route_body(spec);
                vec![route_match(&route["match"]), targets(&route["action"])]
            }
            Kind::VirtualService => vec![provider(spec)],
            Kind::GatewayRoute => {
                let route = route_body(spec);
                vec![
                    route_match(&route["match"]),
                    text(&route["action"]["target"]["virtualService"]["virtualServiceName"]),
                ]
            }
        });
        row.push(text(&data["metadata"]["version"]));
        rows.push(row);
    }
    align(rows)
}

/// Rows as aligned columns, three spaces apart; the first row is the header.
fn align(rows: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The one protocol-specific body of a route spec (httpRoute, http2Route, grpcRoute, tcpRoute).
fn route_body(spec: &Value) -> Value {
    ["httpRoute", "http2Route", "grpcRoute", "tcpRoute"]
        .iter()
        .find_map(|k| spec.get(*k).cloned())
        .unwrap_or(Value::Null)
}

fn route_match(m: &Value) -> String {
    for field in ["prefix", "path", "serviceName", "port"] {
        match (field, &m[field]) {
            (_, Value::Null) => continue,
            ("path", path) => {
                let exact = path["exact"].as_str().map(|p| format!("path {p}"));
                return exact.unwrap_or_else(|| format!("path ~{}", text(&path["regex"])));
            }
            (field, value) => return format!("{field} {}", text(value)),
        }
    }
    "*".into()
}

fn targets(action: &Value) -> String {
    let list = action["weightedTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.iter()
        .map(|t| format!("{}:{}", text(&t["virtualNode"]), text(&t["weight"])))
        .collect::<Vec<_>>()
        .join(" ")
}

fn listeners(spec: &Value) -> String {
    let list = spec["listeners"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(|l| {
            format!(
                "{}:{}",
                text(&l["portMapping"]["protocol"]),
                text(&l["portMapping"]["port"])
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn discovery(spec: &Value) -> String {
    let sd = &spec["serviceDiscovery"];
    if !sd["dns"].is_null() {
        format!("dns {}", text(&sd["dns"]["hostname"]))
    } else if !sd["awsCloudMap"].is_null() {
        format!("cloudmap {}", text(&sd["awsCloudMap"]["serviceName"]))
    } else {
        "-".into()
    }
}

fn backends(spec: &Value) -> String {
    let list = spec["backends"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(|b| text(&b["virtualService"]["virtualServiceName"]))
        .collect::<Vec<_>>()
        .join(",")
}

fn provider(spec: &Value) -> String {
    let p = &spec["provider"];
    if !p["virtualRouter"].is_null() {
        format!("router {}", text(&p["virtualRouter"]["virtualRouterName"]))
    } else if !p["virtualNode"].is_null() {
        format!("node {}", text(&p["virtualNode"]["virtualNodeName"]))
    } else {
        "-".into()
    }
}
