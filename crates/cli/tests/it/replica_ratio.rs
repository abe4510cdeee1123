//! The replicas strategy under `aviary up`, with real supervised processes: two workloads of
//! the demo's product node, no weighted route; the canary moves one replica at a time from one
//! to the other, is judged on its own replicas' requests (the proxies count each workload of
//! the node apart), and is promoted, or rolled back when its replicas fail.

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::http_json;

use crate::canary::{Load, aviary, up_demo};

/// The stored workload `name` of the demo mesh, or `None` once it is gone.
fn workload(url: &str, name: &str) -> Option<Value> {
    let (status, _, body) = http_json(
        "GET",
        &format!("{url}/v1/meshes/demomesh/workloads/{name}"),
        None,
    );
    match status {
        200 => Some(body),
        404 => None,
        other => panic!("GET workload {name}: {other} {body}"),
    }
}

fn replicas(url: &str, name: &str) -> Option<u64> {
    workload(url, name).map(|w| w["replicas"].as_u64().unwrap_or(1))
}

/// Waits (bounded) until canary `name` is in one of `phases` and its actions are done.
fn wait_phase(url: &str, name: &str, phases: &[&str], limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, _, canary) = http_json(
            "GET",
            &format!("{url}/v1/meshes/demomesh/canaries/{name}"),
            None,
        );
        assert_eq!(status, 200, "{canary}");
        let acted = canary["acted"].as_u64()
            == canary["state"]["history"]
                .as_array()
                .map(|h| h.len() as u64);
        if acted && phases.contains(&canary["state"]["phase"].as_str().unwrap_or("")) {
            return canary;
        }
        assert!(
            Instant::now() < deadline,
            "canary {name} never reached {phases:?}: {canary:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn reasons(canary: &Value) -> Vec<String> {
    canary["state"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}: {}", e["event"], e["reason"].as_str().unwrap_or("")))
        .collect()
}

/// Applies a workload of the demo's product node at `version`, with `replicas` and the
/// demo's `extra` flags.
fn apply_product(
    url: &str,
    dir: &std::path::Path,
    name: &str,
    version: &str,
    replicas: u32,
    extra: &str,
) {
    let manifest = format!(
        "kind: Workload\nmetadata: {{name: {name}, mesh: demomesh}}\nspec:\n  virtualNode: \
         product-vn\n  replicas: {replicas}\n  command: [aviary-demo, product, --version, \
         \"{version}\"{extra}]\n"
    );
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, manifest).unwrap();
    aviary(url, &["apply", "-f", file.to_str().unwrap()]);
}

/// Waits (bounded) until product-vn has `count` registered endpoints.
fn wait_endpoints(url: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, body) = http_json("GET", &format!("{url}/v1/meshes/demomesh/endpoints"), None);
        let found = body["endpoints"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|e| e["virtualNode"] == "product-vn" && e["healthy"] == true)
                    .count()
            })
            .unwrap_or(0);
        if found == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "product-vn never had {count} endpoints: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_replicas_canary_moves_replicas_one_at_a_time_and_is_judged_on_its_own_replicas() {
    let (_up, url, gateway, data) = up_demo(&[]);
    let dir = data.path();
    apply_product(&url, dir, "product-v1", "1.0", 4, "");
    apply_product(&url, dir, "product-v2", "2.0", 0, "");
    wait_endpoints(&url, 4);
    let load = Load::start(gateway, 50);

    // Refused, naming the field, and nothing moves: a workload of another node, one replica.
    for (flags, words) in [
        (
            ["--canary", "order-v1", "--replicas", "4"],
            "spec.strategy.canaryWorkload: workload 'order-v1' runs node 'order-vn', not \
             'product-vn'",
        ),
        (
            ["--canary", "product-v2", "--replicas", "1"],
            "spec.strategy.total: must be between 2 and 64",
        ),
    ] {
        let mut cmd = crate::aviary_cmd();
        cmd.args([
            "canary",
            "start",
            "bad",
            "--mesh",
            "demomesh",
            "--stable",
            "product-v1",
        ])
        .args(flags)
        .env("AVIARY_CONTROL", &url);
        let out = testkit::run(&mut cmd, Duration::from_secs(60));
        assert!(!out.success(), "{}", out.stdout);
        assert!(out.stderr.contains(words), "{}", out.stderr);
    }
    assert_eq!(replicas(&url, "product-v1"), Some(4));
    assert_eq!(replicas(&url, "product-v2"), Some(0));

    // A healthy version: 3/1, 2/2, 1/3, each for 3 s, then 0/4 with the old workload removed.
    let started = aviary(
        &url,
        &[
            "canary",
            "start",
            "c1",
            "--mesh",
            "demomesh",
            "--replicas",
            "4",
            "--stable",
            "product-v1",
            "--canary",
            "product-v2",
            "--interval",
            "3s",
            "--max-5xx",
            "0",
            "--remove-stable",
        ],
    );
    assert!(started.contains("canary/c1 started"), "{started}");
    // The first step is acted on as the canary is created: the growing workload first.
    assert_eq!(replicas(&url, "product-v2"), Some(1));
    assert_eq!(replicas(&url, "product-v1"), Some(3));
    let status = aviary(&url, &["canary", "status", "c1", "--mesh", "demomesh"]);
    assert!(
        status.contains("replicas of node product-vn")
            && status.contains("replicas product-v1 3 / product-v2 1"),
        "{status}"
    );
    // The proxies count the two workloads of product-vn apart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, stats) = http_json(
            "GET",
            &format!("{url}/v1/meshes/demomesh/stats?window=10s"),
            None,
        );
        let requests = |workload: &str| {
            stats["workloads"].as_array().and_then(|list| {
                list.iter()
                    .find(|w| w["virtualNode"] == "product-vn" && w["workload"] == workload)
                    .and_then(|w| w["requests"].as_u64())
            })
        };
        if requests("product-v1").is_some_and(|n| n > 0)
            && requests("product-v2").is_some_and(|n| n > 0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no per-workload stats: {stats}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let done = wait_phase(
        &url,
        "c1",
        &["succeeded", "failed"],
        Duration::from_secs(90),
    );
    let history = reasons(&done);
    assert_eq!(done["state"]["phase"], "succeeded", "{history:#?}");
    assert!(
        history[0]
            .contains("step 1 of 3: 1 of 4 replicas run canary product-v2, 3 stable product-v1"),
        "{history:#?}"
    );
    // Each step passed on requests counted for the canary's own replicas (a step needs one).
    for (i, step) in ["1 of 4 replicas", "2 of 4 replicas", "3 of 4 replicas"]
        .iter()
        .enumerate()
    {
        let passed = format!("step {} of 3 ({step}) passed with ", i + 1);
        assert!(
            history.iter().any(|r| r.contains(&passed)),
            "{passed}: {history:#?}"
        );
    }
    assert_eq!(replicas(&url, "product-v2"), Some(4));
    assert_eq!(
        replicas(&url, "product-v1"),
        None,
        "the old workload is removed"
    );
    assert!(
        crate::canary::node_names(&url).contains(&"product-vn".to_string()),
        "the node stays: it is the new version's"
    );
    wait_endpoints(&url, 4);
    // Replicas are deregistered before they are stopped, so moving them costs callers
    // (almost) nothing: 0 of 465 failed in the run this was written with; at most 2% may.
    let failed = load.failed.lock().unwrap().clone();
    let sent = load.sent.load(std::sync::atomic::Ordering::Relaxed) as usize;
    eprintln!(
        "{sent} requests through the gateway while replicas moved, {} failed: {failed:?}",
        failed.len()
    );
    assert!(
        sent > 100 && failed.len() * 50 <= sent,
        "{failed:?} of {sent}"
    );

    // A version whose replicas fail every request: rolled back at its first 5xx, named by its
    // workload, and its workload removed; the stable one runs all 4 replicas again.
    apply_product(&url, dir, "product-v3", "3.0", 0, ", --error-rate, \"1\"");
    aviary(
        &url,
        &[
            "canary",
            "start",
            "c2",
            "--mesh",
            "demomesh",
            "--replicas",
            "4",
            "--stable",
            "product-v2",
            "--canary",
            "product-v3",
            "--interval",
            "30s",
            "--max-5xx",
            "0",
            "--remove-canary",
        ],
    );
    let failed = wait_phase(
        &url,
        "c2",
        &["succeeded", "failed"],
        Duration::from_secs(60),
    );
    let reason = failed["state"]["reason"].as_str().unwrap_or("");
    assert_eq!(failed["state"]["phase"], "failed", "{reason}");
    assert!(
        reason.contains("canary product-v3 answered") && reason.contains("5xx"),
        "{reason}"
    );
    assert_eq!(
        replicas(&url, "product-v3"),
        None,
        "the failed workload is removed"
    );
    assert_eq!(replicas(&url, "product-v2"), Some(4));
}
