//! Saved describe output and CLI input read as manifests, with problems named as the document
//! names its fields.

use serde_json::json;

use crate::Kind;
use crate::manifest::{ManifestKind, parse_texts};

fn parse(text: &str) -> Result<Vec<crate::manifest::Manifest>, Vec<String>> {
    parse_texts(&[("saved.json".to_string(), text.to_string())], None)
        .map(|parsed| parsed.manifests)
        .map_err(|p| p.0.iter().map(ToString::to_string).collect())
}

#[test]
fn describe_output_and_cli_input_are_the_resources_they_name() {
    let described = json!({"route": {
        "meshName": "demomesh", "virtualRouterName": "product-vr", "routeName": "product-r",
        "spec": {"httpRoute": {"match": {"prefix": "/"},
                 "action": {"weightedTargets": [{"virtualNode": "product-vn", "weight": 1}]}}},
        "metadata": {"arn": "arn:aws:appmesh:us-west-2:1:mesh/demomesh/virtualRouter/product-vr/route/product-r",
                     "version": 3, "uid": "x"},
        "status": {"status": "ACTIVE"}}});
    let input = json!({"meshName": "demomesh", "virtualNodeName": "product-vn",
        "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]},
        "tags": [{"key": "team", "value": "shop"}], "clientToken": "abc"});
    let mesh =
        json!({"mesh": {"meshName": "demomesh", "spec": {}, "status": {"status": "ACTIVE"}}});
    let text = json!([described, input, mesh]).to_string();
    let manifests = parse(&text).unwrap();
    let route = &manifests[0];
    assert_eq!(route.kind, ManifestKind::AppMesh(Kind::Route));
    assert_eq!(
        (
            route.metadata.name.as_str(),
            route.metadata.mesh.as_str(),
            route.parent_name()
        ),
        ("product-r", "demomesh", Some("product-vr"))
    );
    assert_eq!(route.spec, described["route"]["spec"]);
    let node = &manifests[1];
    assert_eq!(node.kind, ManifestKind::AppMesh(Kind::VirtualNode));
    assert_eq!(node.tags[0].key, "team");
    assert_eq!(manifests[2].kind, ManifestKind::AppMesh(Kind::Mesh));
    assert_eq!(manifests[2].metadata.name, "demomesh");
}

#[test]
fn problems_are_named_as_the_document_writes_its_fields() {
    let err = parse(
        &json!([
            {"virtualNode": {"meshName": "m", "virtualNodeName": "a/b", "spec": {"surprise": 1}}},
            {"meshName": "m", "routeName": "r", "spec": {}},
            {"meshName": "m", "virtualServiceName": "s", "colour": "blue", "spec": {}},
        ])
        .to_string(),
    )
    .unwrap_err();
    let has = |want: &str| {
        assert!(
            err.iter().any(|e| e.contains(want)),
            "no {want:?} in {err:#?}"
        )
    };
    has("saved.json#1: virtualNode.virtualNodeName: must start with a letter or digit");
    has("saved.json#1: virtualNode.spec: unknown field 'surprise'");
    has("saved.json#2: virtualRouterName: is required");
    has("saved.json#3: unknown field 'colour' for a VirtualService");
}
