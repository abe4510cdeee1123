//! Automated canaries with real processes: `aviary control`, `aviary proxy --gateway` and demo
//! services as children, traffic through the gateway, the controller deciding from the stats the
//! proxy pushes. Rollback of a broken version, promotion and manual commands, `kill -9` of the
//! control plane mid-canary, bad input, and `aviary deploy deploy.json` against `aviary up`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{ControlProcess, http, http_json, run};

use crate::{demomesh_dir, start};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child killed when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        testkit::interrupt(&mut self.0, Duration::from_secs(10));
    }
}

/// Starts `cmd` and returns it once a stdout line contains `ready`; also returns that line.
pub(crate) fn spawn_until(cmd: &mut Command, ready: &str) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let proc = Proc(child);
    let line = loop {
        let line = lines
            .next()
            .expect("child ended before it was ready")
            .expect("read");
        if line.contains(ready) {
            break line;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (proc, line)
}

/// One demo service version (the aviary binary under the name `aviary-demo`).
pub(crate) fn demo_service(version: &str, extra: &[&str]) -> (Proc, u16) {
    let mut cmd = crate::aviary_cmd();
    cmd.arg0("aviary-demo")
        .args(["product", "--version", version, "--listen", "127.0.0.1:0"])
        .args(extra);
    let (proc, line) = spawn_until(&mut cmd, "listening on");
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    (proc, port)
}

/// The manifest of [`Bench`]'s mesh, its gateway listening on `gateway`.
pub(crate) fn canary_mesh(gateway: u16) -> String {
    format!(
        "kind: Mesh\nmetadata: {{name: m}}\nspec: {{egressFilter: {{type: ALLOW_ALL}}}}\n---\n\
         kind: VirtualNode\nmetadata: {{name: stable-vn, mesh: m}}\nspec: {{listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]}}\n---\n\
         kind: VirtualNode\nmetadata: {{name: canary-vn, mesh: m}}\nspec: {{listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]}}\n---\n\
         kind: VirtualRouter\nmetadata: {{name: r, mesh: m}}\nspec: {{listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]}}\n---\n\
         kind: Route\nmetadata: {{name: rt, mesh: m, virtualRouter: r}}\nspec: {{httpRoute: {{match: {{prefix: /}}, action: {{weightedTargets: [{{virtualNode: stable-vn, weight: 100}}]}}}}}}\n---\n\
         kind: VirtualService\nmetadata: {{name: svc.local, mesh: m}}\nspec: {{provider: {{virtualRouter: {{virtualRouterName: r}}}}}}\n---\n\
         kind: VirtualGateway\nmetadata: {{name: gw, mesh: m}}\nspec: {{listeners: [{{portMapping: {{port: {gateway}, protocol: http}}}}]}}\n---\n\
         kind: GatewayRoute\nmetadata: {{name: gr, mesh: m, virtualGateway: gw}}\nspec: {{httpRoute: {{match: {{prefix: /}}, action: {{target: {{virtualService: {{virtualServiceName: svc.local}}}}}}}}}}\n"
    )
}

/// A mesh whose gateway sends everything to `svc.local` → route `rt` → stable-vn (100%), with
/// canary-vn defined; both nodes' endpoints are the given demo services.
pub(crate) struct Bench {
    pub(crate) control: ControlProcess,
    pub(crate) gateway: u16,
    /// The gateway proxy's admin listener (/metrics).
    pub(crate) admin: u16,
    _proxy: Proc,
    _stable: Proc,
    _canary: Proc,
}

impl Bench {
    pub(crate) fn start(canary_flags: &[&str]) -> Bench {
        Bench::start_with(&[], canary_flags)
    }

    /// With fault flags for the stable version too.
    pub(crate) fn start_with(stable_flags: &[&str], canary_flags: &[&str]) -> Bench {
        let control = start();
        let gateway = free_port();
        let manifest = canary_mesh(gateway);
        let dir = testkit::temp_dir();
        let file = dir.path().join("mesh.yaml");
        std::fs::write(&file, manifest).unwrap();
        aviary(control.url(), &["apply", "-f", &file.display().to_string()]);
        let (stable, stable_port) = demo_service("1.0", stable_flags);
        let (canary, canary_port) = demo_service("2.0", canary_flags);
        for (node, port) in [("stable-vn", stable_port), ("canary-vn", canary_port)] {
            let url = format!("{}/v1/meshes/m/endpoints/{node}/e1", control.url());
            let body = json!({"address": "127.0.0.1", "port": port}).to_string();
            assert_eq!(http("PUT", &url, Some(&body)).0, 200);
        }
        let token = crate::proxy_token(control.url(), "m", "gateway-proxy");
        let admin = free_port();
        let mut cmd = crate::aviary_cmd();
        cmd.args([
            "proxy",
            "--token",
            &token,
            "--control",
            control.url(),
            "--mesh",
            "m",
            "--gateway",
            "gw",
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ]);
        let (proxy, _) = spawn_until(&mut cmd, "(gateway)");
        Bench {
            control,
            gateway,
            admin,
            _proxy: proxy,
            _stable: stable,
            _canary: canary,
        }
    }

    pub(crate) fn canary(&self, name: &str) -> Value {
        let url = format!("{}/v1/meshes/m/canaries/{name}", self.control.url());
        let (status, _, body) = http_json("GET", &url, None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits (bounded) until the canary's phase is one of `phases`.
    pub(crate) fn wait_phase(&self, name: &str, phases: &[&str], limit: Duration) -> Value {
        let what = format!("{phases:?}");
        self.wait_state(name, &what, limit, |state| {
            phases.contains(&state["phase"].as_str().unwrap_or(""))
        })
    }

    /// Waits (bounded) until the canary's state satisfies `reached` (`what` says what that
    /// is, for the failure) and its controller has acted on it; returns the record.
    pub(crate) fn wait_state(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        reached: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let canary = self.canary(name);
            // The controller stores a decision, then acts on it: wait for both.
            let acted = canary["acted"].as_u64()
                == Some(
                    canary["state"]["history"]
                        .as_array()
                        .map_or(0, |h| h.len() as u64),
                );
            if acted && reached(&canary["state"]) {
                return canary;
            }
            assert!(
                Instant::now() < deadline,
                "canary {name} never reached {what}: {canary:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn route(&self) -> Value {
        let url = format!(
            "{}/v20190125/meshes/m/virtualRouter/r/routes/rt",
            self.control.url()
        );
        http_json("GET", &url, None).2
    }
}

/// `aviary canary start NAME` on route `rt` of router `r`, from `stable` to `canary`, with the
/// strategy and analysis flags in `flags`.
pub(crate) fn start_canary(url: &str, name: &str, stable: &str, canary: &str, flags: &[&str]) {
    let mut args = vec![
        "canary", "start", name, "--router", "r", "--route", "rt", "--stable", stable, "--canary",
        canary,
    ];
    args.extend_from_slice(flags);
    aviary(url, &args);
}

pub(crate) fn aviary(url: &str, args: &[&str]) -> String {
    let mut cmd = crate::aviary_cmd();
    cmd.args(args).env("AVIARY_CONTROL", url);
    let out = run(&mut cmd, Duration::from_secs(60));
    assert!(
        out.success(),
        "aviary {args:?}: {}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Background GETs through the gateway, about `per_second`, until dropped; counts answers.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    pub(crate) sent: Arc<AtomicU64>,
    pub(crate) failed: Arc<Mutex<Vec<u16>>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(port: u16, per_second: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let pause = Duration::from_micros(1_000_000 / per_second);
            // Bounded: at most 10 minutes of load, whatever the test does.
            let end = Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                let (status, _, _) = http("GET", &format!("http://127.0.0.1:{port}/"), None);
                n.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    f.lock().unwrap().push(status);
                }
                std::thread::sleep(pause);
            }
        });
        Load {
            stop,
            sent,
            failed,
            thread: Some(thread),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn targets(route: &Value) -> Vec<(String, u64)> {
    route["spec"]["httpRoute"]["action"]["weightedTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["virtualNode"].as_str().unwrap().to_string(),
                t["weight"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn events(canary: &Value) -> Vec<(String, u64)> {
    canary["state"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["canaryWeight"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_broken_version_is_rolled_back_on_its_own_and_says_why() {
    let bench = Bench::start(&["--error-rate", "1"]);
    let _load = Load::start(bench.gateway, 100);
    start_canary(
        bench.control.url(),
        "c1",
        "stable-vn",
        "canary-vn",
        &["--step-weight", "10", "--interval", "1s", "--max-5xx", "0"],
    );
    let canary = bench.wait_phase("c1", &["failed"], Duration::from_secs(20));
    let reason = canary["state"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("canary-vn") && reason.contains("5xx"),
        "{reason}"
    );
    assert_eq!(
        events(&canary),
        [("started".to_string(), 10), ("rolled back".to_string(), 0)]
    );
    assert_eq!(
        targets(&bench.route()),
        [("stable-vn".to_string(), 100), ("canary-vn".to_string(), 0)]
    );
    let history = aviary(bench.control.url(), &["canary", "history", "c1"]);
    assert!(
        history.contains("rolled back") && history.contains("5xx"),
        "{history}"
    );
}

/// `--compare` judges the canary against stable, both under load through the gateway: a
/// canary that fails 1% of requests like its stable version is promoted (the threshold method,
/// `--max-5xx 0`, would roll it back at its first 5xx), one that fails 5% is rolled back, with
/// both versions' counts in the reason.
#[test]
fn compare_promotes_a_canary_failing_like_stable_and_rolls_back_one_failing_five_times_as_often() {
    for (rate, outcome) in [("0.01", "succeeded"), ("0.05", "failed")] {
        let bench = Bench::start_with(&["--error-rate", "0.01"], &["--error-rate", rate]);
        let _load = Load::start(bench.gateway, 200);
        start_canary(
            bench.control.url(),
            "c1",
            "stable-vn",
            "canary-vn",
            &[
                "--weights",
                "50",
                "--interval",
                "5s",
                "--compare",
                "--max-error-rate-increase",
                "0.03",
                "--progress-deadline",
                "2m",
            ],
        );
        let started = Instant::now();
        if outcome == "succeeded" {
            // Past its interval (5 s from the step's first fresh stats, later than the start
            // on a loaded machine), the step waits for the evidence, and says so.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let status = aviary(bench.control.url(), &["canary", "status", "c1"]);
                if status.contains("needs more evidence that the canary is no worse than stable")
                    || status.contains("succeeded")
                {
                    break;
                }
                assert!(Instant::now() < deadline, "{status}");
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        let canary = bench.wait_phase("c1", &["succeeded", "failed"], Duration::from_secs(150));
        let took = started.elapsed();
        let reason = canary["state"]["reason"].as_str().unwrap_or("");
        assert_eq!(
            canary["state"]["phase"], outcome,
            "canary at {rate} errors vs stable at 0.01: {reason}"
        );
        if outcome == "failed" {
            assert!(
                reason.contains("canary-vn") && reason.contains("stable-vn"),
                "{reason}"
            );
        }
        eprintln!("canary at {rate} errors vs stable at 0.01: {outcome} after {took:?}: {reason}");
    }
}

#[test]
fn a_healthy_version_promotes_itself_and_commands_steer_it() {
    let bench = Bench::start(&[]);
    let load = Load::start(bench.gateway, 100);
    let url = bench.control.url();
    start_canary(
        url,
        "c1",
        "stable-vn",
        "canary-vn",
        &[
            "--weights",
            "20,gate,60",
            "--interval",
            "3s",
            "--max-5xx",
            "0",
        ],
    );
    bench.wait_phase("c1", &["waitingForGate"], Duration::from_secs(20));
    assert_eq!(
        targets(&bench.route()),
        [("stable-vn".to_string(), 80), ("canary-vn".to_string(), 20)]
    );
    let status = aviary(url, &["canary", "status", "c1"]);
    assert!(
        status.contains("waitingForGate") && status.contains("canary-vn 20"),
        "{status}"
    );
    // A gate waits for resume; then 60% for 3 s, during which a pause holds it.
    aviary(url, &["canary", "resume", "c1"]);
    assert_eq!(bench.canary("c1")["state"]["canaryWeight"], 60);
    aviary(url, &["canary", "pause", "c1"]);
    assert_eq!(bench.canary("c1")["state"]["phase"], "paused");
    aviary(url, &["canary", "resume", "c1"]);
    let done = bench.wait_phase("c1", &["succeeded"], Duration::from_secs(20));
    let kinds: Vec<String> = events(&done).into_iter().map(|(e, _)| e).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("started"));
    assert_eq!(kinds.last().map(String::as_str), Some("promoted"));
    assert_eq!(
        targets(&bench.route()),
        [("stable-vn".to_string(), 0), ("canary-vn".to_string(), 100)]
    );
    assert!(
        load.failed.lock().unwrap().is_empty(),
        "callers saw failures: {:?}",
        load.failed.lock().unwrap()
    );
    assert!(load.sent.load(Ordering::Relaxed) > 50);

    // A second canary back to the old version, aborted by hand: 100% to its stable at once.
    start_canary(
        url,
        "c2",
        "canary-vn",
        "stable-vn",
        &["--step-weight", "50", "--interval", "1m"],
    );
    let out = aviary(
        url,
        &["canary", "abort", "c2", "--reason", "changed my mind"],
    );
    assert!(out.contains("aborted"), "{out}");
    assert_eq!(bench.canary("c2")["state"]["reason"], "changed my mind");
    assert_eq!(
        targets(&bench.route()),
        [("canary-vn".to_string(), 100), ("stable-vn".to_string(), 0)]
    );
    let list = aviary(url, &["canary", "list"]);
    assert!(
        list.contains("c1") && list.contains("succeeded") && list.contains("aborted"),
        "{list}"
    );
}

#[test]
fn kill_9_mid_canary_resumes_at_the_same_step_after_an_interval_of_fresh_stats() {
    let mut bench = Bench::start(&[]);
    let _load = Load::start(bench.gateway, 100);
    let interval = 4000;
    start_canary(
        bench.control.url(),
        "c1",
        "stable-vn",
        "canary-vn",
        &["--step-weight", "25", "--interval", "4s"],
    );
    // Into the second step (50%), then a moment more.
    let deadline = Instant::now() + Duration::from_secs(20);
    while bench.canary("c1")["state"]["canaryWeight"] != 50 {
        assert!(Instant::now() < deadline, "never reached 50%");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let before = bench.canary("c1");
    let route_version = bench.route()["metadata"]["version"].as_u64().unwrap();
    bench.control.kill9();
    std::thread::sleep(Duration::from_millis(1000));
    let restarted_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    bench.control.restart_on_same_port();

    let after = bench.canary("c1");
    assert_eq!(
        after["state"], before["state"],
        "the stored state is what it was"
    );
    let started = before["state"]["stepStartedAt"].as_u64().unwrap();
    let done = bench.wait_phase("c1", &["succeeded"], Duration::from_secs(30));
    let history = done["state"]["history"].as_array().unwrap();
    let weights: Vec<u64> = history
        .iter()
        .map(|e| e["canaryWeight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [25, 50, 75, 100], "each step exactly once");
    let next = history[2]["at"].as_u64().unwrap();
    assert!(
        next >= started + interval,
        "the 75% step came early: {} ms into the step",
        next - started
    );
    // The stats of the step's first part died with the process: the restarted control plane
    // judges one whole interval of its own before the step may pass, and not much more.
    assert!(
        next >= restarted_at + interval,
        "the step passed on {} ms of stats, less than its interval",
        next - restarted_at
    );
    assert!(
        next < restarted_at + interval + 3000,
        "the step waited {} ms after the restart",
        next - restarted_at
    );
    // One route write per step after the restart: 75%, then 100%.
    assert_eq!(
        bench.route()["metadata"]["version"].as_u64().unwrap(),
        route_version + 2
    );
}

#[test]
fn bad_canaries_are_refused_with_the_problem_named_and_start_nothing() {
    let bench = Bench::start(&[]);
    let url = format!("{}/v1/meshes/m/canaries", bench.control.url());
    let spec = |patch: Value| {
        let mut spec = json!({"router": "r", "route": "rt", "stableNode": "stable-vn", "canaryNode": "canary-vn",
            "strategy": {"type": "steps", "stepWeight": 10, "interval": "10s"}});
        for (k, v) in patch.as_object().unwrap() {
            spec[k] = v.clone();
        }
        json!({"name": "c", "spec": spec}).to_string()
    };
    let before = bench.route();
    let cases = [
        (spec(json!({"route": "nope"})), "route 'nope'"),
        (spec(json!({"canaryNode": "ghost-vn"})), "ghost-vn"),
        (spec(json!({"canaryNode": "stable-vn"})), "stable"),
        (
            spec(json!({"stableNode": "canary-vn", "canaryNode": "stable-vn"})),
            "sends no traffic",
        ),
        (
            spec(json!({"strategy": {"type": "steps", "stepWeight": 150, "interval": "10s"}})),
            "150",
        ),
        (
            spec(json!({"strategy": {"type": "weights", "weights": [5, 101], "interval": "10s"}})),
            "101",
        ),
        (
            spec(json!({"strategy": {"type": "steps", "stepWeight": 10, "interval": "soon"}})),
            "soon",
        ),
        (
            spec(json!({"analysis": {"maxErrorRate": 2.0}})),
            "maxErrorRate",
        ),
        (spec(json!({"colour": "blue"})), "colour"),
    ];
    for (body, named) in &cases {
        let (status, _, answer) = http("POST", &url, Some(body));
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
        assert!(answer.contains(named), "{body}: '{named}' not in {answer}");
    }
    assert_eq!(
        http_json("GET", &url, None).2["canaries"],
        json!([]),
        "nothing started"
    );
    assert_eq!(bench.route(), before, "the route is untouched");

    // A second canary on a route that has one: 409, and the first goes on.
    let good = spec(json!({}));
    assert_eq!(http("POST", &url, Some(&good)).0, 201);
    let second = good.replace("\"name\":\"c\"", "\"name\":\"c2\"");
    let (status, _, answer) = http("POST", &url, Some(&second));
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer.contains("already has an active canary, 'c'"),
        "{answer}"
    );
}

/// `aviary up` with the demo mesh on free ports and `extra` flags; returns it with its control
/// URL and gateway port once the demo answers.
pub(crate) fn up_demo(extra: &[&str]) -> (Proc, String, u16, testkit::TempDir) {
    let data = testkit::temp_dir();
    let gateway = free_port();
    let mesh = std::fs::read_to_string(demomesh_dir().join("mesh.yaml"))
        .unwrap()
        .replace("port: 9080", &format!("port: {gateway}"));
    assert!(mesh.contains(&format!("port: {gateway}")));
    std::fs::write(data.path().join("mesh.yaml"), mesh).unwrap();
    std::fs::copy(
        demomesh_dir().join("workloads-v1.yaml"),
        data.path().join("workloads-v1.yaml"),
    )
    .unwrap();
    testkit::seed_secrets(&data.path().join("state"));
    let mut cmd = crate::aviary_cmd();
    cmd.args(["up", "-f"])
        .arg(data.path().join("mesh.yaml"))
        .arg("-f")
        .arg(data.path().join("workloads-v1.yaml"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--egress-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path().join("state"))
        .args(extra);
    let (proc, line) = spawn_until(&mut cmd, "control plane");
    let url = line
        .trim()
        .trim_start_matches("control plane")
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = std::net::TcpStream::connect(("127.0.0.1", gateway)).is_ok()
            && http("GET", &format!("http://127.0.0.1:{gateway}/"), None).0 == 200;
        if answered {
            break;
        }
        assert!(Instant::now() < deadline, "aviary up never served the demo");
        std::thread::sleep(Duration::from_millis(200));
    }
    (proc, url, gateway, data)
}

fn deploy(url: &str, dir: &std::path::Path, file: &Value, extra: &[&str]) -> testkit::AwsOutput {
    let path = dir.join("deploy.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let mut cmd = crate::aviary_cmd();
    cmd.arg("deploy")
        .arg(&path)
        .args(extra)
        .env("AVIARY_CONTROL", url);
    run(&mut cmd, Duration::from_secs(120))
}

pub(crate) fn node_names(url: &str) -> Vec<String> {
    let (_, _, out) = http_json(
        "GET",
        &format!("{url}/v20190125/meshes/demomesh/virtualNodes"),
        None,
    );
    out["virtualNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["virtualNodeName"].as_str().unwrap().to_string())
        .collect()
}

/// `deploy.json` keeps the reference pipeline's meaning when nobody calls the service: a step
/// with no 5xx passes (`noTraffic: pass`), and `aviary deploy` warns at every such step; with
/// `"no_traffic": "fail"` the same deploy is rolled back, saying why.
#[test]
fn a_deploy_without_traffic_passes_each_step_with_a_warning_or_fails_when_asked() {
    let (_up, url, _gateway, data) = up_demo(&[]);
    let file = json!({"microservice_name": "product", "percentage_step": 50, "wait_time": 1,
        "command": ["aviary-demo", "product", "--version", "2.0"]});
    let out = deploy(&url, data.path(), &file, &[]);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("passed without traffic"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one per step, its one of 50%: {}",
        out.stderr
    );
    assert!(
        warnings[0].contains("step 1 of 1") && warnings[0].contains("noTraffic: pass"),
        "{warnings:?}"
    );

    let mut strict = file.clone();
    strict["no_traffic"] = json!("fail");
    strict["command"] = json!(["aviary-demo", "product", "--version", "3.0"]);
    let out = deploy(&url, data.path(), &strict, &[]);
    assert!(!out.success(), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("rolled back")
            && out.stderr.contains("saw 0 of the 1 canary requests")
            && out.stderr.contains("noTraffic: fail"),
        "{}",
        out.stderr
    );
}

#[test]
fn deploy_json_rolls_out_rolls_back_and_refuses_what_never_gets_healthy() {
    let (_up, url, gateway, data) = up_demo(&[]);
    let _load = Load::start(gateway, 50);
    let base = json!({"microservice_name": "product", "percentage_step": 50, "wait_time": 1,
        "failure_threshold_value": 0, "failure_threshold_time": 60, "cluster_name": "eks-1"});

    // A version answering 500 to everything: rolled back, removed, exit non-zero with the reason.
    let mut broken = base.clone();
    broken["command"] = json!([
        "aviary-demo",
        "product",
        "--version",
        "2.0",
        "--error-rate",
        "1"
    ]);
    let out = deploy(&url, data.path(), &broken, &[]);
    assert!(!out.success(), "{}", out.stdout);
    assert!(
        out.stdout.contains("not used in local mode: cluster_name"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("rolled back") && out.stderr.contains("5xx"),
        "{}",
        out.stderr
    );
    assert!(
        !node_names(&url).contains(&"product-1".to_string()),
        "the new version stays: {:?}",
        node_names(&url)
    );

    // A program that does not exist: the supervisor reports it, and the deploy fails at once
    // with the reason instead of waiting out the health timeout.
    let mut missing = base.clone();
    missing["command"] = json!(["/nonexistent/aviary-product"]);
    let started = Instant::now();
    let out = deploy(&url, data.path(), &missing, &["--health-timeout", "100s"]);
    assert!(!out.success(), "{}", out.stdout);
    assert!(
        out.stderr.contains("could not start")
            && out.stderr.contains("/nonexistent/aviary-product"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited {:?}",
        started.elapsed()
    );
    assert!(!node_names(&url).contains(&"product-1".to_string()));

    // A service that does not exist: refused, naming the services there are.
    let mut unknown = base.clone();
    unknown["microservice_name"] = json!("prodcut");
    unknown["command"] = json!(["aviary-demo", "product"]);
    let out = deploy(&url, data.path(), &unknown, &[]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("'prodcut' matches no virtual service")
            && out.stderr.contains("product.demomesh.local")
            && out.stderr.contains("\"create\": true"),
        "{}",
        out.stderr
    );

    // Listening on the wrong port: never healthy, removed, no hang.
    let mut wrong_port = base.clone();
    wrong_port["command"] = json!([
        "aviary-demo",
        "product",
        "--version",
        "2.0",
        "--listen",
        "127.0.0.1:0"
    ]);
    let started = Instant::now();
    let out = deploy(&url, data.path(), &wrong_port, &["--health-timeout", "5s"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("never passed its health check"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(!node_names(&url).contains(&"product-1".to_string()));

    // A good version: promoted, the old node removed; the next deploy is <svc>-2.
    // It runs in the control plane: started detached, nothing follows it until it is done.
    let mut good = base.clone();
    good["command"] = json!(["aviary-demo", "product", "--version", "2.0"]);
    let out = deploy(&url, data.path(), &good, &["--detach"]);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("deploy product-1-"), "{}", out.stdout);
    let name = out
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "deploy")
        .nth(1)
        .unwrap()
        .to_string();
    let deploys = format!("{url}/v1/meshes/demomesh/deploys/{name}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_json("GET", &deploys, None).2["phase"] != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "{}",
            http_json("GET", &deploys, None).2
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut follow = crate::aviary_cmd();
    follow
        .args(["deploy", "--follow", &name, "--mesh", "demomesh"])
        .env("AVIARY_CONTROL", &url);
    let out = run(&mut follow, Duration::from_secs(30));
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("product-1 serves all traffic; product-vn removed"),
        "{}",
        out.stdout
    );
    let nodes = node_names(&url);
    assert!(
        nodes.contains(&"product-1".to_string()) && !nodes.contains(&"product-vn".to_string()),
        "{nodes:?}"
    );
    let (_, _, body) = http("GET", &format!("http://127.0.0.1:{gateway}/"), None);
    assert!(
        body.contains(r#"{"service":"Product","version":"2.0"}"#),
        "{body}"
    );
    let mut next = base.clone();
    next["command"] = json!(["aviary-demo", "product", "--version", "3.0"]);
    next["percentage_step"] = json!(100);
    let out = deploy(&url, data.path(), &next, &[]);
    assert!(
        out.success() && out.stdout.contains("deploying product-2"),
        "{}{}",
        out.stdout,
        out.stderr
    );

    // Nonsense in the file: refused before anything is created.
    let before = node_names(&url);
    let bad = json!({"microservice_name": "product", "percentage_step": 0, "wait_time": 0, "command": []});
    let out = deploy(&url, data.path(), &bad, &[]);
    assert!(!out.success());
    for named in ["percentage_step", "wait_time", "command"] {
        assert!(
            out.stderr.contains(named),
            "{named} not named: {}",
            out.stderr
        );
    }
    assert_eq!(node_names(&url), before);
}

/// A webhook that answers 503 to everything, on a thread; returns its URL.
fn failing_webhook() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/check", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    url
}

#[test]
fn a_failing_webhook_fails_the_canary_and_a_canary_manifest_starts_one() {
    let bench = Bench::start(&[]);
    let _load = Load::start(bench.gateway, 50);
    let hook = failing_webhook();
    let dir = testkit::temp_dir();
    let file = dir.path().join("canary.yaml");
    let manifest = format!(
        "kind: Canary\nmetadata: {{name: c1, mesh: m}}\nspec:\n  router: r\n  route: rt\n  stableNode: stable-vn\n  canaryNode: canary-vn\n  strategy: {{type: steps, stepWeight: 50, interval: 1s}}\n  analysis:\n    webhooks: [{{name: smoke, url: \"{hook}\", timeout: 2s}}]\n"
    );
    std::fs::write(&file, manifest).unwrap();
    let path = file.display().to_string();
    assert_eq!(
        aviary(bench.control.url(), &["apply", "-f", &path]).trim(),
        "canary/c1 created"
    );
    let canary = bench.wait_phase("c1", &["failed"], Duration::from_secs(20));
    let reason = canary["state"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("smoke") && reason.contains("503"),
        "{reason}"
    );
    assert_eq!(
        targets(&bench.route()),
        [("stable-vn".to_string(), 100), ("canary-vn".to_string(), 0)]
    );
    // The same manifest again changes nothing.
    assert_eq!(
        aviary(bench.control.url(), &["apply", "-f", &path]).trim(),
        "canary/c1 unchanged"
    );
}

/// The deploy template of [`a_deploy_survives_kill_9_of_the_control_plane_and_uses_its_template`]:
/// the new version's node (with a health check the stable one lacks) and the route, whose
/// targets are the pipeline's `${CANARY_ROUTES}`.
const DEPLOY_TEMPLATE: &str = "\
kind: VirtualNode
metadata: {name: \"${MICROSERVICE_NAME}-${CANARY_VERSION}\", mesh: m}
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
    healthCheck: {protocol: http, path: /health, healthyThreshold: 2, unhealthyThreshold: 2, timeoutMillis: 2000, intervalMillis: 5000}
---
kind: Route
metadata: {name: rt, mesh: m, virtualRouter: r}
spec:
  httpRoute:
    match: {prefix: /}
    action:
      weightedTargets: [${CANARY_ROUTES}]
";

#[test]
fn a_deploy_survives_kill_9_of_the_control_plane_and_uses_its_template() {
    let mut bench = Bench::start(&[]);
    let _load = Load::start(bench.gateway, 50);
    let data = testkit::temp_dir();
    let _agent = agent_on_h1(bench.control.url(), &data.path().join("agent"));

    use base64::Engine;
    let file = json!({
        "microservice_name": "svc", "percentage_step": 50, "wait_time": 2,
        "failure_threshold_value": 0, "failure_threshold_time": 60,
        "kubernetes_namespace": "default",
        // Slow to start, so the control plane dies while the deploy waits for its health.
        "container_image": ["sh", "-c", "sleep 2 && exec aviary-demo product --version 2.0"],
        "config_file": base64::engine::general_purpose::STANDARD.encode(DEPLOY_TEMPLATE),
    });
    let out = deploy(bench.control.url(), data.path(), &file, &["--detach"]);
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("deploy svc-1-1 started"),
        "{}",
        out.stdout
    );
    let url = format!("{}/v1/meshes/m/deploys/svc-1-1", bench.control.url());
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_json("GET", &url, None).2["applied"] != true {
        assert!(
            Instant::now() < deadline,
            "{}",
            http_json("GET", &url, None).2
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The template's route: the new version first, at weight 0 until its canary moves it.
    assert_eq!(
        targets(&bench.route()),
        [("svc-1".to_string(), 0), ("stable-vn".to_string(), 100)]
    );
    let before = http_json("GET", &url, None).2;
    assert_eq!(before["phase"], "starting", "{before}");
    bench.control.kill9();
    std::thread::sleep(Duration::from_millis(500));
    bench.control.restart_on_same_port();

    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let now = http_json("GET", &url, None).2;
        if now["phase"] != "starting" && now["phase"] != "canary" {
            break now;
        }
        assert!(Instant::now() < deadline, "{now}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["phase"], "succeeded", "{done}");
    let texts: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    for once in [
        "made; waiting",
        "is healthy after",
        "canary svc-1-1 started",
        "svc-1 serves all traffic; stable-vn removed",
    ] {
        assert_eq!(
            texts.iter().filter(|t| t.contains(once)).count(),
            1,
            "'{once}' not exactly once: {texts:?}"
        );
    }
    let canary = bench.canary("svc-1-1");
    let weights: Vec<u64> = events(&canary).into_iter().map(|(_, w)| w).collect();
    assert_eq!(weights, [50, 100], "each step exactly once: {canary}");
    assert_eq!(targets(&bench.route()), [("svc-1".to_string(), 100)]);
    let (_, _, body) = http("GET", &format!("http://127.0.0.1:{}/", bench.gateway), None);
    assert!(body.contains(r#""version":"2.0""#), "{body}");
}

/// `aviary agent` for mesh `m` as host h1 on 127.0.0.1 (fast health checks), its data in
/// `dir`: it runs the workloads a deploy makes on an `aviary control`.
pub(crate) fn agent_on_h1(control: &str, dir: &std::path::Path) -> Proc {
    let mut agent = crate::aviary_cmd();
    agent
        .args([
            "agent",
            "--mesh",
            "m",
            "--host",
            "h1",
            "--address",
            "127.0.0.1",
        ])
        .args([
            "--outbound-listen",
            "127.0.0.1:0",
            "--health-interval",
            "200ms",
        ])
        .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("AVIARY_CONTROL", control);
    spawn_until(&mut agent, "(admin)").0
}
