//! Integration tests of the client's failover between control-plane URLs: real control planes
//! in this process over one shared store (replicas), ports nothing listens on, and tiny raw
//! servers that reset or answer 503 where a real replica would not on demand; and the `/v1`
//! views of a real control plane read through `model::wire` (`wire.rs`).

mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use client::{Client, ClientError};
use model::ResourcePath;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A control plane in this process, without authentication, over `store`.
struct Replica {
    url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    async fn start(store: &Arc<dyn store::Store>) -> Replica {
        let config = control::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: None,
            store: Some(control::SharedStore(store.clone())),
            auth: control::auth::AuthConfig {
                enabled: false,
                ..Default::default()
            },
            ..control::Config::default()
        };
        let stop = CancellationToken::new();
        let control = control::Control::bind(config, stop.clone()).await.unwrap();
        let url = control.url();
        let task = tokio::spawn(async move { control.run().await.unwrap() });
        Replica { url, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the control plane stops within 10 s")
            .unwrap();
    }
}

fn memory_store() -> Arc<dyn store::Store> {
    Arc::new(store::MemoryStore::new())
}

/// A URL on which nothing listens (the port was free a moment ago).
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A server that reads each request and then does `answer` with it: writes the bytes, or with
/// `None` closes the connection unanswered (the request was sent; was it acted on?). Counts
/// requests.
async fn raw_server(answer: Option<&'static str>) -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                if matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if let Some(answer) = answer {
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\nx-amzn-ErrorType: ServiceUnavailableException\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 29\r\n\r\n{\"message\":\"store is down\"}\r\n";
const PLAIN_503: &str =
    "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 4\r\n\r\nbusy";

fn stats(proxy: &str) -> model::wire::StatsReport {
    model::wire::StatsReport {
        proxy: proxy.into(),
        nodes: Vec::new(),
    }
}

#[tokio::test]
async fn a_dead_first_url_is_skipped_for_every_method_and_the_answering_one_stays_current() {
    let store = memory_store();
    let replica = Replica::start(&store).await;
    let dead = dead_url().await;
    let client = Client::new(&format!("{dead}, {}/", replica.url));
    assert_eq!(client.urls(), [dead.clone(), replica.url.clone()]);

    let mesh = ResourcePath::mesh("m");
    client.create(&mesh, &json!({}), None).await.unwrap();
    assert_eq!(
        client.base_url(),
        replica.url,
        "the answering URL is current"
    );
    let described = client
        .describe(&mesh)
        .await
        .unwrap()
        .expect("the mesh exists");
    assert_eq!(described["meshName"], "m");
    // Not sent at all, so even a POST may go on to the next URL.
    let fresh = Client::new(&format!("{dead},{}", replica.url));
    fresh.post_stats("m", &stats("gateway g")).await.unwrap();
    assert_eq!(fresh.base_url(), replica.url);
    // An answer is an answer: a 404 from a live replica is not a reason to try another.
    let missing = client.describe(&ResourcePath::mesh("nope")).await.unwrap();
    assert_eq!(missing, None);
    replica.stop().await;
}

#[tokio::test]
async fn when_every_url_is_dead_the_error_names_each_with_its_reason() {
    let (a, b) = (dead_url().await, dead_url().await);
    let client = Client::new(&format!("{a},{b}"));
    let error = client.snapshot("m").await.unwrap_err();
    let ClientError::Replicas(tried) = &error else {
        panic!("expected every replica named, got {error:?}");
    };
    let urls: Vec<&str> = tried.iter().map(|t| t.url.as_str()).collect();
    assert_eq!(urls, [a.as_str(), b.as_str()]);
    let text = error.to_string();
    assert!(text.contains(&a) && text.contains(&b), "{text}");
    assert!(text.contains("refused"), "the reason is named: {text}");

    assert_eq!(
        text,
        format!(
            "no control plane replica answered: {a}: connection refused; {b}: connection refused"
        )
    );

    // One URL keeps the one-URL error it always had: one line with the root cause, and no
    // source() that a printer of error chains would repeat after it.
    let single = Client::new(&a).snapshot("m").await.unwrap_err();
    assert!(
        matches!(single, ClientError::Unreachable { .. }),
        "{single:?}"
    );
    assert_eq!(
        single.to_string(),
        format!("cannot reach the control plane at {a}: connection refused")
    );
    assert!(std::error::Error::source(&single).is_none());
}

#[tokio::test]
async fn a_request_that_may_have_been_sent_moves_on_only_when_repeating_it_is_harmless() {
    let store = memory_store();
    let replica = Replica::start(&store).await;
    let mesh = ResourcePath::mesh("m");
    Client::new(&replica.url)
        .create(&mesh, &json!({}), None)
        .await
        .unwrap();
    let (cut, seen) = raw_server(None).await;
    let client = Client::new(&format!("{cut},{}", replica.url));

    assert!(
        client.describe(&mesh).await.unwrap().is_some(),
        "a GET goes on"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    let client = Client::new(&format!("{cut},{}", replica.url));
    let error = client
        .post_stats("m", &stats("gateway g"))
        .await
        .unwrap_err();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the POST reached the first URL"
    );
    match &error {
        ClientError::Unreachable { url, .. } => assert!(url.starts_with(&cut), "{url}"),
        other => panic!("a POST cut off after sending must not be repeated: {other:?}"),
    }
    assert_eq!(client.base_url(), cut, "nothing answered, nothing moved");
    replica.stop().await;
}

#[tokio::test]
async fn a_503_moves_a_post_on_only_when_it_is_service_unavailable_exception() {
    let store = memory_store();
    let replica = Replica::start(&store).await;
    Client::new(&replica.url)
        .create(&ResourcePath::mesh("m"), &json!({}), None)
        .await
        .unwrap();
    let (unavailable, _) = raw_server(Some(UNAVAILABLE)).await;
    let (busy, _) = raw_server(Some(PLAIN_503)).await;

    let client = Client::new(&format!("{unavailable},{}", replica.url));
    client.post_stats("m", &stats("gateway g")).await.unwrap();

    let client = Client::new(&format!("{busy},{}", replica.url));
    let error = client
        .post_stats("m", &stats("gateway g"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Api { status: 503, .. }),
        "a bare 503 may come after the write: {error:?}"
    );
    // A GET goes on after either.
    assert!(client.snapshot("m").await.is_ok());

    let both = Client::new(&format!("{unavailable},{busy}"));
    let error = both.snapshot("m").await.unwrap_err().to_string();
    assert!(
        error.contains("ServiceUnavailableException: store is down") && error.contains(&busy),
        "{error}"
    );
    replica.stop().await;
}

/// A server whose n-th connection gets `answers[n]` written whole and is then closed; what each
/// request asked for (its request line) is recorded.
async fn scripted_server(answers: Vec<String>) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = asked.clone();
    tokio::spawn(async move {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = vec![0u8; 16 * 1024];
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buffer[..n]);
            record
                .lock()
                .unwrap()
                .push(head.lines().next().unwrap_or_default().to_string());
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (format!("http://{addr}"), asked)
}

/// An SSE answer whose body is `chunks` in chunked encoding; `finished` sends the last chunk,
/// else the body is cut off.
fn sse_answer(chunks: &[String], finished: bool) -> String {
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    for chunk in chunks {
        out.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    if finished {
        out.push_str("0\r\n\r\n");
    }
    out
}

fn put_event(revision: u64, name: &str) -> String {
    let data = json!({"revision": revision, "type": "put", "kind": "Route", "mesh": "m",
        "name": name, "parent": "r", "resource": {"routeName": name}});
    format!("id: {revision}\nevent: put\ndata: {data}\n\n")
}

#[tokio::test]
async fn a_watch_cut_off_within_a_revision_resumes_before_it_and_a_finished_one_after_it() {
    let revision_10 = [put_event(10, "a"), put_event(10, "b")];
    let (url, asked) = scripted_server(vec![
        // Cut off after the first of revision 10's two changes.
        sse_answer(&[revision_10[0].clone()], false),
        // Revision 10 whole, then a clean end.
        sse_answer(&[revision_10.concat()], true),
        // Nothing: only the request line matters.
        String::new(),
    ])
    .await;
    let mut watch = Client::new(&url)
        .follow("m", 5)
        .with_backoff(Duration::from_millis(1), Duration::from_millis(1));
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("the watch yields within 5 s")
    };
    let names = |event: client::Watched| match event {
        client::Watched::Change(change) => change.name,
        other => format!("{other:?}"),
    };
    assert_eq!(names(next().await), "a");
    assert!(matches!(next().await, client::Watched::Interrupted { .. }));
    assert_eq!(names(next().await), "a");
    assert_eq!(names(next().await), "b");
    assert!(matches!(next().await, client::Watched::Interrupted { .. }));
    // This open is answered by a close; its request line shows where it resumed.
    assert!(matches!(next().await, client::Watched::Interrupted { .. }));
    drop(watch);
    let asked = asked.lock().unwrap().clone();
    let from: Vec<&str> = asked
        .iter()
        .map(|line| line.split("fromRevision=").nth(1).unwrap_or(line))
        .map(|rest| rest.split(' ').next().unwrap_or(rest))
        .collect();
    assert_eq!(from, ["5", "5", "10"], "{asked:?}");
}

/// The mesh CA through the client, on two replicas of one store: both hand out certificates
/// of one CA, a POST that reaches a dead first URL moves on (nothing was sent), and the
/// server's refusals come back as typed errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_come_from_one_mesh_ca_whichever_replica_answers() {
    let store = memory_store();
    let (a, b) = (Replica::start(&store).await, Replica::start(&store).await);
    let admin = Client::new(&a.url);
    admin
        .create(&ResourcePath::mesh("m"), &json!({}), None)
        .await
        .unwrap();
    let node = ResourcePath::new(model::Kind::VirtualNode, "m", None, "web");
    admin
        .create(
            &node,
            &json!({ "listeners": [ { "portMapping": { "port": 80, "protocol": "http" } } ] }),
            None,
        )
        .await
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let via_b = Client::new(&format!("{},{}", dead_url().await, b.url));
    let issued = via_b
        .issue_certificate(
            "m",
            client::IdentityKind::VirtualNode,
            "web",
            &key.public_key_pem(),
        )
        .await
        .unwrap();
    assert_eq!(via_b.base_url(), b.url);
    assert_eq!(issued.identity, "spiffe://m/virtualNode/web");
    assert!(issued.certificate.ends_with(&issued.trust_bundle));
    assert!(issued.not_after > issued.not_before);
    let bundle = admin.trust_bundle("m").await.unwrap();
    assert_eq!(bundle, issued.trust_bundle);
    assert!(
        bundle.starts_with("-----BEGIN CERTIFICATE-----"),
        "{bundle}"
    );

    let missing = admin
        .issue_certificate(
            "m",
            client::IdentityKind::VirtualGateway,
            "web",
            &key.public_key_pem(),
        )
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    let bad = admin
        .issue_certificate("m", client::IdentityKind::VirtualNode, "web", "garbage")
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, ClientError::Api { status: 400, message, .. } if message.contains("publicKey")),
        "{bad}"
    );
    a.stop().await;
    b.stop().await;
}
