//! When certificates are renewed, and a mesh identity from a real control plane's CA rotated
//! under a loop of mutual-TLS requests: none fails, new handshakes get each new certificate,
//! and a CA that stops answering leaves the valid certificate in use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model::Kind;
use model::ResourcePath;
use model::wire::{IdentityKind, IssuedCertificate};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{IdentityName, MeshIdentity, Renewal};
use crate::tls::{ClientTls, ServerTls, TlsMetrics, accept, connect};
use model::typed::TlsMode;

#[test]
fn a_certificate_is_renewed_at_two_thirds_or_sooner_never_in_a_busy_loop() {
    fn check(renewal: &Renewal, validity: (i64, i64), expected: Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let issued = IssuedCertificate {
            certificate: String::new(),
            trust_bundle: String::new(),
            identity: String::new(),
            not_before: (now + validity.0) as u64,
            not_after: (now + validity.1) as u64,
        };
        let got = renewal.after(&issued);
        // Whole seconds in the certificate, and a clock that moves while the test runs.
        assert!(
            got <= expected && got + Duration::from_secs(2) >= expected,
            "{renewal:?} {validity:?}: {got:?}, expected {expected:?}"
        );
    }
    let default = Renewal::default();
    check(&default, (-60, 3600), Duration::from_secs(2380));
    check(&default, (0, 90), Duration::from_secs(60));
    // Past its renewal point already (a CA clock ahead, a long pause): the least wait.
    check(&default, (-3600, 10), Duration::from_secs(1));
    let often = Renewal {
        every: Some(Duration::from_secs(5)),
        ..Renewal::default()
    };
    check(&often, (0, 3600), Duration::from_secs(5));
    check(&often, (0, 6), Duration::from_secs(4));
}

/// A control plane in memory with mesh `m`, nodes `server` and `client`, 1-minute certificates.
async fn control_plane() -> (
    client::Client,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let config = control::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        auth: control::auth::AuthConfig {
            enabled: false,
            ..Default::default()
        },
        cert_ttl: Duration::from_secs(60),
        ..control::Config::default()
    };
    let token = CancellationToken::new();
    let control = control::Control::bind(config, token.clone()).await.unwrap();
    let api = client::Client::new(&control.url());
    let task = tokio::spawn(async move { control.run().await.unwrap() });
    api.create(&ResourcePath::mesh("m"), &json!({}), None)
        .await
        .unwrap();
    for node in ["server", "client"] {
        let spec = json!({"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]});
        api.create(
            &ResourcePath::new(Kind::VirtualNode, "m", None, node),
            &spec,
            None,
        )
        .await
        .unwrap();
    }
    (api, token, task)
}

fn name(node: &str) -> IdentityName {
    IdentityName {
        mesh: "m".into(),
        kind: IdentityKind::VirtualNode,
        name: node.into(),
    }
}

type Conn = BufReader<tokio_rustls::client::TlsStream<TcpStream>>;

/// A new mutual-TLS connection and the server certificate it was given.
async fn open(addr: std::net::SocketAddr, tls: &ClientTls) -> Result<(Conn, Vec<u8>), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let stream = connect(stream, tls, "server")
        .await
        .map_err(|e| e.to_string())?;
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    Ok((BufReader::new(stream), leaf))
}

/// One request and its answer on a connection.
async fn ping(conn: &mut Conn) -> Result<(), String> {
    conn.write_all(b"ping\n").await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    conn.read_line(&mut line).await.map_err(|e| e.to_string())?;
    if line == "pong\n" {
        Ok(())
    } else {
        Err(format!("answer {line:?}"))
    }
}

/// One request on a new connection.
async fn request(addr: std::net::SocketAddr, tls: &ClientTls) -> Result<(), String> {
    ping(&mut open(addr, tls).await?.0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_identity_rotates_under_requests_with_none_failing() {
    let (api, control_stop, control_task) = control_plane().await;
    let (mut registry, tracker, shutdown) = (
        Registry::default(),
        TaskTracker::new(),
        CancellationToken::new(),
    );
    let metrics = TlsMetrics::register(&mut registry);
    let fast = Renewal {
        every: Some(Duration::from_millis(300)),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
    };
    let server = MeshIdentity::start(
        api.clone(),
        name("server"),
        fast,
        metrics.clone(),
        &tracker,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let client = MeshIdentity::start(
        api.clone(),
        name("client"),
        Renewal::default(),
        metrics.clone(),
        &tracker,
        shutdown.clone(),
    )
    .await
    .unwrap();
    assert_eq!(server.id(), "spiffe://m/virtualNode/server");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_tls = ServerTls::mesh(&server, TlsMode::Strict, None);
    let refused = Arc::new(AtomicUsize::new(0));
    let counted = refused.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (tls, refused) = (server_tls.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(accepted) = accept(stream, &tls).await else {
                    refused.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let mut stream = BufReader::new(accepted);
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let _ = stream.write_all(b"pong\n").await;
                    line.clear();
                }
            });
        }
    });

    let to_server = ClientTls::mesh(&client, "server");
    // 4 workers for 2 s (and 5,000 requests each at most), as a pool uses connections: each
    // keeps one open for 25 requests, then makes a new one, so handshakes fall before,
    // during and after every rotation while requests go on.
    let mut workers = Vec::new();
    for _ in 0..4 {
        let tls = to_server.clone();
        workers.push(tokio::spawn(async move {
            let (mut leaves, mut failures, mut requests) = (Vec::new(), Vec::new(), 0);
            let end = tokio::time::Instant::now() + Duration::from_secs(2);
            let mut conn = None;
            for i in 0..5000 {
                if tokio::time::Instant::now() >= end {
                    break;
                }
                if i % 25 == 0 {
                    conn = match open(addr, &tls).await {
                        Ok((conn, leaf)) => {
                            leaves.push(leaf);
                            Some(conn)
                        }
                        Err(error) => {
                            failures.push(error);
                            None
                        }
                    };
                }
                let Some(conn) = conn.as_mut() else { continue };
                requests += 1;
                if let Err(error) = ping(conn).await {
                    failures.push(error);
                }
            }
            (leaves, failures, requests)
        }));
    }
    let (mut leaves, mut failures, mut requests) = (Vec::new(), Vec::new(), 0);
    for worker in workers {
        let (l, f, r) = worker.await.unwrap();
        // Each worker's handshakes see each certificate once in a run: never an older one
        // after a newer one.
        let mut runs = l.clone();
        runs.dedup();
        let unique: std::collections::HashSet<_> = runs.iter().collect();
        assert_eq!(
            unique.len(),
            runs.len(),
            "a handshake went back to an older certificate"
        );
        leaves.extend(l);
        failures.extend(f);
        requests += r;
    }
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    assert!(
        requests > 1000 && leaves.len() > 40,
        "{requests} requests, {} handshakes",
        leaves.len()
    );
    let distinct: std::collections::HashSet<_> = leaves.iter().collect();
    assert!(
        distinct.len() >= 3,
        "{} certificates seen in 2 s",
        distinct.len()
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("aviary_proxy_certificate_renewals_total{identity=\"spiffe://m/virtualNode/server\",result=\"ok\"}"),
        "{text}"
    );

    // The CA goes away: renewals fail, the valid certificate stays in use.
    control_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), control_task).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("result=\"failed\""), "{text}");
    assert!(server.resolver().has_current());
    assert!(request(addr, &to_server).await.is_ok());

    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_the_mesh_does_not_have_gets_no_identity() {
    let (api, stop, _task) = control_plane().await;
    let tracker = TaskTracker::new();
    let error = MeshIdentity::start(
        api,
        name("ghost"),
        Renewal::default(),
        TlsMetrics::default(),
        &tracker,
        stop.clone(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("certificate for spiffe://m/virtualNode/ghost from the mesh CA:"),
        "{error}"
    );
    assert!(
        tracker.is_empty(),
        "no renewal task for an identity that never was"
    );
    stop.cancel();
}
