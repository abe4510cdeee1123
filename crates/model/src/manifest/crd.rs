//! App Mesh controller resources (`apiVersion: appmesh.k8s.aws/v1beta2`, what App Mesh users
//! on EKS wrote) read as manifests, and every other Kubernetes document listed as not used.
//!
//! The controller's shapes are the App Mesh API's with three differences, undone here:
//! - references are objects (`virtualNodeRef: {name, namespace}`) or ARNs
//!   (`virtualNodeARN`), where the API takes names;
//! - a virtual router's routes are part of its spec, not resources of their own;
//! - each resource's App Mesh name is `spec.awsName` when given, else derived from its
//!   Kubernetes name and namespace as the controller derives it: `${name}` for a Mesh,
//!   `${name}.${namespace}` for a VirtualService, `${name}_${namespace}` for the others (a
//!   route keeps its `name`). `awsName` wins because it is the name App Mesh had, which the
//!   user's scripts (`aws appmesh describe-virtual-node --virtual-node-name ...`) use. A
//!   document without a namespace is in `default`, where `kubectl apply` without `-n` puts it.
//!
//! Fields that only steer the controller in a cluster (`podSelector`, `namespaceSelector`,
//! `gatewayRouteSelector`, `backendGroups`, `meshOwner`) are dropped; every other field goes to
//! the App Mesh validation like a manifest's, so an unknown one is named with its path.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::Manifest;
use crate::problem::Problem;

/// The controller's API group and the one version of it that is read.
pub const API_GROUP: &str = "appmesh.k8s.aws";
pub const API_VERSION: &str = "appmesh.k8s.aws/v1beta2";

const KINDS: [&str; 6] = [
    "Mesh",
    "VirtualNode",
    "VirtualRouter",
    "VirtualService",
    "VirtualGateway",
    "GatewayRoute",
];

const TOP_LEVEL_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// Kubernetes `ObjectMeta` fields: `name` and `namespace` are read, the rest (what `kubectl get
/// -o yaml` writes) is allowed and not used.
const METADATA_FIELDS: [&str; 15] = [
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "finalizers",
    "ownerReferences",
    "selfLink",
    "generateName",
];

/// Where a Kubernetes document has no namespace, `kubectl apply` puts it.
const DEFAULT_NAMESPACE: &str = "default";

/// A document of a kind aviary does not use: listed, never dropped silently, never an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unused {
    pub source: String,
    pub kind: String,
    pub name: String,
}

/// One Kubernetes document (it has an `apiVersion`), where it came from.
pub struct Document {
    pub source: String,
    pub value: Value,
}

/// Whether `doc` is a Kubernetes document rather than an aviary manifest.
pub fn is_kubernetes(doc: &Value) -> bool {
    doc.get("apiVersion").is_some()
}

/// A controller resource, indexed before any is converted, so references between documents of
/// any file resolve in one pass.
struct Resource<'a> {
    source: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
    spec: &'a Map<String, Value>,
    /// Its App Mesh name.
    aws_name: String,
}

/// The App Mesh manifests the controller resources among `docs` describe, and the documents
/// aviary does not use. `mesh` is `--mesh`: the mesh of resources without a `meshRef` when the
/// documents hold no Mesh, or more than one. Problems name the source, the field and what is
/// wrong.
pub fn convert(
    docs: &[Document],
    mesh: Option<&str>,
    problems: &mut Vec<Problem>,
) -> (Vec<Manifest>, Vec<Unused>) {
    let empty = Map::new();
    let mut unused = Vec::new();
    let mut resources = Vec::new();
    for doc in docs {
        let at = |path: &str| at(&doc.source, path);
        let Value::Object(object) = &doc.value else {
            continue;
        };
        let text = |field: &str| object.get(field).and_then(Value::as_str);
        let kind = text("kind").unwrap_or_default();
        let api_version = text("apiVersion").unwrap_or_default();
        let metadata = object.get("metadata").and_then(Value::as_object);
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version.split('/').next() != Some(API_GROUP) {
            unused.push(Unused {
                source: doc.source.clone(),
                kind: kind.to_string(),
                name: name.to_string(),
            });
            continue;
        }
        if api_version != API_VERSION {
            problems.push(Problem::new(
                at("apiVersion"),
                format!("'{api_version}': aviary reads the App Mesh controller's {API_VERSION}"),
            ));
            continue;
        }
        if !KINDS.contains(&kind) {
            if kind == "BackendGroup" {
                unused.push(Unused {
                    source: doc.source.clone(),
                    kind: kind.to_string(),
                    name: name.to_string(),
                });
            } else {
                problems.push(Problem::new(
                    at("kind"),
                    format!(
                        "'{kind}' is no App Mesh controller kind; expected one of: {}",
                        KINDS.join(", ")
                    ),
                ));
            }
            continue;
        }
        let mut found = Vec::new();
        super::unknown_fields(object, &TOP_LEVEL_FIELDS, "", &mut found);
        if let Some(metadata) = metadata {
            super::unknown_fields(metadata, &METADATA_FIELDS, "metadata", &mut found);
        }
        problems.extend(
            found
                .into_iter()
                .map(|p| Problem::new(at(&p.path), p.message)),
        );
        let Some(metadata) = metadata else {
            problems.push(Problem::new(at("metadata"), "is required, with a name"));
            continue;
        };
        if name.is_empty() {
            problems.push(Problem::new(at("metadata.name"), "is required"));
            continue;
        }
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_NAMESPACE);
        let spec = match object.get("spec") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(spec)) => spec,
            Some(_) => {
                problems.push(Problem::new(at("spec"), "must be an object"));
                continue;
            }
        };
        let aws_name = match spec.get("awsName").and_then(Value::as_str) {
            Some(given) if !given.is_empty() => given.to_string(),
            _ => match kind {
                "Mesh" => name.to_string(),
                "VirtualService" => format!("{name}.{namespace}"),
                _ => format!("{name}_{namespace}"),
            },
        };
        resources.push(Resource {
            source: &doc.source,
            kind,
            name,
            namespace,
            spec,
            aws_name,
        });
    }
    let index = Index::of(&resources, mesh);
    let mut manifests = Vec::new();
    for resource in &resources {
        index.manifests(resource, problems, &mut manifests);
    }
    (manifests, unused)
}

fn at(source: &str, path: &str) -> String {
    if path.is_empty() {
        source.to_string()
    } else {
        format!("{source}: {path}")
    }
}

/// Every resource's App Mesh name by (kind, namespace, Kubernetes name); meshes by name.
struct Index<'a> {
    names: HashMap<(&'a str, &'a str, &'a str), &'a str>,
    /// The mesh of a resource without `meshRef`: `--mesh`, else the only Mesh of the documents.
    default_mesh: Option<String>,
    /// How many Meshes the documents hold, for the message when there is no default.
    meshes: usize,
    /// The one VirtualGateway of each namespace, for gateway routes without a reference.
    gateways: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Index<'a> {
    fn of(resources: &'a [Resource<'a>], mesh: Option<&str>) -> Index<'a> {
        let mut names = HashMap::new();
        let mut gateways: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut meshes = Vec::new();
        for r in resources {
            let namespace = if r.kind == "Mesh" { "" } else { r.namespace };
            names.insert((r.kind, namespace, r.name), r.aws_name.as_str());
            match r.kind {
                "Mesh" => meshes.push(r.aws_name.clone()),
                "VirtualGateway" => gateways.entry(r.namespace).or_default().push(&r.aws_name),
                _ => {}
            }
        }
        let default_mesh = match (mesh, meshes.as_slice()) {
            (Some(mesh), _) => Some(mesh.to_string()),
            (None, [only]) => Some(only.clone()),
            _ => None,
        };
        Index {
            names,
            default_mesh,
            meshes: meshes.len(),
            gateways,
        }
    }

    /// The App Mesh name of the Mesh document `mesh_ref` names, if the files hold it.
    fn mesh_of(&self, mesh_ref: &Value) -> Option<&str> {
        let name = mesh_ref.get("name").and_then(Value::as_str)?;
        self.names.get(&("Mesh", "", name)).copied()
    }

    /// The App Mesh name a reference (`{name, namespace}`, or an ARN) at `path` of `from`
    /// names, or a problem.
    fn resolve(
        &self,
        from: &Resource<'_>,
        kind: &str,
        reference: Option<&Value>,
        arn: Option<&Value>,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<String> {
        let at = |field: &str| at(from.source, &format!("{path}.{field}"));
        let field = ref_field(kind);
        if let Some(arn) = arn {
            let segment = arn_segment(kind);
            let name = arn.as_str().and_then(|arn| {
                let (_, rest) = arn.split_once(&format!("/{segment}/"))?;
                (!rest.is_empty() && !rest.contains('/')).then_some(rest)
            });
            if name.is_none() {
                problems.push(Problem::new(
                    at(&format!("{field}ARN")),
                    format!("{arn} is no App Mesh {kind} ARN (…:mesh/MESH/{segment}/NAME)"),
                ));
            }
            return name.map(str::to_string);
        }
        let Some(reference) = reference else {
            problems.push(Problem::new(
                at(&format!("{field}Ref")),
                format!("is required (or {field}ARN)"),
            ));
            return None;
        };
        let name = reference.get("name").and_then(Value::as_str);
        let namespace = reference
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(from.namespace);
        let Some(name) = name else {
            problems.push(Problem::new(at(&format!("{field}Ref.name")), "is required"));
            return None;
        };
        let key_namespace = if kind == "Mesh" { "" } else { namespace };
        match self.names.get(&(kind, key_namespace, name)) {
            Some(aws_name) => Some(aws_name.to_string()),
            None => {
                let place = if kind == "Mesh" {
                    String::new()
                } else {
                    format!(" in namespace '{namespace}'")
                };
                problems.push(Problem::new(
                    at(&format!("{field}Ref")),
                    format!(
                        "no {kind} '{name}'{place} in these files: its App Mesh name is its \
                         awsName, which only its own document says; apply it along (a \
                         directory is read whole), or name it by {field}ARN"
                    ),
                ));
                None
            }
        }
    }

    /// The manifests `r` describes: one, or a router and its routes.
    fn manifests(&self, r: &Resource<'_>, problems: &mut Vec<Problem>, out: &mut Vec<Manifest>) {
        let mut spec = r.spec.clone();
        spec.remove("awsName");
        let mesh_ref = spec.remove("meshRef");
        let mesh = match (r.kind, mesh_ref) {
            ("Mesh", _) => Some(r.aws_name.clone()),
            // A Mesh of these files by its Kubernetes name; else `--mesh` names it.
            (_, Some(mesh_ref)) => match (&self.default_mesh, self.mesh_of(&mesh_ref)) {
                (_, Some(found)) => Some(found.to_string()),
                (Some(mesh), None) if self.meshes == 0 => Some(mesh.clone()),
                _ => self.resolve(r, "Mesh", Some(&mesh_ref), None, "spec", problems),
            },
            (_, None) => match &self.default_mesh {
                Some(mesh) => Some(mesh.clone()),
                None => {
                    problems.push(Problem::new(
                        at(r.source, "spec.meshRef"),
                        format!(
                            "no mesh: these files hold {} Mesh documents; give spec.meshRef, or \
                             --mesh",
                            self.meshes
                        ),
                    ));
                    None
                }
            },
        };
        let Some(mesh) = mesh else { return };
        let mut metadata = json!({ "name": r.aws_name, "mesh": mesh });
        let before = problems.len();
        match r.kind {
            "Mesh" => {
                metadata = json!({ "name": r.aws_name });
                for dropped in ["namespaceSelector", "meshOwner"] {
                    spec.remove(dropped);
                }
                if let Some(discovery) = spec.remove("meshServiceDiscovery") {
                    spec.insert("serviceDiscovery".into(), discovery);
                }
            }
            "VirtualNode" => {
                for dropped in ["podSelector", "backendGroups"] {
                    spec.remove(dropped);
                }
                if let Some(Value::Array(backends)) = spec.get_mut("backends") {
                    for (i, backend) in backends.iter_mut().enumerate() {
                        let path = format!("spec.backends[{i}].virtualService");
                        if let Some(Value::Object(service)) = backend.get_mut("virtualService") {
                            self.named(
                                r,
                                service,
                                "VirtualService",
                                "virtualServiceName",
                                &path,
                                problems,
                            );
                        }
                    }
                }
            }
            "VirtualService" => {
                if let Some(Value::Object(provider)) = spec.get_mut("provider") {
                    for (field, kind, name_field) in [
                        ("virtualNode", "VirtualNode", "virtualNodeName"),
                        ("virtualRouter", "VirtualRouter", "virtualRouterName"),
                    ] {
                        if let Some(Value::Object(target)) = provider.get_mut(field) {
                            let path = format!("spec.provider.{field}");
                            self.named(r, target, kind, name_field, &path, problems);
                        }
                    }
                }
            }
            "VirtualRouter" => {
                if let Some(routes) = spec.remove("routes") {
                    self.routes(r, &mesh, &routes, problems, out);
                }
            }
            "VirtualGateway" => {
                for dropped in ["namespaceSelector", "podSelector", "gatewayRouteSelector"] {
                    spec.remove(dropped);
                }
            }
            "GatewayRoute" => {
                let gateway = match spec.remove("virtualGatewayRef") {
                    Some(reference) => self.resolve(
                        r,
                        "VirtualGateway",
                        Some(&reference),
                        None,
                        "spec",
                        problems,
                    ),
                    None => match self.gateways.get(r.namespace).map(Vec::as_slice) {
                        Some([only]) => Some(only.to_string()),
                        found => {
                            problems.push(Problem::new(
                                at(r.source, "spec.virtualGatewayRef"),
                                format!(
                                    "is required: namespace '{}' has {} VirtualGateways in these \
                                     files",
                                    r.namespace,
                                    found.map_or(0, <[_]>::len)
                                ),
                            ));
                            None
                        }
                    },
                };
                metadata["virtualGateway"] = json!(gateway);
                for route in ["httpRoute", "http2Route", "grpcRoute"] {
                    let path = format!("spec.{route}.action.target.virtualService");
                    if let Some(Value::Object(service)) = spec
                        .get_mut(route)
                        .and_then(|b| b.pointer_mut("/action/target/virtualService"))
                    {
                        self.named(
                            r,
                            service,
                            "VirtualService",
                            "virtualServiceName",
                            &path,
                            problems,
                        );
                    }
                }
            }
            _ => {}
        }
        if problems.len() > before {
            return;
        }
        let doc = json!({ "kind": r.kind, "metadata": metadata, "spec": spec });
        match Manifest::from_value(&doc, r.source) {
            Ok(manifest) => out.push(manifest),
            Err(found) => problems.extend(found.0),
        }
    }

    /// Replaces `object`'s `{field}Ref` or `{field}ARN` with `name_field`: the App Mesh name.
    fn named(
        &self,
        r: &Resource<'_>,
        object: &mut Map<String, Value>,
        kind: &str,
        name_field: &str,
        path: &str,
        problems: &mut Vec<Problem>,
    ) {
        let field = ref_field(kind);
        let reference = object.remove(&format!("{field}Ref"));
        let arn = object.remove(&format!("{field}ARN"));
        if let Some(name) = self.resolve(r, kind, reference.as_ref(), arn.as_ref(), path, problems)
        {
            object.insert(name_field.into(), name.into());
        }
    }

    /// A router's `routes`, each a Route of the router.
    fn routes(
        &self,
        r: &Resource<'_>,
        mesh: &str,
        routes: &Value,
        problems: &mut Vec<Problem>,
        out: &mut Vec<Manifest>,
    ) {
        let Value::Array(routes) = routes else {
            problems.push(Problem::new(at(r.source, "spec.routes"), "must be a list"));
            return;
        };
        for (i, route) in routes.iter().enumerate() {
            let path = format!("spec.routes[{i}]");
            let Some(mut spec) = route.as_object().cloned() else {
                problems.push(Problem::new(at(r.source, &path), "must be an object"));
                continue;
            };
            let Some(name) = spec
                .remove("name")
                .and_then(|n| n.as_str().map(str::to_string))
            else {
                problems.push(Problem::new(
                    at(r.source, &format!("{path}.name")),
                    "is required",
                ));
                continue;
            };
            let before = problems.len();
            for body in ["httpRoute", "http2Route", "grpcRoute", "tcpRoute"] {
                let Some(Value::Array(targets)) = spec
                    .get_mut(body)
                    .and_then(|b| b.pointer_mut("/action/weightedTargets"))
                else {
                    continue;
                };
                for (j, target) in targets.iter_mut().enumerate() {
                    let at_target = format!("{path}.{body}.action.weightedTargets[{j}]");
                    if let Value::Object(target) = target {
                        self.named(
                            r,
                            target,
                            "VirtualNode",
                            "virtualNode",
                            &at_target,
                            problems,
                        );
                    }
                }
            }
            if problems.len() > before {
                continue;
            }
            let doc = json!({
                "kind": "Route",
                "metadata": {"name": name, "mesh": mesh, "virtualRouter": r.aws_name},
                "spec": spec,
            });
            // A route's problems are named where the route is written: in the router's routes.
            let source = format!("{}: {path}", r.source);
            match Manifest::from_value(&doc, &source) {
                Ok(mut manifest) => {
                    manifest.source = r.source.to_string();
                    out.push(manifest);
                }
                Err(found) => problems.extend(found.0.into_iter().map(|p| Problem {
                    path: p.path.replacen(&format!("{source}: spec"), &source, 1),
                    message: p.message,
                })),
            }
        }
    }
}

/// The field stem of a reference to `kind`: `virtualNode` (for `virtualNodeRef`/`virtualNodeARN`).
fn ref_field(kind: &str) -> String {
    let mut chars = kind.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The resource type in an App Mesh ARN: `mesh/M/virtualNode/N`.
fn arn_segment(kind: &str) -> String {
    ref_field(kind)
}

#[cfg(test)]
mod tests;
