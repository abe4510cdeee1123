//! Coming from App Mesh: `aviary apply` takes the App Mesh controller's Kubernetes resources
//! as they are (the canary pipeline's filled-in template and the rest of its mesh), lists what
//! it does not use, changes nothing on `--dry-run` or on any error, and the AWS CLI then
//! describes the mesh App Mesh had.

use std::time::Duration;

use serde_json::json;
use testkit::{aws_json, run};

use crate::{aviary_cmd, start};

fn apply(url: &str, args: &[&str]) -> testkit::AwsOutput {
    let mut cmd = aviary_cmd();
    cmd.arg("apply").args(args).env("AVIARY_CONTROL", url);
    run(&mut cmd, Duration::from_secs(60))
}

fn example(file: &str) -> String {
    crate::demomesh_dir()
        .join("../appmesh-crd")
        .join(file)
        .display()
        .to_string()
}

fn meshes(url: &str) -> usize {
    let out = aws_json(url, &["list-meshes"]);
    out["meshes"].as_array().map_or(0, Vec::len)
}

#[test]
fn app_mesh_controller_resources_apply_as_app_mesh_had_them() {
    let control = start();
    let url = control.url();
    let dir = example("");

    // A dry run reads and validates, then says what it would do, and writes nothing.
    let dry = apply(url, &["-f", &dir, "--dry-run"]);
    assert!(dry.success(), "{}{}", dry.stderr, dry.stdout);
    for line in [
        "mesh/yelb would be created (dry run)",
        "virtualnode/yelb-appserver-2-virtual-node would be created (dry run)",
        "route/route-to-yelb-appserver would be created (dry run)",
        "gatewayroute/to-appserver_yelb would be created (dry run)",
    ] {
        assert!(dry.stdout.contains(line), "no {line:?} in:\n{}", dry.stdout);
    }
    assert_eq!(meshes(url), 0, "a dry run changes nothing");

    // One broken document in the set: nothing is applied, and the message names it.
    let broken = testkit::temp_dir();
    for file in ["mesh.yaml", "yelb-appserver-2.yaml"] {
        std::fs::copy(example(file), broken.path().join(file)).unwrap();
    }
    let text = std::fs::read_to_string(example("yelb-appserver-2.yaml")).unwrap();
    let bad = text.replace(
        "port: 4567, protocol: http}\n      healthCheck",
        "port: 4567, protocol: htp}\n      healthCheck",
    );
    assert_ne!(bad, text);
    std::fs::write(broken.path().join("yelb-appserver-2.yaml"), bad).unwrap();
    let refused = apply(url, &["-f", broken.path().to_str().unwrap()]);
    assert!(!refused.success());
    assert!(
        refused
            .stderr
            .contains("yelb-appserver-2.yaml#1: spec.listeners[0].portMapping.protocol"),
        "{}",
        refused.stderr
    );
    assert_eq!(meshes(url), 0, "nothing from a set with an error");

    let applied = apply(url, &["-f", &dir]);
    assert!(applied.success(), "{}{}", applied.stderr, applied.stdout);
    for line in [
        "not used by aviary: Service 'yelb-appserver-2'",
        "not used by aviary: Deployment 'yelb-appserver-2'",
    ] {
        assert!(
            applied.stderr.contains(line),
            "no {line:?} in:\n{}",
            applied.stderr
        );
    }
    assert!(
        applied
            .stdout
            .contains("virtualnode/yelb-appserver-1_yelb created"),
        "{}",
        applied.stdout
    );

    // The AWS CLI sees the names App Mesh had: awsName, else the controller's derived name.
    let route = aws_json(
        url,
        &[
            "describe-route",
            "--mesh-name",
            "yelb",
            "--virtual-router-name",
            "yelb-appserver-virtual-router",
            "--route-name",
            "route-to-yelb-appserver",
        ],
    );
    assert_eq!(
        route["route"]["spec"]["httpRoute"]["action"]["weightedTargets"],
        json!([
            {"virtualNode": "yelb-appserver-2-virtual-node", "weight": 30},
            {"virtualNode": "yelb-appserver-1_yelb", "weight": 70}
        ])
    );
    assert_eq!(
        route["route"]["spec"]["httpRoute"]["retryPolicy"]["perRetryTimeout"],
        json!({"unit": "ms", "value": 2000})
    );
    let service = aws_json(
        url,
        &[
            "describe-virtual-service",
            "--mesh-name",
            "yelb",
            "--virtual-service-name",
            "yelb-db.yelb",
        ],
    );
    assert_eq!(
        service["virtualService"]["spec"]["provider"],
        json!({"virtualNode": {"virtualNodeName": "yelb-db-vn"}})
    );

    // Applied again: every resource is unchanged.
    let again = apply(url, &["-f", &dir]);
    assert!(again.success(), "{}", again.stderr);
    assert!(
        again.stdout.lines().all(|l| l.ends_with(" unchanged")),
        "{}",
        again.stdout
    );
    assert_eq!(again.stdout.lines().count(), 10, "{}", again.stdout);
}

/// The demo's `--cli-input-json` files (what `examples/demomesh/create.sh` feeds `aws appmesh
/// create-*`) apply as the mesh they create, and a saved `describe-route` applies to another
/// control plane as the same route.
#[test]
fn cli_input_files_and_saved_describe_output_apply_as_the_resources_they_name() {
    let control = start();
    let url = control.url();
    let dir = testkit::temp_dir();
    let from = crate::demomesh_dir().join("appmesh");
    let files = [
        "mesh.json",
        "order-vn.json",
        "product-vn.json",
        "customer-vn.json",
        "order-vr.json",
        "product-vr.json",
        "customer-vr.json",
        "order-r.json",
        "product-r.json",
        "customer-r.json",
        "vs-order.json",
        "vs-product.json",
        "vs-customer.json",
        "demo-gw.json",
        "order-gr.json",
    ];
    for file in files {
        std::fs::copy(from.join(file), dir.path().join(file)).unwrap();
    }
    let applied = apply(url, &["-f", dir.path().to_str().unwrap()]);
    assert!(applied.success(), "{}{}", applied.stderr, applied.stdout);
    assert_eq!(
        applied.stdout.lines().count(),
        files.len(),
        "{}",
        applied.stdout
    );
    let input: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from.join("product-r.json")).unwrap())
            .unwrap();
    let describe = [
        "describe-route",
        "--mesh-name",
        "demomesh",
        "--virtual-router-name",
        "product-vr",
        "--route-name",
        "product-r",
    ];
    let described = aws_json(url, &describe);
    assert_eq!(described["route"]["spec"], input["spec"]);

    // What a script saved, applied elsewhere: the same route (after what it refers to).
    let other = start();
    let saved = dir.path().join("saved-route.json");
    std::fs::write(&saved, described.to_string()).unwrap();
    let needed: Vec<String> = ["mesh.json", "product-vn.json", "product-vr.json"]
        .iter()
        .map(|f| from.join(f).display().to_string())
        .collect();
    for file in &needed {
        let out = apply(other.url(), &["-f", file]);
        assert!(out.success(), "{}", out.stderr);
    }
    let out = apply(other.url(), &["-f", saved.to_str().unwrap()]);
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("route/product-r created"),
        "{}",
        out.stdout
    );
    assert_eq!(
        aws_json(other.url(), &describe)["route"]["spec"],
        input["spec"]
    );
}
