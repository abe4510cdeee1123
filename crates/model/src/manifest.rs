//! Manifests: Kubernetes-like YAML or JSON documents that declare resources, fully validated.
//!
//! ```yaml
//! kind: Route
//! metadata: {name: product-r, mesh: demomesh, virtualRouter: product-vr}
//! spec: {httpRoute: {match: {prefix: /}, action: {weightedTargets: [{virtualNode: product-vn, weight: 1}]}}}
//! tags: [{key: team, value: shop}]
//! ```
//!
//! A Mesh has no `metadata.mesh`: its mesh is itself. Routes name their `virtualRouter`,
//! gateway routes their `virtualGateway`. Problems are reported as `<source>#<n>: <path>`,
//! where `n` counts the non-empty documents from 1.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::budget::BudgetBreach;

use serde_json::{Map, Value};

use crate::kind::Kind;
use crate::problem::{Problem, Problems};
use crate::service_model::service_model;
use crate::spec::{validate_name, validate_spec};
use crate::validate::validate_shape;

/// aviary's own kinds that manifests may carry; their specs are validated by their owners.
pub const AVIARY_KINDS: [&str; 2] = ["Workload", "Canary"];

/// The most documents one manifest text holds (YAML `---` documents, or items of a JSON array).
/// serde-saphyr's own default is 1,024, which real manifests outgrow; past this one the text is
/// refused whole, naming the limit.
pub const MAX_DOCUMENTS: usize = 10_000;
/// The most YAML nodes (mappings, sequences, scalars) one text holds: a hundred per document,
/// where a typical resource takes twenty to forty. It bounds what a file can make us allocate.
pub const MAX_YAML_NODES: usize = 100 * MAX_DOCUMENTS;

const TOP_LEVEL_FIELDS: [&str; 4] = ["kind", "metadata", "spec", "tags"];
const METADATA_FIELDS: [&str; 4] = ["name", "mesh", "virtualRouter", "virtualGateway"];

/// What a manifest declares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// An App Mesh resource; its spec has been validated with [`crate::validate_spec`].
    AppMesh(Kind),
    /// One of aviary's own kinds ([`AVIARY_KINDS`]); its spec is kept as written.
    Other(String),
}

impl ManifestKind {
    /// `kind` as written in a manifest: exact App Mesh kind names, then aviary's kinds.
    pub fn parse(s: &str) -> Option<ManifestKind> {
        if let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == s) {
            return Some(ManifestKind::AppMesh(kind));
        }
        AVIARY_KINDS
            .contains(&s)
            .then(|| ManifestKind::Other(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            ManifestKind::AppMesh(kind) => kind.as_str(),
            ManifestKind::Other(kind) => kind,
        }
    }

    fn app_mesh(&self) -> Option<Kind> {
        match self {
            ManifestKind::AppMesh(kind) => Some(*kind),
            ManifestKind::Other(_) => None,
        }
    }
}

impl fmt::Display for ManifestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A manifest's `metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManifestMetadata {
    pub name: String,
    /// The mesh the resource belongs to; for a Mesh, its own name.
    pub mesh: String,
    /// Set for a Route (and only for a Route).
    pub virtual_router: Option<String>,
    /// Set for a GatewayRoute (and only for a GatewayRoute).
    pub virtual_gateway: Option<String>,
}

/// One `{key, value}` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// One validated document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Where it came from: `mesh.yaml#3`.
    pub source: String,
    pub kind: ManifestKind,
    pub metadata: ManifestMetadata,
    /// The spec as written; `{}` for a Mesh that gives none.
    pub spec: Value,
    pub tags: Vec<Tag>,
}

impl Manifest {
    /// Validate one document (already parsed) and build it; `source` names it in problems.
    pub fn from_value(doc: &Value, source: &str) -> Result<Manifest, Problems> {
        let mut problems = Vec::new();
        let manifest = build(doc, &mut problems);
        let problems: Vec<Problem> = problems
            .into_iter()
            .map(|p| Problem {
                path: located(source, &p.path),
                message: p.message,
            })
            .collect();
        match manifest {
            Some(mut manifest) if problems.is_empty() => {
                manifest.source = source.to_owned();
                Ok(manifest)
            }
            _ => Err(Problems(problems)),
        }
    }

    /// The name of the virtual router or virtual gateway a route or gateway route lives in.
    pub fn parent_name(&self) -> Option<&str> {
        self.metadata
            .virtual_router
            .as_deref()
            .or(self.metadata.virtual_gateway.as_deref())
    }

    /// A one-line description for messages: `Route 'product-r' in mesh 'demomesh' (virtual
    /// router 'product-vr')`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} '{}'", self.kind, self.metadata.name);
        if self.kind != ManifestKind::AppMesh(Kind::Mesh) {
            s.push_str(&format!(" in mesh '{}'", self.metadata.mesh));
        }
        if let Some(vr) = &self.metadata.virtual_router {
            s.push_str(&format!(" (virtual router '{vr}')"));
        }
        if let Some(vg) = &self.metadata.virtual_gateway {
            s.push_str(&format!(" (virtual gateway '{vg}')"));
        }
        s
    }
}

/// Parse and validate every document in `text`: JSON (one object, or an array of objects) when
/// it starts with `{` or `[`, otherwise YAML with any number of `---` documents. Empty
/// documents are skipped. All problems of all documents are returned together, each path
/// prefixed with `<source>#<n>: `; a syntax error is one problem naming the line.
pub fn parse_manifests(text: &str, source: &str) -> Result<Vec<Manifest>, Problems> {
    let source = if source.is_empty() { "<input>" } else { source };
    let docs = parse_documents(text, source)?;
    let mut problems = Vec::new();
    let mut manifests: Vec<Manifest> = Vec::new();
    // Where each resource was first declared: a map, so ten thousand documents stay quick.
    let mut declared: HashMap<(ManifestKind, ManifestMetadata), usize> = HashMap::new();
    for (i, doc) in docs.iter().enumerate() {
        let at = format!("{source}#{}", i + 1);
        match Manifest::from_value(doc, &at) {
            Ok(manifest) => {
                let key = (manifest.kind.clone(), manifest.metadata.clone());
                if let Some(&first) = declared.get(&key) {
                    problems.push(Problem::new(
                        &at,
                        format!(
                            "{} is also declared at {}",
                            manifest.describe(),
                            manifests[first].source
                        ),
                    ));
                } else {
                    declared.insert(key, manifests.len());
                }
                manifests.push(manifest);
            }
            Err(more) => problems.extend(more),
        }
    }
    Problems::check(problems).map(|()| manifests)
}

/// What [`parse_texts`] found: manifests in the order given (App Mesh controller resources
/// among them, converted), and the documents aviary does not use.
#[derive(Debug, Default)]
pub struct Parsed {
    pub manifests: Vec<Manifest>,
    pub unused: Vec<crd::Unused>,
}

/// Every document of every `(source, text)`: aviary's manifests as [`parse_manifests`] reads
/// them, saved `aws appmesh describe-*` output and `--cli-input-json` files ([`cli_json`]),
/// and Kubernetes documents (those with an `apiVersion`): App Mesh controller resources
/// converted ([`crd`]; references resolve across all the texts; `mesh` is `--mesh`), any other
/// kind listed as not used. All problems at once, or nothing.
pub fn parse_texts(texts: &[(String, String)], mesh: Option<&str>) -> Result<Parsed, Problems> {
    let mut problems = Vec::new();
    let mut ours = Vec::new();
    let mut kubernetes = Vec::new();
    for (source, text) in texts {
        let source = if source.is_empty() { "<input>" } else { source };
        match parse_documents(text, source) {
            Ok(docs) => {
                for (i, doc) in docs.into_iter().enumerate() {
                    let at = format!("{source}#{}", i + 1);
                    if crd::is_kubernetes(&doc) {
                        kubernetes.push(crd::Document {
                            source: at,
                            value: doc,
                        });
                    } else if cli_json::is_cli_json(&doc) {
                        match cli_json::convert(&doc, &at) {
                            Ok(manifest) => ours.push(manifest),
                            Err(more) => problems.extend(more),
                        }
                    } else {
                        match Manifest::from_value(&doc, &at) {
                            Ok(manifest) => ours.push(manifest),
                            Err(more) => problems.extend(more.0),
                        }
                    }
                }
            }
            Err(more) => problems.extend(more.0),
        }
    }
    let (converted, unused) = crd::convert(&kubernetes, mesh, &mut problems);
    ours.extend(converted);
    let mut declared: HashMap<(ManifestKind, ManifestMetadata), &str> = HashMap::new();
    for manifest in &ours {
        let key = (manifest.kind.clone(), manifest.metadata.clone());
        match declared.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => problems.push(Problem::new(
                &manifest.source,
                format!(
                    "{} is also declared at {}",
                    manifest.describe(),
                    first.get()
                ),
            )),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(&manifest.source);
            }
        }
    }
    Problems::check(problems).map(|()| Parsed {
        manifests: ours,
        unused,
    })
}

fn located(source: &str, path: &str) -> String {
    if path.is_empty() {
        source.to_owned()
    } else {
        format!("{source}: {path}")
    }
}

fn parse_documents(text: &str, source: &str) -> Result<Vec<Value>, Problems> {
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let docs = if trimmed.starts_with(['{', '[']) {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(items)) => items,
            Ok(doc) => vec![doc],
            Err(e) => {
                return Err(Problems(vec![Problem::new(
                    source,
                    format!("invalid JSON: {e}"),
                )]));
            }
        }
    } else {
        // YAML 1.2 scalars only: `no`, `on`, `n` and `007` stay strings (they are valid names).
        // The budget is set here, not left to serde-saphyr's defaults, so the limits are ours
        // and are named when a text passes them. Events are at most about three per node.
        let budget = serde_saphyr::budget! {
            max_documents: MAX_DOCUMENTS,
            max_nodes: MAX_YAML_NODES,
            max_events: 4 * MAX_YAML_NODES,
        };
        let options = serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
            underscored_numbers_as_strings: true,
            with_snippet: false,
            budget: budget,
        };
        match serde_saphyr::from_multiple_with_options::<Value>(text, options) {
            Ok(docs) => docs,
            Err(e) => return Err(Problems(vec![Problem::new(source, yaml_error(&e))])),
        }
    };
    if docs.len() > MAX_DOCUMENTS {
        return Err(Problems(vec![Problem::new(source, too_many_documents())]));
    }
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn too_many_documents() -> String {
    format!(
        "more than {MAX_DOCUMENTS} documents: aviary reads at most {MAX_DOCUMENTS} per file; split it into several files"
    )
}

fn yaml_error(e: &serde_saphyr::Error) -> String {
    if let serde_saphyr::Error::Budget { breach, .. } = e {
        return match breach {
            BudgetBreach::Documents { .. } => too_many_documents(),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => format!(
                "more than {MAX_YAML_NODES} YAML nodes (mappings, lists, values): aviary reads at most that many per file; split it into several files"
            ),
            other => format!("YAML past aviary's limits for one file: {other:?}"),
        };
    }
    let plain = e.without_snippet().to_string();
    match e.location() {
        Some(at) if !plain.contains("line") => format!(
            "invalid YAML at line {} column {}: {plain}",
            at.line(),
            at.column()
        ),
        _ => format!("invalid YAML: {plain}"),
    }
}

/// Validate one document, pushing problems with paths relative to the document.
fn build(doc: &Value, problems: &mut Vec<Problem>) -> Option<Manifest> {
    let Value::Object(doc) = doc else {
        problems.push(Problem::new(
            "",
            "a document must be an object with kind, metadata and spec",
        ));
        return None;
    };
    unknown_fields(doc, &TOP_LEVEL_FIELDS, "", problems);

    let kind = match doc.get("kind") {
        None | Some(Value::Null) => {
            problems.push(Problem::new("kind", "is required"));
            None
        }
        Some(Value::String(s)) => {
            let kind = ManifestKind::parse(s);
            if kind.is_none() {
                problems.push(Problem::new("kind", unknown_kind_message(s)));
            }
            kind
        }
        Some(_) => {
            problems.push(Problem::new("kind", "must be a string"));
            None
        }
    };
    let app_mesh = kind.as_ref().and_then(ManifestKind::app_mesh);

    let metadata = metadata(doc.get("metadata"), kind.as_ref(), problems);

    let spec = match (doc.get("spec"), app_mesh) {
        (None | Some(Value::Null), Some(k)) if spec_required(k) => {
            problems.push(Problem::new("spec", "is required"));
            None
        }
        (None | Some(Value::Null), Some(_)) => Some(Value::Object(Map::new())),
        (Some(spec), Some(k)) => {
            problems.extend(validate_spec(k, spec));
            Some(spec.clone())
        }
        (spec, None) => Some(spec.cloned().unwrap_or(Value::Null)),
    };

    let tags = match doc.get("tags") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(tags) => {
            let before = problems.len();
            problems.extend(validate_shape("TagList", tags, "tags"));
            (problems.len() == before).then(|| parse_tags(tags))
        }
    };

    Some(Manifest {
        source: String::new(),
        kind: kind?,
        metadata: metadata?,
        spec: spec?,
        tags: tags?,
    })
}

/// Whether App Mesh's create operation for `kind` requires a spec (all but CreateMesh).
fn spec_required(kind: Kind) -> bool {
    let input = format!("Create{}Input", kind.as_str());
    service_model()
        .shape(&input)
        .is_some_and(|shape| shape.required.iter().any(|r| r == "spec"))
}

fn metadata(
    value: Option<&Value>,
    kind: Option<&ManifestKind>,
    problems: &mut Vec<Problem>,
) -> Option<ManifestMetadata> {
    let object = match value {
        None | Some(Value::Null) => {
            problems.push(Problem::new("metadata", "is required"));
            return None;
        }
        Some(Value::Object(object)) => object,
        Some(_) => {
            problems.push(Problem::new("metadata", "must be an object"));
            return None;
        }
    };
    unknown_fields(object, &METADATA_FIELDS, "metadata", problems);
    let app_mesh = kind.and_then(ManifestKind::app_mesh);
    let is = |k: Kind| app_mesh == Some(k);
    // When the kind is unknown, say nothing about which fields it needs.
    let known = kind.is_some();

    let name = name_field(object, "name", known, problems);
    let mesh = if is(Kind::Mesh) {
        if object.get("mesh").is_some_and(|v| !v.is_null()) {
            problems.push(Problem::new(
                "metadata.mesh",
                "a Mesh has no mesh field: its name is metadata.name",
            ));
        }
        name.clone()
    } else {
        name_field(object, "mesh", known, problems)
    };
    let parent = |field: &str, owner: Kind, problems: &mut Vec<Problem>| {
        if is(owner) {
            name_field(object, field, true, problems).map(Some)
        } else {
            if known && object.get(field).is_some_and(|v| !v.is_null()) {
                problems.push(Problem::new(
                    format!("metadata.{field}"),
                    format!("only a {owner} has {field}"),
                ));
            }
            Some(None)
        }
    };
    let virtual_router = parent("virtualRouter", Kind::Route, problems);
    let virtual_gateway = parent("virtualGateway", Kind::GatewayRoute, problems);
    Some(ManifestMetadata {
        name: name?,
        mesh: mesh?,
        virtual_router: virtual_router?,
        virtual_gateway: virtual_gateway?,
    })
}

/// A required name field of `metadata`, validated with [`validate_name`].
fn name_field(
    object: &Map<String, Value>,
    field: &str,
    report_missing: bool,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let path = format!("metadata.{field}");
    match object.get(field) {
        None | Some(Value::Null) => {
            if report_missing {
                problems.push(Problem::new(path, "is required"));
            }
            None
        }
        Some(Value::String(name)) => {
            let found = validate_name(&path, name);
            let ok = found.is_empty();
            problems.extend(found);
            ok.then(|| name.clone())
        }
        Some(_) => {
            problems.push(Problem::new(path, "must be a string"));
            None
        }
    }
}

fn unknown_fields(
    object: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
    problems: &mut Vec<Problem>,
) {
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            problems.push(Problem::new(
                path,
                format!("unknown field '{key}'; allowed: {}", allowed.join(", ")),
            ));
        }
    }
}

fn unknown_kind_message(s: &str) -> String {
    let mut known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    known.extend(AVIARY_KINDS);
    let mut message = format!("unknown kind '{s}'; expected one of: {}", known.join(", "));
    if let Some(kind) = Kind::parse(s) {
        message.push_str(&format!(" (did you mean '{kind}'?)"));
    }
    message
}

fn parse_tags(tags: &Value) -> Vec<Tag> {
    tags.as_array()
        .into_iter()
        .flatten()
        .map(|tag| Tag {
            key: tag["key"].as_str().unwrap_or_default().to_owned(),
            value: tag["value"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

pub mod cli_json;
pub mod crd;

#[cfg(test)]
mod tests;
