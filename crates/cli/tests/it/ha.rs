//! High availability with real processes: a 3-member etcd cluster on 127.0.0.1 (Debian's
//! `etcd-server`), two `aviary control --etcd` replicas, a gateway proxy and demo services.
//! Writes through one replica read back through the other, `kill -9` of the leading replica in
//! the middle of a canary under load, etcd members lost and back, a writer across replica
//! kills, and a replica cut off from etcd by firewall rules on loopback.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use testkit::etcd::EtcdCluster;
use testkit::{ControlProcess, http, http_json};

use crate::canary::{
    Load, Proc, aviary, canary_mesh, demo_service, free_port, spawn_until, start_canary,
};

/// A replica of the control plane on `endpoints` (comma-separated etcd client URLs).
fn replica(endpoints: &str) -> ControlProcess {
    ControlProcess::start_with(crate::bin(), &["--etcd", endpoints])
}

/// Whether the replica's /metrics says it leads.
fn leads(control: &ControlProcess) -> bool {
    let (status, _, body) = http("GET", &format!("{}/metrics", control.url()), None);
    status == 200 && body.lines().any(|l| l == "aviary_control_leader 1")
}

/// Waits (bounded) until exactly one of `replicas` leads; returns its index.
fn wait_leader(replicas: &[&ControlProcess], limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let leading: Vec<usize> = (0..replicas.len())
            .filter(|&i| leads(replicas[i]))
            .collect();
        if leading.len() == 1 {
            return leading[0];
        }
        assert!(
            Instant::now() < deadline,
            "no single leader within {limit:?}: {leading:?} lead"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node_body(name: &str) -> String {
    json!({
        "virtualNodeName": name,
        "spec": { "listeners": [ { "portMapping": { "port": 80, "protocol": "http" } } ] }
    })
    .to_string()
}

fn create_node(control: &ControlProcess, name: &str) -> (u16, Value) {
    let url = format!("{}/v20190125/meshes/m/virtualNodes", control.url());
    let (status, _, body) = http_json("PUT", &url, Some(&node_body(name)));
    (status, body)
}

fn describe_node(control: &ControlProcess, name: &str) -> u16 {
    let url = format!("{}/v20190125/meshes/m/virtualNodes/{name}", control.url());
    http("GET", &url, None).0
}

fn create_mesh(control: &ControlProcess) {
    let url = format!("{}/v20190125/meshes", control.url());
    let (status, _, body) = http("PUT", &url, Some(r#"{"meshName":"m"}"#));
    assert_eq!(status, 200, "{body}");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn writes_through_one_replica_are_read_through_another_at_once_and_one_replica_leads() {
    let etcd = EtcdCluster::start(3);
    let a = replica(&etcd.endpoints());
    let b = replica(&etcd.endpoints());
    create_mesh(&a);
    for i in 0..30 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let name = format!("n{i}");
        let (status, body) = create_node(writer, &name);
        assert_eq!(status, 200, "{body}");
        // Linearizable: the very next read, on the other replica, sees it.
        assert_eq!(describe_node(reader, &name), 200, "{name} not seen at once");
    }
    wait_leader(&[&a, &b], Duration::from_secs(10));
    for control in [&a, &b] {
        let (status, _, body) = http("GET", &format!("{}/healthz", control.url()), None);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("etcd"), "{body}");
    }
    // A token issued by one replica is good on the other at once: tokens live in the store.
    let (status, _, issued) = http_json(
        "POST",
        &format!("{}/v1/tokens", a.url()),
        Some(r#"{"name":"ha-viewer","role":"viewer"}"#),
    );
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("the token's text");
    let url = format!("{}/v20190125/meshes/m/virtualNodes/n0", b.url());
    let (status, _, body) = crate::http_with("GET", &url, None, token);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = crate::http_with("GET", &format!("{}/v1/tokens", b.url()), None, token);
    assert_eq!(status, 403, "a viewer's token keeps its role on B: {body}");
}

/// The mesh of `canary::Bench`, served by two replicas; the proxy knows both.
struct HaBench {
    etcd: EtcdCluster,
    replicas: Vec<ControlProcess>,
    gateway: u16,
    _proxy: Proc,
    _services: Vec<Proc>,
}

impl HaBench {
    fn start() -> HaBench {
        let etcd = EtcdCluster::start(3);
        let first = replica(&etcd.endpoints());
        wait_leader(&[&first], Duration::from_secs(10));
        let second = replica(&etcd.endpoints());
        let gateway = free_port();
        let dir = testkit::temp_dir();
        let file = dir.path().join("mesh.yaml");
        std::fs::write(&file, canary_mesh(gateway)).unwrap();
        aviary(first.url(), &["apply", "-f", &file.display().to_string()]);
        let (stable, stable_port) = demo_service("1.0", &[]);
        let (canary, canary_port) = demo_service("2.0", &[]);
        for (node, port) in [("stable-vn", stable_port), ("canary-vn", canary_port)] {
            let url = format!("{}/v1/meshes/m/endpoints/{node}/e1", first.url());
            let body = json!({"address": "127.0.0.1", "port": port}).to_string();
            assert_eq!(http("PUT", &url, Some(&body)).0, 200);
        }
        let token = crate::proxy_token(first.url(), "m", "gateway-proxy");
        let controls = format!("{},{}", first.url(), second.url());
        let mut cmd = crate::aviary_cmd();
        cmd.args(["proxy", "--token", &token, "--control", &controls])
            .args(["--mesh", "m", "--gateway", "gw"]);
        let (proxy, _) = spawn_until(&mut cmd, "(gateway)");
        HaBench {
            etcd,
            replicas: vec![first, second],
            gateway,
            _proxy: proxy,
            _services: vec![stable, canary],
        }
    }

    fn canary(&self, via: usize) -> Value {
        let url = format!("{}/v1/meshes/m/canaries/c1", self.replicas[via].url());
        let (status, _, body) = http_json("GET", &url, None);
        assert_eq!(status, 200, "{body}");
        body
    }
}

#[test]
fn kill_9_of_the_leader_mid_canary_under_load_hands_the_canary_over_without_a_failed_request() {
    let mut bench = HaBench::start();
    let load = Load::start(bench.gateway, 100);
    let leader = wait_leader(
        &[&bench.replicas[0], &bench.replicas[1]],
        Duration::from_secs(10),
    );
    let other = 1 - leader;
    start_canary(
        bench.replicas[other].url(),
        "c1",
        "stable-vn",
        "canary-vn",
        &["--step-weight", "25", "--interval", "3s"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while bench.canary(other)["state"]["canaryWeight"] != 50 {
        assert!(Instant::now() < deadline, "never reached 50%");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    let killed_at_ms = now_ms();
    bench.replicas[leader].kill9();
    let survivor = &bench.replicas[other];
    while !leads(survivor) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no takeover within 15 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let takeover = killed_at.elapsed();
    let deadline = Instant::now() + Duration::from_secs(40);
    let done = loop {
        let canary = bench.canary(other);
        let history = canary["state"]["history"].as_array().unwrap().len() as u64;
        if canary["state"]["phase"] == "succeeded" && canary["acted"].as_u64() == Some(history) {
            break canary;
        }
        assert!(Instant::now() < deadline, "never finished: {canary:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let history = done["state"]["history"].as_array().unwrap();
    let weights: Vec<u64> = history
        .iter()
        .map(|e| e["canaryWeight"].as_u64().unwrap())
        .collect();
    assert_eq!(
        weights,
        [25, 50, 75, 100],
        "each step exactly once: {done:#}"
    );
    let next_decision = history[2]["at"].as_u64().unwrap() - killed_at_ms;
    eprintln!(
        "takeover {} ms after kill -9 of the leader; next canary decision {next_decision} ms after it",
        takeover.as_millis()
    );
    let route_url = format!(
        "{}/v20190125/meshes/m/virtualRouter/r/routes/rt",
        survivor.url()
    );
    let route = http_json("GET", &route_url, None).2;
    assert_eq!(
        route["spec"]["httpRoute"]["action"]["weightedTargets"],
        json!([
            {"virtualNode": "stable-vn", "weight": 0},
            {"virtualNode": "canary-vn", "weight": 100}
        ]),
        "the survivor carried out the promotion"
    );
    let sent = load.sent.load(Ordering::Relaxed);
    let failed = load.failed.lock().unwrap().clone();
    assert!(sent > 300, "the load ran ({sent} requests)");
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {failed:?}",
        failed.len()
    );
}

#[test]
fn losing_etcd_quorum_refuses_writes_with_503_while_proxies_serve_and_all_resumes_after() {
    let mut bench = HaBench::start();
    let a = 0;
    // One member of three down: writes go on. (A follower: killing etcd's own leader makes
    // the writes in flight during its election, about a second, fail with 503 "leader changed".)
    let etcd_leader = bench.etcd.wait_for_leader();
    let (first, second) = match etcd_leader {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    bench.etcd.kill(first);
    for i in 0..20 {
        let (status, body) = create_node(&bench.replicas[i % 2], &format!("one-down-{i}"));
        assert_eq!(status, 200, "{body}");
    }
    // Two down: no quorum. A write sent while etcd still believes in its leader gets no answer
    // in time: a 500 that says it may or may not have been applied (never a 503, which a client
    // may send again elsewhere). Once etcd knows it has no leader, a write is refused at once,
    // in App Mesh's shape.
    bench.etcd.stop(second);
    let started = Instant::now();
    let mut attempt = 0;
    let refused = loop {
        attempt += 1;
        let name = format!("without-quorum-{attempt}");
        let (status, body) = create_node(&bench.replicas[a], &name);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "took {:?}",
            started.elapsed()
        );
        match status {
            503 => break name,
            500 => assert!(
                body.to_string()
                    .contains("may or may not have been applied"),
                "{body}"
            ),
            _ => panic!("a write without quorum answered {status}: {body}"),
        }
    };
    let url = format!(
        "{}/v20190125/meshes/m/virtualNodes",
        bench.replicas[a].url()
    );
    let (_, headers, _) = http("PUT", &url, Some(&node_body("without-quorum-last")));
    assert_eq!(
        headers.get("x-amzn-ErrorType"),
        Some("ServiceUnavailableException")
    );
    let (status, _, body) = http("GET", &format!("{}/healthz", bench.replicas[a].url()), None);
    assert_eq!(status, 503, "{body}");
    // The gateway keeps serving its last configuration.
    for _ in 0..50 {
        let (status, _, body) = http("GET", &format!("http://127.0.0.1:{}/", bench.gateway), None);
        assert_eq!(status, 200, "{body}");
    }
    // Quorum back: writes resume, and what was refused is not there.
    bench.etcd.restart(first);
    bench.etcd.restart(second);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = create_node(&bench.replicas[a], "after-quorum");
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "writes never resumed ({status})");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(describe_node(&bench.replicas[1], "one-down-19"), 200);
    assert_eq!(describe_node(&bench.replicas[1], &refused), 404);
    assert_eq!(
        describe_node(&bench.replicas[1], "without-quorum-last"),
        404
    );
    assert_eq!(describe_node(&bench.replicas[1], "after-quorum"), 200);
}

#[test]
fn a_writer_across_replica_kills_gets_a_2xx_only_for_writes_that_are_there_afterwards() {
    let etcd = EtcdCluster::start(3);
    let mut replicas = [replica(&etcd.endpoints()), replica(&etcd.endpoints())];
    create_mesh(&replicas[0]);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..120 {
        if i == 40 {
            replicas[0].kill9();
        }
        if i == 60 {
            replicas[0].restart();
        }
        if i == 80 {
            replicas[1].kill9();
        }
        if i == 100 {
            replicas[1].restart();
        }
        let name = format!("w{i}");
        let mut written = false;
        for control in replicas.iter().filter(|c| c.is_running()) {
            let (status, _) = create_node(control, &name);
            if status == 200 {
                written = true;
                break;
            }
        }
        if written {
            acknowledged.push(name);
        } else {
            refused += 1;
        }
    }
    for control in &mut replicas {
        if !control.is_running() {
            control.restart();
        }
    }
    assert!(
        acknowledged.len() >= 100,
        "only {} writes got through",
        acknowledged.len()
    );
    for name in &acknowledged {
        for control in &replicas {
            assert_eq!(
                describe_node(control, name),
                200,
                "{name} was acknowledged but is gone ({refused} writes were refused)"
            );
        }
    }
}

/// A network partition made with firewall rules on loopback (iptables, Debian's `iptables`,
/// which `.ci/run` installs): every packet to or from etcd's client ports on 127.0.0.2 is
/// dropped, so whoever reaches etcd that way (one replica) is cut off while 127.0.0.1 (the
/// other replica, and etcd's own peers) is not. The rules are deleted when this drops, also
/// when the test fails.
struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    fn cut(ports: &[u16]) -> Partition {
        let address = testkit::etcd::SECOND_ADDRESS;
        let mut partition = Partition { rules: Vec::new() };
        for port in ports {
            for (side, port_side) in [("-d", "--dport"), ("-s", "--sport")] {
                let rule: Vec<String> =
                    ["INPUT", "-i", "lo", "-p", "tcp", side, address, port_side]
                        .iter()
                        .map(|s| s.to_string())
                        .chain([port.to_string(), "-j".into(), "DROP".into()])
                        .collect();
                iptables("-I", &rule);
                partition.rules.push(rule);
            }
        }
        partition
    }

    fn heal(&mut self) {
        for rule in self.rules.drain(..) {
            iptables("-D", &rule);
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.heal();
    }
}

fn iptables(action: &str, rule: &[String]) {
    let status = std::process::Command::new("iptables")
        .arg(action)
        .args(rule)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run iptables (Debian package iptables; the test runs as root): {e}")
        });
    assert!(status.success(), "iptables {action} {rule:?}: {status}");
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn a_replica_cut_off_from_etcd_stops_leading_and_answering_writes() {
    let etcd = EtcdCluster::start(3);
    // A reaches etcd only through 127.0.0.2, B through 127.0.0.1.
    let a = replica(&etcd.client_urls_via_second_address().join(","));
    wait_leader(&[&a], Duration::from_secs(10));
    let b = replica(&etcd.endpoints());
    create_mesh(&a);
    assert_eq!(wait_leader(&[&a, &b], Duration::from_secs(5)), 0);

    let ports: Vec<u16> = etcd.client_urls().iter().map(|u| port_of(u)).collect();
    let mut partition = Partition::cut(&ports);
    let cut_at = Instant::now();
    // The other replica takes over once A's lease is gone; A steps down even sooner.
    while leads(&a) || !leads(&b) {
        assert!(
            cut_at.elapsed() < Duration::from_secs(15),
            "A still leads, or B does not, 15 s after the cut"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "the replica cut off from etcd lost leadership; the other led {} ms after the cut",
        cut_at.elapsed().as_millis()
    );
    let (status, body) = create_node(&a, "through-the-cut-off-one");
    assert_eq!(status, 503, "{body}");
    let (status, _, _) = http("GET", &format!("{}/healthz", a.url()), None);
    assert_eq!(status, 503);
    // B writes on, and nothing A refused is there.
    let (status, body) = create_node(&b, "through-the-other");
    assert_eq!(status, 200, "{body}");
    assert_eq!(describe_node(&b, "through-the-cut-off-one"), 404);

    partition.heal();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http("GET", &format!("{}/healthz", a.url()), None).0 != 200 {
        assert!(Instant::now() < deadline, "A never recovered");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(describe_node(&a, "through-the-other"), 200);
}

#[test]
fn two_replicas_racing_creates_against_deletes_never_leave_a_route_without_its_router_or_node() {
    let etcd = EtcdCluster::start(3);
    let (a, b) = (replica(&etcd.endpoints()), replica(&etcd.endpoints()));
    create_mesh(&a);
    let api = |control: &ControlProcess, path: &str| {
        format!("{}/v20190125/meshes/m{path}", control.url())
    };
    let rounds = 40;
    let (mut routes, mut router_deletes) = (0, 0);
    for i in 0..rounds {
        let (router, node) = (format!("r{i}"), format!("n{i}"));
        let listeners = json!([{ "portMapping": { "port": 80, "protocol": "http" } }]);
        let body = json!({ "virtualRouterName": router, "spec": { "listeners": listeners } });
        assert_eq!(
            http("PUT", &api(&a, "/virtualRouters"), Some(&body.to_string())).0,
            200
        );
        assert_eq!(create_node(&a, &node).0, 200);
        let route = json!({ "routeName": "rt", "spec": { "httpRoute": {
            "match": { "prefix": "/" },
            "action": { "weightedTargets": [ { "virtualNode": node, "weight": 1 } ] } } } });
        // Replica A adds a route naming the node under the router while replica B deletes
        // the router, then the node, at the same moment.
        let start = std::sync::Barrier::new(2);
        let (created, deleted) = std::thread::scope(|scope| {
            let create = scope.spawn(|| {
                start.wait();
                let url = api(&a, &format!("/virtualRouter/{router}/routes"));
                http("PUT", &url, Some(&route.to_string())).0
            });
            let delete = scope.spawn(|| {
                start.wait();
                let router_gone = http(
                    "DELETE",
                    &api(&b, &format!("/virtualRouters/{router}")),
                    None,
                )
                .0;
                http("DELETE", &api(&b, &format!("/virtualNodes/{node}")), None);
                router_gone
            });
            (create.join().unwrap(), delete.join().unwrap())
        });
        routes += usize::from(created == 200);
        router_deletes += usize::from(deleted == 200);
        let route_there = http(
            "GET",
            &api(&b, &format!("/virtualRouter/{router}/routes/rt")),
            None,
        )
        .0 == 200;
        if route_there {
            assert_eq!(
                http("GET", &api(&b, &format!("/virtualRouters/{router}")), None).0,
                200,
                "round {i}: the route outlived its router"
            );
            assert_eq!(
                describe_node(&b, &node),
                200,
                "round {i}: the route names a deleted node"
            );
        }
        assert_eq!(
            route_there,
            created == 200,
            "round {i}: a 2xx for the route iff it is there"
        );
        assert!(
            created == 200 || deleted == 200,
            "round {i}: one of the two wins"
        );
        assert!(!(created == 200 && deleted == 200), "round {i}: both won");
    }
    eprintln!("{routes} routes created, {router_deletes} routers deleted, of {rounds} races");
    assert!(
        routes > 0 && router_deletes > 0,
        "the race went one way only ({routes} routes, {router_deletes} router deletes)"
    );
}

/// Two replicas asked at the same moment for a mesh's CA, before it has one, make one CA
/// between them: the loser of the create-if-absent txn reads the winner's. A certificate one
/// replica issues then verifies against the other's bundle.
#[test]
fn replicas_asked_at_once_for_a_new_mesh_ca_end_with_one() {
    let etcd = EtcdCluster::start(1);
    let a = replica(&etcd.endpoints());
    let b = replica(&etcd.endpoints());
    for round in 0..5 {
        let mesh = format!("ca{round}");
        let (status, _, body) = http(
            "PUT",
            &format!("{}/v20190125/meshes", a.url()),
            Some(&json!({ "meshName": mesh }).to_string()),
        );
        assert_eq!(status, 200, "{body}");
        let start = std::sync::Barrier::new(8);
        let bundles: Vec<String> = std::thread::scope(|scope| {
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let (url, start, mesh) =
                        (if i % 2 == 0 { a.url() } else { b.url() }, &start, &mesh);
                    scope.spawn(move || {
                        start.wait();
                        crate::mesh_ca::bundle(url, mesh, testkit::TEST_ADMIN_TOKEN)
                    })
                })
                .collect();
            tasks.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(
            bundles.iter().all(|b| *b == bundles[0]),
            "{mesh}: more than one CA"
        );
    }
    // A certificate from A chains to B's bundle for the same mesh.
    let node = json!({
        "virtualNodeName": "web",
        "spec": { "listeners": [ { "portMapping": { "port": 80, "protocol": "http" } } ] }
    });
    let url = format!("{}/v20190125/meshes/ca0/virtualNodes", a.url());
    let (status, _, body) = http_json("PUT", &url, Some(&node.to_string()));
    assert_eq!(status, 200, "{body}");
    let key = rcgen::KeyPair::generate().unwrap();
    let request =
        json!({ "kind": "virtualNode", "name": "web", "publicKey": key.public_key_pem() });
    let (status, issued) =
        crate::mesh_ca::issue(a.url(), "ca0", testkit::TEST_ADMIN_TOKEN, &request);
    assert_eq!(status, 200, "{issued}");
    let other = crate::mesh_ca::bundle(b.url(), "ca0", testkit::TEST_ADMIN_TOKEN);
    crate::mesh_ca::verifies(&issued, &other, issued["notBefore"].as_u64().unwrap() + 1).unwrap();
}

#[test]
fn kill_9_of_the_leader_mid_build_hands_the_run_to_the_other_replica_which_builds_again() {
    let etcd = EtcdCluster::start(3);
    let mut replicas = vec![replica(&etcd.endpoints()), replica(&etcd.endpoints())];
    create_mesh(&replicas[0]);
    let dir = testkit::temp_dir();
    let repo = crate::pipeline::Repo::new(dir.path().join("repo"));
    // A build that takes a while, and a deploy file naming a service the mesh does not have:
    // the Deploy stage then ends the run at once, with the reason, on whichever replica leads.
    let deploy = json!({"microservice_name": "nosuch", "percentage_step": 50, "wait_time": 1,
        "failure_threshold_value": 0, "failure_threshold_time": 30, "command": ["true"]});
    repo.commit(
        &[
            ("specfiles/deploy.json", &deploy.to_string()),
            (
                "build.sh",
                "touch \"$ARTIFACT_DIR/../started\"; sleep 3; echo built\n",
            ),
        ],
        "slow build",
    );
    let follower_first = wait_leader(&[&replicas[0], &replicas[1]], Duration::from_secs(10));
    let body = json!({"name": "p", "spec": {"repository": repo.path.display().to_string(),
        "build": {"command": "sh build.sh"}, "pollSeconds": 0}});
    // Created through the follower: any replica takes API calls; the leader runs the build.
    let other = 1 - follower_first;
    let (status, _, view) = http_json(
        "POST",
        &format!("{}/v1/meshes/m/pipelines", replicas[other].url()),
        Some(&body.to_string()),
    );
    assert_eq!(status, 201, "{view}");
    let started = replicas[follower_first]
        .data_dir()
        .join("builds/m/p/1/started");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started.exists() {
        assert!(
            Instant::now() < deadline,
            "the leader never started the build"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    replicas[follower_first].kill9();
    let url = replicas[other].url().to_string();
    let run = crate::pipeline::wait_run(
        &url,
        "m",
        "p",
        1,
        &["failed", "succeeded"],
        Duration::from_secs(60),
    );
    assert_eq!(run["buildAttempts"], 2, "{run}");
    let build = run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "build")
        .unwrap();
    assert_eq!(build["state"], "succeeded", "{run}");
    assert!(
        replicas[other]
            .data_dir()
            .join("builds/m/p/1/artifact")
            .exists()
    );
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("'nosuch' matches no virtual service"),
        "{run}"
    );
    let (_, _, logs) = http_json(
        "GET",
        &format!("{url}/v1/meshes/m/pipelines/p/runs/1/logs"),
        None,
    );
    assert!(logs["text"].as_str().unwrap().contains("built"), "{logs}");
    replicas.clear();
}
