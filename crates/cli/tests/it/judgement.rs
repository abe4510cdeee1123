//! Canary judgement from outside the mesh, with real processes: a real Prometheus (Debian's
//! `prometheus`) scrapes the gateway proxy's `/metrics`, and a canary's `prometheus` check
//! (a PromQL query with a range) holds its step until the query has a value, then promotes a
//! healthy version and rolls back one whose 5xx share is over the limit; every transition is
//! POSTed, Slack-compatible, to the canary's `notify` URL.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{http, http_json};

use crate::canary::{Bench, Load, Proc, free_port};
use crate::webhooks::HookServer;

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Prometheus on a free loopback port, scraping `target` (a proxy's admin port) every second,
/// its data in `dir`; returns it with its URL once it is ready.
fn prometheus(dir: &Path, target: u16) -> (Proc, String) {
    assert!(
        Path::new(PROMETHEUS).exists(),
        "this test needs Debian's prometheus package (.ci/run installs it)"
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n- job_name: gateway\n  static_configs:\n  - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let proc = Proc(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http("GET", &format!("{url}/-/ready"), None).0 == 200
    };
    while !ready() {
        assert!(Instant::now() < deadline, "prometheus never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, url)
}

/// Waits (bounded) until `hook` received `count` JSON bodies; returns them.
fn notifications(hook: &HookServer, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bodies = hook.bodies();
        if bodies.len() >= count {
            return bodies;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} notifications arrived: {bodies:#?}",
            bodies.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The canary's 5xx share over the analysis window so far, as the gateway proxy counts it.
const SHARE_5XX: &str = "(sum(rate(aviary_proxy_requests_total{target_node=\"{{canary}}\",status_class=\"5xx\"}[{{window}}])) or vector(0)) / sum(rate(aviary_proxy_requests_total{target_node=\"{{canary}}\"}[{{window}}]))";

fn start_canary(bench: &Bench, prometheus: &str, notify: &str) {
    let body = json!({"name": "c1", "spec": {
        "router": "r", "route": "rt", "stableNode": "stable-vn", "canaryNode": "canary-vn",
        "strategy": {"type": "weights", "weights": [50], "interval": "5s"},
        "analysis": {"prometheus": [{
            "name": "canary-5xx-share", "url": prometheus, "query": SHARE_5XX, "max": 0.02,
        }]},
        "notify": [{"url": notify}],
    }});
    let url = format!("{}/v1/meshes/m/canaries", bench.control.url());
    let (status, _, answer) = http_json("POST", &url, Some(&body.to_string()));
    assert_eq!(status, 201, "{answer}");
}

fn events(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// One canary of the demo service run with `canary_flags`, judged by the 5xx-share check on a
/// Prometheus of its own, under load through the gateway: `started` runs right after it is
/// created; returns the ended canary and its first two notifications.
fn judge(canary_flags: &[&str], started: impl FnOnce(&Bench)) -> (Value, Vec<Value>) {
    let bench = Bench::start_with(&[], canary_flags);
    let dir = testkit::temp_dir();
    let (_prometheus, prometheus_url) = prometheus(dir.path(), bench.admin);
    let receiver = HookServer::start(None);
    let notify = format!("{}/hooks/canary", receiver.base);
    let _load = Load::start(bench.gateway, 100);
    start_canary(&bench, &prometheus_url, &notify);
    let at = Instant::now();
    started(&bench);
    let canary = bench.wait_phase("c1", &["succeeded", "failed"], Duration::from_secs(60));
    eprintln!(
        "canary {canary_flags:?} {} after {:?}",
        canary["state"]["phase"],
        at.elapsed()
    );
    (canary, notifications(&receiver, 2))
}

#[test]
fn a_prometheus_check_holds_the_step_until_it_has_a_value_and_every_transition_is_notified() {
    // A healthy version: promoted once Prometheus has a 5xx share for it, under the limit.
    let (canary, bodies) = judge(&[], |bench| {
        // At first nothing has been queried in this step: it waits for the check, and says so.
        let waiting = bench.canary("c1")["status"]["waiting"].clone();
        assert!(
            waiting
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["for"] == "metric" && w["name"] == "canary-5xx-share"),
            "{waiting:#}"
        );
    });
    assert_eq!(canary["state"]["phase"], "succeeded", "{canary:#}");
    assert_eq!(events(&bodies), ["started", "promoted"], "{bodies:#?}");
    for body in &bodies {
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("canary c1 in mesh m") && text.contains(body["event"].as_str().unwrap()),
            "{text}"
        );
    }

    // A version whose 5xx share is 20%: rolled back by the check, and the notification says why.
    let (canary, bodies) = judge(&["--error-rate", "0.2"], |_| {});
    let reason = canary["state"]["reason"].as_str().unwrap_or_default();
    assert_eq!(canary["state"]["phase"], "failed", "{canary:#}");
    assert!(
        reason.contains("prometheus check \"canary-5xx-share\"")
            && reason.contains("above its max 0.02"),
        "{reason}"
    );
    assert_eq!(events(&bodies), ["started", "rolled back"], "{bodies:#?}");
    assert_eq!(bodies[1]["reason"], reason, "{bodies:#?}");
}
