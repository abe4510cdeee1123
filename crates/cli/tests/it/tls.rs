//! `aviary control --tls-cert --tls-key` serves HTTPS: the aviary CLI with `--ca` and the AWS CLI with `--ca-bundle` get in, a client that trusts another CA, or speaks plain HTTP, does not.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use testkit::{AwsOutput, ControlProcess, TempDir, aws, http_raw, interrupt, run};

use crate::bin;

/// A test CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: testkit::temp_dir(),
        };
        let ca_key = KeyPair::generate().unwrap();
        let ca_params = ca_params("aviary test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "aviary control");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        pki.write("ca.pem", &ca_cert.pem());
        pki.write("server.pem", &server_cert.pem());
        pki.write("server.key", &server_key.serialize_pem());
        pki
    }

    /// A CA of its own, which signed nothing the server has.
    fn other_ca(&self) -> String {
        let key = KeyPair::generate().unwrap();
        let cert = ca_params("some other CA").self_signed(&key).unwrap();
        self.write("other-ca.pem", &cert.pem())
    }

    fn write(&self, name: &str, pem: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn ca(&self) -> String {
        self.path("ca.pem")
    }

    /// `aviary control` with this PKI's server certificate.
    fn start_control(&self) -> ControlProcess {
        let (cert, key) = (self.path("server.pem"), self.path("server.key"));
        ControlProcess::start_with(bin(), &["--tls-cert", &cert, "--tls-key", &key])
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// `aviary ARGS` against `url`, with `AVIARY_CA` unset unless `ca_env` gives it.
fn aviary(url: &str, ca_env: Option<&str>, args: &[&str]) -> AwsOutput {
    let mut cmd = crate::aviary_cmd();
    cmd.args(args)
        .env("AVIARY_CONTROL", url)
        .env_remove("AVIARY_CA")
        .env_remove("AVIARY_MESH");
    if let Some(ca) = ca_env {
        cmd.env("AVIARY_CA", ca);
    }
    run(&mut cmd, Duration::from_secs(30))
}

fn manifest(dir: &Path) -> PathBuf {
    let path = dir.join("mesh.yaml");
    std::fs::write(&path, "kind: Mesh\nmetadata:\n  name: tlsmesh\nspec: {}\n").unwrap();
    path
}

#[test]
fn the_aviary_cli_with_the_ca_applies_and_reads_over_https() {
    let pki = Pki::new();
    let control = pki.start_control();
    let url = control.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let file = manifest(pki.dir.path());
    let applied = aviary(
        url,
        None,
        &[
            "apply",
            "-f",
            &file.display().to_string(),
            "--ca",
            &pki.ca(),
        ],
    );
    assert!(applied.success(), "{}{}", applied.stdout, applied.stderr);

    // The environment variable does the same as the flag.
    let got = aviary(url, Some(&pki.ca()), &["get", "meshes", "-o", "json"]);
    assert!(got.success(), "{}{}", got.stdout, got.stderr);
    assert!(got.stdout.contains("\"tlsmesh\""), "{}", got.stdout);
}

#[test]
fn a_client_that_trusts_another_ca_is_refused_and_told_why() {
    let pki = Pki::new();
    let control = pki.start_control();
    let other = pki.other_ca();
    let refused = aviary(control.url(), None, &["get", "meshes", "--ca", &other]);
    assert!(!refused.success(), "{}", refused.stdout);
    let stderr = &refused.stderr;
    assert!(stderr.contains("no trusted TLS connection"), "{stderr}");
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not signed by a CA this client trusts"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");

    // Without --ca the system's roots are used, and they do not know the test CA either.
    let system = aviary(control.url(), None, &["get", "meshes"]);
    assert!(!system.success(), "{}", system.stdout);
    assert!(system.stderr.contains("UnknownIssuer"), "{}", system.stderr);

    // A CA file that holds no certificate is named as the problem, before any connection.
    let empty = pki.write("empty.pem", "");
    let unusable = aviary(control.url(), None, &["get", "meshes", "--ca", &empty]);
    assert!(!unusable.success());
    assert!(
        unusable.stderr.contains(&format!(
            "cannot use the CA file {empty}: no PEM certificate"
        )),
        "{}",
        unusable.stderr
    );
}

#[test]
fn the_aws_cli_needs_the_ca_bundle() {
    let pki = Pki::new();
    let control = pki.start_control();
    let url = control.url();

    let created = aws(
        url,
        &[
            "create-mesh",
            "--mesh-name",
            "awsmesh",
            "--ca-bundle",
            &pki.ca(),
        ],
    );
    assert!(created.success(), "{}", created.stderr);
    assert_eq!(created.json()["mesh"]["meshName"], "awsmesh");

    let listed = aws(url, &["list-meshes", "--ca-bundle", &pki.ca()]);
    assert!(listed.success(), "{}", listed.stderr);
    assert_eq!(listed.json()["meshes"][0]["meshName"], "awsmesh");

    let untrusted = aws(url, &["list-meshes"]);
    assert!(!untrusted.success(), "{}", untrusted.stdout);
    assert!(
        untrusted.stderr.contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        untrusted.stderr
    );
}

#[test]
fn plain_http_gets_no_answer_from_the_tls_port_and_vice_versa() {
    let pki = Pki::new();
    let control = pki.start_control();
    let answer = http_raw(
        control.addr(),
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(
        !answer.starts_with("HTTP/"),
        "plain HTTP was answered: {answer:?}"
    );

    let plain_url = format!("http://{}", control.addr());
    let refused = aviary(&plain_url, None, &["get", "meshes"]);
    assert!(!refused.success(), "{}", refused.stdout);

    // An https:// client meeting a plain-HTTP server is told the server may not speak TLS.
    let plain = crate::start();
    let https_url = format!("https://{}", plain.addr());
    let confused = aviary(&https_url, None, &["get", "meshes", "--ca", &pki.ca()]);
    assert!(!confused.success(), "{}", confused.stdout);
    assert!(
        confused
            .stderr
            .contains("does the server speak TLS on this port?"),
        "{}",
        confused.stderr
    );
}

#[test]
fn unusable_certificate_files_stop_the_start_with_their_name() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let mut cmd = Command::new(bin());
    cmd.args(["control", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(pki.dir.path().join("data"))
        .args(["--tls-cert", &missing, "--tls-key", &pki.path("server.key")]);
    let out = run(&mut cmd, Duration::from_secs(30));
    assert!(!out.success(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains(&format!("cannot read the TLS certificate {missing}")),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("listening"), "{}", out.stdout);

    // The key where the certificate should be: no certificate in it.
    let mut cmd = Command::new(bin());
    cmd.args(["control", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(pki.dir.path().join("data"))
        .args(["--tls-cert", &pki.path("server.key")])
        .args(["--tls-key", &pki.path("server.key")]);
    let out = run(&mut cmd, Duration::from_secs(30));
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("no PEM certificate"), "{}", out.stderr);
}

const UP_MESH: &str = "\
kind: Mesh
metadata: {name: upmesh}
spec: {}
---
kind: VirtualNode
metadata: {name: web-vn, mesh: upmesh}
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
  serviceDiscovery:
    dns: {hostname: web.upmesh.local}
---
kind: Workload
metadata: {name: web, mesh: upmesh}
spec:
  virtualNode: web-vn
  command: [aviary-demo, product, --version, \"1.0\"]
";

#[test]
fn aviary_up_over_tls_runs_its_proxy_and_supervisor_through_the_ca() {
    let pki = Pki::new();
    let file = pki.write("up.yaml", UP_MESH);
    // The test admin token, so `aviary` as the tests run it is admin of this `up` too.
    testkit::seed_secrets(&pki.dir.path().join("up"));
    let mut child = Command::new(bin())
        .args(["up", "-f", &file, "--ca", &pki.ca()])
        .args(["--listen", "127.0.0.1:0", "--egress-listen", "127.0.0.1:0"])
        .args(["--tls-cert", &pki.path("server.pem")])
        .args(["--tls-key", &pki.path("server.key")])
        .arg("--data-dir")
        .arg(pki.dir.path().join("up"))
        .env_remove("AVIARY_CA")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn aviary up");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            let status = interrupt(&mut child, Duration::from_secs(15));
            panic!("aviary up ended before it was up: {status:?}");
        };
        if let Some(url) = line.trim().strip_prefix("control plane") {
            break url.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // The supervisor registers the healthy replica as an endpoint: through its TLS client.
    let deadline = Instant::now() + Duration::from_secs(30);
    let endpoints = loop {
        let got = aviary(&url, Some(&pki.ca()), &["get", "endpoints", "-o", "json"]);
        assert!(got.success(), "{}", got.stderr);
        if got.stdout.contains("web-vn") || Instant::now() > deadline {
            break got.stdout;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stopped = interrupt(&mut child, Duration::from_secs(20));
    assert!(
        endpoints.contains("web-vn"),
        "no endpoint registered: {endpoints}"
    );
    assert!(
        stopped.is_some_and(|s| s.success()),
        "aviary up did not stop cleanly: {stopped:?}"
    );
}

#[test]
fn past_the_limit_a_tls_connection_is_closed_before_any_handshake() {
    let pki = Pki::new();
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let control = ControlProcess::start_with(
        bin(),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--max-connections",
            "2",
        ],
    );
    // Two connections that never start their handshake hold both slots (for up to 10 s).
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(control.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let refused = aviary(control.url(), Some(&pki.ca()), &["get", "meshes"]);
    assert!(!refused.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("cannot reach the control plane"),
        "{}",
        refused.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    drop(silent);
    let deadline = Instant::now() + Duration::from_secs(5);
    let served = loop {
        let got = aviary(control.url(), Some(&pki.ca()), &["get", "meshes"]);
        if got.success() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(served.success(), "not served again: {}", served.stderr);
}
