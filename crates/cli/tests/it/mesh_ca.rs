//! The mesh CA of a real `aviary control`: certificates for a proxy's key that chain to the
//! mesh's trust bundle only, name exactly the node's SPIFFE ID and live `--cert-ttl`; who may
//! get one; refusals that change nothing; the CA kept across a restart on redb.

use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use serde_json::{Value, json};
use testkit::{ControlProcess, http, http_json};

use crate::{bin, http_with, proxy_token, snapshot_revision};

/// Mesh `m` with node `web`, and `other` with node `web` too.
pub fn two_meshes(url: &str) {
    for mesh in ["m", "other"] {
        let (status, _, body) = http_json(
            "PUT",
            &format!("{url}/v20190125/meshes"),
            Some(&json!({ "meshName": mesh }).to_string()),
        );
        assert_eq!(status, 200, "{body}");
        let node = json!({
            "virtualNodeName": "web",
            "spec": { "listeners": [ { "portMapping": { "port": 80, "protocol": "http" } } ] }
        });
        let (status, _, body) = http_json(
            "PUT",
            &format!("{url}/v20190125/meshes/{mesh}/virtualNodes"),
            Some(&node.to_string()),
        );
        assert_eq!(status, 200, "{body}");
    }
}

fn token(url: &str, name: &str, role: &str) -> String {
    crate::new_token(url, &json!({ "name": name, "role": role }))
}

pub fn issue(url: &str, mesh: &str, token: &str, body: &Value) -> (u16, Value) {
    let (status, _, text) = http_with(
        "POST",
        &format!("{url}/v1/meshes/{mesh}/certificates"),
        Some(&body.to_string()),
        token,
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn bundle(url: &str, mesh: &str, token: &str) -> String {
    let (status, headers, text) =
        http_with("GET", &format!("{url}/v1/meshes/{mesh}/ca"), None, token);
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        headers.get("content-type"),
        Some("application/pem-certificate-chain")
    );
    text
}

fn node_request() -> Value {
    let key = rcgen::KeyPair::generate().unwrap();
    json!({ "kind": "virtualNode", "name": "web", "publicKey": key.public_key_pem() })
}

fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The issued chain's leaf checked against `bundle` at `at` (Unix seconds) as a TLS client.
pub fn verifies(issued: &Value, bundle: &str, at: u64) -> Result<(), webpki::Error> {
    let roots = ders(bundle);
    let anchors: Vec<_> = roots
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(ca).unwrap())
        .collect();
    let chain = ders(issued["certificate"].as_str().unwrap());
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        UnixTime::since_unix_epoch(Duration::from_secs(at)),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(drop)
}

#[test]
fn a_proxy_gets_a_certificate_of_its_mesh_ca_for_its_key_and_the_ca_survives_a_restart() {
    let mut control = ControlProcess::start_with(bin(), &["--cert-ttl", "2m"]);
    let url = control.url().to_string();
    two_meshes(&url);
    let proxy = proxy_token(&url, "m", "m-proxy");
    let viewer = token(&url, "ca-viewer", "viewer");
    let operator = token(&url, "ca-operator", "operator");

    let (status, issued) = issue(&url, "m", &proxy, &node_request());
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["identity"], "spiffe://m/virtualNode/web");
    let trust = bundle(&url, "m", &viewer);
    assert_eq!(issued["trustBundle"], trust.as_str());
    let chain = ders(issued["certificate"].as_str().unwrap());
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    assert_eq!(
        leaf.valid_uri_names().collect::<Vec<_>>(),
        ["spiffe://m/virtualNode/web"]
    );
    assert_eq!(leaf.valid_dns_names().count(), 0);
    let (start, end) = (
        issued["notBefore"].as_u64().unwrap(),
        issued["notAfter"].as_u64().unwrap(),
    );
    // --cert-ttl 2m from issue, plus the minute it is backdated.
    assert_eq!(end - start, 180);
    verifies(&issued, &trust, start).unwrap();
    verifies(&issued, &trust, end).unwrap();
    assert!(verifies(&issued, &trust, end + 1).is_err());
    // Another mesh's CA does not vouch for it.
    let foreign = bundle(&url, "other", &viewer);
    assert_ne!(foreign, trust);
    assert!(matches!(
        verifies(&issued, &foreign, start + 1),
        Err(webpki::Error::UnknownIssuer)
    ));

    // Only the mesh's proxies and admins get identities; refusals and bad input change nothing.
    let revision = snapshot_revision(&url, "m");
    let (status, body) = issue(&url, "m", &viewer, &node_request());
    assert_eq!(status, 403, "viewer: {body}");
    let (status, body) = issue(&url, "m", &operator, &node_request());
    assert_eq!(status, 403, "operator: {body}");
    let (status, body) = issue(&url, "other", &proxy, &node_request());
    assert_eq!(status, 403, "another mesh's proxy: {body}");
    let mut unknown = node_request();
    unknown["name"] = json!("ghost");
    let (status, body) = issue(&url, "m", &proxy, &unknown);
    assert_eq!(status, 404, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("'ghost'") && message.contains("mesh 'm'"),
        "{message}"
    );
    let mut garbage = node_request();
    garbage["publicKey"] =
        json!("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
    let (status, body) = issue(&url, "m", &proxy, &garbage);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("publicKey"),
        "{body}"
    );
    let csr = json!({ "kind": "virtualNode", "name": "web", "csr": "-----BEGIN CERTIFICATE REQUEST-----" });
    let (status, body) = issue(&url, "m", &proxy, &csr);
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("csr"), "{body}");
    assert_eq!(snapshot_revision(&url, "m"), revision);

    // A second certificate comes from the same CA; both are counted.
    let (status, again) = issue(&url, "m", testkit::TEST_ADMIN_TOKEN, &node_request());
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["trustBundle"], trust.as_str());
    let (_, _, metrics) = http("GET", &format!("{url}/metrics"), None);
    let counted = r#"aviary_control_certificates_issued_total{mesh="m",kind="virtualNode"} 2"#;
    assert!(metrics.lines().any(|l| l == counted), "{metrics}");

    // The CA is in the redb store, durably: a kill -9 and restart keep it, and its
    // certificates still verify.
    control.kill9();
    control.restart();
    let url = control.url().to_string();
    assert_eq!(bundle(&url, "m", &viewer), trust);
    let (status, after) = issue(&url, "m", &proxy, &node_request());
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["trustBundle"], trust.as_str());
    verifies(&after, &trust, after["notBefore"].as_u64().unwrap() + 1).unwrap();
}

#[test]
fn a_cert_ttl_outside_one_minute_to_thirty_days_stops_the_start() {
    for ttl in ["30s", "31d", "forever"] {
        let dir = testkit::temp_dir();
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["control", "--listen", "127.0.0.1:0", "--cert-ttl", ttl])
            .arg("--data-dir")
            .arg(dir.path());
        let out = testkit::run(&mut cmd, Duration::from_secs(30));
        assert!(!out.success(), "--cert-ttl {ttl} was accepted");
        assert!(
            out.stderr.contains("1m to 30d") || out.stderr.contains("not a duration"),
            "--cert-ttl {ttl}: {}",
            out.stderr
        );
        assert!(!out.stdout.contains("listening"), "{}", out.stdout);
    }
}
