//! Status, party and delivery of each `ProxyError`.

use super::*;

fn check(error: ProxyError, status: u16, party: Party, delivery: Delivery) {
    assert_eq!(error.status().as_u16(), status, "{error}");
    assert_eq!(error.party(), party, "{error}");
    assert_eq!(error.delivery(), delivery, "{error}");
}

#[test]
fn each_error_knows_its_status_party_and_delivery() {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    check(
        ProxyError::BadRequest("no host".into()),
        400,
        Party::Client,
        Delivery::NeverSent,
    );
    check(
        ProxyError::UnknownService {
            service: "s".into(),
            mesh: "m".into(),
        },
        404,
        Party::Client,
        Delivery::NeverSent,
    );
    check(
        ProxyError::NotABackend {
            node: "n".into(),
            service: "s".into(),
            mesh: "m".into(),
        },
        403,
        Party::Client,
        Delivery::NeverSent,
    );
    check(
        ProxyError::NoHealthyEndpoint {
            node: "n".into(),
            reason: "none".into(),
        },
        503,
        Party::Upstream,
        Delivery::NeverSent,
    );
    check(
        ProxyError::Connect {
            node: "n".into(),
            addr,
            detail: "refused".into(),
        },
        503,
        Party::Upstream,
        Delivery::NeverSent,
    );
    check(
        ProxyError::Stream {
            node: "n".into(),
            addr,
            detail: "reset".into(),
        },
        502,
        Party::Upstream,
        Delivery::Sent,
    );
    check(
        ProxyError::Timeout {
            node: "n".into(),
            after: Duration::from_millis(5),
        },
        504,
        Party::Upstream,
        Delivery::Sent,
    );
    check(
        ProxyError::NotConfigured { mesh: "m".into() },
        503,
        Party::Proxy,
        Delivery::NeverSent,
    );
}
