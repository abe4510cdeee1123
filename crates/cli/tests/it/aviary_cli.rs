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

/// `aviary apply -f F...` of these `examples/demomesh` files, which must succeed.
fn apply_examples(url: &str, files: &[&str]) -> String {
    let paths: Vec<String> = files.iter().map(|f| example_file(f)).collect();
    let mut args = vec!["apply"];
    for path in &paths {
        args.extend(["-f", path.as_str()]);
    }
    aviary_ok(url, &args)
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
    apply_examples(control.url(), &["mesh.yaml", "product-v15.yaml"]);
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

    // Each command line, and what its one line of error must say.
    let cases: [(&str, &str); 18] = [
        (
            "route set product-r --router product-vr --mesh demomesh ghost-vn=100",
            "virtual node 'ghost-vn'",
        ),
        (
            "route set product-r --router product-vr --mesh demomesh product-vn=lots",
            "'lots' is not a non-negative integer",
        ),
        (
            "route set product-r --router product-vr --mesh demomesh product-vn=10001",
            "at most 10000",
        ),
        (
            "route set nope-r --router product-vr --mesh demomesh product-vn=1",
            "route 'nope-r'",
        ),
        (
            "delete vn product-vn --mesh demomesh",
            "ResourceInUseException",
        ),
        ("delete route product-r --mesh demomesh", "needs --router"),
        ("get widgets", "unknown kind 'widgets'"),
        // A wrong --mesh, --router or --gateway is named, not taken for a missing resource.
        ("get routes --mesh ghost", "mesh 'ghost' not found"),
        (
            "get route product-r --router ghost-vr",
            "virtual router 'ghost-vr' not found in mesh 'demomesh'",
        ),
        (
            "get gatewayroutes --gateway ghost-gw",
            "virtual gateway 'ghost-gw' not found in mesh 'demomesh'",
        ),
        (
            "route set product-r --router ghost-vr product-vn=1",
            "virtual router 'ghost-vr' not found in mesh 'demomesh'",
        ),
        (
            "delete route product-r --router ghost-vr",
            "virtual router 'ghost-vr' not found in mesh 'demomesh'",
        ),
        (
            "route set product-r --router product-vr --mesh ghost product-vn=1",
            "mesh 'ghost' not found",
        ),
        ("canary list --mesh ghost", "mesh 'ghost' not found"),
        ("canary status c --mesh ghost", "mesh 'ghost' not found"),
        ("top --mesh ghost -n 1", "mesh 'ghost' not found"),
        (
            "delete workload order-v1 --mesh ghost",
            "mesh 'ghost' not found",
        ),
        (
            "get vn ghost-vn --mesh demomesh",
            "virtual node 'ghost-vn' not found",
        ),
    ];
    for (line, expected) in cases {
        let args: Vec<&str> = line.split_whitespace().collect();
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
    apply_examples(control.url(), &["mesh.yaml", "product-v15.yaml"]);
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

/// `aviary ARGS` with `text` on its standard input, as `cat FILE | aviary ARGS` runs it.
fn aviary_with_input(url: &str, args: &[&str], text: &str) -> AwsOutput {
    let dir = testkit::temp_dir();
    let file = dir.path().join("input");
    std::fs::write(&file, text).unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(r#"f="$1"; shift; cat "$f" | "$0" "$@""#)
        .arg(crate::bin())
        .arg(&file)
        .args(args)
        .env("AVIARY_TOKEN", testkit::TEST_ADMIN_TOKEN)
        .env_remove("AVIARY_DATA_DIR")
        .env("AVIARY_CONTROL", url)
        .env_remove("AVIARY_MESH");
    run(&mut cmd, Duration::from_secs(120))
}

#[test]
fn apply_reads_standard_input_and_takes_more_than_1024_documents() {
    let control = start();
    let services = 1_100;
    let mut text = String::from("kind: Mesh\nmetadata: {name: big}\nspec: {}\n");
    for i in 0..services {
        text.push_str(&format!(
            "---\nkind: VirtualService\nmetadata: {{name: s{i}.big.local, mesh: big}}\nspec: {{}}\n"
        ));
    }
    let started = Instant::now();
    let out = aviary_with_input(control.url(), &["apply", "-f", "-"], &text);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.ends_with(" created"))
            .count(),
        services + 1,
        "{}",
        out.stderr
    );
    let snap = snapshot(control.url(), "big");
    assert_eq!(snap["virtualServices"].as_array().unwrap().len(), services);
    eprintln!(
        "{} documents applied from stdin in {:?}",
        services + 1,
        started.elapsed()
    );

    // A problem in standard input is named as coming from there; nothing is applied.
    let bad =
        "kind: VirtualService\nmetadata: {name: t.big.local, mesh: big}\nspec: {providr: {}}\n";
    let out = aviary_with_input(control.url(), &["apply", "-f", "-"], bad);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("<stdin>#1: spec: unknown field 'providr'"),
        "{}",
        out.stderr
    );
}

#[test]
fn delete_takes_workloads_and_endpoints_too() {
    let control = start();
    apply_examples(control.url(), &["mesh.yaml", "workloads-v1.yaml"]);
    assert_eq!(
        aviary_ok(control.url(), &["delete", "workload", "order-v1"]).trim(),
        "workload/order-v1 deleted"
    );
    let workloads = aviary_ok(control.url(), &["get", "workloads"]);
    assert!(!workloads.contains("order-v1"), "{workloads}");
    assert!(workloads.contains("product-v1"), "{workloads}");

    // Endpoints as a supervisor registers them; the same id on two nodes needs --node.
    let register = |node: &str, id: &str| {
        let url = format!("{}/v1/meshes/demomesh/endpoints/{node}/{id}", control.url());
        let body = serde_json::json!({"address": "127.0.0.1", "port": 9}).to_string();
        assert_eq!(testkit::http("PUT", &url, Some(&body)).0, 200);
    };
    register("product-vn", "p-0");
    register("product-vn", "twice");
    register("customer-vn", "twice");
    assert_eq!(
        aviary_ok(control.url(), &["delete", "ep", "p-0"]).trim(),
        "endpoint/p-0 deleted"
    );
    let ambiguous = aviary(control.url(), &["delete", "endpoint", "twice"]);
    assert!(!ambiguous.success());
    assert_eq!(
        ambiguous.stderr.trim(),
        "error: endpoint 'twice' is registered for 2 virtual nodes (customer-vn, product-vn): give --node"
    );
    aviary_ok(
        control.url(),
        &["delete", "endpoint", "twice", "--node", "customer-vn"],
    );
    let endpoints = aviary_ok(control.url(), &["get", "endpoints", "-o", "json"]);
    let left: Vec<Value> = serde_json::from_str(&endpoints).unwrap();
    let left: Vec<(&str, &str)> = left
        .iter()
        .map(|e| {
            (
                e["virtualNode"].as_str().unwrap(),
                e["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(left, [("product-vn", "twice")]);

    for (args, expected) in [
        (
            vec!["delete", "workload", "ghost"],
            "error: NotFoundException: workload 'ghost' not found in mesh 'demomesh'",
        ),
        (
            vec!["delete", "endpoint", "ghost"],
            "error: endpoint 'ghost' not found in mesh 'demomesh'",
        ),
        (
            vec!["delete", "workload"],
            "error: which workload? give its name",
        ),
    ] {
        let out = aviary(control.url(), &args);
        assert!(!out.success(), "{args:?}");
        assert_eq!(out.stderr.trim(), expected, "{args:?}");
    }
}

#[test]
fn an_unreachable_control_plane_is_one_line_and_a_bare_host_port_is_http() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    for control in [format!("http://{dead}"), dead.clone()] {
        let out = aviary(&control, &["get", "meshes"]);
        assert!(!out.success());
        assert_eq!(
            out.stderr,
            format!(
                "error: cannot reach the control plane at http://{dead}: connection refused \
                 — is `aviary demo` running? (--control URL or AVIARY_CONTROL says where)\n"
            )
        );
    }

    let control = start();
    aviary_ok(control.url(), &["apply", "-f", &example_file("mesh.yaml")]);
    let bare = control.url().trim_start_matches("http://").to_string();
    let meshes = aviary_ok("http://127.0.0.1:1", &["get", "meshes", "--control", &bare]);
    assert!(meshes.contains("demomesh"), "{meshes}");

    let other = aviary(
        control.url(),
        &["get", "meshes", "--control", "ftp://cp:21"],
    );
    assert!(!other.success());
    assert!(
        other.stderr.contains(
            "invalid value 'ftp://cp:21' for '--control <URL[,URL...]>': 'ftp://cp:21': the control plane speaks http:// or https://, not ftp://"
        ),
        "{}",
        other.stderr
    );
}

/// A child whose standard output is a pipe nobody reads any more, as when `| head -1` has
/// exited: every write to it fails with EPIPE.
fn with_closed_stdout(cmd: &mut std::process::Command) -> std::process::Child {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer)
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn aviary")
}

#[test]
fn a_closed_stdout_ends_a_printing_command_quietly_and_leaves_a_server_serving() {
    let control = start();
    aviary_ok(control.url(), &["apply", "-f", &example_file("mesh.yaml")]);
    for args in [
        vec!["get", "routes"],
        vec!["get", "vn", "-o", "json"],
        vec!["get", "routes", "--watch"],
        vec!["canary", "list"],
    ] {
        let mut cmd = crate::aviary_cmd();
        cmd.args(&args).env("AVIARY_CONTROL", control.url());
        let child = with_closed_stdout(&mut cmd);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "aviary {args:?}: {} {stderr}",
            out.status
        );
        assert_eq!(stderr, "", "aviary {args:?}");
    }

    // `aviary control` prints where it listens, then goes on serving.
    let data = testkit::temp_dir();
    let addr = format!("127.0.0.1:{}", crate::canary::free_port());
    let mut cmd = crate::aviary_cmd();
    cmd.args(["control", "--listen", &addr, "--no-auth", "--data-dir"])
        .arg(data.path());
    let server = crate::canary::Proc(with_closed_stdout(&mut cmd));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let healthy = std::net::TcpStream::connect(&addr).is_ok()
            && testkit::http("GET", &format!("http://{addr}/healthz"), None).0 == 200;
        if healthy {
            break;
        }
        assert!(Instant::now() < deadline, "aviary control did not serve");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut server = server;
    assert!(server.0.try_wait().unwrap().is_none(), "it went on serving");
}

/// `aviary up -f FILE` on `data`, on free ports; returns it and its stdout up to its last
/// banner line.
fn up(file: &std::path::Path, data: &std::path::Path) -> (crate::canary::Proc, String) {
    let mut child = crate::aviary_cmd()
        .args(["up", "-f"])
        .arg(file)
        .args(["--listen", "127.0.0.1:0", "--egress-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn aviary up");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let proc = crate::canary::Proc(child);
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.expect("read aviary up's output");
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Ctrl-C stops everything") {
            break;
        }
    }
    assert!(
        banner.contains("Ctrl-C"),
        "aviary up ended early:\n{banner}"
    );
    std::thread::spawn(move || for _ in lines {});
    (proc, banner)
}

#[test]
fn a_restarted_up_says_what_it_kept_and_how_to_start_clean() {
    let dir = testkit::temp_dir();
    let file = dir.path().join("m.yaml");
    std::fs::write(
        &file,
        "kind: Mesh\nmetadata: {name: m}\nspec: {}\n---\n\
         kind: VirtualNode\nmetadata: {name: web-vn, mesh: m}\nspec: {}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    testkit::seed_secrets(&data);

    let (first, banner) = up(&file, &data);
    assert!(!banner.contains("Kept from the last run"), "{banner}");
    let url = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("control plane"))
        .expect("the control plane's URL")
        .trim()
        .to_string();
    // What the user added by hand while it ran.
    let extra = "kind: VirtualNode\nmetadata: {name: api-vn, mesh: m}\nspec: {}\n---\n\
                 kind: Workload\nmetadata: {name: api, mesh: m}\nspec: {virtualNode: api-vn, command: [sleep, '60']}\n";
    let out = aviary_with_input(&url, &["apply", "-f", "-"], extra);
    assert!(out.success(), "{}", out.stderr);
    drop(first);

    let (_second, banner) = up(&file, &data);
    let dir_shown = data.display().to_string();
    for expected in [
        format!("Kept from the last run in {dir_shown} (its store, tokens, keys and logs):"),
        "  mesh m: 2 virtual nodes, 1 workload".to_string(),
        "    not in the manifests: virtual nodes: api-vn; workloads: api".to_string(),
        format!(
            "  To start clean: stop this (Ctrl-C), then `rm -rf {dir_shown}`, or start with --data-dir NEW_DIR."
        ),
    ] {
        assert!(
            banner.lines().any(|l| l == expected),
            "no line '{expected}' in:\n{banner}"
        );
    }
}
