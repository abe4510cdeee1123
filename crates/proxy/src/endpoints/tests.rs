//! Balancing, avoidance, ejection and discovery of a node's endpoints.

use std::time::Duration;

use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn registered(ports: &[u16]) -> NodeEndpoints {
    NodeEndpoints::new(
        "n",
        Box::new(RegisteredSource {
            addrs: ports.iter().copied().map(addr).collect(),
            workloads: Vec::new(),
        }),
    )
}

fn outlier(max_ejection_percent: u32) -> OutlierConfig {
    OutlierConfig {
        max_server_errors: 2,
        interval: Duration::from_secs(10),
        base_ejection: Duration::from_secs(30),
        max_ejection_percent,
    }
}

#[tokio::test]
async fn two_choices_never_pick_the_busier_of_two() {
    let node = registered(&[1, 2]);
    let busy = node.pick(Some(addr(2))).await.unwrap();
    assert_eq!(busy.endpoint().addr, addr(1));
    // With two endpoints both are always the candidates: the idle one wins every time.
    for _ in 0..100 {
        let pick = node.pick(None).await.unwrap();
        assert_eq!(pick.endpoint().addr, addr(2));
    }
    drop(busy);
}

#[tokio::test]
async fn the_endpoint_that_failed_is_avoided_while_another_is_healthy() {
    let node = registered(&[1, 2, 3]);
    for _ in 0..100 {
        let pick = node.pick(Some(addr(2))).await.unwrap();
        assert_ne!(pick.endpoint().addr, addr(2));
    }
    let single = registered(&[7]);
    assert_eq!(
        single.pick(Some(addr(7))).await.unwrap().endpoint().addr,
        addr(7)
    );
}

#[tokio::test(start_paused = true)]
async fn server_errors_eject_within_the_budget_and_ejection_ends() {
    let node = registered(&[1, 2]);
    let config = outlier(50);
    let first = node.pick(Some(addr(2))).await.unwrap();
    let endpoint = first.endpoint().clone();
    drop(first);
    assert_eq!(node.record(&endpoint, true, Some(&config)), None);
    assert_eq!(
        node.record(&endpoint, true, Some(&config)),
        Some(Duration::from_secs(30))
    );
    for _ in 0..50 {
        assert_eq!(node.pick(None).await.unwrap().endpoint().addr, addr(2));
    }
    // The other endpoint fails too, but 2 of 2 ejected would exceed 50%.
    let second = node.pick(None).await.unwrap().endpoint().clone();
    node.record(&second, true, Some(&config));
    assert_eq!(node.record(&second, true, Some(&config)), None);
    tokio::time::advance(Duration::from_secs(31)).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        seen.insert(node.pick(None).await.unwrap().endpoint().addr);
    }
    assert!(seen.contains(&addr(1)), "ejection ended");
}

#[tokio::test]
async fn a_node_whose_only_endpoint_is_ejected_has_no_healthy_endpoint() {
    let node = registered(&[1]);
    let config = outlier(100);
    let endpoint = node.pick(None).await.unwrap().endpoint().clone();
    node.record(&endpoint, true, Some(&config));
    node.record(&endpoint, true, Some(&config));
    let err = node.pick(None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no healthy endpoint of virtual node 'n': all 1 endpoints are ejected by outlier detection"
    );
}

#[tokio::test]
async fn dns_discovery_resolves_literals_and_reports_failures() {
    let node = NodeEndpoints::new(
        "web",
        Box::new(DnsSource {
            hostname: "127.0.0.1".into(),
            port: 8080,
        }),
    );
    assert_eq!(node.pick(None).await.unwrap().endpoint().addr, addr(8080));
    let none = NodeEndpoints::new(
        "web",
        Box::new(RegisteredSource {
            addrs: vec![],
            workloads: vec![],
        }),
    );
    let err = none.pick(None).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "no healthy endpoint of virtual node 'web': registered [] found no endpoint"
    );
}

#[tokio::test]
async fn outstanding_requests_count_until_the_guard_drops() {
    let node = registered(&[1]);
    let a = node.pick(None).await.unwrap();
    let b = node.pick(None).await.unwrap();
    assert_eq!(a.endpoint().outstanding(), 2);
    drop(a);
    assert_eq!(b.endpoint().outstanding(), 1);
}
