//! Latency buckets and quantiles, strict requests and lenient views, stats views' JSON.

use serde_json::{Value, json};

use super::*;

#[test]
fn buckets_count_each_latency_once_in_order() {
    let cases = [
        (0.05, 0),
        (0.1, 0),
        (0.11, 1),
        (1.0, 5),
        (7.0, 10),
        (30000.0, 27),
        (31000.0, 28),
    ];
    for (millis, expected) in cases {
        assert_eq!(latency_bucket(millis), expected, "{millis} ms");
    }
    assert!(LATENCY_BUCKETS_MS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn quantiles_fall_inside_the_right_bucket() {
    let mut buckets = vec![0u64; LATENCY_BUCKETS_MS.len() + 1];
    // 99 requests at ~5 ms, one at ~500 ms.
    buckets[latency_bucket(5.0)] = 99;
    buckets[latency_bucket(500.0)] = 1;
    let p50 = quantile_ms(&buckets, 0.5).unwrap();
    assert!((4.0..=6.0).contains(&p50), "p50 {p50}");
    let p99 = quantile_ms(&buckets, 0.99).unwrap();
    assert!((4.0..=6.0).contains(&p99), "p99 {p99}");
    let p999 = quantile_ms(&buckets, 0.999).unwrap();
    assert!((400.0..=600.0).contains(&p999), "p99.9 {p999}");
    assert_eq!(quantile_ms(&[0, 0], 0.5), None);
}

#[test]
fn endpoint_json_is_camel_case_and_healthy_by_default() {
    let endpoint: Endpoint = serde_json::from_str(
        r#"{"virtualNode":"product-vn","id":"r1","address":"127.0.0.1","port":8080}"#,
    )
    .unwrap();
    assert!(endpoint.healthy);
    let extra = json!({"virtualNode": "x", "id": "r", "address": "a", "port": 1, "extra": 1});
    // A request names the unknown field; a view from a newer server reads.
    let refused = strict::<Endpoint>(extra.clone()).unwrap_err().to_string();
    assert_eq!(
        refused,
        "unknown field `extra`, expected one of `virtualNode`, `id`, `address`, `port`, \
         `healthy`, `meshTls`, `workload`"
    );
    assert_eq!(serde_json::from_value::<Endpoint>(extra).unwrap().port, 1);
}

#[test]
fn strict_knows_every_field_a_type_declares_and_nothing_else() {
    assert_eq!(
        fields_of::<Workload>(),
        ["name", "virtualNode", "command", "env", "replicas", "hosts"]
    );
    assert_eq!(fields_of::<u32>(), [] as [&str; 0]);
    let full = json!({"name": "w", "virtualNode": "n", "command": ["x"], "env": {"A": "1"},
        "replicas": 2, "hosts": ["h1"]});
    let workload: Workload = strict(full.clone()).unwrap();
    assert_eq!(serde_json::to_value(&workload).unwrap(), full);
    let typo = json!({"name": "w", "virtualNode": "n", "command": ["x"], "replica": 2});
    assert!(
        strict::<Workload>(typo)
            .unwrap_err()
            .to_string()
            .contains("unknown field `replica`")
    );
    // Not an object: serde's own error.
    assert!(strict::<Workload>(json!([1])).is_err());
}

#[test]
fn stats_views_keep_the_json_the_dashboard_reads() {
    let mut buckets = vec![0u64; LATENCY_BUCKETS_MS.len() + 1];
    buckets[latency_bucket(5.0)] = 4;
    let counts = NodeStats {
        virtual_node: "product-vn".into(),
        workload: None,
        requests: 5,
        status_2xx: 3,
        status_4xx: 1,
        status_5xx: 1,
        failures: 0,
        latency_buckets: buckets,
    };
    let node = NodeView::of(&counts, 10.0);
    let view = StatsView {
        mesh: "demo".into(),
        window_seconds: 10.0,
        latency_buckets_ms: LATENCY_BUCKETS_MS.len(),
        nodes: vec![node.clone()],
        workloads: Vec::new(),
    };
    let p50 = node.p50_ms.unwrap();
    assert!((4.0..=6.0).contains(&p50), "{p50}");
    assert_eq!(
        serde_json::to_value(&view).unwrap(),
        json!({
            "mesh": "demo",
            "windowSeconds": 10.0,
            "latencyBucketsMs": 28,
            "nodes": [{
                "virtualNode": "product-vn",
                "requests": 5,
                "requestsPerSecond": 0.5,
                "status2xx": 3,
                "status4xx": 1,
                "status5xx": 1,
                "failures": 0,
                "errorRate": 0.2,
                "p50Ms": p50,
                "p99Ms": node.p99_ms.unwrap(),
            }],
        })
    );
    let quiet = NodeView::of(
        &NodeStats {
            requests: 1,
            ..NodeStats::default()
        },
        1.0,
    );
    assert_eq!(serde_json::to_value(&quiet).unwrap()["p99Ms"], Value::Null);
    // A newer server's extra field is read past.
    let mut newer = serde_json::to_value(&view).unwrap();
    newer["nodes"][0]["p999Ms"] = json!(9.0);
    newer["sampledAt"] = json!(1);
    assert_eq!(serde_json::from_value::<StatsView>(newer).unwrap(), view);
}

#[test]
fn certificate_requests_use_the_documented_json() {
    let request: CertificateRequest =
        serde_json::from_str(r#"{"kind": "virtualGateway", "name": "gw", "publicKey": "PEM"}"#)
            .unwrap();
    assert_eq!(request.kind, IdentityKind::VirtualGateway);
    assert_eq!(
        spiffe_id("m", request.kind, &request.name),
        "spiffe://m/virtualGateway/gw"
    );
    let unknown = serde_json::from_str::<CertificateRequest>(
        r#"{"kind": "virtualRouter", "name": "r", "publicKey": "PEM"}"#,
    );
    assert!(unknown.is_err());
}

#[test]
fn renewal_is_due_two_thirds_into_the_validity() {
    let issued = IssuedCertificate {
        certificate: String::new(),
        trust_bundle: String::new(),
        identity: String::new(),
        not_before: 1_000,
        not_after: 4_000,
    };
    let due = issued.renew_at().duration_since(std::time::UNIX_EPOCH);
    assert_eq!(due.unwrap().as_secs(), 3_000);
}

/// A snapshot as the control plane writes it (every list, the mesh last), read and written
/// back byte for byte.
#[test]
fn a_snapshot_reads_and_writes_back_the_same_json() {
    let text = concat!(
        r#"{"revision":42,"#,
        r#""virtualNodes":[{"meshName":"m","virtualNodeName":"vn","spec":{"listeners":[]},"metadata":{"version":1}}],"#,
        r#""virtualRouters":[],"routes":[{"meshName":"m","virtualRouterName":"vr","routeName":"r","spec":{}}],"#,
        r#""virtualServices":[],"virtualGateways":[],"gatewayRoutes":[],"#,
        r#""endpoints":[{"virtualNode":"vn","id":"e1","address":"127.0.0.1","port":8080,"healthy":false,"meshTls":true}],"#,
        r#""workloads":[{"name":"w","virtualNode":"vn","command":["run"],"env":{"K":"(hidden)"},"replicas":1,"hosts":["h1"]}],"#,
        r#""canaries":[{"name":"c","spec":{"notReadHere":1}}],"#,
        r#""mesh":{"meshName":"m","spec":{}}}"#
    );
    let snapshot: MeshSnapshot = serde_json::from_str(text).unwrap();
    assert_eq!(snapshot.revision, 42);
    assert_eq!(snapshot.resources(crate::Kind::Route)[0]["routeName"], "r");
    assert!(snapshot.endpoints[0].mesh_tls && !snapshot.endpoints[0].healthy);
    assert_eq!(snapshot.workloads[0].env["K"], HIDDEN);
    assert_eq!(serde_json::to_string(&snapshot).unwrap(), text);
    // A saved copy from before workloads and canaries were listed.
    let old: MeshSnapshot = serde_json::from_str(r#"{"revision":1,"mesh":null}"#).unwrap();
    assert!(old.workloads.is_empty() && old.mesh.is_none());
}

#[test]
fn a_canary_view_is_its_record_plus_a_status() {
    let spec: rollout::CanarySpec = serde_json::from_value(json!({
        "mesh": "m", "router": "vr", "route": "r", "stableNode": "v1", "canaryNode": "v2",
        "strategy": {"type": "steps", "stepWeight": 50, "interval": "30s"},
    }))
    .unwrap();
    let (state, _) = rollout::start(&spec, 1_000);
    let record = CanaryRecord {
        name: "c".into(),
        spec: spec.clone(),
        state: state.clone(),
        acted: 1,
        notes: vec![],
    };
    assert!(record.is_active() && !record.settled());
    let status = rollout::status(&spec, &state, 21_000, None);
    let view = CanaryView {
        record: record.clone(),
        status: status.clone(),
    };
    let json = serde_json::to_value(&view).unwrap();
    let mut expected = serde_json::to_value(&record).unwrap();
    expected["status"] = serde_json::to_value(&status).unwrap();
    assert_eq!(json, expected);
    assert_eq!(
        json["status"]["summary"],
        "step 1 of 1 (50% to canary): analysis interval 10s left"
    );
    assert_eq!(serde_json::from_value::<CanaryView>(json).unwrap(), view);
}
