//! Upstreams that close idle keep-alive connections on their own schedule, as Node.js (5 s)
//! and many servers do: no request fails because the proxy reused a connection the upstream was
//! closing, with a retry policy or without, and a connection is not kept past the upstream's
//! announced `Keep-Alive: timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::*;

/// A raw HTTP/1.1 upstream that, after each answer, waits `linger(connection number)` for the
/// next request on the connection and closes it if none came, without announcing it (no
/// `Connection: close`), unless `keep_alive` is set, which it sends as `Keep-Alive: ...`.
struct ClosingUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Drop for ClosingUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ClosingUpstream {
    async fn start(linger: fn(u64) -> Duration, keep_alive: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = ClosingUpstream {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            requests: Arc::default(),
            stop: CancellationToken::new(),
        };
        let (connections, requests, stop) = (
            upstream.connections.clone(),
            upstream.requests.clone(),
            upstream.stop.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let n = connections.fetch_add(1, Ordering::SeqCst);
                let requests = requests.clone();
                tokio::spawn(serve(stream, linger(n), keep_alive, requests));
            }
        });
        upstream
    }
}

async fn serve(
    mut stream: TcpStream,
    linger: Duration,
    keep_alive: Option<&str>,
    requests: Arc<AtomicU64>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let answer = match keep_alive {
        Some(value) => {
            format!("HTTP/1.1 200 OK\r\nkeep-alive: {value}\r\ncontent-length: 2\r\n\r\nok")
        }
        None => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string(),
    };
    let mut first = true;
    loop {
        // A request head, then its body by content-length.
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = if first {
                stream.read(&mut chunk).await
            } else {
                match tokio::time::timeout(linger, stream.read(&mut chunk)).await {
                    Ok(read) => read,
                    // Idle too long: close, as the server's keep-alive timeout would.
                    Err(_) => return,
                }
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        first = false;
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + length);
        requests.fetch_add(1, Ordering::SeqCst);
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Connections linger 0–3 ms after an answer: some are reused in time, some close just as
/// the next request is written, some are seen closed before it.
fn short_linger(connection: u64) -> Duration {
    Duration::from_millis(connection * 7919 % 4)
}

const REQUESTS: usize = 10_000;
const CALLERS: usize = 8;

/// `REQUESTS` GETs from `CALLERS` callers at once; the statuses that were not 200, counted.
async fn drive(proxy: SocketAddr) -> std::collections::BTreeMap<u16, usize> {
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        tasks.push(tokio::spawn(async move {
            let caller = Caller::new();
            let mut failed = std::collections::BTreeMap::<u16, usize>::new();
            for _ in 0..REQUESTS / CALLERS {
                let answer = caller.get(proxy, "svc.local", "/", &[]).await;
                if answer.status != 200 {
                    *failed.entry(answer.status.as_u16()).or_default() += 1;
                }
            }
            failed
        }));
    }
    let mut failed = std::collections::BTreeMap::new();
    for task in tasks {
        for (status, n) in task.await.unwrap() {
            *failed.entry(status).or_default() += n;
        }
    }
    failed
}

async fn no_request_fails(route_extra: serde_json::Value) {
    let cp = ControlPlane::start().await;
    let closing = ClosingUpstream::start(short_linger, None).await;
    // The node's listener is the closing upstream's port.
    cp.create(model::Kind::Mesh, None, MESH, json!({})).await;
    cp.create(
        model::Kind::VirtualNode,
        None,
        "closing",
        node_spec(closing.addr.port(), "http", &[]),
    )
    .await;
    router_to(&cp, &[("closing", 1)], route_extra).await;
    let proxy = RunningProxy::node(&cp, None).await;
    let failed = drive(proxy.egress()).await;
    let connections = closing.connections.load(Ordering::SeqCst);
    let served = closing.requests.load(Ordering::SeqCst);
    assert!(
        failed.is_empty(),
        "failed answers by status: {failed:?} (of {REQUESTS}; {connections} connections)"
    );
    assert_eq!(
        served, REQUESTS as u64,
        "each request reached the upstream once"
    );
    // The scenario really had connections closing under reuse: far more connections than
    // callers, and far fewer than requests (most were reused).
    assert!(
        (CALLERS as u64 * 4..REQUESTS as u64).contains(&connections),
        "{connections} connections for {REQUESTS} requests"
    );
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_idle_connections_fails_no_request_without_a_retry_policy() {
    // maxRetries 0: only the stale-connection resend can save a request.
    no_request_fails(json!({"retryPolicy": {
        "maxRetries": 0,
        "perRetryTimeout": {"unit": "s", "value": 1},
        "tcpRetryEvents": ["connection-error"]
    }}))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_idle_connections_fails_no_request_with_a_retry_policy() {
    no_request_fails(json!({"retryPolicy": {
        "maxRetries": 2,
        "perRetryTimeout": {"unit": "s", "value": 1},
        "httpRetryEvents": ["gateway-error"],
        "tcpRetryEvents": ["connection-error"]
    }}))
    .await;
}

/// A POST cannot be sent twice, so the pool must not offer it a connection the upstream said
/// it would have closed: after `Keep-Alive: timeout=1` and 1.2 s idle, the next POST goes on a
/// new connection and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_not_kept_past_the_upstreams_keep_alive_timeout() {
    let cp = ControlPlane::start().await;
    let closing = ClosingUpstream::start(|_| Duration::from_secs(1), Some("timeout=1")).await;
    cp.create(model::Kind::Mesh, None, MESH, json!({})).await;
    cp.create(
        model::Kind::VirtualNode,
        None,
        "closing",
        node_spec(closing.addr.port(), "http", &[]),
    )
    .await;
    router_to(&cp, &[("closing", 1)], json!({})).await;
    let proxy = RunningProxy::node(&cp, None).await;
    let caller = Caller::new();
    for round in 0..3 {
        let answer = caller
            .send(
                "POST",
                proxy.egress(),
                "svc.local",
                "/",
                &[],
                Bytes::from("vote"),
            )
            .await;
        assert_eq!(answer.status, 200, "round {round}: {}", answer.body);
        // Within the announced timeout the connection is reused ...
        let answer = caller
            .send(
                "POST",
                proxy.egress(),
                "svc.local",
                "/",
                &[],
                Bytes::from("vote"),
            )
            .await;
        assert_eq!(answer.status, 200, "round {round}: {}", answer.body);
        // ... past it (the upstream closes at 1 s) it is not.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert_eq!(closing.requests.load(Ordering::SeqCst), 6);
    assert_eq!(
        closing.connections.load(Ordering::SeqCst),
        3,
        "one connection per round: reused within the timeout, not after"
    );
    proxy.stop().await;
    cp.stop().await;
}
