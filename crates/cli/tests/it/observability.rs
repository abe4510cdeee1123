//! `/healthz` and `/metrics`: the control plane reports what it answered, in Prometheus text.

use testkit::http;

use crate::{route_spec, start};

#[test]
fn metrics_count_operations_by_status_and_show_the_store_revision() {
    let control = start();
    let url = control.url();
    let (status, _, body) = http("GET", &format!("{url}/healthz"), None);
    // One process on its own store: it leads from the start.
    assert_eq!((status, body.trim()), (200, "ok (redb, leader)"));

    let put =
        |path: &str, body: &str| http("PUT", &format!("{url}/v20190125/{path}"), Some(body)).0;
    assert_eq!(put("meshes", r#"{"meshName":"m1"}"#), 200);
    assert_eq!(put("meshes", r#"{"meshName":"m1"}"#), 409);
    assert_eq!(put("meshes", r#"{"meshName":"m2"}"#), 200);
    let route = serde_json::json!({"routeName": "r", "spec": route_spec(&[("ghost", 1)])});
    assert_eq!(
        put("meshes/m1/virtualRouter/vr/routes", &route.to_string()),
        404
    );

    let (status, headers, text) = http("GET", &format!("{url}/metrics"), None);
    assert_eq!(status, 200);
    assert!(
        headers
            .get("content-type")
            .unwrap_or_default()
            .contains("text"),
        "{headers:?}"
    );
    let sample = |line_start: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no '{line_start}' in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        sample(r#"aviary_control_api_requests_total{operation="CreateMesh",code="200"}"#),
        2.0
    );
    assert_eq!(
        sample(r#"aviary_control_api_requests_total{operation="CreateMesh",code="409"}"#),
        1.0
    );
    assert_eq!(
        sample(r#"aviary_control_api_requests_total{operation="CreateRoute",code="404"}"#),
        1.0
    );
    // Four writes: the seeded admin token's record and the SigV4 key at start, then the two
    // meshes.
    assert_eq!(sample("aviary_control_store_revision "), 4.0);
    assert_eq!(sample("aviary_control_leader "), 1.0);
    assert_eq!(
        sample("aviary_control_api_request_duration_seconds_count "),
        4.0
    );
}
