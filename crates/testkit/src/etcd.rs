//! Real etcd clusters on loopback for tests: start, SIGKILL, stop and restart members by PID.
//!
//! Each member runs under a tiny `sh` watchdog whose stdin is a pipe from the test process:
//! when the test process ends in any way (even SIGKILL, or a static cluster never dropped), the
//! pipe closes and the watchdog SIGKILLs its member, so no test leaves etcd running.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// Every member also serves clients here; see [`EtcdCluster::client_urls_via_second_address`].
pub const SECOND_ADDRESS: &str = "127.0.0.2";

/// How long a cluster or a restarted member may take to answer.
const READY: Duration = Duration::from_secs(30);
/// How long a stopped member may take to exit after SIGTERM.
const STOPPING: Duration = Duration::from_secs(15);

/// Starts the member `"$0" "$@"`, prints its PID, and SIGKILLs it once stdin closes.
/// The test process writes `keep` when it halts the member itself (it may restart it on the same
/// data); on a bare end of input (the test process is gone) the watchdog also removes the
/// cluster's directory, which a cluster in a `static` never drops.
const WATCHDOG: &str = r#""$0" "$@" >>"$AVIARY_ETCD_LOG" 2>&1 &
pid=$!
echo "$pid"
read -r line
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ "$line" = keep ] || rm -rf "$AVIARY_ETCD_DIR"
exit 0"#;
/// Attempts at starting a cluster: a port picked free can be taken before etcd binds it.
const ATTEMPTS: usize = 3;

/// PEM files of a TLS cluster: the CA that signed the members' certificate, and a client
/// certificate it signed too.
#[derive(Debug, Clone)]
pub struct EtcdTlsFiles {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// How a cluster serves clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTls {
    /// Plain `http://`.
    Off,
    /// `https://` only, with a certificate from a CA made for the test.
    Server,
    /// `https://` only, and clients must show a certificate that CA signed.
    Mutual,
}

/// A running etcd cluster whose members live in one temporary directory. Dropping it SIGKILLs
/// every member it started.
pub struct EtcdCluster {
    binary: PathBuf,
    dir: TempDir,
    members: Vec<Member>,
    tls: Option<EtcdTlsFiles>,
}

struct Member {
    name: String,
    client_url: String,
    /// Plain HTTP even for a TLS cluster, for `/health`.
    metrics_url: String,
    args: Vec<String>,
    log: PathBuf,
    running: Option<Running>,
}

struct Running {
    pid: i32,
    watchdog: Child,
    /// Closing it tells the watchdog to kill the member.
    leash: ChildStdin,
}

impl EtcdCluster {
    /// `members` members serving plain HTTP, once the cluster answers.
    pub fn start(members: usize) -> EtcdCluster {
        EtcdCluster::start_with(members, ClientTls::Off)
    }

    /// Like [`EtcdCluster::start`], serving clients over TLS only.
    pub fn start_tls(members: usize, tls: ClientTls) -> EtcdCluster {
        EtcdCluster::start_with(members, tls)
    }

    fn start_with(members: usize, tls: ClientTls) -> EtcdCluster {
        assert!(members > 0, "a cluster has at least one member");
        let binary = etcd_binary();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match EtcdCluster::try_start(&binary, members, tls) {
                Ok(cluster) => return cluster,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "no etcd cluster of {members} started in {ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    /// A started cluster, or why it did not start (the members already killed).
    fn try_start(binary: &Path, members: usize, tls: ClientTls) -> Result<EtcdCluster, String> {
        let binary = binary.to_owned();
        let dir = tempfile::Builder::new()
            .prefix("aviary-etcd-")
            .tempdir()
            .expect("create the cluster's directory");
        let files = (tls != ClientTls::Off).then(|| write_pki(dir.path()));
        let scheme = if files.is_some() { "https" } else { "http" };
        let ports = free_ports(members);
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, [_, peer, _])| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("aviary-test-{}", std::process::id());
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, [client, peer, metrics])| {
                let name = format!("m{i}");
                let client_url = format!("{scheme}://127.0.0.1:{client}");
                let peer_url = format!("http://127.0.0.1:{peer}");
                let metrics_url = format!("http://127.0.0.1:{metrics}");
                let data_dir = dir.path().join(&name);
                let mut args = vec![
                    format!("--name={name}"),
                    format!("--data-dir={}", data_dir.display()),
                    // 127.0.0.2 too: a second way in, which a test can cut off with a firewall
                    // rule for one client while others keep 127.0.0.1 (`client_urls_via_second_address`).
                    format!(
                        "--listen-client-urls={client_url},{scheme}://{SECOND_ADDRESS}:{client}"
                    ),
                    format!("--advertise-client-urls={client_url}"),
                    format!("--listen-peer-urls={peer_url}"),
                    format!("--initial-advertise-peer-urls={peer_url}"),
                    format!("--listen-metrics-urls={metrics_url}"),
                    format!("--initial-cluster={initial_cluster}"),
                    format!("--initial-cluster-token={token}"),
                    "--initial-cluster-state=new".to_owned(),
                    // Quicker elections than the defaults (100/1000 ms), for failover tests.
                    "--heartbeat-interval=50".to_owned(),
                    "--election-timeout=500".to_owned(),
                    "--logger=zap".to_owned(),
                ];
                if let Some(files) = &files {
                    let pki = dir.path().join("pki");
                    args.push(format!("--cert-file={}", pki.join("server.pem").display()));
                    args.push(format!("--key-file={}", pki.join("server.key").display()));
                    if tls == ClientTls::Mutual {
                        args.push(format!("--trusted-ca-file={}", files.ca.display()));
                        args.push("--client-cert-auth".to_owned());
                    }
                }
                Member {
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_url,
                    metrics_url,
                    args,
                    running: None,
                }
            })
            .collect();
        let mut cluster = EtcdCluster {
            binary,
            dir,
            members,
            tls: files,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.members.len() {
            cluster.wait_healthy(i)?;
        }
        Ok(cluster)
    }

    /// Every member's client URL, started or not.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// The members' client URLs on `SECOND_ADDRESS` (127.0.0.2) instead of 127.0.0.1: the same
    /// members, reached by a path a firewall rule can cut without cutting the others. Plain
    /// HTTP clusters only (the test certificates name 127.0.0.1).
    pub fn client_urls_via_second_address(&self) -> Vec<String> {
        self.client_urls()
            .iter()
            .map(|url| url.replacen("127.0.0.1", SECOND_ADDRESS, 1))
            .collect()
    }

    /// [`EtcdCluster::client_urls`] comma-joined, as `--endpoints` takes them.
    pub fn endpoints(&self) -> String {
        self.client_urls().join(",")
    }

    /// The TLS files, for a cluster from [`EtcdCluster::start_tls`].
    pub fn tls(&self) -> Option<&EtcdTlsFiles> {
        self.tls.as_ref()
    }

    /// The PID of member `i`, if it was started and not killed or stopped since.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].running.as_ref().map(|r| r.pid as u32)
    }

    /// Whether member `i`'s process is alive (not exited, not a zombie).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i]
            .running
            .as_ref()
            .is_some_and(|r| alive(r.pid))
    }

    /// The member that says it is the leader now, asked over each running member's `/metrics`.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            self.is_running(i)
                && get(&self.members[i].metrics_url, "/metrics")
                    .lines()
                    .any(|line| line.trim() == "etcd_server_is_leader 1")
        })
    }

    /// Waits until some member is the leader, and returns it.
    pub fn wait_for_leader(&self) -> usize {
        let deadline = Instant::now() + READY;
        while Instant::now() < deadline {
            if let Some(leader) = self.leader() {
                return leader;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("no etcd member became leader within {READY:?}");
    }

    /// SIGKILLs member `i`, as a crash would, and waits until it is gone.
    pub fn kill(&mut self, i: usize) {
        self.halt(i, Signal::SIGKILL);
    }

    /// SIGTERMs member `i` and waits until it has exited.
    pub fn stop(&mut self, i: usize) {
        self.halt(i, Signal::SIGTERM);
    }

    /// Starts member `i` again with its data directory and flags, and waits until it answers,
    /// which needs a quorum of members running.
    pub fn restart(&mut self, i: usize) {
        assert!(
            !self.is_running(i),
            "member {i} is still running; kill or stop it first"
        );
        self.members[i].running = None;
        self.spawn(i);
        if let Err(failure) = self.wait_healthy(i) {
            panic!("{failure}");
        }
    }

    /// The tail of member `i`'s log, for failure messages.
    pub fn log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|&s| text.is_char_boundary(s))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    fn spawn(&mut self, i: usize) {
        let member = &mut self.members[i];
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(&self.binary)
            .args(&member.args)
            .env("AVIARY_ETCD_LOG", &member.log)
            .env("AVIARY_ETCD_DIR", self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh for etcd member {}: {e}", member.name));
        let leash = watchdog.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(watchdog.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the member's PID");
        let pid = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "the watchdog of etcd member {} printed {line:?}, not a PID",
                member.name
            )
        });
        member.running = Some(Running {
            pid,
            watchdog,
            leash,
        });
    }

    fn halt(&mut self, i: usize, signal: Signal) {
        let Some(running) = self.members[i].running.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(running.pid), signal);
        let deadline = Instant::now() + STOPPING;
        while alive(running.pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // Lets the watchdog finish (it SIGKILLs a member that ignored SIGTERM) and reap it.
        release(running);
    }

    fn wait_healthy(&self, i: usize) -> Result<(), String> {
        let member = &self.members[i];
        let deadline = Instant::now() + READY;
        while Instant::now() < deadline {
            if !self.is_running(i) {
                return Err(format!(
                    "etcd member {} exited while starting; its log ends:\n{}",
                    member.name,
                    self.log(i)
                ));
            }
            if healthy(&member.metrics_url) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "etcd member {} did not report healthy within {READY:?}; its log ends:\n{}",
            member.name,
            self.log(i)
        ))
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(running) = member.running.take() {
                let _ = kill(Pid::from_raw(running.pid), Signal::SIGKILL);
                release(running);
            }
        }
    }
}

/// Tells the watchdog to finish without touching the data, and reaps it.
fn release(running: Running) {
    let Running {
        mut watchdog,
        mut leash,
        ..
    } = running;
    let _ = leash.write_all(b"keep\n");
    drop(leash);
    let _ = watchdog.wait();
}

/// `AVIARY_ETCD`, or `etcd` on PATH; panics naming the Debian package when neither runs.
fn etcd_binary() -> PathBuf {
    let binary =
        std::env::var_os("AVIARY_ETCD").map_or_else(|| PathBuf::from("etcd"), PathBuf::from);
    match Command::new(&binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => binary,
        Ok(status) => panic!("{} --version failed: {status}", binary.display()),
        Err(e) => panic!(
            "cannot run etcd ({}: {e}); install the Debian package `etcd-server` \
             (apt-get install etcd-server) or point AVIARY_ETCD at an etcd binary",
            binary.display()
        ),
    }
}

/// Client, peer and metrics ports for each member, nothing listening on any of them right now
/// and no two alike (all are held until all are picked). Another process can still take one
/// before etcd binds it; the member then exits and the cluster is started again.
fn free_ports(members: usize) -> Vec<[u16; 3]> {
    let listeners: Vec<TcpListener> = (0..members * 3)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound port").port())
        .collect();
    ports.chunks(3).map(|p| [p[0], p[1], p[2]]).collect()
}

/// Whether the process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// etcd's `/health`, which is true once the member has a leader and a quorum read succeeds.
fn healthy(metrics_url: &str) -> bool {
    get(metrics_url, "/health").contains(r#""health":"true""#)
}

/// The whole HTTP/1.0 response to `GET path`, or "" when the member does not answer.
fn get(base_url: &str, path: &str) -> String {
    let address = base_url.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(address) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all as
/// PEM files under `dir/pki`.
fn write_pki(dir: &Path) -> EtcdTlsFiles {
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).expect("create the pki directory");
    let write = |name: &str, pem: &str| {
        let path = pki.join(name);
        let mut file = File::create(&path).expect("create a PEM file");
        file.write_all(pem.as_bytes()).expect("write a PEM file");
        path
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "aviary etcd test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    server
        .distinguished_name
        .push(DnType::CommonName, "aviary etcd member");
    server.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .expect("sign the server certificate");

    let client_key = KeyPair::generate().expect("client key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
    client
        .distinguished_name
        .push(DnType::CommonName, "aviary etcd client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .expect("sign the client certificate");

    write("server.pem", &server_cert.pem());
    write("server.key", &server_key.serialize_pem());
    EtcdTlsFiles {
        ca: write("ca.pem", &ca_cert.pem()),
        client_cert: write("client.pem", &client_cert.pem()),
        client_key: write("client.key", &client_key.serialize_pem()),
    }
}
