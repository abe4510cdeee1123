//! Split accuracy: over 10,000 requests each target's share is within one percentage point of
//! its weight, and a target of weight 0 gets nothing.

use std::net::SocketAddr;

use serde_json::json;

use crate::*;

/// `count` GETs to `svc.local` through `egress`, 16 at a time; the bodies (upstream names).
pub async fn drive(egress: SocketAddr, count: usize) -> Vec<String> {
    let caller = Caller::new();
    let workers = 16;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let caller = caller.clone();
        let n = count / workers + usize::from(w < count % workers);
        tasks.push(tokio::spawn(async move {
            let mut bodies = Vec::with_capacity(n);
            for _ in 0..n {
                let answer = caller.get(egress, "svc.local", "/", &[]).await;
                assert_eq!(answer.status, 200, "{}", answer.body);
                bodies.push(answer.body);
            }
            bodies
        }));
    }
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn assert_split(bodies: &[String], expected: &[(&str, f64)]) {
    assert_eq!(bodies.len(), 10_000);
    let observed = shares(bodies.iter().map(String::as_str));
    for (name, want) in expected {
        let got = observed.get(*name).copied().unwrap_or(0.0);
        assert!(
            (got - want).abs() < 0.01,
            "{name}: expected {want:.3}, observed {got:.4} ({observed:?})"
        );
        if *want == 0.0 {
            assert_eq!(got, 0.0, "weight 0 got requests");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_follow_route_weights_within_one_point() {
    let cp = ControlPlane::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    let b = Upstream::start("b", Behaviour::ok()).await;
    let c = Upstream::start("c", Behaviour::ok()).await;
    mesh_with_router(
        &cp,
        &[("a", &a), ("b", &b), ("c", &c)],
        &[("a", 90), ("b", 10), ("c", 0)],
        json!({}),
    )
    .await;
    let proxy = RunningProxy::node(&cp, None).await;

    let bodies = drive(proxy.egress(), 10_000).await;
    assert_split(&bodies, &[("a", 0.90), ("b", 0.10), ("c", 0.0)]);

    cp.set_weights("svc-router", "svc-route", &[("a", 75), ("b", 25), ("c", 0)])
        .await;
    proxy.wait_for_revision(cp.revision().await).await;
    let bodies = drive(proxy.egress(), 10_000).await;
    assert_split(&bodies, &[("a", 0.75), ("b", 0.25), ("c", 0.0)]);
    assert_eq!(c.hits(), 0, "the weight-0 node was never called");
    proxy.stop().await;
    cp.stop().await;
}
