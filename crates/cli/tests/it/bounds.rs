//! Bounded by construction: oversize bodies get a readable 413, stats pushes are counted only
//! for real nodes with consistent counts, a flood of bogus pushes leaves memory flat, and a
//! watcher behind the byte-bounded history is told to re-list.

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{ControlProcess, EventStream, http, http_json, http_raw, run};

use crate::{bin, create_step1_raw, example, snapshot, snapshot_revision, start};

const NODES: &str = "/v20190125/meshes/demomesh/virtualNodes";
#[test]
fn a_watcher_behind_the_byte_bounded_history_is_told_to_relist() {
    let control = ControlProcess::start_with_args(bin(), &["--watch-history-bytes", "65536"]);
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
