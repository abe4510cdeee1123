//! Tests of manifest parsing and validation: YAML and JSON, one or many documents.

use serde_json::json;

use crate::Kind;
use crate::manifest::{
    MAX_DOCUMENTS, MAX_YAML_NODES, Manifest, ManifestKind, Tag, parse_manifests,
};
use crate::spec::tests as walkthrough;

/// Parse `text` as `demo.yaml` and compare the rendered problems (empty when it must parse).
fn check(text: &str, expected: &[&str]) -> Vec<Manifest> {
    match parse_manifests(text, "demo.yaml") {
        Ok(manifests) => {
            assert_eq!(
                Vec::<String>::new(),
                expected,
                "parsed, but problems were expected"
            );
            manifests
        }
        Err(problems) => {
            let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
            assert_eq!(got, expected, "{text}");
            Vec::new()
        }
    }
}

const WALKTHROUGH: &str = r#"
# The reference walkthrough's mesh, one resource of each kind.
kind: Mesh
metadata: {name: demomesh}
spec:
  egressFilter: {type: ALLOW_ALL}
---
kind: VirtualNode
metadata:
  name: product-vn
  mesh: demomesh
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      healthCheck:
        protocol: http
        path: /ping
        healthyThreshold: 2
        unhealthyThreshold: 2
        timeoutMillis: 2000
        intervalMillis: 5000
  serviceDiscovery:
    dns: {hostname: product-v1.demomesh.local}
  backends:
    - virtualService: {virtualServiceName: customer.demomesh.local}
tags:
  - {key: team, value: shop}
---
# an empty document is skipped
---
kind: VirtualRouter
metadata: {name: product-vr, mesh: demomesh}
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: Route
metadata: {name: product-r, mesh: demomesh, virtualRouter: product-vr}
spec:
  httpRoute:
    match: {prefix: /}
    action:
      weightedTargets:
        - {virtualNode: product-vn, weight: 75}
        - {virtualNode: product-v15-vn, weight: 25}
    retryPolicy:
      maxRetries: 2
      perRetryTimeout: {unit: ms, value: 1000}
      httpRetryEvents: [server-error, gateway-error]
      tcpRetryEvents: [connection-error]
---
kind: VirtualService
metadata: {name: product.demomesh.local, mesh: demomesh}
spec:
  provider: {virtualRouter: {virtualRouterName: product-vr}}
---
kind: VirtualGateway
metadata: {name: gateway-vg, mesh: demomesh}
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
---
kind: GatewayRoute
metadata: {name: order-gr, mesh: demomesh, virtualGateway: gateway-vg}
spec:
  httpRoute:
    match: {prefix: /}
    action: {target: {virtualService: {virtualServiceName: order.demomesh.local}}}
"#;

#[test]
fn multi_document_yaml_walkthrough() {
    let manifests = check(WALKTHROUGH, &[]);
    let kinds: Vec<ManifestKind> = manifests.iter().map(|m| m.kind.clone()).collect();
    let expected: Vec<ManifestKind> = Kind::ALL.into_iter().map(ManifestKind::AppMesh).collect();
    assert_eq!(kinds, expected);
    let sources: Vec<&str> = manifests.iter().map(|m| m.source.as_str()).collect();
    assert_eq!(sources[0], "demo.yaml#1");
    assert_eq!(sources[6], "demo.yaml#7");
    assert!(manifests.iter().all(|m| m.metadata.mesh == "demomesh"));
    // YAML and the JSON the API takes are the same spec.
    assert_eq!(manifests[0].spec, walkthrough::mesh());
    assert_eq!(manifests[1].spec, walkthrough::virtual_node());
    assert_eq!(manifests[2].spec, walkthrough::virtual_router());
    assert_eq!(manifests[3].spec, walkthrough::route());
    assert_eq!(manifests[4].spec, walkthrough::virtual_service());
    assert_eq!(manifests[5].spec, walkthrough::virtual_gateway());
    assert_eq!(manifests[6].spec, walkthrough::gateway_route());
    assert_eq!(
        manifests[1].tags,
        [Tag {
            key: "team".into(),
            value: "shop".into()
        }]
    );
    assert_eq!(manifests[3].parent_name(), Some("product-vr"));
    assert_eq!(manifests[6].parent_name(), Some("gateway-vg"));
    assert_eq!(manifests[1].parent_name(), None);
    assert_eq!(
        manifests[3].describe(),
        "Route 'product-r' in mesh 'demomesh' (virtual router 'product-vr')"
    );
}

#[test]
fn json_array_and_single_object() {
    let array = json!([
        {"kind": "Mesh", "metadata": {"name": "demomesh"}},
        {"kind": "VirtualService", "metadata": {"name": "product.demomesh.local", "mesh": "demomesh"},
         "spec": walkthrough::virtual_service()},
        null
    ]);
    let manifests = parse_manifests(&array.to_string(), "mesh.json").expect("valid");
    assert_eq!(manifests.len(), 2);
    assert_eq!(
        manifests[0].spec,
        json!({}),
        "a Mesh without spec gets {{}}"
    );
    assert_eq!(manifests[0].metadata.mesh, "demomesh");
    assert_eq!(manifests[1].source, "mesh.json#2");

    let single = json!({"kind": "Route", "metadata": {"name": "r", "mesh": "m", "virtualRouter": "vr"},
                        "spec": walkthrough::route()});
    let manifests = parse_manifests(&format!("\n  {single}"), "route.json").expect("valid");
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].metadata.virtual_router.as_deref(), Some("vr"));

    let bad = json!([{"kind": "Mesh", "metadata": {"name": "m", "mesh": "m"}},
                     {"kind": "VirtualNode", "metadata": {"name": "n", "mesh": "m"}}]);
    let problems = parse_manifests(&bad.to_string(), "bad.json").unwrap_err();
    let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "bad.json#1: metadata.mesh: a Mesh has no mesh field: its name is metadata.name",
            "bad.json#2: spec: is required",
        ]
    );
}

#[test]
fn syntax_errors_are_one_problem_naming_the_line() {
    let yaml = "kind: Mesh\nmetadata: {name: demomesh}\n---\nkind: VirtualNode\nmetadata: [name\n";
    let problems = parse_manifests(yaml, "broken.yaml").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems}");
    assert_eq!(problems.0[0].path, "broken.yaml");
    assert!(
        problems.0[0].message.starts_with("invalid YAML"),
        "{problems}"
    );
    assert!(problems.0[0].message.contains("line 5"), "{problems}");

    let json = "[\n  {\"kind\": \"Mesh\",\n    \"metadata\": }\n]";
    let problems = parse_manifests(json, "broken.json").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems}");
    assert!(
        problems.0[0].message.starts_with("invalid JSON"),
        "{problems}"
    );
    assert!(problems.0[0].message.contains("line 3"), "{problems}");
}

#[test]
fn envelope_problems() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "kind: VirtualRouter\nspec: {}\n",
            vec!["demo.yaml#1: metadata: is required"],
        ),
        (
            "kind: VirtualRouter\nmetadata: {name: r}\nspec: {}\n",
            vec!["demo.yaml#1: metadata.mesh: is required"],
        ),
        (
            "metadata: {name: r, mesh: m}\n",
            vec!["demo.yaml#1: kind: is required"],
        ),
        (
            "kind: Route\nmetadata: {name: r, mesh: m}\nspec: {tcpRoute: {action: {weightedTargets: [{virtualNode: n, weight: 1}]}}}\n",
            vec!["demo.yaml#1: metadata.virtualRouter: is required"],
        ),
        (
            "kind: GatewayRoute\nmetadata: {name: r, mesh: m, virtualRouter: vr}\nspec: {}\n",
            vec![
                "demo.yaml#1: metadata.virtualRouter: only a Route has virtualRouter",
                "demo.yaml#1: metadata.virtualGateway: is required",
                "demo.yaml#1: spec: must set exactly one of: grpcRoute, http2Route, httpRoute",
            ],
        ),
        (
            "kind: virtual-node\nmetadata: {name: n, mesh: m}\n",
            vec![
                "demo.yaml#1: kind: unknown kind 'virtual-node'; expected one of: Mesh, VirtualNode, VirtualRouter, Route, VirtualService, VirtualGateway, GatewayRoute, Workload, Canary (did you mean 'VirtualNode'?)",
            ],
        ),
        (
            "kind: Mesh\napiVersion: v1\nmetadata: {name: m, namespace: x}\n",
            vec![
                "demo.yaml#1: unknown field 'apiVersion'; allowed: kind, metadata, spec, tags",
                "demo.yaml#1: metadata: unknown field 'namespace'; allowed: name, mesh, virtualRouter, virtualGateway",
            ],
        ),
        (
            "kind: Mesh\nmetadata: {name: a/b}\ntags: [{key: '', value: x}]\n",
            vec![
                "demo.yaml#1: metadata.name: must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
                "demo.yaml#1: tags[0].key: must have at least 1 character",
            ],
        ),
        // YAML 1.1 booleans and octal-looking numbers are plain names here.
        (
            "kind: Route\nmetadata: {name: 007, mesh: no, virtualRouter: on}\nspec: {tcpRoute: {action: {weightedTargets: [{virtualNode: n, weight: 1}]}}}\n",
            vec![],
        ),
        (
            "- kind: Mesh\n",
            vec!["demo.yaml#1: a document must be an object with kind, metadata and spec"],
        ),
        (
            "kind: Mesh\nmetadata: {name: m}\n---\nkind: Mesh\nmetadata: {name: m}\n",
            vec!["demo.yaml#2: Mesh 'm' is also declared at demo.yaml#1"],
        ),
    ];
    for (text, expected) in cases {
        check(text, &expected);
    }
}

#[test]
fn every_problem_of_every_document_at_once() {
    let text = r#"
kind: Mesh
metadata: {name: demomesh}
---
kind: Route
metadata: {name: product-r, mesh: demomesh, virtualRouter: product-vr}
spec:
  httpRoute:
    match: {prefix: /}
    action:
      weightedTargets:
        - {virtualNode: product-vn, weight: 10001}
        - {virtualNode: product-vn, weigth: 25}
---
kind: VirtualNode
metadata: {name: -bad, mesh: demomesh}
spec: {listeners: [{portMapping: {port: 8080, protocol: https}}]}
"#;
    let problems = parse_manifests(text, "demo.yaml").unwrap_err();
    let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "demo.yaml#2: spec.httpRoute.action.weightedTargets[0].weight: must be at most 10000",
            "demo.yaml#2: spec.httpRoute.action.weightedTargets[1]: unknown field 'weigth' (did you mean 'weight'?)",
            "demo.yaml#2: spec.httpRoute.action.weightedTargets[1].weight: is required",
            "demo.yaml#2: spec.httpRoute.action.weightedTargets[1]: virtual node 'product-vn' is listed twice",
            "demo.yaml#3: metadata.name: must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
            "demo.yaml#3: spec.listeners[0].portMapping.protocol: must be one of: http, tcp, http2, grpc",
        ]
    );
    assert!(
        problems
            .to_string()
            .starts_with("6 validation errors detected: demo.yaml#2: ")
    );
}

#[test]
fn aviary_kinds_and_empty_input() {
    let text = "kind: Workload\nmetadata: {name: product-v1, mesh: demomesh}\nspec: {command: ./product, replicas: 2}\n";
    let manifests = check(text, &[]);
    assert_eq!(manifests[0].kind, ManifestKind::Other("Workload".into()));
    assert_eq!(
        manifests[0].spec,
        json!({"command": "./product", "replicas": 2})
    );
    check(
        "kind: Canary\nmetadata: {name: c}\n",
        &["demo.yaml#1: metadata.mesh: is required"],
    );
    assert_eq!(parse_manifests("", "empty.yaml").unwrap(), vec![]);
    assert_eq!(
        parse_manifests("# nothing\n---\n", "empty.yaml").unwrap(),
        vec![]
    );
    assert_eq!(parse_manifests("[]", "empty.json").unwrap(), vec![]);
}

#[test]
fn from_value_names_its_source() {
    let doc = json!({"kind": "VirtualService", "metadata": {"name": "s", "mesh": "m"}, "spec": {"provider": {}}});
    let problems = Manifest::from_value(&doc, "api").unwrap_err();
    assert_eq!(
        problems.to_string(),
        "1 validation error detected: api: spec.provider: must set exactly one of: virtualNode, virtualRouter"
    );
}

/// `n` virtual services of mesh `m`, as one YAML text of `n` documents.
fn services(n: usize) -> String {
    (0..n)
        .map(|i| format!("kind: VirtualService\nmetadata: {{name: s{i}.m, mesh: m}}\nspec: {{}}\n"))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn a_large_manifest_parses_up_to_the_documented_limit() {
    // serde-saphyr's default budget stops at 1,024 documents; ours is MAX_DOCUMENTS.
    assert_eq!(
        parse_manifests(&services(1_025), "big.yaml").unwrap().len(),
        1_025
    );
    let all = parse_manifests(&services(MAX_DOCUMENTS), "big.yaml").unwrap();
    assert_eq!(all.len(), MAX_DOCUMENTS);
    assert_eq!(
        all[MAX_DOCUMENTS - 1].metadata.name,
        format!("s{}.m", MAX_DOCUMENTS - 1)
    );
}

#[test]
fn past_the_limit_the_problem_names_it() {
    let limit = format!(
        "more than {MAX_DOCUMENTS} documents: aviary reads at most {MAX_DOCUMENTS} per file"
    );
    let problems = parse_manifests(&services(MAX_DOCUMENTS + 1), "big.yaml").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems}");
    assert_eq!(problems.0[0].path, "big.yaml");
    assert!(problems.0[0].message.starts_with(&limit), "{problems}");

    let items: Vec<serde_json::Value> = (0..=MAX_DOCUMENTS)
        .map(|i| json!({"kind": "VirtualService", "metadata": {"name": format!("s{i}.m"), "mesh": "m"}, "spec": {}}))
        .collect();
    let json = serde_json::to_string(&items).unwrap();
    let problems = parse_manifests(&json, "big.json").unwrap_err();
    assert!(problems.0[0].message.starts_with(&limit), "{problems}");

    // One document of too many nodes is refused by the node limit, named too.
    let huge = format!(
        "kind: Mesh\nmetadata: {{name: m}}\nspec: {{}}\ntags:\n{}",
        "- {key: k, value: v}\n".repeat(MAX_YAML_NODES / 4)
    );
    let problems = parse_manifests(&huge, "huge.yaml").unwrap_err();
    assert!(
        problems.0[0]
            .message
            .starts_with(&format!("more than {MAX_YAML_NODES} YAML nodes")),
        "{problems}"
    );
}
