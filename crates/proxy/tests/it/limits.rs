//! A listener's connection limit: past `max_connections` a connection is answered 503 and closed at once, and service resumes when one closes.

use hyper::client::conn::http1::SendRequest;
use serde_json::json;

use crate::*;

/// A keep-alive connection to `addr` that has been served once and stays open while held.
async fn held_connection(addr: SocketAddr) -> (SendRequest<Full<Bytes>>, JoinHandle<()>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::get("/")
        .header("host", "svc.local")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await.unwrap();
    (sender, conn)
}

/// Sends `GET /` on a fresh connection and returns whatever came back before the proxy closed
/// (or reset) it.
async fn one_shot(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nHost: svc.local\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the proxy answers and closes within 10 s");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_limit_a_connection_gets_503_and_service_resumes_when_one_closes() {
    let cp = ControlPlane::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    mesh_with_router(&cp, &[("a", &a)], &[("a", 1)], json!({})).await;
    let mut config = node_config(&cp.url, None);
    config.max_connections = 2;
    let proxy = RunningProxy::start(config).await;
    let egress = proxy.egress();

    let first = held_connection(egress).await;
    let second = held_connection(egress).await;
    let started = Instant::now();
    let refused = one_shot(egress).await;
    assert!(
        refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{refused:?}"
    );
    assert!(
        refused.ends_with("\r\n\r\ntoo many connections to this proxy listener\r\n"),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(a.hits(), 2, "the refused request reached the upstream");

    // Closing one frees its slot; the proxy notices the close asynchronously.
    drop(first.0);
    let _ = tokio::time::timeout(Duration::from_secs(5), first.1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let answer = one_shot(egress).await;
        if answer.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");

    // The admin listener has a limit of its own, so it still answers, and counts the refusal.
    let refusals = proxy
        .metric(r#"aviary_proxy_connections_refused_total{listener="egress"}"#)
        .await;
    assert!(refusals >= 1, "{refusals} egress refusals counted");
    drop(second);
    proxy.stop().await;
    cp.stop().await;
}
