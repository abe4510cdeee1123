//! Latency buckets and quantiles.

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
    assert!(
        serde_json::from_str::<Endpoint>(
            r#"{"virtualNode":"x","id":"r","address":"a","port":1,"extra":1}"#
        )
        .is_err()
    );
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
