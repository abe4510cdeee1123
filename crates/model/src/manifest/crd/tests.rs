//! App Mesh controller documents read as manifests: names as the controller derives them,
//! references resolved across files, routes out of their router, other kinds listed as not
//! used, and problems naming the file, document and field.

use serde_json::{Value, json};

use crate::Kind;
use crate::manifest::{ManifestKind, Parsed, parse_texts};

fn parse(files: &[(&str, &str)], mesh: Option<&str>) -> Result<Parsed, Vec<String>> {
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|(source, text)| (source.to_string(), text.to_string()))
        .collect();
    parse_texts(&texts, mesh).map_err(|p| p.0.iter().map(ToString::to_string).collect())
}

/// (kind, name, parent) of each manifest, and its spec by name.
fn found(parsed: &Parsed) -> Vec<(String, String, Option<String>)> {
    parsed
        .manifests
        .iter()
        .map(|m| {
            (
                m.kind.to_string(),
                m.metadata.name.clone(),
                m.parent_name().map(str::to_string),
            )
        })
        .collect()
}

fn spec<'a>(parsed: &'a Parsed, kind: Kind, name: &str) -> &'a Value {
    &parsed
        .manifests
        .iter()
        .find(|m| m.kind == ManifestKind::AppMesh(kind) && m.metadata.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .spec
}

/// The canary pipeline's template, filled in for version 2 at 30% (see
/// `shared/formats/pipeline-template.md`), and its mesh.
const PIPELINE: &str = include_str!("../../../../../examples/appmesh-crd/yelb-appserver-2.yaml");

/// The rest of the mesh: the Mesh, version 1, and the database it calls (by ARN, as a script
/// that knew the ARN would write it).
const REST: &str = include_str!("../../../../../examples/appmesh-crd/mesh.yaml");

#[test]
fn the_pipeline_template_and_its_mesh_become_app_mesh_resources_named_as_app_mesh_had_them() {
    let parsed = parse(&[("template.yml", PIPELINE), ("mesh.yaml", REST)], None).unwrap();
    let owned = |s: &str| s.to_string();
    let mut names = found(&parsed);
    names.sort();
    let mut want = vec![
        (owned("Mesh"), owned("yelb"), None),
        (
            owned("VirtualNode"),
            owned("yelb-appserver-2-virtual-node"),
            None,
        ),
        (
            owned("Route"),
            owned("route-to-yelb-appserver"),
            Some(owned("yelb-appserver-virtual-router")),
        ),
        (
            owned("VirtualRouter"),
            owned("yelb-appserver-virtual-router"),
            None,
        ),
        (owned("VirtualService"), owned("yelb-appserver"), None),
        // No awsName: the controller's `${name}_${namespace}`, `${name}.${namespace}`.
        (owned("VirtualNode"), owned("yelb-appserver-1_yelb"), None),
        (owned("VirtualNode"), owned("yelb-db-vn"), None),
        (owned("VirtualService"), owned("yelb-db.yelb"), None),
        (owned("VirtualGateway"), owned("ingress_yelb"), None),
        (
            owned("GatewayRoute"),
            owned("to-appserver_yelb"),
            Some(owned("ingress_yelb")),
        ),
    ];
    want.sort();
    assert_eq!(names, want);
    assert!(parsed.manifests.iter().all(|m| m.metadata.mesh == "yelb"));
    assert_eq!(
        spec(&parsed, Kind::Route, "route-to-yelb-appserver")["httpRoute"]["action"]["weightedTargets"],
        json!([
            {"virtualNode": "yelb-appserver-2-virtual-node", "weight": 30},
            {"virtualNode": "yelb-appserver-1_yelb", "weight": 70}
        ])
    );
    let node = spec(&parsed, Kind::VirtualNode, "yelb-appserver-2-virtual-node");
    assert_eq!(
        node["backends"],
        json!([{"virtualService": {"virtualServiceName": "yelb-db.yelb"}}])
    );
    assert!(node.get("podSelector").is_none() && node.get("awsName").is_none());
    assert_eq!(node["listeners"][0]["healthCheck"]["path"], "/health");
    assert_eq!(
        spec(&parsed, Kind::VirtualService, "yelb-db.yelb")["provider"],
        json!({"virtualNode": {"virtualNodeName": "yelb-db-vn"}})
    );
    assert_eq!(
        spec(&parsed, Kind::VirtualService, "yelb-appserver")["provider"],
        json!({"virtualRouter": {"virtualRouterName": "yelb-appserver-virtual-router"}})
    );
    assert!(
        spec(
            &parsed,
            Kind::VirtualRouter,
            "yelb-appserver-virtual-router"
        )
        .get("routes")
        .is_none()
    );
    assert_eq!(
        spec(&parsed, Kind::Mesh, "yelb"),
        &json!({"egressFilter": {"type": "DROP_ALL"}})
    );
    assert_eq!(
        spec(&parsed, Kind::GatewayRoute, "to-appserver_yelb")["httpRoute"]["action"],
        json!({"target": {"virtualService": {"virtualServiceName": "yelb-appserver"}},
               "rewrite": {"prefix": {"value": "/"}}})
    );
    let unused: Vec<String> = parsed
        .unused
        .iter()
        .map(|u| format!("{} {} {}", u.kind, u.name, u.source))
        .collect();
    assert_eq!(
        unused,
        [
            "Service yelb-appserver-2 template.yml#4",
            "Deployment yelb-appserver-2 template.yml#5"
        ]
    );
}

#[test]
fn without_its_mesh_a_file_needs_mesh_ref_or_the_mesh_flag() {
    let err = parse(&[("template.yml", PIPELINE)], None).unwrap_err();
    assert!(
        err.iter().any(|e| e
            == "template.yml#1: spec.meshRef: no mesh: these files hold 0 Mesh documents; give \
                spec.meshRef, or --mesh"),
        "{err:#?}"
    );
    // With --mesh, what it refers to must still be in the files: yelb-appserver-1 and yelb-db.
    let err = parse(&[("template.yml", PIPELINE)], Some("yelb")).unwrap_err();
    assert_eq!(err.len(), 2, "{err:#?}");
    assert!(
        err[0].starts_with(
            "template.yml#1: spec.backends[0].virtualService.virtualServiceRef: no VirtualService \
             'yelb-db' in namespace 'yelb' in these files"
        ),
        "{err:#?}"
    );
    assert!(
        err[1].starts_with(
            "template.yml#2: spec.routes[0].httpRoute.action.weightedTargets[1].virtualNodeRef: \
             no VirtualNode 'yelb-appserver-1'"
        ),
        "{err:#?}"
    );
}

#[test]
fn unknown_and_invalid_fields_are_named_where_they_are_written_and_nothing_is_read() {
    let bad = r#"
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: a, namespace: x, colour: blue}
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      healthCheck: {healthyThreshold: 2}
  surprise: 1
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata: {name: r, namespace: x}
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  routes:
    - name: to-a
      httpRoute:
        match: {prefix: /}
        action: {weightedTargets: [{virtualNodeRef: {name: a}, weight: 1}]}
        retryPolicy: {maxRetries: many}
    - httpRoute: {}
---
apiVersion: appmesh.k8s.aws/v1beta1
kind: Mesh
metadata: {name: old}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNodes
metadata: {name: typo}
"#;
    let err = parse(&[("bad.yaml", bad)], Some("m")).unwrap_err();
    let has = |want: &str| {
        assert!(
            err.iter().any(|e| e.contains(want)),
            "no {want:?} in {err:#?}"
        );
    };
    has("bad.yaml#1: metadata: unknown field 'colour'");
    has("bad.yaml#1: spec: unknown field 'surprise'");
    has("bad.yaml#1: spec.listeners[0].healthCheck");
    has("bad.yaml#2: spec.routes[0].httpRoute.retryPolicy.maxRetries");
    has("bad.yaml#2: spec.routes[1].name: is required");
    has(
        "bad.yaml#3: apiVersion: 'appmesh.k8s.aws/v1beta1': aviary reads the App Mesh controller's appmesh.k8s.aws/v1beta2",
    );
    has("bad.yaml#4: kind: 'VirtualNodes' is no App Mesh controller kind");
}
