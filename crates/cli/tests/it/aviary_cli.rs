//! The `aviary` subcommands against a real control plane: `apply` builds the same mesh the AWS
//! CLI builds, `get` shows it (table, JSON, YAML, live), `route set` and `delete` change it, and
//! every mistake is one clear line with a non-zero exit that changes nothing.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{AwsOutput, aws, run};

use crate::{cli_input, create_with_script, demomesh_dir, snapshot, start};

/// Runs `aviary ARGS` against the control plane at `url`.
fn aviary(url: &str, args: &[&str]) -> AwsOutput {
    let mut cmd = crate::aviary_cmd();
    cmd.args(args)
        .env("AVIARY_CONTROL", url)
        .env_remove("AVIARY_MESH");
    run(&mut cmd, Duration::from_secs(30))
}

fn aviary_ok(url: &str, args: &[&str]) -> String {
    let out = aviary(url, args);
    assert!(
        out.success(),
        "aviary {args:?} failed: {}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn example_file(name: &str) -> String {
    demomesh_dir().join(name).display().to_string()
}

/// The mesh as a comparable value: every resource's names and spec, without metadata (uids and
/// timestamps differ between two servers by design).
fn content(url: &str) -> Value {
    let mut snap = snapshot(url, "demomesh");
    let object = snap.as_object_mut().expect("snapshot is an object");
    object.remove("revision");
    // aviary's own kinds (workloads, endpoints) have no App Mesh counterpart to compare.
    object.remove("workloads");
    object.remove("endpoints");
    for (_, resources) in object.iter_mut() {
        let list: Vec<&mut Value> = match resources {
            Value::Array(list) => list.iter_mut().collect(),
            other => vec![other],
        };
        for resource in list {
            resource
                .as_object_mut()
                .expect("resource")
                .remove("metadata");
        }
    }
    snap
}

fn describe_route(url: &str, router: &str, route: &str) -> Value {
    let out = aws(
        url,
        &[
            "describe-route",
            "--mesh-name",
            "demomesh",
            "--virtual-router-name",
            router,
            "--route-name",
            route,
        ],
    );
    let mut route = out.json()["route"].clone();
    route.as_object_mut().expect("route").remove("metadata");
    route
}

#[test]
fn apply_builds_the_walkthrough_mesh_exactly_as_the_aws_cli_does() {
    let by_aws = start();
    let by_apply = start();
    create_with_script(by_aws.url());

    let out = aviary_ok(by_apply.url(), &["apply", "-f", &example_file("mesh.yaml")]);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" created")).count(),
        15,
        "{out}"
    );
    assert!(out.contains("route/product-r created"), "{out}");
    assert_eq!(content(by_aws.url()), content(by_apply.url()));
    assert_eq!(
        describe_route(by_aws.url(), "product-vr", "product-r"),
        describe_route(by_apply.url(), "product-vr", "product-r")
    );

    // Step 3: the new nodes and the 75/25 split, each tool its own way.
    for file in ["product-v15-vn", "customer-v2-vn"] {
        let out = aws(
            by_aws.url(),
            &["create-virtual-node", "--cli-input-json", &cli_input(file)],
        );
        assert!(out.success(), "{}", out.stderr);
    }
    let out = aws(
        by_aws.url(),
        &[
            "update-route",
            "--cli-input-json",
            &cli_input("product-r-75-25"),
        ],
    );
    assert!(out.success(), "{}", out.stderr);
    aviary_ok(
        by_apply.url(),
        &[
            "apply",
            "-f",
            &example_file("product-v15.yaml"),
            "-f",
            &example_file("customer-v2.yaml"),
        ],
    );
    let out = aviary_ok(
        by_apply.url(),
        &["apply", "-f", &example_file("routes-product-75-25.yaml")],
    );
    assert_eq!(out.trim(), "route/product-r configured");
    assert_eq!(content(by_aws.url()), content(by_apply.url()));

    // Re-applying mesh.yaml puts product-r back to 100% v1 and leaves everything else alone;
    // the 75/25 file then moves it again, and applying that file twice changes nothing.
    let revision = snapshot(by_apply.url(), "demomesh")["revision"]
        .as_u64()
        .unwrap();
    let out = aviary_ok(by_apply.url(), &["apply", "-f", &example_file("mesh.yaml")]);
    let changed: Vec<&str> = out.lines().filter(|l| !l.ends_with(" unchanged")).collect();
    assert_eq!(changed, ["route/product-r configured"], "{out}");
    let file = example_file("routes-product-75-25.yaml");
    assert_eq!(
        aviary_ok(by_apply.url(), &["apply", "-f", &file]).trim(),
        "route/product-r configured"
    );
    assert_eq!(
        aviary_ok(by_apply.url(), &["apply", "-f", &file]).trim(),
        "route/product-r unchanged"
    );
    let after = snapshot(by_apply.url(), "demomesh")["revision"]
        .as_u64()
        .unwrap();
    assert_eq!(
        after,
        revision + 2,
        "only the two real changes were written"
    );
}

#[test]
fn get_yaml_round_trips_through_apply() {
    let control = start();
    aviary_ok(control.url(), &["apply", "-f", &example_file("mesh.yaml")]);
    let yaml = aviary_ok(
        control.url(),
        &["get", "routes", "--mesh", "demomesh", "-o", "yaml"],
    );
    assert_eq!(yaml.matches("kind: Route").count(), 3, "{yaml}");
    let dir = testkit::temp_dir();
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = aviary_ok(control.url(), &["apply", "-f", &file.display().to_string()]);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" unchanged")).count(),
        3,
        "{out}"
    );
}

#[test]
fn route_set_changes_weights_in_one_write_and_tables_show_them() {
    let control = start();
    aviary_ok(
        control.url(),
        &[
            "apply",
            "-f",
            &example_file("mesh.yaml"),
            "-f",
            &example_file("product-v15.yaml"),
        ],
    );
    let before = snapshot(control.url(), "demomesh")["revision"]
        .as_u64()
        .unwrap();
    let out = aviary_ok(
        control.url(),
        &[
            "route",
            "set",
            "product-r",
            "--router",
            "product-vr",
            "--mesh",
            "demomesh",
            "product-vn=75",
            "product-v15-vn=25",
        ],
    );
    assert!(out.contains("product-vn=75 product-v15-vn=25"), "{out}");
    assert_eq!(
        snapshot(control.url(), "demomesh")["revision"]
            .as_u64()
            .unwrap(),
        before + 1
    );

    // --mesh may be left out when there is only one mesh.
    let table = aviary_ok(control.url(), &["get", "routes"]);
    let row = table
        .lines()
        .find(|l| l.contains("product-r"))
        .expect("product-r row");
    assert!(row.contains("product-vn:75 product-v15-vn:25"), "{table}");
    assert!(table.starts_with("ROUTER"), "{table}");

    let json = aviary_ok(
        control.url(),
        &[
            "get",
            "route",
            "product-r",
            "--router",
            "product-vr",
            "-o",
            "json",
        ],
    );
    let route: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(route["metadata"]["version"], 2);
    assert_eq!(
        route["spec"]["httpRoute"]["action"]["weightedTargets"][1]["weight"],
        25
    );
}

#[test]
fn mistakes_are_one_line_nonzero_and_change_nothing() {
    let control = start();
    aviary_ok(control.url(), &["apply", "-f", &example_file("mesh.yaml")]);
    let before = snapshot(control.url(), "demomesh");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "route",
                "set",
                "product-r",
                "--router",
                "product-vr",
                "--mesh",
                "demomesh",
                "ghost-vn=100",
            ],
            "virtual node 'ghost-vn'",
        ),
        (
            vec![
                "route",
                "set",
                "product-r",
                "--router",
                "product-vr",
                "--mesh",
                "demomesh",
                "product-vn=lots",
            ],
            "'lots' is not a non-negative integer",
        ),
        (
            vec![
                "route",
                "set",
                "product-r",
                "--router",
                "product-vr",
                "--mesh",
                "demomesh",
                "product-vn=10001",
            ],
            "at most 10000",
        ),
        (
            vec![
                "route",
                "set",
                "nope-r",
                "--router",
                "product-vr",
                "--mesh",
                "demomesh",
                "product-vn=1",
            ],
            "route 'nope-r'",
        ),
        (
            vec!["delete", "vn", "product-vn", "--mesh", "demomesh"],
            "ResourceInUseException",
        ),
        (
            vec!["delete", "route", "product-r", "--mesh", "demomesh"],
            "needs --router",
        ),
        (vec!["get", "widgets"], "unknown kind 'widgets'"),
        (
            vec!["get", "vn", "ghost-vn", "--mesh", "demomesh"],
            "virtual node 'ghost-vn' not found",
        ),
    ];
    for (args, expected) in cases {
        let out = aviary(control.url(), &args);
        assert!(!out.success(), "aviary {args:?} succeeded: {}", out.stdout);
        let stderr = out.stderr.trim();
        assert_eq!(
            stderr.lines().count(),
            1,
            "aviary {args:?}: not one line: {stderr}"
        );
        assert!(stderr.starts_with("error: "), "aviary {args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "aviary {args:?}: expected '{expected}' in: {stderr}"
        );
    }

    // A manifest with several problems: all of them reported, nothing applied.
    let dir = testkit::temp_dir();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: VirtualRouter\nmetadata: {name: extra-vr, mesh: demomesh}\nspec:\n  listeners:\n  - portMapping: {port: 8080, protocol: http}\n---\n\
         kind: Route\nmetadata: {name: bad-r, mesh: demomesh, virtualRouter: product-vr}\nspec:\n  httpRoute:\n    match: {prefix: /}\n    action:\n      weightedTargets:\n      - {virtualNode: product-vn, weight: 10001}\n      - {virtualNode: product-vn, weigth: 1}\n",
    )
    .unwrap();
    let out = aviary(control.url(), &["apply", "-f", &bad.display().to_string()]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("validation errors detected"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("at most 10000"), "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown field 'weigth'"),
        "{}",
        out.stderr
    );
    assert_eq!(
        snapshot(control.url(), "demomesh"),
        before,
        "a failed command changed the mesh"
    );
}

#[test]
fn get_watch_redraws_when_a_route_changes() {
    let control = start();
    aviary_ok(
        control.url(),
        &[
            "apply",
            "-f",
            &example_file("mesh.yaml"),
            "-f",
            &example_file("product-v15.yaml"),
        ],
    );
    let mut child = crate::aviary_cmd()
        .args(["get", "routes", "--mesh", "demomesh", "--watch"])
        .env("AVIARY_CONTROL", control.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn aviary get --watch");
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        panic!("aviary get --watch never printed '{needle}'");
    };
    wait_for("product-vn:100");
    aviary_ok(
        control.url(),
        &[
            "route",
            "set",
            "product-r",
            "--router",
            "product-vr",
            "--mesh",
            "demomesh",
            "product-vn=50",
            "product-v15-vn=50",
        ],
    );
    let line = wait_for("product-v15-vn:50");
    assert!(line.contains("product-vn:50"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn logs_are_read_per_mesh_and_the_only_mesh_is_the_default() {
    // The supervisor's layout, written by hand: `aviary logs` needs no control plane.
    let data = testkit::temp_dir();
    let data_dir = data.path().display().to_string();
    let write = |mesh: &str, file: &str, text: &str| {
        let dir = data.path().join("logs").join(mesh);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    };
    let logs = |extra: &[&str]| {
        let mut args = vec!["logs", "web", "--data-dir", &data_dir];
        args.extend(extra);
        aviary("http://127.0.0.1:1", &args)
    };

    let none = logs(&[]);
    assert!(
        !none.success() && none.stderr.contains("no workload logs"),
        "{}",
        none.stderr
    );

    write("shop", "web-0.log", "shop says hi\n");
    assert_eq!(
        logs(&[]).stdout,
        "shop says hi\n",
        "the only mesh is the default"
    );

    write("blog", "web-0.log", "blog says hi\n");
    let ambiguous = logs(&[]);
    assert!(!ambiguous.success());
    assert!(
        ambiguous.stderr.contains("--mesh is required") && ambiguous.stderr.contains("blog, shop"),
        "{}",
        ambiguous.stderr
    );
    assert_eq!(logs(&["--mesh", "blog"]).stdout, "blog says hi\n");
    assert_eq!(logs(&["--mesh", "shop"]).stdout, "shop says hi\n");

    let missing = logs(&["--mesh", "ghost"]);
    assert!(!missing.success());
    assert!(
        missing.stderr.contains("'web'") && missing.stderr.contains("'ghost'"),
        "{}",
        missing.stderr
    );
    let escape = logs(&["--mesh", "../logs"]);
    assert!(
        !escape.success() && escape.stderr.contains("--mesh"),
        "{}",
        escape.stderr
    );
}
