//! Clear failures, each a short text naming what failed, and the header rules of a proxy:
//! hop-by-hop headers stay on their hop, X-Forwarded-For grows, trace headers pass through.

use model::{Kind, ResourcePath};
use serde_json::json;

use crate::*;

async fn setup() -> (ControlPlane, Upstream, RunningProxy) {
    let cp = ControlPlane::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    mesh_with_router(&cp, &[("a", &a)], &[("a", 1)], json!({})).await;
    let proxy = RunningProxy::node(&cp, None).await;
    (cp, a, proxy)
}

/// A virtual service `name` whose provider is node `node` with the given spec.
async fn service_on_node(cp: &ControlPlane, name: &str, node: &str, spec: serde_json::Value) {
    cp.create(Kind::VirtualNode, None, node, spec).await;
    cp.create(
        Kind::VirtualService,
        None,
        name,
        json!({"provider": {"virtualNode": {"virtualNodeName": node}}}),
    )
    .await;
}

async fn allow_all_egress(cp: &ControlPlane, proxy: &RunningProxy) {
    cp.api
        .update(
            &ResourcePath::mesh(MESH),
            &json!({"egressFilter": {"type": "ALLOW_ALL"}}),
        )
        .await
        .unwrap();
    proxy.wait_for_revision(cp.revision().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_service_404_and_egress_filter_403() {
    let (cp, _a, proxy) = setup().await;
    let caller = Caller::new();
    let answer = caller.get(proxy.egress(), "nope.local", "/", &[]).await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.body,
        "virtual service 'nope.local' not found in mesh 'm'\n"
    );

    let other = Upstream::start("other", Behaviour::ok()).await;
    service_on_node(
        &cp,
        "other.local",
        "other",
        node_spec(other.addr.port(), "http", &[]),
    )
    .await;
    proxy.wait_for_revision(cp.revision().await).await;
    let answer = caller.get(proxy.egress(), "other.local", "/", &[]).await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.body,
        "virtual node 'client' may not call virtual service 'other.local': it is not one of the \
         node's backends and mesh 'm' has egress filter DROP_ALL\n"
    );
    assert_eq!(other.hits(), 0);

    allow_all_egress(&cp, &proxy).await;
    let answer = caller.get(proxy.egress(), "other.local", "/", &[]).await;
    assert_eq!(
        (answer.status.as_u16(), answer.body.as_str()),
        (200, "other")
    );
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_and_refused_upstream_are_503_naming_the_node() {
    let (cp, _a, proxy) = setup().await;
    allow_all_egress(&cp, &proxy).await;
    service_on_node(
        &cp,
        "nowhere.local",
        "nowhere",
        json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}),
    )
    .await;
    let dead_port = free_port().await;
    service_on_node(&cp, "dead.local", "dead", node_spec(dead_port, "http", &[])).await;
    proxy.wait_for_revision(cp.revision().await).await;
    let caller = Caller::new();

    let answer = caller.get(proxy.egress(), "nowhere.local", "/", &[]).await;
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.body,
        "no healthy endpoint of virtual node 'nowhere': the node has no DNS service discovery and \
         no registered endpoint\n"
    );

    let answer = caller.get(proxy.egress(), "dead.local", "/", &[]).await;
    assert_eq!(answer.status, 503);
    // The node, but not its address or the system's error: those are logged, not told.
    assert_eq!(answer.body, "cannot connect to virtual node 'dead'\n");
    assert!(!answer.body.contains(&dead_port.to_string()));
    // App Mesh's default retry policy retried the connection error twice.
    let dead = proxy
        .handle
        .metrics()
        .into_iter()
        .find(|(k, _)| k.target_node == "dead")
        .unwrap()
        .1;
    assert_eq!((dead.by_class[4], dead.retries), (3, 2));
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_host_is_400() {
    let (cp, a, proxy) = setup().await;
    let answer = raw_http(
        proxy.egress(),
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.ends_with("malformed request: no Host header names a virtual service\n"),
        "{answer}"
    );
    assert_eq!(a.hits(), 0);
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_requests_name_the_service_in_the_uri() {
    let (cp, a, proxy) = setup().await;
    let answer = raw_http(
        proxy.egress(),
        "GET http://svc.local:80/path?q=1 HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\na"), "{answer}");
    assert_eq!(a.last_uri.lock().unwrap().as_deref(), Some("/path?q=1"));
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_dropped_and_forwarded_for_grows() {
    let (cp, a, proxy) = setup().await;
    let answer = Caller::new()
        .get(
            proxy.egress(),
            "svc.local:8080",
            "/",
            &[
                ("connection", "x-hop-secret"),
                ("x-hop-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("te", "trailers"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                (
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793",
                ),
                ("x-forwarded-for", "10.1.2.3"),
            ],
        )
        .await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "a"));
    let seen = a.last_headers.lock().unwrap().clone().unwrap();
    for gone in ["x-hop-secret", "keep-alive", "proxy-authorization", "te"] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} reached the upstream: {seen:?}"
        );
    }
    assert_eq!(
        seen["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(
        seen["x-amzn-trace-id"],
        "Root=1-5759e988-bd862e3fe1be46a994272793"
    );
    assert_eq!(seen["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(seen["host"], "svc.local:8080");
    // The upstream's own hop-by-hop headers do not reach the caller either.
    assert!(
        answer.headers.get("x-upstream-secret").is_none(),
        "{:?}",
        answer.headers
    );
    proxy.stop().await;
    cp.stop().await;
}
