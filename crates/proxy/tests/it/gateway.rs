//! The gateway role: every listener of the virtual gateway, gateway routes by priority and
//! match, App Mesh's rewrites, and listeners added while running.

use std::time::Duration;

use model::{Kind, ResourcePath};
use serde_json::{Value, json};

use crate::*;

fn gateway_spec(ports: &[u16]) -> Value {
    let listeners: Vec<Value> = ports
        .iter()
        .map(|p| json!({"portMapping": {"port": p, "protocol": "http"}}))
        .collect();
    json!({"listeners": listeners})
}

fn gateway_route(service: &str, priority: Option<u32>, matcher: Value, rewrite: Value) -> Value {
    let mut spec = json!({"httpRoute": {"match": matcher, "action": {
        "target": {"virtualService": {"virtualServiceName": service}}}}});
    if !rewrite.is_null() {
        spec["httpRoute"]["action"]["rewrite"] = rewrite;
    }
    if let Some(p) = priority {
        spec["priority"] = json!(p);
    }
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_pick_a_service_and_rewrite_the_request() {
    let cp = ControlPlane::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    let b = Upstream::start("b", Behaviour::ok()).await;
    mesh_with_router(&cp, &[("a", &a)], &[("a", 1)], json!({})).await;
    cp.add_node("b", &b).await;
    cp.create(
        Kind::VirtualService,
        None,
        "b.local",
        json!({"provider": {"virtualNode": {"virtualNodeName": "b"}}}),
    )
    .await;
    let port = free_port().await;
    cp.create(Kind::VirtualGateway, None, "gw", gateway_spec(&[port]))
        .await;
    let routes = [
        (
            "chapters",
            gateway_route(
                "svc.local",
                None,
                json!({"prefix": "/chapter"}),
                Value::Null,
            ),
        ),
        (
            "kept",
            gateway_route(
                "svc.local",
                None,
                json!({"prefix": "/keep/"}),
                json!({"prefix": {"defaultPrefix": "DISABLED"}, "hostname": {"defaultTargetHostname": "DISABLED"}}),
            ),
        ),
        (
            "canary",
            gateway_route(
                "b.local",
                Some(0),
                json!({"prefix": "/", "headers": [{"name": "x-canary", "match": {"exact": "yes"}}]}),
                Value::Null,
            ),
        ),
    ];
    for (name, spec) in routes {
        cp.create(Kind::GatewayRoute, Some("gw"), name, spec).await;
    }
    let mut config = proxy::Config::new(&cp.url, MESH, proxy::Role::Gateway("gw".into()));
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let proxy = RunningProxy::start(config).await;
    let gateway = proxy.addr(proxy::ListenerKind::Gateway);
    assert_eq!(gateway, SocketAddr::from(([127, 0, 0, 1], port)));
    let caller = Caller::new();

    let answer = caller
        .get(gateway, "www.example", "/chapter/1?x=1", &[])
        .await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "a"));
    assert_eq!(a.last_uri.lock().unwrap().as_deref(), Some("/1?x=1"));
    assert_eq!(
        a.last_headers.lock().unwrap().as_ref().unwrap()["host"],
        "svc.local"
    );

    let answer = caller
        .get(gateway, "www.example", "/keep/this?y=2", &[])
        .await;
    assert_eq!(answer.body, "a");
    assert_eq!(
        a.last_uri.lock().unwrap().as_deref(),
        Some("/keep/this?y=2")
    );
    assert_eq!(
        a.last_headers.lock().unwrap().as_ref().unwrap()["host"],
        "www.example"
    );

    let answer = caller
        .get(gateway, "www.example", "/chapter/1", &[("x-canary", "yes")])
        .await;
    assert_eq!(answer.body, "b", "priority 0 wins over the longer prefix");

    let answer = caller.get(gateway, "www.example", "/nothing", &[]).await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.body,
        "no route of virtual gateway 'gw' matches GET /nothing\n"
    );

    // A listener added to the virtual gateway is bound while the proxy runs.
    let second = free_port().await;
    cp.api
        .update(
            &ResourcePath::new(Kind::VirtualGateway, MESH, None, "gw"),
            &gateway_spec(&[port, second]),
        )
        .await
        .unwrap();
    proxy.wait_for_revision(cp.revision().await).await;
    let second_addr = SocketAddr::from(([127, 0, 0, 1], second));
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(second_addr).await.is_err() {
        assert!(Instant::now() < deadline, "port {second} never bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = caller
        .get(second_addr, "www.example", "/chapter/2", &[])
        .await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "a"));
    proxy.stop().await;
    cp.stop().await;
}
