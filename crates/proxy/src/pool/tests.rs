//! Connection reuse, expiry and errors of the HTTP/1.1 pools, against real sockets.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// An upstream answering `ok` to every request with keep-alive; counts connections. With
/// `close_idle`, it closes each connection after its first answer (as a server whose idle
/// timeout ran out would), without saying so.
async fn upstream(close_idle: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() || close_idle {
                        return;
                    }
                }
            });
        }
    });
    (addr, connections)
}

fn get() -> Request<RequestBody> {
    let mut request = Request::new(RequestBody::full(Bytes::new()));
    *request.uri_mut() = "/".parse().unwrap();
    request
        .headers_mut()
        .insert(http::header::HOST, "up".parse().unwrap());
    request
}

async fn body(response: Response<Incoming>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (addr, connections) = upstream(false).await;
    let pools = Http1Pools::default();
    let pool = pools.pool(addr);
    for _ in 0..10 {
        let response = pool.send(get(), None).await.unwrap();
        assert_eq!(body(response).await, "ok");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert_eq!(pools.idle(addr), 1);
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_kept_for_later() {
    let (addr, connections) = upstream(false).await;
    let pools = Http1Pools::default();
    let pool = pools.pool(addr);
    let (a, b) = tokio::join!(pool.send(get(), None), pool.send(get(), None));
    assert_eq!(
        (body(a.unwrap()).await, body(b.unwrap()).await),
        ("ok".into(), "ok".into())
    );
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert_eq!(pools.idle(addr), 2);
    pool.send(get(), None).await.unwrap();
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_used_again() {
    let (addr, connections) = upstream(true).await;
    let pool = Http1Pools::default().pool(addr);
    for _ in 0..5 {
        let response = pool.send(get(), None).await.unwrap();
        assert_eq!(body(response).await, "ok");
        // Give the closed connection's task a moment to notice.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn idle_connections_expire_and_unused_pools_are_forgotten() {
    let (addr, connections) = upstream(false).await;
    let pools = Http1Pools::default();
    let pool = pools.pool(addr);
    pool.send(get(), None).await.unwrap();
    let now = Instant::now();
    pools.expire(now + IDLE_TIMEOUT - Duration::from_secs(1));
    assert_eq!(pools.idle(addr), 1, "idle for less than the timeout: kept");
    pools.expire(now + IDLE_TIMEOUT + Duration::from_secs(1));
    assert_eq!(pools.idle(addr), 0);
    assert_eq!(
        lock(&pools.pools).len(),
        1,
        "an endpoint still holds the pool"
    );
    drop(pool);
    pools.expire(now);
    assert!(lock(&pools.pools).is_empty());
    // A new pool for the address connects again.
    pools.pool(addr).send(get(), None).await.unwrap();
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_reads_as_the_legacy_client_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = Http1Pools::default()
        .pool(addr)
        .send(get(), None)
        .await
        .unwrap_err();
    assert!(error.is_connect());
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    assert!(
        chain.starts_with("client error (Connect): tcp connect error: "),
        "{chain}"
    );
}

/// `Keep-Alive` values → how long a connection is kept after the answer.
#[test]
fn keep_alive_timeouts_shorten_how_long_a_connection_is_kept() {
    let check = |values: &[&str], expected: Duration| {
        let mut headers = http::HeaderMap::new();
        for value in values {
            headers.append("keep-alive", value.parse().unwrap());
        }
        assert_eq!(keep_for(&headers), expected, "{values:?}");
    };
    check(&[], IDLE_TIMEOUT);
    check(&["timeout=5"], Duration::from_millis(4500));
    check(&["timeout=5, max=100"], Duration::from_millis(4500));
    check(&["max=100, Timeout = 2"], Duration::from_millis(1500));
    check(&["timeout=1"], Duration::from_millis(500));
    check(&["timeout=0"], Duration::ZERO);
    check(&["timeout=600"], IDLE_TIMEOUT);
    check(&["timeout=9", "timeout=3"], Duration::from_millis(2500));
    check(&["timeout=soon"], IDLE_TIMEOUT);
}
