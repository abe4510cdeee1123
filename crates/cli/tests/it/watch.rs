//! The `/v1` watch stream: every change after a snapshot, in order, once; or an explicit relist.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{EventStream, SseEvent, http, http_json};

use crate::{Write, apply_raw, create_step1_raw, example, route_spec, snapshot_revision, start};

const WAIT: Duration = Duration::from_secs(10);
const PRODUCT_R: &str = "/v20190125/meshes/demomesh/virtualRouter/product-vr/routes/product-r";

fn open(url: &str, from: u64) -> EventStream {
    let events = EventStream::open(&format!(
        "{url}/v1/meshes/demomesh/watch?fromRevision={from}"
    ));
    assert_eq!(events.status(), 200, "watch from {from}");
    let content_type = events.headers().get("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/event-stream"),
        "content-type {content_type}"
    );
    events
}

fn next(events: &mut EventStream, what: &str) -> SseEvent {
    events
        .next_event(WAIT)
        .unwrap_or_else(|| panic!("no event within {WAIT:?} for {what}"))
}

fn update_product_r(url: &str, targets: &[(&str, i64)]) -> Value {
    let body = json!({ "spec": route_spec(targets) }).to_string();
    let (status, _, route) = http_json("PUT", &format!("{url}{PRODUCT_R}"), Some(&body));
    assert_eq!(status, 200, "{route}");
    route
}

#[test]
fn a_watch_from_a_snapshot_sees_every_later_change_in_order() {
    let control = start();
    let url = control.url();
    create_step1_raw(url);
    let from = snapshot_revision(url, "demomesh");
    let mut events = open(url, from);

    // Five changes, each waited for, so the stream's order is the order of the writes.
    let (status, created) = apply_raw(url, &example("product-v15-vn"), Write::Create);
    assert_eq!(status, 200, "{created}");
    let canary = update_product_r(url, &[("product-vn", 75), ("product-v15-vn", 25)]);
    let full = update_product_r(url, &[("product-vn", 0), ("product-v15-vn", 100)]);
    let back = update_product_r(url, &[("product-vn", 100)]);
    let (status, _, body) = http(
        "DELETE",
        &format!("{url}/v20190125/meshes/demomesh/virtualNodes/product-v15-vn"),
        None,
    );
    assert_eq!(status, 200, "{body}");

    let expected: [(&str, &str, &str, Option<&Value>); 5] = [
        ("put", "VirtualNode", "product-v15-vn", Some(&created)),
        ("put", "Route", "product-r", Some(&canary)),
        ("put", "Route", "product-r", Some(&full)),
        ("put", "Route", "product-r", Some(&back)),
        ("delete", "VirtualNode", "product-v15-vn", None),
    ];
    let mut last = from;
    for (i, (kind, resource_kind, name, resource)) in expected.iter().enumerate() {
        let event = next(&mut events, &format!("change {}", i + 1));
        assert_ne!(event.event.as_deref(), Some("relist"), "{event:?}");
        let data = event.json();
        let revision = data["revision"]
            .as_u64()
            .unwrap_or_else(|| panic!("no revision: {data}"));
        assert_eq!(
            event.id,
            Some(revision.to_string()),
            "id: must be the revision"
        );
        assert!(revision > last, "revision {revision} after {last}");
        last = revision;
        assert_eq!(data["type"], *kind, "{data}");
        assert_eq!(data["kind"], *resource_kind, "{data}");
        assert_eq!(data["name"], *name, "{data}");
        if let Some(resource) = resource {
            assert_eq!(&data["resource"]["spec"], &resource["spec"], "{data}");
            assert_eq!(
                data["resource"]["metadata"]["version"],
                resource["metadata"]["version"]
            );
        }
    }
    if let Some(extra) = events.next_event(Duration::from_millis(500)) {
        panic!("a sixth event for five changes: {extra:?}");
    }
    assert_eq!(
        snapshot_revision(url, "demomesh"),
        last,
        "the snapshot is at the last event"
    );
}

#[test]
fn a_restarted_server_tells_an_old_watcher_to_relist() {
    let mut control = start();
    create_step1_raw(control.url());
    update_product_r(control.url(), &[("product-vn", 50)]);
    control.kill9();
    control.restart();
    let url = control.url();

    let mut events = open(url, 0);
    let relist = next(&mut events, "a watch from revision 0 after a restart");
    assert_eq!(relist.event.as_deref(), Some("relist"), "{relist:?}");

    // Re-listing works: a fresh snapshot, then a watch from it sees the next change.
    let from = snapshot_revision(url, "demomesh");
    let mut events = open(url, from);
    let route = update_product_r(url, &[("product-vn", 25)]);
    let event = next(&mut events, "the change after the re-list");
    assert_ne!(event.event.as_deref(), Some("relist"), "{event:?}");
    let data = event.json();
    assert!(
        data["revision"].as_u64().is_some_and(|r| r > from),
        "{data}"
    );
    assert_eq!(data["resource"]["spec"], route["spec"], "{data}");
}
