//! Bounded by construction: oversize bodies get a readable 413, stats pushes are counted only
//! for real nodes with consistent counts, a flood of bogus pushes leaves memory flat, and a
//! watcher behind the byte-bounded history is told to re-list.

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{ControlProcess, EventStream, http, http_json, http_raw, parse_head, run};

use crate::{bin, create_step1_raw, example, snapshot, snapshot_revision, start};

const NODES: &str = "/v20190125/meshes/demomesh/virtualNodes";
/// `control::body::MAX_BODY_BYTES`, as the 413's message must say it.
const BODY_LIMIT: &str = "1048576";

/// A create-virtual-node body for `name`, padded with a tag value to about `len` bytes.
fn padded_node_body(name: &str, len: usize) -> String {
    let mut body = example("product-vn");
    body.as_object_mut().unwrap().remove("meshName");
    body["virtualNodeName"] = json!(name);
    body["tags"] = json!([{"key": "padding", "value": "x".repeat(len)}]);
    body.to_string()
}

fn request(path: &str, host: &str, body: &str, extra: &str) -> Vec<u8> {
    let mut bytes = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Status, the `x-amzn-ErrorType` header and the JSON body of a raw response.
fn parse(raw: &str) -> (u16, Option<String>, Value) {
    let (status, headers, head_len) = parse_head(raw.as_bytes())
        .unwrap_or_else(|| panic!("no complete response head with a status in {raw:?}"));
    let error_type = headers.get("x-amzn-ErrorType").map(str::to_string);
    let body = &raw[head_len..];
    let body = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {body:?}"));
    (status, error_type, body)
}

#[track_caller]
fn assert_too_large(what: &str, (status, error_type, body): (u16, Option<String>, Value)) {
    assert_eq!(status, 413, "{what}: {body}");
    assert_eq!(
        error_type.as_deref(),
        Some("BadRequestException"),
        "{what}: {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(BODY_LIMIT),
        "{what}: message does not name the limit: {body}"
    );
}

/// Writes the whole request before reading a byte, as urllib and most SDKs do: the head, then
/// the body in blocks. A server that answers and closes without reading the body makes a write
/// fail (broken pipe, reset) or destroys the answer: either way this panics.
fn write_then_read(addr: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a request head")
        + 4;
    stream.write_all(&bytes[..head]).expect("write the head");
    for (i, block) in bytes[head..].chunks(64 * 1024).enumerate() {
        stream.write_all(block).unwrap_or_else(|e| {
            panic!(
                "the server stopped reading the body after {} KiB: {e}",
                i * 64
            )
        });
    }
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("reading the answer after the whole body: {e}"));
    String::from_utf8_lossy(&raw).into_owned()
}

/// `python3 -c URLLIB_PUT FILE URL`: PUTs the file with urllib, which sends the whole body
/// before it reads, and prints `[status, x-amzn-ErrorType, body]` of the error it gets.
const URLLIB_PUT: &str = r#"
import json, os, sys, urllib.request, urllib.error
# A file, not bytes: http.client then sends the head, then the body in blocks.
size = os.path.getsize(sys.argv[1])
req = urllib.request.Request(sys.argv[2], data=open(sys.argv[1], 'rb'), method='PUT',
                             headers={'Content-Type': 'application/json',
                                      'Content-Length': str(size)})
try:
    urllib.request.urlopen(req, timeout=30)
    print('no error')
except urllib.error.HTTPError as e:
    print(json.dumps([e.code, e.headers.get('x-amzn-ErrorType'), e.read().decode()]))
"#;

#[test]
fn an_oversize_body_is_answered_413_after_the_client_has_written_it_all() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let before = snapshot(url, "demomesh");
    let body = padded_node_body("big-vn", 2 << 20);
    let addr = control.addr();

    let sequential = request(NODES, addr, &body, "Connection: close\r\n");
    assert_too_large(
        "write, then read",
        parse(&write_then_read(addr, &sequential)),
    );
    assert_too_large(
        "write and read at once",
        parse(&http_raw(addr, &request(NODES, addr, &body, ""))),
    );

    // The same through real clients that write everything before they read.
    let file = testkit::temp_dir();
    let path = file.path().join("body.json");
    std::fs::write(&path, &body).unwrap();
    let out = run(
        Command::new("python3")
            .args(["-c", URLLIB_PUT])
            .arg(&path)
            .arg(format!("{url}{NODES}")),
        Duration::from_secs(60),
    );
    assert!(out.success(), "urllib failed: {}{}", out.stdout, out.stderr);
    let (code, error_type, text): (u16, Option<String>, String) =
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("urllib printed {:?} ({e})", out.stdout));
    assert_too_large(
        "urllib",
        (code, error_type, serde_json::from_str(&text).unwrap()),
    );

    // curl reads while it writes, so it copes even with a server that does not drain; it is
    // here for `Expect: 100-continue` (curl's default for big bodies), which the server
    // answers without asking for the body, and to show the plain case stays well-formed.
    for expect in ["Expect:", "Expect: 100-continue"] {
        let out = run(
            Command::new("curl")
                .args(["-sS", "-i", "-X", "PUT", "--max-time", "30"])
                .args(["-H", "Content-Type: application/json", "-H", expect])
                .arg("--data-binary")
                .arg(format!("@{}", path.display()))
                .arg(format!("{url}{NODES}")),
            Duration::from_secs(60),
        );
        assert!(
            out.success(),
            "curl ({expect}) failed: {}{}",
            out.stdout,
            out.stderr
        );
        // With 100-continue a `100 Continue` head could come first; take the last response.
        let last = out
            .stdout
            .rfind("HTTP/1.1 ")
            .map_or(out.stdout.as_str(), |at| &out.stdout[at..]);
        assert_too_large(&format!("curl, {expect}"), parse(last));
    }

    // Past what the server drains it answers at once and closes; a client that reads while it
    // writes still gets the answer.
    let huge = padded_node_body("huge-vn", 9 << 20);
    let raw = http_raw(addr, &request(NODES, addr, &huge, ""));
    assert_too_large("a 9 MiB body", parse(&raw));
    assert!(
        raw.to_ascii_lowercase().contains("connection: close"),
        "the undrained connection is closed: {raw}"
    );

    assert_eq!(
        snapshot(url, "demomesh"),
        before,
        "a refused body changed something"
    );
    let (status, _, _) = http("GET", &format!("{url}{NODES}/product-vn"), None);
    assert_eq!(status, 200, "the server still serves");
}

fn stats_url(url: &str, mesh: &str) -> String {
    format!("{url}/v1/meshes/{mesh}/stats")
}

/// One entry of a stats report: `ok` 2xx answers, all in the first latency bucket.
fn entry(node: &str, ok: u64) -> Value {
    json!({"virtualNode": node, "requests": ok, "status2xx": ok, "status4xx": 0,
           "status5xx": 0, "latencyBuckets": [ok]})
}

/// A proxy token of `mesh` on the control plane at `url`, made once: only proxies push stats.
fn proxy_token_of(url: &str, mesh: &str) -> String {
    static TOKENS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let key = format!("{url} {mesh}");
    let mut tokens = TOKENS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, token)) = tokens.iter().find(|(k, _)| *k == key) {
        return token.clone();
    }
    let token = crate::proxy_token(url, mesh, &format!("bounds-{}", tokens.len()));
    tokens.push((key, token.clone()));
    token
}

fn push(url: &str, mesh: &str, nodes: Vec<Value>) -> (u16, Value) {
    let report = json!({"proxy": "test", "nodes": nodes}).to_string();
    let token = proxy_token_of(url, mesh);
    let (status, headers, body) =
        crate::http_with("POST", &stats_url(url, mesh), Some(&report), &token);
    if status == 204 {
        return (status, Value::Null);
    }
    assert!(
        headers.get("x-amzn-ErrorType").is_some(),
        "{status} without an error type: {body}"
    );
    (
        status,
        serde_json::from_str(&body).expect("JSON error body"),
    )
}

/// Requests per node in the last minute, as `GET .../stats` reports them.
fn counted(url: &str) -> Vec<(String, u64)> {
    let (status, _, out) = http_json(
        "GET",
        &format!("{}?window=60s", stats_url(url, "demomesh")),
        None,
    );
    assert_eq!(status, 200, "{out}");
    out["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["virtualNode"].as_str().unwrap().to_string(),
                n["requests"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_refused(what: &str, (status, body): (u16, Value), want: u16, words: &[&str]) {
    assert_eq!(status, want, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    for word in words {
        assert!(message.contains(word), "{what}: no `{word}` in {message}");
    }
}

#[test]
fn stats_are_counted_only_whole_for_nodes_of_the_mesh_with_counts_that_add_up() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);

    assert_eq!(push(url, "demomesh", vec![entry("product-vn", 7)]).0, 204);
    assert_refused(
        "an unknown node",
        push(url, "demomesh", vec![entry("ghost-vn", 1)]),
        400,
        &["ghost-vn", "does not exist in mesh 'demomesh'"],
    );
    assert_refused(
        "a known and an unknown node",
        push(
            url,
            "demomesh",
            vec![entry("product-vn", 100), entry("ghost-vn", 1)],
        ),
        400,
        &["'ghost-vn'", "nothing in this report was counted"],
    );
    assert_refused(
        "a mesh that does not exist",
        push(url, "ghostmesh", vec![entry("product-vn", 1)]),
        404,
        &["ghostmesh"],
    );
    assert_refused(
        "a mesh name with a slash",
        push(url, "a%2Fb", vec![entry("product-vn", 1)]),
        400,
        &["meshName"],
    );
    let mut over = entry("product-vn", 3);
    over["status5xx"] = json!(4);
    assert_refused(
        "more 5xx than requests",
        push(url, "demomesh", vec![over]),
        400,
        &["nodes[0].status5xx", "more than requests"],
    );
    let many: Vec<Value> = (0..501).map(|i| entry(&format!("n{i}"), 1)).collect();
    assert_refused(
        "501 entries",
        push(url, "demomesh", many),
        400,
        &["nodes", "at most 500"],
    );
    let long = format!(r#"{{"proxy": "{}", "nodes": []}}"#, "p".repeat(300 * 1024));
    let token = proxy_token_of(url, "demomesh");
    let (status, _, body) =
        crate::http_with("POST", &stats_url(url, "demomesh"), Some(&long), &token);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("262144"), "names the stats limit: {body}");

    // A node created is known at once, and forgotten as soon as it is deleted.
    let node = format!("{url}{NODES}");
    let mut body = example("customer-vn");
    body.as_object_mut().unwrap().remove("meshName");
    body["virtualNodeName"] = json!("temp-vn");
    assert_eq!(http("PUT", &node, Some(&body.to_string())).0, 200);
    assert_eq!(push(url, "demomesh", vec![entry("temp-vn", 2)]).0, 204);
    assert_eq!(http("DELETE", &format!("{node}/temp-vn"), None).0, 200);
    assert_refused(
        "a deleted node",
        push(url, "demomesh", vec![entry("temp-vn", 2)]),
        400,
        &["temp-vn"],
    );

    // A workload's own entry is counted only for a workload of that very node.
    let workload = json!({"virtualNode": "product-vn", "command": ["true"], "replicas": 0});
    let put = format!("{url}/v1/meshes/demomesh/workloads/product-v2");
    assert_eq!(http("PUT", &put, Some(&workload.to_string())).0, 200);
    let of = |node: &str, workload: &str, ok| {
        let mut entry = entry(node, ok);
        entry["workload"] = json!(workload);
        entry
    };
    assert_refused(
        "a workload that does not exist",
        push(url, "demomesh", vec![of("product-vn", "ghost-v9", 1)]),
        400,
        &[
            "no workload 'ghost-v9' of 'product-vn'",
            "nothing in this report",
        ],
    );
    assert_refused(
        "a workload of another node",
        push(url, "demomesh", vec![of("customer-vn", "product-v2", 1)]),
        400,
        &["'product-v2' of 'customer-vn'"],
    );
    assert_refused(
        "a workload listed twice",
        push(
            url,
            "demomesh",
            vec![
                of("product-vn", "product-v2", 1),
                of("product-vn", "product-v2", 1),
            ],
        ),
        400,
        &["nodes[1].virtualNode: workload 'product-v2' of 'product-vn' is listed twice"],
    );
    assert_eq!(
        push(url, "demomesh", vec![of("product-vn", "product-v2", 3)]).0,
        204
    );
    let (_, _, view) = http_json(
        "GET",
        &format!("{}?window=60s", stats_url(url, "demomesh")),
        None,
    );
    assert_eq!(view["workloads"][0]["workload"], "product-v2", "{view}");
    assert_eq!(view["workloads"][0]["requests"], 3, "{view}");

    assert_eq!(
        counted(url),
        [("product-vn".to_string(), 7), ("temp-vn".to_string(), 2)],
        "only the accepted reports were counted; a workload's entry is not the node's"
    );
}

/// The incident: twelve ~90 KB pushes naming made-up nodes took the control plane to 23.9 GB.
/// Hundreds of them now cost nothing that stays, and real pushes of many nodes cost a ring per
/// real node.
#[test]
fn a_flood_of_bogus_and_busy_stats_pushes_leaves_memory_bounded() {
    const LIMIT: u64 = 150 << 20;
    const REAL: usize = 40;
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let mut node = example("customer-vn");
    node.as_object_mut().unwrap().remove("meshName");
    for i in 0..REAL {
        node["virtualNodeName"] = json!(format!("load-{i}-vn"));
        let (status, _, body) = http("PUT", &format!("{url}{NODES}"), Some(&node.to_string()));
        assert_eq!(status, 200, "{body}");
    }
    let before = control.memory();
    let started = Instant::now();

    for push_no in 0..300 {
        // ~90 KB of entries, each a node nobody created, new names every push.
        let nodes: Vec<Value> = (0..400)
            .map(|i| {
                let mut e = entry(&format!("made-up-{push_no}-{i}-{}", "x".repeat(40)), 1000);
                e["latencyBuckets"] = json!(vec![30; 29]);
                e
            })
            .collect();
        let (status, body) = push(url, "demomesh", nodes);
        if push_no % 50 == 0 {
            let first = format!("made-up-{push_no}-0-");
            assert_refused(
                "made-up nodes",
                (status, body),
                400,
                &[&first, "and 380 more"],
            );
        } else {
            assert_eq!(status, 400, "{body}");
        }
    }
    for _ in 0..50 {
        let nodes: Vec<Value> = (0..2000).map(|i| entry(&format!("m{i}"), 1)).collect();
        assert_refused(
            "3000 entries",
            push(url, "demomesh", nodes),
            400,
            &["at most 500"],
        );
    }
    let real: Vec<String> = (0..REAL)
        .map(|i| format!("load-{i}-vn"))
        .chain(["product-vn", "customer-vn", "order-vn"].map(String::from))
        .collect();
    for _ in 0..200 {
        let nodes = real.iter().map(|n| entry(n, 5)).collect();
        assert_eq!(push(url, "demomesh", nodes).0, 204);
    }
    let elapsed = started.elapsed();

    let after = control.memory();
    eprintln!(
        "stats flood: RSS {} MiB before, {} MiB after, peak {} MiB, in {elapsed:?}",
        before.rss >> 20,
        after.rss >> 20,
        after.peak >> 20
    );
    assert!(
        after.peak < LIMIT,
        "peak RSS {} MiB (was {} MiB before the flood; {elapsed:?})",
        after.peak >> 20,
        before.rss >> 20
    );
    let counted = counted(url);
    assert_eq!(counted.len(), real.len(), "{counted:?}");
    assert!(counted.iter().all(|(_, n)| *n == 1000), "{counted:?}");
}

#[test]
fn a_watcher_behind_the_byte_bounded_history_is_told_to_relist() {
    let control = ControlProcess::start_with(bin(), &["--watch-history-bytes", "65536"]);
    let url = control.url();
    create_step1_raw(url);
    let from = snapshot_revision(url, "demomesh");

    // Eight updates of about 20 KB each: more than 64 KiB of history.
    let product = format!("{url}{NODES}/product-vn");
    let mut spec = example("product-vn")["spec"].clone();
    let mut last_before = from;
    for round in 0..8 {
        let backends: Vec<Value> = (0..300)
            .map(|i| json!({"virtualService": {"virtualServiceName": format!("svc-{round}-{i}.demomesh.local")}}))
            .collect();
        spec["backends"] = json!(backends);
        last_before = snapshot_revision(url, "demomesh");
        let (status, _, body) = http("PUT", &product, Some(&json!({"spec": spec}).to_string()));
        assert_eq!(status, 200, "{body}");
    }

    let mut events = EventStream::open(&format!(
        "{url}/v1/meshes/demomesh/watch?fromRevision={from}"
    ));
    assert_eq!(events.status(), 200);
    let relist = events
        .next_event(Duration::from_secs(10))
        .expect("an event for a watch from evicted history");
    assert_eq!(relist.event.as_deref(), Some("relist"), "{relist:?}");
    assert_eq!(relist.json()["requested"], from, "{relist:?}");
    assert!(
        relist.json()["oldest"].as_u64().unwrap() > from,
        "{relist:?}"
    );

    // The newest change is still held: a watcher from just before it sees it.
    let mut events = EventStream::open(&format!(
        "{url}/v1/meshes/demomesh/watch?fromRevision={last_before}"
    ));
    let put = events
        .next_event(Duration::from_secs(10))
        .expect("the last update");
    assert_eq!(put.event.as_deref(), Some("put"), "{put:?}");
    assert_eq!(put.json()["name"], "product-vn");
    assert_eq!(put.json()["revision"], last_before + 1);
}
