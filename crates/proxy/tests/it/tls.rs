//! A proxy whose control plane serves HTTPS: with the CA it loads, follows the watch and pushes stats; with another CA it gets nothing.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::*;

/// A CA, a server certificate it signed for 127.0.0.1, and an unrelated CA, as PEM files.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        let (ca, ca_key) = (ca_params(), KeyPair::generate().unwrap());
        write("ca.pem", ca.self_signed(&ca_key).unwrap().pem());
        let other_key = KeyPair::generate().unwrap();
        write(
            "other.pem",
            ca_params().self_signed(&other_key).unwrap().pem(),
        );
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = server
            .signed_by(&server_key, &Issuer::new(ca, ca_key))
            .unwrap();
        write("server.pem", cert.pem());
        write("server.key", server_key.serialize_pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_trusting_the_ca_follows_an_https_control_plane_and_others_get_nothing() {
    let pki = Pki::new();
    let config = control::Config {
        tls: Some(control::TlsFiles {
            cert: pki.path("server.pem"),
            key: pki.path("server.key"),
        }),
        ..ControlPlane::config()
    };
    let cp = ControlPlane::start_with(config, Some(pki.path("ca.pem"))).await;
    assert!(cp.url.starts_with("https://"), "{}", cp.url);
    let a = Upstream::start("a", Behaviour::ok()).await;
    mesh_with_router(&cp, &[("a", &a)], &[("a", 1)], json!({})).await;

    let mut config = node_config(&cp.url, None);
    config.ca = Some(pki.path("ca.pem"));
    let proxy = RunningProxy::start(config).await;
    proxy.wait_for_revision(cp.revision().await).await;
    let answer = Caller::new()
        .get(proxy.egress(), "svc.local", "/", &[])
        .await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "a"));
    // A change reaches it over the TLS watch stream.
    let b = Upstream::start("b", Behaviour::ok()).await;
    cp.add_node("b", &b).await;
    cp.set_weights("svc-router", "svc-route", &[("b", 1)]).await;
    proxy.wait_for_revision(cp.revision().await).await;
    let answer = Caller::new()
        .get(proxy.egress(), "svc.local", "/", &[])
        .await;
    assert_eq!(answer.body, "b");
    // Its stats push goes over TLS too: both requests arrive within a few pushes.
    let deadline = Instant::now() + Duration::from_secs(5);
    let pushed = loop {
        let requests = cp.requests_counted("10s").await;
        if requests >= 2 || Instant::now() > deadline {
            break requests;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(pushed, 2, "stats pushed over TLS");

    let mut config = node_config(&cp.url, None);
    config.ca = Some(pki.path("other.pem"));
    let untrusting = RunningProxy::start(config).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(untrusting.handle.revision(), 0, "it got a configuration");

    let mut config = node_config(&cp.url, None);
    config.ca = Some(pki.path("missing.pem"));
    let refused = proxy::Proxy::bind(config, CancellationToken::new()).await;
    assert!(
        matches!(
            &refused,
            Err(proxy::StartError::Client(client::ClientError::Ca { .. }))
        ),
        "{:?}",
        refused.err()
    );
    untrusting.stop().await;
    proxy.stop().await;
    cp.stop().await;
}
