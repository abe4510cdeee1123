//! The walkthrough across hosts, with real processes: a control plane, one `aviary agent` per
//! host (hosts stand as loopback addresses 127.0.0.2 to .5), order, product and customer each on
//! its own host, a canary of product on a fourth, and the gateway on a fifth (127.0.0.6).
//! Every endpoint is registered at its host's inbound listener, so traffic between hosts goes
//! proxy to proxy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{ControlProcess, http, http_json};

use crate::canary::{Proc, aviary, spawn_until};

const GATEWAY: &str = "http://127.0.0.6:9080/";

/// `aviary agent` for `host` at `address`, until it says it listens.
fn agent(control: &ControlProcess, host: &str, address: &str, data: &std::path::Path) -> Proc {
    let mut cmd = crate::aviary_cmd();
    cmd.args([
        "agent",
        "--mesh",
        "demomesh",
        "--host",
        host,
        "--address",
        address,
    ])
    .args([
        "--outbound-listen",
        "127.0.0.1:0",
        "--health-interval",
        "200ms",
    ])
    .arg("--data-dir")
    .arg(data.join(host))
    .env("AVIARY_CONTROL", control.url());
    spawn_until(&mut cmd, "(outbound)").0
}

/// A workload manifest of the demo on `host`.
fn workload(name: &str, node: &str, service: &str, version: &str, host: &str) -> String {
    format!(
        "---\nkind: Workload\nmetadata: {{name: {name}, mesh: demomesh}}\nspec:\n  \
         virtualNode: {node}\n  command: [aviary-demo, {service}, --version, \"{version}\"]\n  \
         hosts: [{host}]\n"
    )
}

/// One answer through the gateway: `(status, {service: version})`.
fn call() -> (u16, BTreeMap<String, String>) {
    let (status, _, body) = http("GET", GATEWAY, None);
    let mut versions = BTreeMap::new();
    for line in body.lines() {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            versions.insert("proxy".to_string(), line.to_string());
            continue;
        };
        let service = value["service"].as_str().unwrap_or("?").to_string();
        let version = value["version"].as_str().unwrap_or("error").to_string();
        versions.insert(service, version);
    }
    (status, versions)
}

fn versions(product: &str) -> BTreeMap<String, String> {
    [("Order", "1.0"), ("Product", product), ("Customer", "1.0")]
        .into_iter()
        .map(|(s, v)| (s.to_string(), v.to_string()))
        .collect()
}

/// Every registered endpoint of the mesh: id → (node, address).
fn endpoints(control: &ControlProcess) -> BTreeMap<String, (String, String)> {
    let url = format!("{}/v1/meshes/demomesh/endpoints", control.url());
    let (status, _, body) = http_json("GET", &url, None);
    assert_eq!(status, 200, "{body}");
    body["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            let node = e["virtualNode"].as_str().unwrap_or_default().to_string();
            let address = e["address"].as_str().unwrap_or_default().to_string();
            (id, (node, address))
        })
        .collect()
}

#[test]
fn the_walkthrough_runs_across_five_hosts_proxy_to_proxy() {
    let control = ControlProcess::start(crate::bin());
    let url = control.url().to_string();
    let data = testkit::temp_dir();
    let mesh = crate::demomesh_dir().join("mesh.yaml");
    aviary(&url, &["apply", "-f", mesh.to_str().unwrap()]);
    let manifests = data.path().join("workloads.yaml");
    let text = [
        workload("order-v1", "order-vn", "order", "1.0", "h1"),
        workload("product-v1", "product-vn", "product", "1.0", "h2"),
        workload("customer-v1", "customer-vn", "customer", "1.0", "h3"),
    ]
    .concat();
    std::fs::write(&manifests, text).unwrap();
    aviary(&url, &["apply", "-f", manifests.to_str().unwrap()]);

    let hosts = [
        ("h1", "127.0.0.2"),
        ("h2", "127.0.0.3"),
        ("h3", "127.0.0.4"),
        ("h4", "127.0.0.5"),
    ];
    let _agents: Vec<Proc> = hosts
        .iter()
        .map(|(host, address)| agent(&control, host, address, data.path()))
        .collect();
    let mut gateway = crate::aviary_cmd();
    gateway
        .args([
            "proxy",
            "--mesh",
            "demomesh",
            "--gateway",
            "demo-gw",
            "--bind",
            "127.0.0.6",
        ])
        .env("AVIARY_CONTROL", &url);
    let (_gateway, _) = spawn_until(&mut gateway, "(gateway)");

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = call();
    while last != (200, versions("1.0")) {
        assert!(
            Instant::now() < deadline,
            "the mesh never answered: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        last = call();
    }
    // Each replica is registered at its own host's inbound listener, never at loopback.
    let registered = endpoints(&control);
    let expected: BTreeMap<String, (String, String)> = [
        ("order-v1-0.h1", "order-vn", "127.0.0.2"),
        ("product-v1-0.h2", "product-vn", "127.0.0.3"),
        ("customer-v1-0.h3", "customer-vn", "127.0.0.4"),
    ]
    .into_iter()
    .map(|(id, node, address)| (id.to_string(), (node.to_string(), address.to_string())))
    .collect();
    assert_eq!(registered, expected);

    // The canary of product on the fourth host: half the traffic, then all of it.
    let canary = data.path().join("product-v15.yaml");
    let node = std::fs::read_to_string(crate::demomesh_dir().join("product-v15.yaml")).unwrap();
    let node = node.split("kind: Workload").next().unwrap().to_string();
    let text = node + &workload("product-v15", "product-v15-vn", "product", "1.5", "h4");
    std::fs::write(&canary, text).unwrap();
    aviary(&url, &["apply", "-f", canary.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !endpoints(&control).contains_key("product-v15-0.h4") {
        assert!(Instant::now() < deadline, "the canary never became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(endpoints(&control)["product-v15-0.h4"].1, "127.0.0.5");
    let split = "product-vn=50";
    aviary(
        &url,
        &[
            "route",
            "set",
            "product-r",
            "--router",
            "product-vr",
            split,
            "product-v15-vn=50",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = BTreeMap::<String, usize>::new();
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "not both versions: {seen:?}");
        let (status, got) = call();
        assert_eq!(status, 200, "{got:?}");
        *seen.entry(got["Product"].clone()).or_default() += 1;
    }
    aviary(
        &url,
        &[
            "route",
            "set",
            "product-r",
            "--router",
            "product-vr",
            "product-v15-vn=100",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while call() != (200, versions("1.5")) {
        assert!(
            Instant::now() < deadline,
            "product 1.5 never took all traffic"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..50 {
        assert_eq!(call(), (200, versions("1.5")));
    }
}
