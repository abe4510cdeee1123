//! Watch events: each kind decodes to its variant, the JSON and SSE text stay as they were, unknown kinds pass.

use serde_json::{Value, json};

use super::*;

/// Decodes `text`, checks the variant with `expect`, and writes it back byte for byte.
fn check(text: &str, expect: impl FnOnce(&Change)) {
    let change: Change = serde_json::from_str(text).unwrap();
    expect(&change);
    assert_eq!(serde_json::to_string(&change).unwrap(), text);
}

#[test]
fn each_kind_reads_as_its_variant_and_writes_back_the_same_json() {
    check(
        r#"{"revision":7,"type":"put","kind":"Route","mesh":"m","name":"r1","resource":{"routeName":"r1","spec":{}},"parent":"vr"}"#,
        |c| {
            assert_eq!(c.parent.as_deref(), Some("vr"));
            assert!(matches!(&c.op, Op::Put(Object::Route(data)) if data["routeName"] == "r1"));
            assert_eq!(c.kind(), Some(ObjectKind::AppMesh(Kind::Route)));
        },
    );
    check(
        r#"{"revision":8,"type":"put","kind":"Endpoint","mesh":"m","name":"e1","resource":{"virtualNode":"vn","id":"e1","address":"127.0.0.1","port":80,"healthy":true},"parent":"vn"}"#,
        |c| assert!(matches!(&c.op, Op::Put(Object::Endpoint(e)) if e.port == 80)),
    );
    check(
        r#"{"revision":9,"type":"put","kind":"Workload","mesh":"m","name":"w","resource":{"name":"w","virtualNode":"vn","command":["x"],"env":{"K":"(hidden)"},"replicas":2}}"#,
        |c| assert!(matches!(&c.op, Op::Put(Object::Workload(w)) if w.replicas == 2)),
    );
    check(
        r#"{"revision":10,"type":"put","kind":"Canary","mesh":"m","name":"c","resource":{"name":"c","spec":{"futureOption":true}}}"#,
        // Kept as sent: nothing reads a canary's spec until someone asks.
        |c| assert!(matches!(&c.op, Op::Put(Object::Canary(raw)) if raw.decode().is_err())),
    );
    check(
        r#"{"revision":11,"type":"delete","kind":"Mesh","mesh":"m","name":"m","resource":null}"#,
        |c| assert_eq!(c.op, Op::Delete(ObjectKind::AppMesh(Kind::Mesh))),
    );
    check(
        r#"{"revision":12,"type":"put","kind":"Job","mesh":"m","name":"j","resource":{"any":1}}"#,
        |c| {
            assert_eq!(c.kind(), None);
            assert_eq!(c.kind_name(), "Job");
        },
    );
}

#[test]
fn a_put_must_carry_a_resource_its_kind_can_read() {
    let bad = |resource: Value| {
        let text = json!({"revision": 1, "type": "put", "kind": "Endpoint", "mesh": "m",
            "name": "e", "resource": resource, "parent": "vn"});
        serde_json::from_value::<Change>(text)
            .unwrap_err()
            .to_string()
    };
    assert!(
        bad(Value::Null).contains("without a resource"),
        "{}",
        bad(Value::Null)
    );
    assert!(bad(json!({"id": "e"})).contains("Endpoint 'e': missing field"));
    let patch = json!({"revision": 1, "type": "patch", "kind": "Route", "mesh": "m", "name": "r"});
    assert!(serde_json::from_value::<Change>(patch).is_err());
}

#[test]
fn sse_blocks_read_back_as_the_events_they_were() {
    let change = Change {
        revision: 3,
        mesh: "m".into(),
        parent: None,
        name: "w".into(),
        op: Op::Delete(ObjectKind::Aviary(AviaryKind::Workload)),
    };
    let event = WatchEvent::Change(change);
    let text = event.to_sse();
    assert_eq!(
        text,
        "id: 3\nevent: delete\ndata: {\"revision\":3,\"type\":\"delete\",\"kind\":\"Workload\",\
         \"mesh\":\"m\",\"name\":\"w\",\"resource\":null}\n\n"
    );
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    assert_eq!(WatchEvent::from_sse("delete", data).unwrap(), event);

    let relist = WatchEvent::Relist(Relist::new(5, 9));
    assert_eq!(
        relist.to_sse(),
        "event: relist\ndata: {\"requested\":5,\"oldest\":9,\"message\":\"history before this \
         revision is gone; fetch a new snapshot\"}\n\n"
    );
    // Whatever a relist says, it is a relist.
    assert_eq!(
        WatchEvent::from_sse("relist", "{}").unwrap(),
        WatchEvent::Relist(Relist::default())
    );
}

#[test]
fn kinds_are_spelled_exactly() {
    for kind in Kind::ALL {
        assert_eq!(
            ObjectKind::parse(kind.as_str()),
            Some(ObjectKind::AppMesh(kind))
        );
    }
    for kind in AviaryKind::ALL {
        assert_eq!(
            ObjectKind::parse(kind.as_str()),
            Some(ObjectKind::Aviary(kind))
        );
    }
    assert_eq!(ObjectKind::parse("vn"), None);
    assert_eq!(ObjectKind::parse("endpoint"), None);
}
