//! Each event counts under its metric name and labels.

use std::time::Duration;

use prometheus_client::registry::Registry;

use super::*;
use crate::tls::{Refusal, Refused};

#[test]
fn every_event_counts_where_the_metric_names_say() {
    let mut registry = Registry::default();
    let metrics = TlsMetrics::register(&mut registry);
    let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let refused = Refused::new(Refusal::SanNotAllowed, "test".into());
    for _ in 0..2 {
        TlsRefused {
            listener: "inbound:8080",
            peer,
            refused: &refused,
        }
        .emit(&metrics);
    }
    TlsConnectFailed {
        address: peer,
        refused: &Refused::new(Refusal::UnknownCa, "test".into()),
    }
    .emit(&metrics);
    let identity = "spiffe://m/virtualNode/a";
    CertificateRenewed {
        identity,
        not_after: 1_900_000_000,
        renew_in: Duration::from_secs(60),
    }
    .emit(&metrics);
    CertificateRenewalFailed {
        identity,
        error: "unreachable",
        retry_in: Duration::from_secs(1),
        expired: false,
    }
    .emit(&metrics);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "aviary_proxy_tls_refused_total{listener=\"inbound:8080\",reason=\"san_not_allowed\"} 2",
        "aviary_proxy_tls_connect_failures_total{reason=\"unknown_ca\"} 1",
        "aviary_proxy_certificate_renewals_total{identity=\"spiffe://m/virtualNode/a\",result=\"ok\"} 1",
        "aviary_proxy_certificate_renewals_total{identity=\"spiffe://m/virtualNode/a\",result=\"failed\"} 1",
        "aviary_proxy_certificate_not_after_seconds{identity=\"spiffe://m/virtualNode/a\"} 1900000000",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}
