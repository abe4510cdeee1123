//! The mesh CA: which keys are accepted, leaves that chain to their own mesh's CA and no other,
//! refusals that store nothing, one CA per mesh however many replicas race to make it.

use std::sync::Arc;
use std::time::Duration;

use model::wire::IssuedCertificate;
use model::{Kind, ResourcePath};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::x509::{KeyError, parse_public_key};
use crate::{Config, Control, ControlError, SharedStore};

const TTL: Duration = Duration::from_secs(600);

async fn control(store: Arc<dyn store::Store>, ttl: Duration) -> Result<Control, ControlError> {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        store: Some(SharedStore(store)),
        cert_ttl: ttl,
        ..Config::default()
    };
    Control::bind(config, CancellationToken::new()).await
}

/// Meshes `m1` and `m2`, each with node `web` and gateway `gw`.
async fn meshes() -> (Control, Arc<dyn store::Store>) {
    let store: Arc<dyn store::Store> = Arc::new(store::MemoryStore::new());
    let control = control(store.clone(), TTL).await.unwrap();
    let resources = &control.app.resources;
    for mesh in ["m1", "m2"] {
        resources
            .create(&ResourcePath::mesh(mesh), &json!({ "meshName": mesh }))
            .await
            .unwrap();
        let listener =
            json!({ "listeners": [ { "portMapping": { "port": 80, "protocol": "http" } } ] });
        resources
            .create(
                &ResourcePath::new(Kind::VirtualNode, mesh, None, "web"),
                &json!({ "virtualNodeName": "web", "spec": listener }),
            )
            .await
            .unwrap();
        resources
            .create(
                &ResourcePath::new(Kind::VirtualGateway, mesh, None, "gw"),
                &json!({ "virtualGatewayName": "gw", "spec": listener }),
            )
            .await
            .unwrap();
    }
    (control, store)
}

fn request(kind: &str, name: &str, public_key: &str) -> Value {
    json!({ "kind": kind, "name": name, "publicKey": public_key })
}

fn p256_key() -> String {
    rcgen::KeyPair::generate().unwrap().public_key_pem()
}

fn der(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Verifies the leaf of `issued` against `bundle` at Unix second `at`, for TLS client or
/// server use.
fn verify(
    issued: &IssuedCertificate,
    bundle: &str,
    at: u64,
    usage: webpki::KeyUsage,
) -> Result<(), webpki::Error> {
    let anchors = der(bundle);
    let anchors: Vec<_> = anchors
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(ca).unwrap())
        .collect();
    let chain = der(&issued.certificate);
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        UnixTime::since_unix_epoch(Duration::from_secs(at)),
        usage,
        None,
        None,
    )
    .map(drop)
}

#[test]
fn accepts_the_public_keys_rcgen_makes() {
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let parsed = parse_public_key(&key.public_key_pem());
        assert!(parsed.is_ok(), "{alg:?}: {parsed:?}");
    }
}

/// Public keys as `openssl pkey -pubout` writes them (OpenSSL 3), the other common source.
const OPENSSL_P256: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEpG8GZUzc+FMIqGsvbN2EG0gLIVFH
TcuGiZTBHvQ4nehcP2zRB1Dqlx32qN7E401CD55ywN4bFAK10sQW30RyBQ==
-----END PUBLIC KEY-----
";
const OPENSSL_P384: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE0etY62Nqnr+mw3XFCA+qteZA5P+xG2cS
YlTHkaeaIIiEKATexMAfV1YycSOySAtB/VGEPgQiZ6MGkjNOhgo2+K4bvyuIuvpc
UdaR5uP+NzRtVPHdANma0/XjyLVCodoy
-----END PUBLIC KEY-----
";
const OPENSSL_ED25519: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAE15P5K0Q9VEV18YGTyNLADkAUAqnuW5ryfwy08Y/EZA=
-----END PUBLIC KEY-----
";
const OPENSSL_RSA: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDm8XVvBsUHImjxSoliZHbarf5W
3HDptf+ucS7bfKqY9tKUOELI41Ea31ByiiTAOhCkOISY1fB0Qs39ZZLh7ar8scsB
Py5/K/mWfYUeCrWT/d+pZDg2HT8gSCNWvfLRV2MVaK5bUyPPV7DQ5zZZWNEuwr4W
NMlF0ilqTyCSSH5uKQIDAQAB
-----END PUBLIC KEY-----
";

#[test]
fn accepts_the_public_keys_openssl_writes_but_rsa() {
    for pem in [OPENSSL_P256, OPENSSL_P384, OPENSSL_ED25519] {
        assert!(parse_public_key(pem).is_ok(), "{pem}");
    }
    assert!(matches!(
        parse_public_key(OPENSSL_RSA),
        Err(KeyError::Unsupported)
    ));
}

#[test]
fn refuses_what_is_not_an_accepted_public_key() {
    let good = p256_key();
    let good_der = rustls::pki_types::SubjectPublicKeyInfoDer::from_pem_slice(good.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    let pem_of = |der: &[u8]| {
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            pem_base64(der)
        )
    };
    // The encoder below is right: the good key, re-encoded, still parses.
    assert!(parse_public_key(&pem_of(&good_der)).is_ok());
    // The point's last byte changed: almost surely no longer on the curve.
    let mut off_curve = good_der.clone();
    *off_curve.last_mut().unwrap() ^= 1;
    let mut trailing = good_der.clone();
    trailing.push(0);
    let certificate = rcgen::generate_simple_self_signed(vec!["x".into()])
        .unwrap()
        .cert
        .pem();
    let check = |input: &str, expected: fn(&KeyError) -> bool| {
        let got = parse_public_key(input);
        assert!(matches!(&got, Err(e) if expected(e)), "{input:?}: {got:?}");
    };
    check("", |e| matches!(e, KeyError::Pem(_)));
    check("not a key", |e| matches!(e, KeyError::Pem(_)));
    check(&certificate, |e| matches!(e, KeyError::Pem(_)));
    check(&pem_of(&off_curve), |e| matches!(e, KeyError::NotOnCurve));
    check(&pem_of(&trailing), |e| matches!(e, KeyError::Unsupported));
    check(&pem_of(&good_der[..40]), |e| {
        matches!(e, KeyError::Unsupported)
    });
}

/// Standard base64 with padding, one line: PEM readers take any line length.
fn pem_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_chain_to_their_own_mesh_ca_and_name_only_their_spiffe_id() {
    let (control, _) = meshes().await;
    let app = &control.app;
    let bundle = app.trust_bundle("m1").await.unwrap();
    let issued = app
        .issue_certificate("m1", request("virtualNode", "web", &p256_key()))
        .await
        .unwrap();
    assert_eq!(issued.identity, "spiffe://m1/virtualNode/web");
    assert_eq!(issued.trust_bundle, bundle);
    // Leaf, then the CA: what a TLS config is handed.
    let chain = der(&issued.certificate);
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], der(&bundle)[0]);
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    assert_eq!(
        leaf.valid_uri_names().collect::<Vec<_>>(),
        ["spiffe://m1/virtualNode/web"]
    );
    assert_eq!(leaf.valid_dns_names().count(), 0);

    // Valid for TTL from issue, starting a minute before it: checked in the certificate
    // itself, one second inside and outside each end.
    assert_eq!(
        issued.not_after - issued.not_before,
        (TTL + super::CLOCK_SKEW).as_secs()
    );
    let (start, end) = (issued.not_before, issued.not_after);
    for usage in [
        webpki::KeyUsage::client_auth(),
        webpki::KeyUsage::server_auth(),
    ] {
        verify(&issued, &bundle, start, usage).unwrap();
    }
    verify(&issued, &bundle, end, webpki::KeyUsage::client_auth()).unwrap();
    assert!(matches!(
        verify(&issued, &bundle, start - 1, webpki::KeyUsage::client_auth()),
        Err(webpki::Error::CertNotValidYet { .. })
    ));
    assert!(matches!(
        verify(&issued, &bundle, end + 1, webpki::KeyUsage::client_auth()),
        Err(webpki::Error::CertExpired { .. })
    ));

    // The same CA signs the next one; the other mesh's CA verifies neither.
    let gateway = app
        .issue_certificate("m1", request("virtualGateway", "gw", &p256_key()))
        .await
        .unwrap();
    assert_eq!(gateway.identity, "spiffe://m1/virtualGateway/gw");
    assert_eq!(gateway.trust_bundle, bundle);
    verify(
        &gateway,
        &bundle,
        start + 5,
        webpki::KeyUsage::server_auth(),
    )
    .unwrap();
    let other = app.trust_bundle("m2").await.unwrap();
    assert_ne!(other, bundle);
    assert!(matches!(
        verify(&issued, &other, start + 5, webpki::KeyUsage::client_auth()),
        Err(webpki::Error::UnknownIssuer)
    ));

    let metrics = app.telemetry.render(0, true, 0);
    for line in [
        r#"aviary_control_certificates_issued_total{mesh="m1",kind="virtualNode"} 1"#,
        r#"aviary_control_certificates_issued_total{mesh="m1",kind="virtualGateway"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_name_the_problem_and_store_nothing() {
    let (control, store) = meshes().await;
    let app = &control.app;
    let before = store.revision();
    let key = p256_key();
    let cases: [(&str, Value, u16, &str); 7] = [
        (
            "m1",
            request("virtualNode", "nope", &key),
            404,
            "virtual node 'nope' in mesh 'm1' not found",
        ),
        (
            "m1",
            request("virtualGateway", "web", &key),
            404,
            "virtual gateway 'web' in mesh 'm1' not found",
        ),
        (
            "absent",
            request("virtualNode", "web", &key),
            404,
            "mesh 'absent'",
        ),
        (
            "m1",
            request(
                "virtualNode",
                "web",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ),
            400,
            "publicKey: ",
        ),
        (
            "m1",
            json!({ "kind": "virtualNode", "name": "web", "csr": "-----BEGIN CERTIFICATE REQUEST-----" }),
            400,
            "csr: ",
        ),
        ("m1", request("virtualRouter", "web", &key), 400, "kind"),
        ("m1", request("virtualNode", "", &key), 400, "name"),
    ];
    for (mesh, body, status, message) in cases {
        let what = body.to_string();
        let error = app.issue_certificate(mesh, body).await.unwrap_err();
        assert_eq!(error.status().as_u16(), status, "{what}: {error:?}");
        assert!(error.to_string().contains(message), "{what}: {error}");
    }
    // Every problem at once.
    let error = app
        .issue_certificate(
            "m1",
            json!({ "kind": "virtualRouter", "name": "-x", "publicKey": "x", "extra": 1 }),
        )
        .await
        .unwrap_err()
        .to_string();
    for field in ["kind: ", "name: ", "publicKey: ", "extra: "] {
        assert!(error.contains(field), "{field} in {error}");
    }
    assert!(app.trust_bundle("absent").await.is_err());
    assert_eq!(
        store.revision(),
        before,
        "a refused request wrote something"
    );
    assert!(store.range("ca/").unwrap().0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_racing_to_make_a_mesh_ca_end_with_one() {
    let (first, store) = meshes().await;
    let second = control(store.clone(), TTL).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = if i % 2 == 0 {
            first.app.clone()
        } else {
            second.app.clone()
        };
        tasks.push(tokio::spawn(async move {
            app.trust_bundle("m1").await.unwrap()
        }));
    }
    let mut bundles = Vec::new();
    for task in tasks {
        bundles.push(task.await.unwrap());
    }
    let stored = first.app.trust_bundle("m1").await.unwrap();
    assert!(
        bundles.iter().all(|b| *b == stored),
        "more than one CA made"
    );
    assert_eq!(store.range("ca/").unwrap().0.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_mesh_retires_its_ca() {
    let (control, store) = meshes().await;
    let resources = &control.app.resources;
    let old = control.app.trust_bundle("m2").await.unwrap();
    for (kind, name) in [(Kind::VirtualNode, "web"), (Kind::VirtualGateway, "gw")] {
        resources
            .delete(&ResourcePath::new(kind, "m2", None, name))
            .await
            .unwrap();
    }
    resources.delete(&ResourcePath::mesh("m2")).await.unwrap();
    assert!(store.get("ca/m2").unwrap().is_none());
    resources
        .create(&ResourcePath::mesh("m2"), &json!({ "meshName": "m2" }))
        .await
        .unwrap();
    assert_ne!(control.app.trust_bundle("m2").await.unwrap(), old);
}

#[tokio::test]
async fn a_ttl_outside_one_minute_to_thirty_days_is_refused_at_start() {
    let store: Arc<dyn store::Store> = Arc::new(store::MemoryStore::new());
    for ttl in [
        Duration::from_secs(59),
        Duration::from_secs(30 * 24 * 3600 + 1),
    ] {
        let error = control(store.clone(), ttl).await.err().unwrap();
        assert!(
            matches!(error, ControlError::CertTtl(_)) && error.to_string().contains("1m to 30d"),
            "{ttl:?}: {error}"
        );
    }
    for ttl in [super::MIN_CERT_TTL, super::MAX_CERT_TTL] {
        assert!(control(store.clone(), ttl).await.is_ok(), "{ttl:?}");
    }
}

/// What a mesh peer's TLS client checks of a server: the chain to the mesh's bundle (webpki,
/// serverAuth) and the SPIFFE ID it expects. rustls's own server verifier matches only DNS
/// names and IP addresses, never a URI, so a mesh client needs this much of its own; this one
/// shows that the issued certificates work in a real rustls handshake.
#[derive(Debug)]
struct SpiffeServerVerifier {
    roots: Vec<CertificateDer<'static>>,
    expected: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let anchors: Vec<_> = self
            .roots
            .iter()
            .map(|ca| webpki::anchor_from_trusted_cert(ca).unwrap())
            .collect();
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        if leaf.valid_uri_names().eq([self.expected.as_str()]) {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server is not {}",
                self.expected
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A key pair and a certificate issued for it.
async fn identity(
    control: &Control,
    mesh: &str,
    kind: &str,
    name: &str,
) -> (
    Vec<CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let issued = control
        .app
        .issue_certificate(mesh, request(kind, name, &key.public_key_pem()))
        .await
        .unwrap();
    let private = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into();
    (der(&issued.certificate), private)
}

/// Runs a TLS handshake in memory between a server that requires client certificates of
/// `server_mesh`'s CA and a client that expects the server to be `expected`; returns the
/// client's SPIFFE ID as the server saw it, or the first side's error.
fn handshake(
    server_identity: (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    server_bundle: &str,
    client_identity: (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    client_bundle: &str,
    expected: &str,
) -> Result<Vec<String>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in der(server_bundle) {
        roots.add(ca).unwrap();
    }
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(server_identity.0, server_identity.1)
        .unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier {
            roots: der(client_bundle),
            expected: expected.to_string(),
            provider,
        }))
        .with_client_auth_cert(client_identity.0, client_identity.1)
        .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("mesh.invalid").unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
    for _ in 0..10 {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        if !wire.is_empty() {
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets()?;
        }
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        if !wire.is_empty() {
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            let peer = server.peer_certificates().unwrap()[0].clone();
            let leaf = webpki::EndEntityCert::try_from(&peer).unwrap();
            return Ok(leaf.valid_uri_names().map(str::to_string).collect());
        }
    }
    panic!("the handshake did not finish in 10 rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_peers_complete_a_mutual_tls_handshake_and_other_meshes_do_not() {
    let (control, _) = meshes().await;
    let m1 = control.app.trust_bundle("m1").await.unwrap();
    let m2 = control.app.trust_bundle("m2").await.unwrap();
    let gateway = || identity(&control, "m1", "virtualGateway", "gw");
    let node = "spiffe://m1/virtualNode/web";

    let seen = handshake(
        identity(&control, "m1", "virtualNode", "web").await,
        &m1,
        gateway().await,
        &m1,
        node,
    )
    .unwrap();
    assert_eq!(seen, ["spiffe://m1/virtualGateway/gw"]);

    // The server is a node of the mesh, but not the one the client asked for.
    let wrong = handshake(
        identity(&control, "m1", "virtualGateway", "gw").await,
        &m1,
        gateway().await,
        &m1,
        node,
    );
    assert!(
        matches!(&wrong, Err(rustls::Error::General(why)) if why.contains("is not")),
        "{wrong:?}"
    );
    // A client of another mesh is refused by the server, and trusts none of this mesh's servers.
    let foreign_client = handshake(
        identity(&control, "m1", "virtualNode", "web").await,
        &m1,
        identity(&control, "m2", "virtualGateway", "gw").await,
        &m1,
        node,
    );
    assert!(
        matches!(foreign_client, Err(rustls::Error::InvalidCertificate(_))),
        "{foreign_client:?}"
    );
    let foreign_roots = handshake(
        identity(&control, "m1", "virtualNode", "web").await,
        &m1,
        gateway().await,
        &m2,
        node,
    );
    assert!(foreign_roots.is_err(), "{foreign_roots:?}");
}
