//! Real handshakes over real sockets on 127.0.0.1: what each listener mode accepts and refuses
//! (with the reason counted), what a mesh client refuses of a server, a certificate swapped
//! under load, expired certificates, and the App Mesh sources aviary does not support.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use model::typed::{
    ClientPolicyTls, ClientTlsCertificate, ListenerTls, ListenerTlsValidation, SanMatch,
    TlsCertificate, TlsMode, TlsTrust, TlsValidationContext,
};
use model::wire::IdentityKind;
use prometheus_client::registry::Registry;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::verify::Trust;
use super::*;

/// A test CA made with rcgen.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A leaf certificate and its key, as rustls and as PEM files take them.
pub(crate) struct Leaf {
    pub der: CertificateDer<'static>,
    pub key: Arc<CertifiedKey>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// Each with a name of its own, as the mesh CAs have: webpki finds an issuer by name, so
    /// two CAs of one name would make a foreign certificate a bad signature, not an unknown CA.
    pub fn new() -> Ca {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {n}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf naming `sans`: `spiffe://...` ones as URI SANs, the others as DNS names.
    pub fn leaf(&self, sans: &[&str]) -> Leaf {
        self.leaf_with(sans, |_| {})
    }

    /// A leaf whose validity ended in 2021.
    pub fn expired_leaf(&self, sans: &[&str]) -> Leaf {
        self.leaf_with(sans, |params| {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    fn leaf_with(&self, sans: &[&str], adjust: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans
            .iter()
            .map(|san| {
                let name = san.to_string().try_into().unwrap();
                if san.starts_with("spiffe://") {
                    SanType::URI(name)
                } else {
                    SanType::DnsName(name)
                }
            })
            .collect();
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Leaf {
            der: cert.der().clone(),
            key: files::key_pair(vec![cert.der().clone()], private).unwrap(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn trust(&self) -> Arc<Trust> {
        Arc::new(Trust::new(files::roots_from_pem(&self.pem).unwrap(), "test").unwrap())
    }
}

/// A mesh identity of node `name` in mesh `m` whose certificate comes from `ca`.
pub(crate) fn identity(ca: &Ca, trust: &Ca, name: &str) -> (MeshIdentity, Leaf) {
    let leaf = ca.leaf(&[&format!("spiffe://m/virtualNode/{name}")]);
    let resolver = Arc::new(CertResolver::empty(name));
    resolver.set(leaf.key.clone(), None);
    let name = IdentityName {
        mesh: "m".into(),
        kind: IdentityKind::VirtualNode,
        name: name.into(),
    };
    (
        MeshIdentity::from_parts(name, resolver, trust.trust()),
        leaf,
    )
}

/// PEM files in a temporary directory.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        shown(&path)
    }

    fn path(&self, name: &str) -> String {
        shown(&self.0.path().join(name))
    }
}

fn shown(path: &Path) -> String {
    PathBuf::from(path).display().to_string()
}

/// What the test listener saw of one connection.
type Outcome = Result<(bool, Option<PeerIdentity>), Refusal>;

/// A listener that runs [`accept`] on every connection, reports each outcome, counts
/// refusals in `metrics`, and answers each line it reads with "tls" or "plain".
struct Listener {
    addr: std::net::SocketAddr,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
}

impl Listener {
    async fn start(tls: ServerTls, metrics: TlsMetrics) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (report, outcomes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = listener.accept().await.unwrap();
                let (tls, report, metrics) = (tls.clone(), report.clone(), metrics.clone());
                tokio::spawn(async move {
                    match accept(stream, &tls).await {
                        Ok(accepted) => {
                            let _ = report.send(Ok((accepted.is_tls(), accepted.peer().cloned())));
                            let answer = if accepted.is_tls() { "tls" } else { "plain" };
                            echo(accepted, answer).await;
                        }
                        Err(refused) => {
                            TlsRefused {
                                listener: "inbound:test",
                                peer,
                                refused: &refused,
                            }
                            .emit(&metrics);
                            let _ = report.send(Err(refused.reason));
                        }
                    }
                });
            }
        });
        Listener { addr, outcomes }
    }

    async fn outcome(&mut self) -> Outcome {
        tokio::time::timeout(Duration::from_secs(10), self.outcomes.recv())
            .await
            .expect("the listener reports within 10 s")
            .expect("the listener runs")
    }
}

async fn echo(stream: impl AsyncRead + AsyncWrite + Unpin, answer: &str) {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    while let Ok(n) = stream.read_line(&mut line).await {
        if n == 0
            || stream
                .write_all(format!("{answer}\n").as_bytes())
                .await
                .is_err()
        {
            return;
        }
        line.clear();
    }
}

/// Sends a line and reads the answer line.
async fn ask(stream: impl AsyncRead + AsyncWrite + Unpin) -> std::io::Result<String> {
    let mut stream = BufReader::new(stream);
    stream.write_all(b"hello\n").await?;
    stream.flush().await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    Ok(line.trim().to_string())
}

async fn ask_tls(addr: std::net::SocketAddr, client: &ClientTls) -> Result<String, String> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let tls = connect(stream, client, "server.local")
        .await
        .map_err(|e| e.to_string())?;
    ask(tls).await.map_err(|e| e.to_string())
}

async fn ask_plain(addr: std::net::SocketAddr) -> Result<String, String> {
    let stream = TcpStream::connect(addr).await.unwrap();
    ask(stream).await.map_err(|e| e.to_string())
}

fn registered() -> (Registry, TlsMetrics) {
    let mut registry = Registry::default();
    let metrics = TlsMetrics::register(&mut registry);
    (registry, metrics)
}

fn rendered(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out
}

/// A client policy whose files (a certificate for `sans` from `ca`, if any) trust `trust_ca`
/// and expect the server to be `server.local`.
fn policy(files: &Files, name: &str, trust_ca: &Ca, cert: Option<(&Ca, &[&str])>) -> ClientTls {
    policy_with(files, name, trust_ca, cert.map(|(ca, sans)| ca.leaf(sans)))
}

fn policy_with(files: &Files, name: &str, trust_ca: &Ca, leaf: Option<Leaf>) -> ClientTls {
    let certificate = leaf.map(|leaf| ClientTlsCertificate::File {
        certificate_chain: files.write(&format!("{name}.pem"), &leaf.cert_pem),
        private_key: files.write(&format!("{name}.key"), &leaf.key_pem),
    });
    let policy = ClientPolicyTls {
        enforce: None,
        ports: vec![],
        certificate,
        validation: TlsValidationContext {
            trust: TlsTrust::File {
                certificate_chain: files.write(&format!("{name}-ca.pem"), &trust_ca.pem),
            },
            subject_alternative_names: Some(SanMatch {
                exact: vec!["server.local".into()],
            }),
        },
    };
    ClientTls::from_policy(&policy).unwrap()
}

#[tokio::test]
async fn strict_accepts_only_allowed_clients_of_its_ca_and_counts_each_refusal() {
    let (ca, other) = (Ca::new(), Ca::new());
    let files = Files::new();
    let server = ca.leaf(&["server.local"]);
    let listener_tls = ListenerTls {
        mode: TlsMode::Strict,
        certificate: TlsCertificate::File {
            certificate_chain: files.write("server.pem", &server.cert_pem),
            private_key: files.write("server.key", &server.key_pem),
        },
        validation: Some(ListenerTlsValidation {
            trust: TlsTrust::File {
                certificate_chain: files.write("ca.pem", &ca.pem),
            },
            subject_alternative_names: Some(SanMatch {
                exact: vec!["spiffe://m/virtualNode/good".into(), "good.local".into()],
            }),
        }),
    };
    let (registry, metrics) = registered();
    let mut listener =
        Listener::start(ServerTls::from_listener(&listener_tls).unwrap(), metrics).await;
    let good_uri: &[&str] = &["spiffe://m/virtualNode/good"];
    let cases: Vec<(&str, Option<ClientTls>, Outcome)> = vec![
        ("plain text", None, Err(Refusal::PlainTextInStrict)),
        (
            "an allowed SPIFFE ID",
            Some(policy(&files, "good", &ca, Some((&ca, good_uri)))),
            Ok((
                true,
                Some(PeerIdentity {
                    uris: vec!["spiffe://m/virtualNode/good".into()],
                    dns_names: vec![],
                }),
            )),
        ),
        (
            "an allowed DNS name",
            Some(policy(&files, "dns", &ca, Some((&ca, &["good.local"])))),
            Ok((
                true,
                Some(PeerIdentity {
                    uris: vec![],
                    dns_names: vec!["good.local".into()],
                }),
            )),
        ),
        (
            "a certificate from another CA",
            Some(policy(&files, "foreign", &ca, Some((&other, good_uri)))),
            Err(Refusal::UnknownCa),
        ),
        (
            "a SAN the listener does not list",
            Some(policy(
                &files,
                "evil",
                &ca,
                Some((&ca, &["spiffe://m/virtualNode/evil", "evil.local"])),
            )),
            Err(Refusal::SanNotAllowed),
        ),
        (
            "no client certificate",
            Some(policy(&files, "anonymous", &ca, None)),
            Err(Refusal::NoClientCertificate),
        ),
        (
            "an expired certificate",
            Some(policy_with(
                &files,
                "expired",
                &ca,
                Some(ca.expired_leaf(good_uri)),
            )),
            Err(Refusal::BadCertificate),
        ),
    ];
    for (what, client, expected) in &cases {
        let answer = match client {
            None => ask_plain(listener.addr).await,
            Some(client) => ask_tls(listener.addr, client).await,
        };
        assert_eq!(&listener.outcome().await, expected, "{what}");
        // The client gets an answer exactly when the listener accepted it.
        assert_eq!(answer.is_ok(), expected.is_ok(), "{what}: {answer:?}");
        if expected.is_ok() {
            assert_eq!(answer.unwrap(), "tls", "{what}");
        }
    }
    let metrics = rendered(&registry);
    for reason in [
        "plain_text_in_strict",
        "unknown_ca",
        "san_not_allowed",
        "no_client_certificate",
        "bad_certificate",
    ] {
        let line = format!(
            "aviary_proxy_tls_refused_total{{listener=\"inbound:test\",reason=\"{reason}\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

/// STRICT without `validation` is one-way TLS: no client certificate is asked for; a client
/// policy without `subjectAlternativeNames` checks the chain only.
#[tokio::test]
async fn strict_without_validation_is_one_way_tls() {
    let (ca, other) = (Ca::new(), Ca::new());
    let files = Files::new();
    let server = ca.leaf(&["anything.local"]);
    let listener_tls = ListenerTls {
        mode: TlsMode::Strict,
        certificate: TlsCertificate::File {
            certificate_chain: files.write("server.pem", &server.cert_pem),
            private_key: files.write("server.key", &server.key_pem),
        },
        validation: None,
    };
    let mut listener = Listener::start(
        ServerTls::from_listener(&listener_tls).unwrap(),
        TlsMetrics::default(),
    )
    .await;
    let chain_only = |trust: &Ca| {
        ClientTls::from_policy(&ClientPolicyTls {
            enforce: None,
            ports: vec![],
            certificate: None,
            validation: TlsValidationContext {
                trust: TlsTrust::File {
                    certificate_chain: files.write("trust.pem", &trust.pem),
                },
                subject_alternative_names: None,
            },
        })
        .unwrap()
    };
    assert_eq!(
        ask_tls(listener.addr, &chain_only(&ca)).await.as_deref(),
        Ok("tls")
    );
    assert_eq!(listener.outcome().await, Ok((true, None)));
    // The server's certificate names no `server.local`, which the SAN-checking policy wants.
    let refused = connect(
        TcpStream::connect(listener.addr).await.unwrap(),
        &policy(&files, "named", &ca, None),
        "server.local",
    )
    .await
    .unwrap_err();
    assert_eq!(refused.reason, Refusal::SanNotAllowed, "{refused}");
    let refused = connect(
        TcpStream::connect(listener.addr).await.unwrap(),
        &chain_only(&other),
        "server.local",
    )
    .await
    .unwrap_err();
    assert_eq!(refused.reason, Refusal::UnknownCa, "{refused}");
}

#[tokio::test]
async fn permissive_takes_plain_text_and_tls_on_one_port_and_disabled_only_plain_text() {
    let ca = Ca::new();
    let (server, _) = identity(&ca, &ca, "server");
    let (client, _) = identity(&ca, &ca, "client");
    let client = ClientTls::mesh(&client, "server");
    let mut permissive = Listener::start(
        ServerTls::mesh(&server, TlsMode::Permissive, None),
        TlsMetrics::default(),
    )
    .await;
    assert_eq!(ask_plain(permissive.addr).await.as_deref(), Ok("plain"));
    assert_eq!(permissive.outcome().await, Ok((false, None)));
    assert_eq!(
        ask_tls(permissive.addr, &client).await.as_deref(),
        Ok("tls")
    );
    let (tls, peer) = permissive.outcome().await.unwrap();
    assert!(tls);
    assert_eq!(
        peer.as_ref().and_then(|p| p.spiffe_id()),
        Some("spiffe://m/virtualNode/client")
    );

    let mut disabled = Listener::start(
        ServerTls::mesh(&server, TlsMode::Disabled, None),
        TlsMetrics::default(),
    )
    .await;
    assert_eq!(ask_plain(disabled.addr).await.as_deref(), Ok("plain"));
    assert_eq!(disabled.outcome().await, Ok((false, None)));
    // A TLS client's hello is read as plain text: it gets no handshake.
    assert!(ask_tls(disabled.addr, &client).await.is_err());
    assert_eq!(disabled.outcome().await, Ok((false, None)));
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_dropped_after_the_handshake_timeout() {
    let ca = Ca::new();
    let (server, _) = identity(&ca, &ca, "server");
    for mode in [TlsMode::Strict, TlsMode::Permissive] {
        let tls =
            ServerTls::mesh(&server, mode, None).with_handshake_timeout(Duration::from_millis(200));
        let mut listener = Listener::start(tls, TlsMetrics::default()).await;
        let _silent = TcpStream::connect(listener.addr).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(listener.outcome().await, Err(Refusal::Timeout), "{mode:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{mode:?}");
    }
}

#[tokio::test]
async fn a_mesh_client_refuses_a_server_that_is_not_the_node_it_expects_or_not_of_its_ca() {
    let (ca, other) = (Ca::new(), Ca::new());
    let (client, _) = identity(&ca, &ca, "client");
    let to_server = ClientTls::mesh(&client, "server");
    let cases = [
        (
            "the expected node",
            identity(&ca, &ca, "server").0,
            Ok("tls"),
        ),
        (
            "another node of the mesh",
            identity(&ca, &ca, "impostor").0,
            Err(Refusal::SanNotAllowed),
        ),
        (
            "the expected name from another CA",
            identity(&other, &ca, "server").0,
            Err(Refusal::UnknownCa),
        ),
    ];
    for (what, server, expected) in cases {
        let listener = Listener::start(
            ServerTls::mesh(&server, TlsMode::Strict, None),
            TlsMetrics::default(),
        )
        .await;
        let stream = TcpStream::connect(listener.addr).await.unwrap();
        let got = match connect(stream, &to_server, "10.0.0.1").await {
            Ok(tls) => Ok(ask(tls).await.unwrap()),
            Err(refused) => Err(refused.reason),
        };
        assert_eq!(got.as_deref().map_err(|r| *r), expected, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swapped_under_load_fails_no_request_and_new_handshakes_get_it() {
    let ca = Ca::new();
    let (server, first) = identity(&ca, &ca, "server");
    let (client, _) = identity(&ca, &ca, "client");
    let client = ClientTls::mesh(&client, "server");
    let listener = Listener::start(
        ServerTls::mesh(&server, TlsMode::Strict, None),
        TlsMetrics::default(),
    )
    .await;
    let addr = listener.addr;
    // A connection opened before the swap, used across it.
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut kept = BufReader::new(connect(stream, &client, "server").await.unwrap());

    let second = ca.leaf(&["spiffe://m/virtualNode/server"]);
    let swapped = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, swapped, failures, done) = (
            client.clone(),
            swapped.clone(),
            failures.clone(),
            done.clone(),
        );
        workers.push(tokio::spawn(async move {
            // (the swap had happened when the connection started, the leaf it was given)
            let mut seen = Vec::new();
            for _ in 0..60 {
                let after_swap = swapped.load(Ordering::SeqCst);
                let stream = TcpStream::connect(addr).await.unwrap();
                match connect(stream, &client, "server").await {
                    Ok(mut tls) => {
                        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
                        match ask(&mut tls).await.as_deref() {
                            Ok("tls") => {
                                done.fetch_add(1, Ordering::SeqCst);
                                seen.push((after_swap, leaf));
                            }
                            _ => {
                                failures.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            seen
        }));
    }
    // Swap once a few handshakes are done, so some happen on each side of it however slow
    // the machine is.
    let waiting = tokio::time::Instant::now();
    while failures.load(Ordering::SeqCst) == 0 && done.load(Ordering::SeqCst) < 8 {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "no handshake in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.resolver().set(second.key.clone(), None);
    swapped.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for worker in workers {
        seen.extend(
            tokio::time::timeout(Duration::from_secs(60), worker)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert_eq!(seen.len(), 240);
    assert!(
        seen.iter().any(|(_, leaf)| *leaf == first.der),
        "some before the swap"
    );
    for (after_swap, leaf) in &seen {
        if *after_swap {
            assert!(
                *leaf == second.der,
                "a handshake after the swap got the old certificate"
            );
        }
    }
    assert_eq!(
        ask(&mut kept).await.unwrap(),
        "tls",
        "the connection from before the swap"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_never_offered_as_server_or_client() {
    let ca = Ca::new();
    let (server, leaf) = identity(&ca, &ca, "server");
    let (client, client_leaf) = identity(&ca, &ca, "client");
    let to_server = ClientTls::mesh(&client, "server");
    let (registry, metrics) = registered();
    let mut listener =
        Listener::start(ServerTls::mesh(&server, TlsMode::Strict, None), metrics).await;
    let past = SystemTime::now() - Duration::from_secs(1);

    server.resolver().set(leaf.key.clone(), Some(past));
    assert!(server.resolver().current().is_none());
    assert!(ask_tls(listener.addr, &to_server).await.is_err());
    assert_eq!(listener.outcome().await, Err(Refusal::NoLocalCertificate));
    assert!(rendered(&registry).contains("reason=\"no_local_certificate\"} 1"));

    // Even past the early check, rustls gets nothing from the resolver.
    use rustls::client::ResolvesClientCert;
    client.resolver().set(client_leaf.key.clone(), Some(past));
    assert!(client.resolver().resolve(&[], &[]).is_none());
    assert!(!client.resolver().has_certs());
    server.resolver().set(
        leaf.key.clone(),
        Some(SystemTime::now() + Duration::from_secs(60)),
    );
    let stream = TcpStream::connect(listener.addr).await.unwrap();
    let refused = connect(stream, &to_server, "server").await.unwrap_err();
    assert_eq!(refused.reason, Refusal::NoLocalCertificate, "{refused}");
}

#[test]
fn sds_and_acm_sources_are_unsupported_and_missing_files_are_named() {
    let files = Files::new();
    let ca = Ca::new();
    let leaf = ca.leaf(&["a.local"]);
    let chain = files.write("chain.pem", &leaf.cert_pem);
    let key = files.write("key.pem", &leaf.key_pem);
    let trust = files.write("ca.pem", &ca.pem);
    let file = TlsCertificate::File {
        certificate_chain: chain.clone(),
        private_key: key.clone(),
    };
    let listener = |certificate: TlsCertificate, trust: Option<TlsTrust>| ListenerTls {
        mode: TlsMode::Strict,
        certificate,
        validation: trust.map(|trust| ListenerTlsValidation {
            trust,
            subject_alternative_names: None,
        }),
    };
    fn check(result: Result<ServerTls, TlsError>, expected: &str) {
        let error = result.map(|_| ()).unwrap_err().to_string();
        assert_eq!(error, expected);
    }
    check(
        ServerTls::from_listener(&listener(
            TlsCertificate::Sds {
                secret_name: "s".into(),
            },
            None,
        )),
        "tls.certificate: the sds source is not supported by aviary (use file, or the mesh CA)",
    );
    check(
        ServerTls::from_listener(&listener(
            TlsCertificate::Acm {
                certificate_arn: "arn:aws:acm:x".into(),
            },
            None,
        )),
        "tls.certificate: the acm source is not supported by aviary (use file, or the mesh CA)",
    );
    check(
        ServerTls::from_listener(&listener(
            file.clone(),
            Some(TlsTrust::Sds {
                secret_name: "s".into(),
            }),
        )),
        "tls.validation.trust: the sds source is not supported by aviary (use file, or the mesh CA)",
    );
    let missing = files.path("missing.pem");
    check(
        ServerTls::from_listener(&listener(
            TlsCertificate::File {
                certificate_chain: missing.clone(),
                private_key: key.clone(),
            },
            None,
        )),
        &format!(
            "tls.certificate.file.certificateChain: cannot use {missing}: I/O error: No such file or directory (os error 2)"
        ),
    );
    check(
        ServerTls::from_listener(&listener(
            file.clone(),
            Some(TlsTrust::File {
                certificate_chain: key.clone(),
            }),
        )),
        &format!(
            "tls.validation.trust.file.certificateChain: cannot use {key}: no PEM certificate in it"
        ),
    );
    let other_key = files.write("other.key", &ca.leaf(&["b.local"]).key_pem);
    let mismatched = ServerTls::from_listener(&listener(
        TlsCertificate::File {
            certificate_chain: chain.clone(),
            private_key: other_key.clone(),
        },
        None,
    ));
    let error = mismatched.map(|_| ()).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("tls.certificate.file.privateKey: cannot use {other_key}: the key is not the certificate's")),
        "{error}"
    );
    // DISABLED uses no certificate, so none is read.
    let disabled = ListenerTls {
        mode: TlsMode::Disabled,
        ..listener(
            TlsCertificate::Sds {
                secret_name: "s".into(),
            },
            None,
        )
    };
    assert_eq!(
        ServerTls::from_listener(&disabled).unwrap().mode(),
        TlsMode::Disabled
    );
    assert!(
        ServerTls::from_listener(&listener(
            file,
            Some(TlsTrust::File {
                certificate_chain: trust.clone()
            })
        ))
        .is_ok()
    );

    let client = |certificate: Option<ClientTlsCertificate>, trust: TlsTrust| ClientPolicyTls {
        enforce: None,
        ports: vec![],
        certificate,
        validation: TlsValidationContext {
            trust,
            subject_alternative_names: None,
        },
    };
    let file_trust = TlsTrust::File {
        certificate_chain: trust,
    };
    let client_error =
        |policy: ClientPolicyTls| ClientTls::from_policy(&policy).unwrap_err().to_string();
    assert_eq!(
        client_error(client(
            Some(ClientTlsCertificate::Sds {
                secret_name: "s".into()
            }),
            file_trust.clone()
        )),
        "tls.certificate: the sds source is not supported by aviary (use file, or the mesh CA)"
    );
    assert_eq!(
        client_error(client(
            None,
            TlsTrust::Acm {
                certificate_authority_arns: vec!["arn:aws:acm-pca:x".into()]
            }
        )),
        "tls.validation.trust: the acm source is not supported by aviary (use file, or the mesh CA)"
    );
    assert!(
        ClientTls::from_policy(&client(
            Some(ClientTlsCertificate::File {
                certificate_chain: chain,
                private_key: key
            }),
            file_trust
        ))
        .is_ok()
    );
}

#[test]
fn a_client_policy_applies_where_it_says_and_keys_tell_policies_apart() {
    let files = Files::new();
    let ca = Ca::new();
    let trust = files.write("ca.pem", &ca.pem);
    let policy = |enforce: Option<bool>, ports: Vec<u16>, sans: &[&str]| ClientPolicyTls {
        enforce,
        ports,
        certificate: None,
        validation: TlsValidationContext {
            trust: TlsTrust::File {
                certificate_chain: trust.clone(),
            },
            subject_alternative_names: Some(SanMatch {
                exact: sans.iter().map(|s| s.to_string()).collect(),
            }),
        },
    };
    let tls = |p: ClientPolicyTls| ClientTls::from_policy(&p).unwrap();
    fn check(tls: &ClientTls, port: u16, expected: bool) {
        assert_eq!(tls.applies_to(port), expected, "{tls:?} port {port}");
    }
    check(&tls(policy(None, vec![], &["a"])), 80, true);
    check(&tls(policy(Some(true), vec![8443], &["a"])), 8443, true);
    check(&tls(policy(Some(true), vec![8443], &["a"])), 80, false);
    check(&tls(policy(Some(false), vec![], &["a"])), 80, false);

    let a = tls(policy(None, vec![], &["a"]));
    assert_eq!(
        a.key(),
        tls(policy(None, vec![], &["a"])).key(),
        "same policy, same pool"
    );
    assert_ne!(a.key(), tls(policy(None, vec![], &["b"])).key());
    assert_ne!(a.key(), a.clone().with_alpn(vec![b"h2".to_vec()]).key());
    let (me, _) = identity(&ca, &ca, "me");
    assert_eq!(
        ClientTls::mesh(&me, "x").key(),
        ClientTls::mesh(&me, "x").key()
    );
    assert_ne!(
        ClientTls::mesh(&me, "x").key(),
        ClientTls::mesh(&me, "y").key()
    );
}

/// What the agent's accept loop will do: hyper over [`Accepted`] and over [`connect`]'s stream,
/// through `TokioIo`, keep-alive included.
#[tokio::test]
async fn hyper_serves_and_sends_over_both_kinds_of_connection() {
    use http_body_util::{BodyExt, Empty, Full};
    use hyper_util::rt::TokioIo;

    let ca = Ca::new();
    let (server, _) = identity(&ca, &ca, "server");
    let (client, _) = identity(&ca, &ca, "client");
    let tls = ServerTls::mesh(&server, TlsMode::Permissive, None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let Ok(accepted) = accept(stream, &tls).await else {
                continue;
            };
            let who = accepted
                .peer()
                .and_then(|p| p.spiffe_id().map(str::to_string))
                .unwrap_or_else(|| "plain".into());
            let service = hyper::service::service_fn(move |_request| {
                let body = Full::new(bytes::Bytes::from(who.clone()));
                async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(body)) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(accepted), service),
            );
        }
    });

    let to_server = ClientTls::mesh(&client, "server");
    for use_tls in [true, false] {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = if use_tls {
            let stream = connect(stream, &to_server, "server").await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(
                TokioIo::new(stream),
            )
            .await
            .unwrap();
            (sender, tokio::spawn(async move { conn.await.is_ok() }))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(
                TokioIo::new(stream),
            )
            .await
            .unwrap();
            (sender, tokio::spawn(async move { conn.await.is_ok() }))
        };
        let expected = if use_tls {
            "spiffe://m/virtualNode/client"
        } else {
            "plain"
        };
        for _ in 0..3 {
            let request = hyper::Request::get("/")
                .header("host", "server")
                .body(Empty::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, expected.as_bytes(), "tls {use_tls}");
        }
        drop(sender);
        assert!(
            conn.await.unwrap(),
            "the connection ends cleanly (tls {use_tls})"
        );
    }
}
