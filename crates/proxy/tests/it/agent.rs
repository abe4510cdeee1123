//! An agent's proxy (`Role::Agent`): per-node outbound listeners that apply the calling node's
//! `backends`, inbound listeners that pass traffic to one local replica, and App Mesh's TLS on
//! them: a STRICT listener refuses plain text, a certificate from another CA and a client whose
//! SAN it does not list (each counted by reason), PERMISSIVE takes both, and a node's client
//! policy makes its outbound calls TLS with its certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::*;

const INBOUND_IP: [u8; 4] = [127, 0, 0, 2];

/// Two CAs and certificates they signed, as PEM files: the server `svc.local` and the clients
/// `spiffe://m/virtualNode/client` and `.../intruder` from CA `a`, and `client` again from `b`.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        for ca in ["a", "b"] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("ca {ca}"));
            write(
                &format!("{ca}.pem"),
                params.self_signed(&key).unwrap().pem(),
            );
            let issuer = Issuer::new(params, key);
            let leaves: &[(&str, SanType)] = &[
                ("server", SanType::DnsName("svc.local".try_into().unwrap())),
                ("client", spiffe("client")),
                ("intruder", spiffe("intruder")),
            ];
            for (name, san) in leaves {
                let key = KeyPair::generate().unwrap();
                let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
                params.subject_alt_names = vec![san.clone()];
                let cert = params.signed_by(&key, &issuer).unwrap();
                write(&format!("{ca}-{name}.pem"), cert.pem());
                write(&format!("{ca}-{name}.key"), key.serialize_pem());
            }
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn spiffe(node: &str) -> SanType {
    SanType::URI(format!("spiffe://m/virtualNode/{node}").try_into().unwrap())
}

/// `svc-vn`'s listener `tls`: mode, the server certificate, client certificates of CA `a`
/// naming `spiffe://m/virtualNode/client`.
fn listener_tls(pki: &Pki, mode: &str) -> Value {
    json!({
        "mode": mode,
        "certificate": {"file": {
            "certificateChain": pki.path("a-server.pem"),
            "privateKey": pki.path("a-server.key"),
        }},
        "validation": {
            "trust": {"file": {"certificateChain": pki.path("a.pem")}},
            "subjectAlternativeNames": {"match": {"exact": ["spiffe://m/virtualNode/client"]}},
        },
    })
}

/// Mesh `m` (DROP_ALL): `svc-vn` behind `svc.local`, whose listener has `tls` (if any);
/// `client` (svc.local a backend, with `policy` as its backendDefaults client policy) and
/// `other` (no backends).
async fn mesh(cp: &ControlPlane, tls: Option<Value>, policy: Option<Value>) {
    cp.create(model::Kind::Mesh, None, MESH, json!({})).await;
    let mut listener = json!({"portMapping": {"port": 8080, "protocol": "http"}});
    if let Some(tls) = tls {
        listener["tls"] = tls;
    }
    cp.create(
        model::Kind::VirtualNode,
        None,
        "svc-vn",
        json!({"listeners": [listener]}),
    )
    .await;
    let mut client = json!({"backends": [{"virtualService": {"virtualServiceName": "svc.local"}}]});
    if let Some(policy) = policy {
        client["backendDefaults"] = json!({"clientPolicy": {"tls": policy}});
    }
    cp.create(model::Kind::VirtualNode, None, "client", client)
        .await;
    cp.create(model::Kind::VirtualNode, None, "other", json!({}))
        .await;
    cp.create(
        model::Kind::VirtualService,
        None,
        "svc.local",
        json!({"provider": {"virtualNode": {"virtualNodeName": "svc-vn"}}}),
    )
    .await;
}

/// An agent's proxy on host `h` (inbound listeners on 127.0.0.2), with an admin listener.
async fn agent(cp: &ControlPlane) -> RunningProxy {
    let role = proxy::Role::Agent {
        host: Some("h".into()),
    };
    let mut config = proxy::Config::new(&cp.url, MESH, role);
    config.bind = INBOUND_IP.into();
    config.egress_listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    RunningProxy::start(config).await
}

/// Registers `upstream` as replica `r0` of `svc-vn` behind the agent's inbound listener.
async fn register(cp: &ControlPlane, proxy: &RunningProxy, upstream: &Upstream) -> SocketAddr {
    let inbound = proxy
        .handle
        .inbound("svc-vn", "r0", upstream.addr)
        .await
        .unwrap();
    assert_eq!(inbound.ip(), std::net::IpAddr::from(INBOUND_IP));
    let body = json!({"address": inbound.ip().to_string(), "port": inbound.port()});
    cp.api
        .put_object(MESH, "endpoints/svc-vn", "r0", &body)
        .await
        .unwrap();
    proxy.wait_for_revision(cp.revision().await).await;
    inbound
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_listeners_know_their_node_and_inbound_ones_reach_the_replica() {
    let cp = ControlPlane::start().await;
    let upstream = Upstream::start("svc", Behaviour::ok()).await;
    mesh(&cp, None, None).await;
    let proxy = agent(&cp).await;
    let inbound = register(&cp, &proxy, &upstream).await;
    let caller = Caller::new();
    let client = proxy.handle.outbound("client").await.unwrap();
    assert_eq!(
        proxy.handle.outbound("client").await.unwrap(),
        client,
        "one per node"
    );
    let answer = caller.get(client, "svc.local", "/", &[]).await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "svc"));
    // The request reached the replica through the inbound listener, not at its own port.
    assert_eq!(upstream.hits(), 1);
    let answer = caller.get(inbound, "svc.local", "/direct", &[]).await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "svc"));
    // DROP_ALL applies to the node the listener belongs to.
    let other = proxy.handle.outbound("other").await.unwrap();
    let answer = caller.get(other, "svc.local", "/", &[]).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.contains("virtual node 'other' may not call"),
        "{}",
        answer.body
    );
    // The shared outbound listener cannot tell callers apart, so it does not filter.
    let answer = caller.get(proxy.egress(), "svc.local", "/", &[]).await;
    assert_eq!(answer.status, 200);
    // A closed inbound listener takes no more connections.
    proxy.handle.close_inbound("r0");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(inbound).await.is_err());
    proxy.stop().await;
    cp.stop().await;
}

/// A TLS client of the inbound listener with `cert` (a file stem of `pki`, or none), trusting
/// CA `a`; `Ok(status)` or why it got no answer.
async fn tls_get(pki: &Pki, addr: SocketAddr, cert: Option<&str>) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.file("a.pem")).unwrap();
    for cert in rustls_pemfile_certs(&ca) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        None => builder.with_no_client_auth(),
        Some(stem) => {
            let chain =
                rustls_pemfile_certs(&std::fs::read(pki.file(&format!("{stem}.pem"))).unwrap());
            let key = std::fs::read(pki.file(&format!("{stem}.key"))).unwrap();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("svc.local").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    get_on(tls).await
}

/// One GET of `/` for `svc.local` on `io`: `Ok(status)` or why it got no answer.
async fn get_on<T>(io: T) -> Result<u16, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = Request::builder()
        .uri("/")
        .header("host", "svc.local")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

/// A plain-text GET straight at `addr`: `Ok(status)` or why it got no answer.
async fn plain_get(addr: SocketAddr) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    get_on(tcp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_listener_refuses_plain_text_other_cas_and_unlisted_names_and_counts_why() {
    let pki = Pki::new();
    let cp = ControlPlane::start().await;
    let upstream = Upstream::start("svc", Behaviour::ok()).await;
    let policy = json!({
        "certificate": {"file": {
            "certificateChain": pki.path("a-client.pem"),
            "privateKey": pki.path("a-client.key"),
        }},
        "validation": {
            "trust": {"file": {"certificateChain": pki.path("a.pem")}},
            "subjectAlternativeNames": {"match": {"exact": ["svc.local"]}},
        },
    });
    mesh(&cp, Some(listener_tls(&pki, "STRICT")), Some(policy)).await;
    let proxy = agent(&cp).await;
    let inbound = register(&cp, &proxy, &upstream).await;

    assert!(plain_get(inbound).await.is_err(), "plain text is refused");
    assert!(
        tls_get(&pki, inbound, Some("b-client")).await.is_err(),
        "another CA's client"
    );
    assert!(
        tls_get(&pki, inbound, Some("a-intruder")).await.is_err(),
        "an unlisted SAN"
    );
    assert!(
        tls_get(&pki, inbound, None).await.is_err(),
        "no client certificate"
    );
    assert_eq!(tls_get(&pki, inbound, Some("a-client")).await, Ok(200));
    for reason in [
        "plain_text_in_strict",
        "unknown_ca",
        "san_not_allowed",
        "no_client_certificate",
    ] {
        let series =
            format!("aviary_proxy_tls_refused_total{{listener=\"inbound\",reason=\"{reason}\"}}");
        assert_eq!(proxy.metric(&series).await, 1, "{series}");
    }
    // The client node's policy: its outbound calls are TLS with its certificate, and pass.
    let client = proxy.handle.outbound("client").await.unwrap();
    let answer = Caller::new().get(client, "svc.local", "/", &[]).await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "svc"));
    // Through the shared outbound listener no node's policy applies: plain text, refused.
    let answer = Caller::new()
        .get(proxy.egress(), "svc.local", "/", &[])
        .await;
    assert!(answer.status.is_server_error(), "{}", answer.status);
    assert_eq!(
        upstream.hits(),
        2,
        "only the TLS requests reached the replica"
    );

    // PERMISSIVE: plain text and TLS on the same listener.
    let path = ResourcePath::new(model::Kind::VirtualNode, MESH, None, "svc-vn");
    let mut listener = json!({"portMapping": {"port": 8080, "protocol": "http"}});
    listener["tls"] = listener_tls(&pki, "PERMISSIVE");
    cp.api
        .update(&path, &json!({"listeners": [listener]}))
        .await
        .unwrap();
    proxy.wait_for_revision(cp.revision().await).await;
    assert_eq!(plain_get(inbound).await, Ok(200));
    assert_eq!(tls_get(&pki, inbound, Some("a-client")).await, Ok(200));
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serves_tls_on_its_listener_and_calls_a_strict_node_with_its_client_policy() {
    let pki = Pki::new();
    let cp = ControlPlane::start().await;
    let upstream = Upstream::start("svc", Behaviour::ok()).await;
    mesh(&cp, Some(listener_tls(&pki, "STRICT")), None).await;
    let port = free_port().await;
    cp.create(
        model::Kind::VirtualGateway,
        None,
        "gw",
        json!({
            "listeners": [{
                "portMapping": {"port": port, "protocol": "http"},
                "tls": {"mode": "STRICT", "certificate": {"file": {
                    "certificateChain": pki.path("a-server.pem"),
                    "privateKey": pki.path("a-server.key"),
                }}},
            }],
            "backendDefaults": {"clientPolicy": {"tls": {
                "certificate": {"file": {
                    "certificateChain": pki.path("a-client.pem"),
                    "privateKey": pki.path("a-client.key"),
                }},
                "validation": {"trust": {"file": {"certificateChain": pki.path("a.pem")}}},
            }}},
        }),
    )
    .await;
    cp.create(
        model::Kind::GatewayRoute,
        Some("gw"),
        "to-svc",
        json!({"httpRoute": {"match": {"prefix": "/"},
            "action": {"target": {"virtualService": {"virtualServiceName": "svc.local"}}}}}),
    )
    .await;
    let agent = agent(&cp).await;
    register(&cp, &agent, &upstream).await;
    let mut config = proxy::Config::new(&cp.url, MESH, proxy::Role::Gateway("gw".into()));
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let gateway = RunningProxy::start(config).await;
    gateway.wait_for_revision(cp.revision().await).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    assert!(plain_get(addr).await.is_err(), "plain text is refused");
    // Server-only TLS at the gateway (no `validation`: no client certificate asked), then the
    // gateway's own client certificate towards the STRICT node.
    assert_eq!(tls_get(&pki, addr, None).await, Ok(200));
    assert_eq!(upstream.hits(), 1);
    let series =
        "aviary_proxy_tls_refused_total{listener=\"gateway\",reason=\"plain_text_in_strict\"}";
    assert_eq!(gateway.metric(series).await, 1);
    assert_eq!(
        agent
            .metric("aviary_proxy_inbound_connections_total{transport=\"tls\"}")
            .await,
        1
    );
    gateway.stop().await;
    agent.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_nodes_are_called_over_tls_when_the_client_policy_says_so() {
    let pki = Pki::new();
    let cp = ControlPlane::start().await;
    let behaviour = Behaviour {
        http2: true,
        ..Behaviour::ok()
    };
    let upstream = Upstream::start("svc", behaviour).await;
    let policy = json!({
        "certificate": {"file": {
            "certificateChain": pki.path("a-client.pem"),
            "privateKey": pki.path("a-client.key"),
        }},
        "validation": {"trust": {"file": {"certificateChain": pki.path("a.pem")}}},
    });
    mesh(&cp, Some(listener_tls(&pki, "STRICT")), Some(policy)).await;
    let path = ResourcePath::new(model::Kind::VirtualNode, MESH, None, "svc-vn");
    let mut listener = json!({"portMapping": {"port": 8080, "protocol": "http2"}});
    listener["tls"] = listener_tls(&pki, "STRICT");
    cp.api
        .update(&path, &json!({"listeners": [listener]}))
        .await
        .unwrap();
    let proxy = agent(&cp).await;
    register(&cp, &proxy, &upstream).await;
    let client = proxy.handle.outbound("client").await.unwrap();
    for _ in 0..3 {
        let answer = Caller::new().get(client, "svc.local", "/", &[]).await;
        assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "svc"));
        // HTTP/2 all the way: over TLS to the inbound listener, then to the replica.
        assert_eq!(answer.headers["x-version"], "HTTP/2.0");
    }
    assert_eq!(upstream.hits(), 3);
    assert_eq!(
        proxy
            .metric("aviary_proxy_inbound_connections_total{transport=\"tls\"}")
            .await,
        1,
        "one multiplexed connection"
    );
    proxy.stop().await;
    cp.stop().await;
}

/// A client policy applies only where it says: `ports` naming the node's listener port, and
/// `enforce` not false (App Mesh's default is true). Elsewhere the call goes in plain text,
/// which the STRICT listener refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_policy_applies_to_its_ports_and_only_when_enforced() {
    let pki = Pki::new();
    let cp = ControlPlane::start().await;
    let upstream = Upstream::start("svc", Behaviour::ok()).await;
    mesh(&cp, Some(listener_tls(&pki, "STRICT")), None).await;
    let proxy = agent(&cp).await;
    register(&cp, &proxy, &upstream).await;
    let client = proxy.handle.outbound("client").await.unwrap();
    let path = ResourcePath::new(model::Kind::VirtualNode, MESH, None, "client");
    let check = |extra: Value, expected: u16| {
        let (cp, proxy, path, pki) = (&cp, &proxy, &path, &pki);
        async move {
            let mut policy = json!({
                "certificate": {"file": {
                    "certificateChain": pki.path("a-client.pem"),
                    "privateKey": pki.path("a-client.key"),
                }},
                "validation": {"trust": {"file": {"certificateChain": pki.path("a.pem")}}},
            });
            for (k, v) in extra.as_object().unwrap() {
                policy[k] = v.clone();
            }
            let spec = json!({
                "backends": [{"virtualService": {"virtualServiceName": "svc.local"}}],
                "backendDefaults": {"clientPolicy": {"tls": policy}},
            });
            cp.api.update(path, &spec).await.unwrap();
            proxy.wait_for_revision(cp.revision().await).await;
            let answer = Caller::new().get(client, "svc.local", "/", &[]).await;
            let status = answer.status.as_u16();
            let ok = if expected == 200 {
                status == 200
            } else {
                status >= 500
            };
            assert!(ok, "{extra}: {status} {}", answer.body);
        }
    };
    check(json!({"ports": [8080]}), 200).await;
    check(json!({"ports": [9999]}), 502).await;
    check(json!({"enforce": false}), 502).await;
    check(json!({"enforce": true}), 200).await;
    proxy.stop().await;
    cp.stop().await;
}
