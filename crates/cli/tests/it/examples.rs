//! `examples/demomesh` stays coherent: the YAML manifests say what the CLI JSON files say, and
//! `create.sh` creates every resource after everything it refers to.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::{STEP1, demomesh_dir, example};

/// The new nodes and route updates of step 3, next to the YAML files that carry them.
const STEP3: [(&str, &[&str]); 7] = [
    ("product-v15.yaml", &["product-v15-vn"]),
    ("customer-v2.yaml", &["customer-v2-vn"]),
    ("routes-product-75-25.yaml", &["product-r-75-25"]),
    ("routes-product-v15.yaml", &["product-r-v15"]),
    ("routes-customer-50-50.yaml", &["customer-r-50-50"]),
    ("routes-customer-v2.yaml", &["customer-r-v2"]),
    (
        "routes-rollback-v1.yaml",
        &["product-r-v1", "customer-r-v1"],
    ),
];

/// The `--cli-input-json` document equivalent to one manifest document.
fn as_cli_input(doc: &Value) -> Value {
    let md = &doc["metadata"];
    let text = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("not a string: {v} in {doc}"))
            .to_string()
    };
    let kind = doc["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("no kind: {doc}"));
    let mut input = Map::new();
    let name_key = match kind {
        "Mesh" => {
            assert!(
                md.get("mesh").is_none(),
                "a Mesh has only metadata.name: {doc}"
            );
            "meshName"
        }
        "VirtualNode" => "virtualNodeName",
        "VirtualRouter" => "virtualRouterName",
        "VirtualService" => "virtualServiceName",
        "VirtualGateway" => "virtualGatewayName",
        "Route" => {
            input.insert(
                "virtualRouterName".into(),
                json!(text(&md["virtualRouter"])),
            );
            "routeName"
        }
        "GatewayRoute" => {
            input.insert(
                "virtualGatewayName".into(),
                json!(text(&md["virtualGateway"])),
            );
            "gatewayRouteName"
        }
        other => panic!("unknown kind {other}"),
    };
    if kind != "Mesh" {
        input.insert("meshName".into(), json!(text(&md["mesh"])));
    }
    input.insert(name_key.into(), json!(text(&md["name"])));
    input.insert("spec".into(), doc["spec"].clone());
    Value::Object(input)
}

fn manifest(file: &str) -> Vec<Value> {
    let path = demomesh_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    // Workloads (how to run a node locally) have no App Mesh twin.
    docs.iter()
        .filter(|doc| doc["kind"] != "Workload")
        .map(as_cli_input)
        .collect()
}

#[track_caller]
fn assert_same_resources(file: &str, from_yaml: &[Value], json_files: &[&str]) {
    assert_eq!(
        from_yaml.len(),
        json_files.len(),
        "{file}: {} documents",
        from_yaml.len()
    );
    for name in json_files {
        let input = example(name);
        assert!(
            from_yaml.contains(&input),
            "{file} has nothing equal to appmesh/{name}.json:\n{input:#}"
        );
    }
}

#[test]
fn yaml_manifests_describe_the_same_resources_as_the_cli_json_files() {
    assert_same_resources("mesh.yaml", &manifest("mesh.yaml"), &STEP1);
    let mut covered: HashSet<String> = STEP1.iter().map(|s| s.to_string()).collect();
    for (file, names) in STEP3 {
        assert_same_resources(file, &manifest(file), names);
        covered.extend(names.iter().map(|s| s.to_string()));
    }
    let on_disk: HashSet<String> = std::fs::read_dir(demomesh_dir().join("appmesh"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        on_disk, covered,
        "appmesh/*.json without a YAML twin, or the reverse"
    );
}

/// What a CLI input file refers to, as (kind, name) pairs that must exist first.
fn references(input: &Value) -> Vec<(&'static str, String)> {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let mut refs = Vec::new();
    let is_mesh = input
        .as_object()
        .unwrap()
        .keys()
        .all(|k| k == "meshName" || k == "spec");
    if !is_mesh {
        refs.push(("mesh", s(&input["meshName"]).unwrap()));
    }
    let spec = &input["spec"];
    if input.get("routeName").is_some() {
        refs.push(("router", s(&input["virtualRouterName"]).unwrap()));
        for t in spec["httpRoute"]["action"]["weightedTargets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            refs.push(("node", s(&t["virtualNode"]).unwrap()));
        }
    }
    if input.get("gatewayRouteName").is_some() {
        refs.push(("gateway", s(&input["virtualGatewayName"]).unwrap()));
        let target = &spec["httpRoute"]["action"]["target"]["virtualService"]["virtualServiceName"];
        refs.push(("service", s(target).unwrap()));
    }
    for b in spec["backends"].as_array().into_iter().flatten() {
        refs.push((
            "service",
            s(&b["virtualService"]["virtualServiceName"]).unwrap(),
        ));
    }
    if let Some(router) = s(&spec["provider"]["virtualRouter"]["virtualRouterName"]) {
        refs.push(("router", router));
    }
    refs
}

/// What a CLI input file creates.
fn creates(input: &Value) -> (&'static str, String) {
    let keys = [
        ("gatewayRouteName", "gateway route"),
        ("routeName", "route"),
        ("virtualNodeName", "node"),
        ("virtualServiceName", "service"),
        ("virtualGatewayName", "gateway"),
        ("virtualRouterName", "router"),
        ("meshName", "mesh"),
    ];
    let (key, kind) = keys
        .into_iter()
        .find(|(k, _)| input.get(*k).is_some())
        .unwrap();
    (kind, input[key].as_str().unwrap().to_string())
}

#[test]
fn create_sh_creates_everything_after_what_it_refers_to() {
    let script = std::fs::read_to_string(demomesh_dir().join("create.sh")).unwrap();
    let files: Vec<&str> = script
        .lines()
        .filter_map(|l| l.strip_prefix("create "))
        .map(|l| {
            l.split_whitespace()
                .last()
                .unwrap()
                .trim_end_matches(".json")
        })
        .collect();
    assert_eq!(files, STEP1, "create.sh and STEP1 disagree");

    let mut made: HashSet<(&str, String)> = HashSet::new();
    for name in files {
        let input = example(name);
        for dep in references(&input) {
            assert!(
                made.contains(&dep),
                "{name} refers to {dep:?} before it exists"
            );
        }
        assert!(
            made.insert(creates(&input)),
            "{name} creates something twice"
        );
    }
}
