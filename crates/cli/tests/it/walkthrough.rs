//! The whole walkthrough of DESIGN.md with real processes, through the gateway on 127.0.0.1:9080:
//! `aviary demo`, product 1.5 and customer 2.0 with `aviary` and again with the AWS CLI, a
//! one-command rollback, and a stop that leaves no process behind. README's walkthrough is
//! written from this test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{http, run};

use crate::{bin, cli_input, demomesh_dir};

/// The gateway port of the demo mesh (`examples/demomesh/mesh.yaml`).
const GATEWAY: &str = "http://127.0.0.1:9080/";

struct Demo {
    child: Child,
    control: String,
    _data: testkit::TempDir,
}

/// A failed test must not leave the demo holding port 9080 for the next one.
impl Drop for Demo {
    fn drop(&mut self) {
        testkit::interrupt(&mut self.child, Duration::from_secs(15));
    }
}

impl Demo {
    /// `aviary demo` with its control plane and egress on free ports (the gateway keeps 9080).
    fn start() -> Demo {
        let data = testkit::temp_dir();
        let mut child = Command::new(bin())
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--egress-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aviary demo");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let control = loop {
            let line = lines
                .next()
                .expect("aviary demo ended before it was up")
                .expect("read aviary demo's output");
            if let Some(url) = line.trim().strip_prefix("control plane") {
                break url.trim().to_string();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Demo {
            child,
            control,
            _data: data,
        }
    }

    fn aviary(&self, args: &[&str]) -> String {
        // As a user next to `aviary demo` would: no token given, the CLI finds the demo's own
        // admin token in its data directory (AVIARY_DATA_DIR standing for `./.aviary`).
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("AVIARY_CONTROL", &self.control)
            .env("AVIARY_DATA_DIR", self._data.path())
            .env_remove("AVIARY_TOKEN")
            .current_dir(demomesh_dir());
        let out = run(&mut cmd, Duration::from_secs(30));
        assert!(
            out.success(),
            "aviary {args:?}: {}{}",
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// The AWS CLI with the credentials file the demo wrote on its first start, as the README's
    /// `AWS_SHARED_CREDENTIALS_FILE=.aviary/credentials` has it.
    fn aws(&self, file: &str) {
        let mut cmd = testkit::aws_command("aws");
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self._data.path().join("credentials"),
            )
            .args(["--endpoint-url", &self.control, "appmesh", "update-route"])
            .args(["--cli-input-json", &cli_input(file)]);
        let out = run(&mut cmd, Duration::from_secs(60));
        assert!(out.success(), "update-route {file}: {}", out.stderr);
    }

    /// Waits until `node` has `count` registered endpoints.
    fn wait_for_endpoints(&self, node: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.aviary(&["get", "endpoints"]);
            let found = out
                .lines()
                .filter(|l| l.starts_with(&format!("{node} ")))
                .count();
            if found == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{node} never got {count} endpoints:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One answer through the gateway: `(status, {service: version})`.
fn call() -> (u16, BTreeMap<String, String>) {
    call_at(GATEWAY)
}

/// One answer from the demo's gateway at `url`: `(status, {service: version})`.
pub(crate) fn call_at(url: &str) -> (u16, BTreeMap<String, String>) {
    let (status, _, body) = http("GET", url, None);
    let mut versions = BTreeMap::new();
    for line in body.lines() {
        // Not JSON: the proxy's own answer (e.g. 503 before the workloads are healthy).
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            versions.insert("proxy".to_string(), line.to_string());
            continue;
        };
        let service = value["service"].as_str().unwrap_or("?").to_string();
        let version = value["version"].as_str().unwrap_or("error").to_string();
        versions.insert(service, version);
    }
    (status, versions)
}

pub(crate) fn versions(order: &str, product: &str, customer: &str) -> BTreeMap<String, String> {
    [
        ("Order", order),
        ("Product", product),
        ("Customer", customer),
    ]
    .into_iter()
    .map(|(s, v)| (s.to_string(), v.to_string()))
    .collect()
}

/// Share of `n` answers whose `service` came from `version`; every answer must be a 200.
fn share(n: usize, service: &str, version: &str) -> f64 {
    let hits = (0..n)
        .filter(|_| {
            let (status, got) = call();
            assert_eq!(status, 200, "{got:?}");
            got[service] == version
        })
        .count();
    hits as f64 / n as f64
}

fn assert_all(n: usize, expected: &BTreeMap<String, String>) {
    for _ in 0..n {
        assert_eq!(&call(), &(200, expected.clone()));
    }
}

/// The pids of the processes whose parent is `parent` (from /proc).
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 4 is the parent pid; the command name (field 2) may hold spaces but ends at ')'.
            let after = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest)
                .unwrap_or_default();
            after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) == Some(parent)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().chars().next());
    !stat.is_empty() && state != Some(Some('Z'))
}

#[test]
fn the_walkthrough_runs_end_to_end_through_the_gateway() {
    let mut demo = Demo::start();

    // 1. v1 of all three services, order calling product and customer through the mesh.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_refused(GATEWAY) || call() != (200, versions("1.0", "1.0", "1.0")) {
        assert!(
            Instant::now() < deadline,
            "the demo never answered with all three v1"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 2. product 1.5 as its own node and workload; 75/25; then 100%.
    demo.aviary(&["apply", "-f", "product-v15.yaml", "-f", "customer-v2.yaml"]);
    demo.wait_for_endpoints("product-v15-vn", 1);
    demo.wait_for_endpoints("customer-v2-vn", 1);
    demo.aviary(&[
        "route",
        "set",
        "product-r",
        "--router",
        "product-vr",
        "product-vn=75",
        "product-v15-vn=25",
    ]);
    let product_v15 = share(2000, "Product", "1.5");
    assert!(
        (0.20..=0.30).contains(&product_v15),
        "product 1.5 got {product_v15}"
    );
    demo.aviary(&[
        "route",
        "set",
        "product-r",
        "--router",
        "product-vr",
        "product-v15-vn=100",
    ]);
    assert_all(50, &versions("1.0", "1.5", "1.0"));

    // 3. customer 2.0 the same way: 50/50, then 100%.
    demo.aviary(&[
        "route",
        "set",
        "customer-r",
        "--router",
        "customer-vr",
        "customer-vn=50",
        "customer-v2-vn=50",
    ]);
    let customer_v2 = share(1000, "Customer", "2.0");
    assert!(
        (0.45..=0.55).contains(&customer_v2),
        "customer 2.0 got {customer_v2}"
    );
    demo.aviary(&[
        "route",
        "set",
        "customer-r",
        "--router",
        "customer-vr",
        "customer-v2-vn=100",
    ]);
    assert_all(50, &versions("1.0", "1.5", "2.0"));

    // 4. Both back to v1 with one command; the very next request shows it.
    demo.aviary(&["apply", "-f", "routes-rollback-v1.yaml"]);
    assert_all(1, &versions("1.0", "1.0", "1.0"));
    assert_all(20, &versions("1.0", "1.0", "1.0"));

    // 5. The same with the real AWS CLI and the JSON files of examples/demomesh/appmesh.
    demo.aws("product-r-75-25");
    let product_v15 = share(2000, "Product", "1.5");
    assert!(
        (0.20..=0.30).contains(&product_v15),
        "product 1.5 got {product_v15} (AWS CLI)"
    );
    demo.aws("product-r-v15");
    assert_all(50, &versions("1.0", "1.5", "1.0"));
    demo.aws("customer-r-50-50");
    let customer_v2 = share(1000, "Customer", "2.0");
    assert!(
        (0.45..=0.55).contains(&customer_v2),
        "customer 2.0 got {customer_v2} (AWS CLI)"
    );
    demo.aws("customer-r-v2");
    assert_all(50, &versions("1.0", "1.5", "2.0"));
    demo.aws("product-r-v1");
    demo.aws("customer-r-v1");
    assert_all(20, &versions("1.0", "1.0", "1.0"));

    // The workloads' output is there to read.
    let data_dir = demo._data.path().display().to_string();
    let logs = demo.aviary(&["logs", "product-v15", "--data-dir", &data_dir]);
    assert!(
        logs.contains("aviary-demo product 1.5 listening on"),
        "{logs}"
    );
    // Kept per mesh, and the only mesh is the default.
    let file = demo._data.path().join("logs/demomesh/product-v15-0.log");
    assert!(file.is_file(), "{} is missing", file.display());
    let named = demo.aviary(&[
        "logs",
        "product-v15",
        "--mesh",
        "demomesh",
        "--data-dir",
        &data_dir,
    ]);
    assert_eq!(named, logs);

    // 6. Ctrl-C stops everything: five services and aviary itself, nothing left behind.
    let services = children(demo.child.id());
    assert_eq!(
        services.len(),
        5,
        "expected 5 demo services under aviary: {services:?}"
    );
    let exit = testkit::interrupt(&mut demo.child, Duration::from_secs(20))
        .expect("aviary demo did not stop within 20 s of SIGINT");
    assert!(exit.success(), "aviary demo exited with {exit}");
    let left: Vec<u32> = services.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "demo services left running: {left:?}");
    assert!(
        http_refused(GATEWAY),
        "the gateway still answers after stop"
    );
}

fn http_refused(url: &str) -> bool {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).is_err()
}
