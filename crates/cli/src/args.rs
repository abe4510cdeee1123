//! Command-line arguments: one struct per subcommand.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "aviary",
    version,
    about = "A service mesh with automated canary releases",
    after_help = "The commands that talk to a control plane take --control URL (default \
                  http://127.0.0.1:7070, env AVIARY_CONTROL), --token and --ca; see each \
                  command's --help."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// The control plane a command talks to, and how: the flags of every command that does, and of
/// no other (`aviary demo`, `logs` and `control` would ignore them, so they do not take them).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Control plane")]
pub struct Connection {
    /// Control plane to talk to: one URL, or a comma-separated list of its replicas' URLs (a
    /// request goes on to the next URL when one does not answer, and only when that cannot
    /// repeat a write). `host:port` alone means http://host:port.
    #[arg(
        long,
        global = true,
        env = "AVIARY_CONTROL",
        value_name = "URL[,URL...]",
        default_value = DEFAULT_CONTROL,
        value_parser = control_urls
    )]
    pub control: String,
    /// Bearer token for the control plane. Without it, the admin token of the default data
    /// directory (`$AVIARY_DATA_DIR`, else `.aviary`: `admin.token`) is used when it exists.
    #[arg(long, global = true, env = "AVIARY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// For an https:// control plane: trust the CA certificates of this PEM file instead of the
    /// system's roots.
    #[arg(long, global = true, env = "AVIARY_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Where `aviary demo` and `aviary control` listen by default.
pub const DEFAULT_CONTROL: &str = "http://127.0.0.1:7070";

/// `--control`'s URLs, each with its scheme: `host:port` gets `http://`; any scheme but http
/// and https is refused by name rather than sent to reqwest, which would call it a builder
/// error.
pub fn control_urls(text: &str) -> Result<String, String> {
    let mut urls = Vec::new();
    for url in text.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let url = match url.split_once("://") {
            Some(("http" | "https", rest)) if !rest.is_empty() => url.to_string(),
            Some((scheme, _)) if scheme != "http" && scheme != "https" => {
                return Err(format!(
                    "'{url}': the control plane speaks http:// or https://, not {scheme}://"
                ));
            }
            Some(_) => return Err(format!("'{url}' names no host")),
            None => format!("http://{url}"),
        };
        urls.push(url);
    }
    if urls.is_empty() {
        return Err("no URL given".into());
    }
    Ok(urls.join(","))
}

/// Subcommands that all talk to the control plane, with the flags that say how.
#[derive(Debug, clap::Args)]
pub struct Connected<C: Subcommand> {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: C,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (App Mesh API, /v1 API, embedded store).
    Control(Box<ControlOpts>),
    /// Create or update resources from YAML or JSON manifests.
    Apply(ApplyOpts),
    /// Show resources.
    Get(GetOpts),
    /// Delete one resource.
    Delete(DeleteOpts),
    /// Change a route's weighted targets.
    Route(Connected<RouteCommand>),
    /// Run a proxy: a virtual gateway's listeners, or a virtual node's egress listener.
    Proxy(ProxyOpts),
    /// Run one host's part of the mesh: the workloads placed on it and its proxy (outbound
    /// listeners for them, inbound listeners on the host's address).
    Agent(AgentOpts),
    /// Print the output of a workload's replicas (DATA_DIR/logs/<mesh>/<workload>-<n>.log).
    Logs(LogsOpts),
    /// Run everything in one process: control plane, gateway proxies, the mesh's egress proxy
    /// and the workload supervisor, from manifests.
    Up(UpOpts),
    /// `aviary up` with the built-in demo mesh (order, product, customer) and its v1 workloads.
    Demo(DemoOpts),
    /// Live requests/s, success rate and latency per virtual node.
    Top(TopOpts),
    /// Automated canary releases: start, watch, steer.
    Canary(Connected<CanaryCommand>),
    /// Bearer tokens of the control plane: create (shown once), list, revoke.
    Token(Connected<TokenCommand>),
    /// The App Mesh canary pipeline's deploy.json: a new version as `<svc>-<N>`, rolled out as
    /// a canary, the old or the new one removed at the end.
    Deploy(DeployOpts),
    /// From commit to canary: a repository's branch built and deployed on every new commit
    /// (Source, Build, optional Approval, Deploy), one run at a time.
    Pipeline(Connected<PipelineCommand>),
}

#[derive(Debug, Parser)]
pub struct ControlOpts {
    /// Where to serve the App Mesh API, the /v1 API, /healthz and /metrics.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Directory of the embedded store (created if missing).
    #[arg(long, default_value = ".aviary")]
    pub data_dir: PathBuf,
    /// Account id used in ARNs, meshOwner and resourceOwner.
    #[arg(long, default_value = "000000000000")]
    pub account: String,
    /// Region used in ARNs.
    #[arg(long, default_value = "local")]
    pub region: String,
    /// Canary webhooks may call only URLs under this prefix (repeatable), e.g.
    /// `http://127.0.0.1:9000/`; without it, any http(s) URL.
    #[arg(long = "webhook-allow", value_name = "PREFIX")]
    pub webhook_allow: Vec<String>,
    /// Bytes of recent changes kept for watchers that fall behind; one further behind re-lists.
    /// Hidden: the default suits real use, tests shrink it to see the re-list.
    #[arg(long, hide = true, default_value_t = store::DEFAULT_HISTORY_BYTES)]
    pub watch_history_bytes: usize,
    /// Accept requests without authentication (every caller is admin). Refused unless
    /// --listen is a loopback address.
    #[arg(long)]
    pub no_auth: bool,
    /// A host name clients address this control plane by, besides IP addresses and localhost
    /// (requests naming any other Host are refused: DNS rebinding). Repeatable.
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    #[command(flatten)]
    pub tls: TlsOpts,
    /// Open connections at most; one more is refused at once (a 503 over plain HTTP, a close
    /// over TLS).
    #[arg(long, default_value_t = 1024, value_parser = at_least_one)]
    pub max_connections: usize,
    /// How long a client may take to send a request's head, from connecting or from the first
    /// byte of its next request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: std::time::Duration,
    /// How long a keep-alive connection may sit idle between requests.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// How long the certificates the mesh CAs issue are valid (from 1m to 30d), e.g. 1h.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub cert_ttl: std::time::Duration,
    #[command(flatten)]
    pub etcd: EtcdOpts,
}

/// Several replicas on one etcd cluster instead of the embedded store (a build with
/// `--features etcd`).
#[derive(Debug, Parser)]
pub struct EtcdOpts {
    /// Keep the store in etcd, at these client URLs (comma-separated), e.g.
    /// `http://10.0.0.1:2379,http://10.0.0.2:2379`; --data-dir then holds only the secrets.
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Every key aviary writes starts with this, so several meshes' control planes (or other
    /// programs) can share one etcd.
    #[arg(long, default_value = "aviary/", requires = "etcd")]
    pub etcd_prefix: String,
    /// Trust the CA certificates of this PEM file for etcd's https:// URLs.
    #[arg(long, value_name = "PEM", requires = "etcd")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's client-certificate authentication; needs --etcd-key.
    #[arg(long, value_name = "PEM", requires_all = ["etcd_key", "etcd_ca"])]
    pub etcd_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// The URL other replicas reach this one at (they forward proxies' stats to the leader);
    /// default: http(s)://--listen.
    #[arg(long, value_name = "URL", requires = "etcd")]
    pub advertise_url: Option<String>,
}

impl EtcdOpts {
    pub fn config(&self) -> Option<store::EtcdConfig> {
        if self.etcd.is_empty() {
            return None;
        }
        let mut config = store::EtcdConfig::new(self.etcd.clone());
        config.prefix = self.etcd_prefix.clone();
        config.tls = self.etcd_ca.as_ref().map(|ca| store::EtcdTls {
            ca: ca.clone(),
            cert: self.etcd_cert.clone(),
            key: self.etcd_key.clone(),
        });
        Some(config)
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is stored hashed and never shown again).
    Create(TokenCreateOpts),
    /// List tokens (id, name, role, mesh), never their secrets.
    List,
    /// Revoke a token by its id.
    Revoke {
        /// The token's id, as `aviary token list` shows it.
        id: String,
    },
}

#[derive(Debug, Parser)]
pub struct TokenCreateOpts {
    /// A name for the token (letters, digits, '.', '_', '-').
    #[arg(long)]
    pub name: String,
    /// admin, operator, proxy or viewer.
    #[arg(long)]
    pub role: String,
    /// The mesh a proxy token is valid for.
    #[arg(long, env = "AVIARY_MESH")]
    pub mesh: Option<String>,
}

/// HTTPS for the control plane: both files, or neither (plain HTTP).
#[derive(Debug, Parser)]
pub struct TlsOpts {
    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsOpts {
    pub fn files(&self) -> Option<control::TlsFiles> {
        Some(control::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }
}

/// A connection limit: a positive count.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a count of at least 1")),
    }
}

/// Span export of the proxies (`aviary proxy`, and every proxy `aviary up`/`demo` runs).
#[derive(Debug, Clone, Parser)]
pub struct TraceOpts {
    /// Export a span per request and proxy hop over OTLP/HTTP to this collector's base URL
    /// (`http://127.0.0.1:4318`; spans go to `/v1/traces` under it). Without it no spans are
    /// made and trace headers pass through untouched.
    #[arg(long, value_name = "URL")]
    pub trace_collector: Option<String>,
    /// The share of new traces to sample, 0 to 1; a caller's sampled flag always stands.
    #[arg(long, value_name = "P", default_value_t = proxy::TraceConfig::DEFAULT_SAMPLING,
        value_parser = share, requires = "trace_collector")]
    pub trace_sampling: f64,
}

impl TraceOpts {
    pub fn config(&self) -> Option<proxy::TraceConfig> {
        Some(proxy::TraceConfig {
            collector: self.trace_collector.clone()?,
            sampling: self.trace_sampling,
        })
    }
}

/// Mutual TLS with the mesh's CA (`aviary agent`, `aviary proxy`, every proxy of `up`/`demo`).
#[derive(Debug, Clone, Parser)]
pub struct MeshTlsOpts {
    /// Get certificates from the control plane's mesh CA (`spiffe://<mesh>/virtualNode/<name>`,
    /// a gateway's `.../virtualGateway/<name>`), renewed before they expire, and use them:
    /// calls to endpoints that take mesh TLS present them, and an agent's inbound listeners
    /// take mutual TLS (PERMISSIVE unless the node's listener `tls` says otherwise).
    #[arg(long)]
    pub mesh_tls: bool,
    /// Renew the mesh certificates this often rather than at two thirds of their validity.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "mesh_tls")]
    pub cert_renew_every: Option<std::time::Duration>,
}

impl MeshTlsOpts {
    pub fn config(&self) -> Option<proxy::MeshTlsConfig> {
        self.mesh_tls.then_some(proxy::MeshTlsConfig {
            renew_every: self.cert_renew_every,
        })
    }
}

/// A share: a number from 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("'{text}' is not a number from 0 to 1")),
    }
}

/// What `aviary up` and `aviary demo` share.
#[derive(Debug, Parser)]
pub struct RunOpts {
    /// Directory of the embedded store, workload logs and proxy state (created if missing).
    #[arg(long, default_value = ".aviary")]
    pub data_dir: PathBuf,
    /// The control plane's address (the CLI's default, so other commands need no flags).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// The mesh's egress proxy, which workloads reach as HTTP_PROXY.
    #[arg(long, default_value = "127.0.0.1:15001")]
    pub egress_listen: SocketAddr,
    /// Serve the gateway proxy's /metrics, /healthz and /config here, for Prometheus to
    /// scrape (further gateways on the next ports; port 0 picks free ones).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Health-check interval for local workloads, instead of each node's `intervalMillis`
    /// (App Mesh's minimum, 5 s, makes a local start slow).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub health_interval: std::time::Duration,
    /// Canary webhooks may call only URLs under this prefix (repeatable), e.g.
    /// `http://127.0.0.1:9000/`; without it, any http(s) URL.
    #[arg(long = "webhook-allow", value_name = "PREFIX")]
    pub webhook_allow: Vec<String>,
    /// The control plane serves HTTPS; the proxies and workloads trust it through --ca.
    #[command(flatten)]
    pub tls: TlsOpts,
    #[command(flatten)]
    pub trace: TraceOpts,
    #[command(flatten)]
    pub mesh_tls: MeshTlsOpts,
    /// The CA certificates (PEM) that the proxies and workloads trust for the control plane's
    /// HTTPS, with --tls-cert; without it, the system's roots.
    #[arg(long, env = "AVIARY_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Parser)]
pub struct UpOpts {
    /// Manifest files or directories (YAML or JSON), or - for standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub run: RunOpts,
}

#[derive(Debug, Parser)]
pub struct DemoOpts {
    /// Which demo: `demomesh` (the walkthrough's order, product and customer services) or
    /// `yelb` (the voting app on real PostgreSQL and Redis, with a pipeline that builds and
    /// deploys every commit to its app server's repository).
    #[arg(value_enum, default_value = "demomesh")]
    pub which: DemoName,
    /// The gateway's port instead of the demo's own (demomesh 9080, yelb 8080).
    #[arg(long, value_name = "PORT")]
    pub gateway_port: Option<u16>,
    #[command(flatten)]
    pub run: RunOpts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoName {
    Demomesh,
    Yelb,
}

#[derive(Debug, Parser)]
pub struct TopOpts {
    #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
    pub mesh: Option<String>,
    /// The window each figure covers.
    #[arg(long, default_value = "5s")]
    pub window: String,
    /// Redraw this often.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Print this many times, then exit (default: until Ctrl-C).
    #[arg(short = 'n', long)]
    pub iterations: Option<u64>,
    #[command(flatten)]
    pub connection: Connection,
}

/// What every `--mesh` that may be left out says.
const MESH_HELP: &str = "The mesh; needed only when there is more than one";

/// `500ms`, `2s`, `1m`, `1h`, `30d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let wrong = || format!("'{text}' is not a duration such as 500ms, 2s, 1m, 1h or 30d");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| wrong())?;
    let seconds = |per: u64| {
        number
            .checked_mul(per)
            .map(std::time::Duration::from_secs)
            .ok_or_else(wrong)
    };
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(number)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(24 * 3600),
        _ => Err(wrong()),
    }
}

#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// Start a canary on a route: from --stable to --canary, step by step.
    Start(Box<CanaryStartOpts>),
    /// Where a canary is, with live stable and canary traffic.
    Status {
        /// The canary's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
        /// Redraw until the canary ends.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Every canary of the mesh: its route, stable and canary nodes, phase and weight.
    List {
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// Hold the current weight (failure checks go on).
    Pause {
        /// The canary's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// Continue after a pause or a gate.
    Resume {
        /// The canary's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// All traffic to the canary now.
    Promote {
        /// The canary's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// All traffic back to stable now.
    Abort {
        /// The canary's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
        /// Why, kept in the canary's history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Every step and decision, with reasons and times.
    History {
        /// The canary's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
}

#[derive(Debug, Parser)]
pub struct CanaryStartOpts {
    /// A name for the canary, unique in its mesh.
    pub name: String,
    #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
    pub mesh: Option<String>,
    /// The virtual router of --route.
    #[arg(
        long,
        required_unless_present = "replicas",
        conflicts_with = "replicas"
    )]
    pub router: Option<String>,
    /// The route whose weighted targets the canary moves.
    #[arg(
        long,
        required_unless_present = "replicas",
        conflicts_with = "replicas"
    )]
    pub route: Option<String>,
    /// The node that carries the route's traffic now (with --replicas: the old version's
    /// workload).
    #[arg(long)]
    pub stable: String,
    /// The new version's node (with --replicas: its workload, of the same node).
    #[arg(long)]
    pub canary: String,
    /// No weighted route: move this many replicas of one node, one at a time, from the
    /// --stable workload to the --canary workload (4: 3/1, 2/2, 1/3, then 0/4), each for
    /// --interval.
    #[arg(long, value_name = "TOTAL")]
    pub replicas: Option<u32>,
    /// Fixed steps: this much more canary weight every --interval (default 10).
    #[arg(long)]
    pub step_weight: Option<u32>,
    /// Fixed steps stop growing at this canary weight; after its interval, all traffic.
    #[arg(long, default_value_t = 100)]
    pub max_weight: u32,
    /// An explicit list of weights, e.g. 1,5,25,gate,50 ("gate" waits for resume).
    #[arg(long)]
    pub weights: Option<String>,
    /// This weight for --interval, then all.
    #[arg(long)]
    pub initial: Option<u32>,
    /// How long each step holds (and the analysis window of a step).
    #[arg(long, default_value = "30s")]
    pub interval: String,
    /// Roll back when the canary's 5xx in --failure-window exceed this (0: any 5xx).
    #[arg(long)]
    pub max_5xx: Option<u64>,
    /// The window --max-5xx counts the canary's 5xx over.
    #[arg(long, default_value = "60s")]
    pub failure_window: String,
    /// Roll back when the canary's error rate (0..1) in a step exceeds this.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Roll back when the canary's p99 (milliseconds) in a step exceeds this.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Canary requests a step needs before it may pass.
    #[arg(long, default_value_t = 1)]
    pub min_requests: u64,
    /// Fail when no step passed for this long.
    #[arg(long, default_value = "10m")]
    pub progress_deadline: String,
    /// Judge the canary against the stable version with a sequential test valid at every
    /// look: roll back as soon as it is shown to fail more, pass a step only once it is shown
    /// no worse than stable by more than --max-error-rate-increase.
    #[arg(long)]
    pub compare: bool,
    /// With --compare: the confidence of its decisions (false rollbacks at most 1 − this).
    #[arg(long, requires = "compare")]
    pub confidence: Option<f64>,
    /// With --compare: how much worse than stable's error rate (0..1, 0.005 = half a point)
    /// a canary may be and still pass.
    #[arg(long, requires = "compare")]
    pub max_error_rate_increase: Option<f64>,
    /// With --compare: compare latency too, as the share of requests slower than stable's
    /// quantile Q (e.g. 0.99).
    #[arg(long, requires = "compare", value_name = "Q")]
    pub compare_latency: Option<f64>,
    /// What a step whose interval is over does without a canary request in it: wait (until
    /// --progress-deadline), pass, or fail.
    #[arg(long, value_parser = ["wait", "pass", "fail"])]
    pub no_traffic: Option<String>,
    /// NAME=URL: POSTed the canary's state each step; non-2xx or no answer fails it.
    #[arg(long = "webhook")]
    pub webhooks: Vec<String>,
    /// URL told of every transition (started, step, paused, promoted, rolled back) with the
    /// reason, as a Slack-compatible incoming-webhook message (repeatable).
    #[arg(long = "notify", value_name = "URL")]
    pub notify: Vec<String>,
    /// Shadow traffic first: a step in which this percentage of the route's requests is
    /// copied to the canary (answers discarded) before any user request reaches it.
    #[arg(long, value_name = "PERCENT")]
    pub mirror: Option<u32>,
    /// A/B first: NAME=VALUE, requests with this header go to the canary in a step before the
    /// weighted ones, and through them (repeatable; any rule matching is enough).
    #[arg(long = "match-header", value_name = "NAME=VALUE")]
    pub match_headers: Vec<String>,
    /// A/B first, by cookie: NAME=VALUE, as --match-header (repeatable).
    #[arg(long = "match-cookie", value_name = "NAME=VALUE")]
    pub match_cookies: Vec<String>,
    /// Keep a caller the gateway sent to the canary on it (a cookie, aviary-canary, set by
    /// the proxy), so one user does not flip between versions.
    #[arg(long)]
    pub sticky: bool,
    /// Synthetic load while the canary runs: GET this URL (an entry into the mesh, such as
    /// the gateway's) --load-rate times a second.
    #[arg(long, value_name = "URL")]
    pub load: Option<String>,
    /// With --load: requests per second.
    #[arg(long, requires = "load", default_value_t = 10)]
    pub load_rate: u32,
    /// With --load: the Host header to send (a virtual service's name, for an outbound
    /// listener).
    #[arg(long, requires = "load")]
    pub load_host: Option<String>,
    /// After promotion, remove the old version's workloads and node.
    #[arg(long)]
    pub remove_stable: bool,
    /// After a rollback, remove the canary's workloads and node.
    #[arg(long)]
    pub remove_canary: bool,
}

#[derive(Debug, Parser)]
pub struct DeployOpts {
    /// The pipeline's deploy.json; the control plane stores the deploy and carries it out.
    #[arg(required_unless_present = "follow", conflicts_with = "follow")]
    pub file: Option<PathBuf>,
    /// How long the new version may take to pass its health check before it is removed
    /// (default: the file's `health_timeout`, else 120s).
    #[arg(long, value_parser = parse_duration)]
    pub health_timeout: Option<std::time::Duration>,
    /// Follow a deploy already started (by name, e.g. `product-2-1`) instead of starting one.
    #[arg(long, value_name = "NAME")]
    pub follow: Option<String>,
    /// The mesh of the deploy to follow, or of the file's service when the file names none.
    #[arg(long, env = "AVIARY_MESH")]
    pub mesh: Option<String>,
    /// Start the deploy and return at once, printing its name.
    #[arg(long, conflicts_with = "follow")]
    pub detach: bool,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Parser)]
pub struct LogsOpts {
    /// The workload whose replicas' output to print.
    pub workload: String,
    /// The workload's mesh; needed only when the data directory has logs of more than one.
    #[arg(long, env = "AVIARY_MESH")]
    pub mesh: Option<String>,
    /// Only this replica (0-based); default: every replica, lines prefixed `<workload>-<n> | `.
    #[arg(short = 'r', long)]
    pub replica: Option<u32>,
    /// Keep printing new output until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The data directory of `aviary up` / `aviary demo`.
    #[arg(long, default_value = ".aviary")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Parser)]
pub struct ApplyOpts {
    /// A manifest file, a directory of .yaml/.yml/.json files, or - for standard input
    /// (repeatable; at most 10,000 documents per file).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// The mesh of App Mesh controller resources (appmesh.k8s.aws/v1beta2) that have no
    /// spec.meshRef, when the files hold no Mesh or more than one.
    #[arg(long)]
    pub mesh: Option<String>,
    /// Validate, then print what would be created or configured; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// Every kind `get` and `delete` take, with their short names (`Kind::parse` and
/// `get::object_collection` take singular and plural forms too).
pub const KINDS_HELP: &str = "meshes, virtualnodes (vn), virtualrouters (vr), routes, \
    virtualservices (vs), virtualgateways (vg), gatewayroutes (gr), workloads (wl), endpoints (ep)";

/// Which resource(s): a kind, an optional name, and the scope they live in.
#[derive(Debug, Parser)]
pub struct Selector {
    #[arg(help = KINDS_HELP)]
    pub kind: String,
    /// The resource's name (an endpoint's id); `get` without it shows every one of the kind.
    pub name: Option<String>,
    #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
    pub mesh: Option<String>,
    /// The virtual router of a route.
    #[arg(long)]
    pub router: Option<String>,
    /// The virtual gateway of a gateway route.
    #[arg(long)]
    pub gateway: Option<String>,
}

#[derive(Debug, Parser)]
pub struct GetOpts {
    #[command(flatten)]
    pub selector: Selector,
    /// A table, JSON, or YAML manifests that `aviary apply` takes back.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
    /// Keep the view live: redraw on every change.
    #[arg(short = 'w', long)]
    pub watch: bool,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Parser)]
pub struct DeleteOpts {
    #[command(flatten)]
    pub selector: Selector,
    /// An endpoint's virtual node; needed only when endpoints of two nodes have the same id.
    #[arg(long)]
    pub node: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Set a route's weighted targets in one write: `aviary route set product-r --router
    /// product-vr --mesh demomesh product-vn=75 product-v15-vn=25`.
    Set(RouteSetOpts),
}

#[derive(Debug, Parser)]
pub struct RouteSetOpts {
    /// The route to change.
    pub route: String,
    /// The virtual router the route belongs to.
    #[arg(long)]
    pub router: String,
    #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
    pub mesh: Option<String>,
    /// NODE=WEIGHT pairs.
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Parser)]
pub struct AgentOpts {
    /// The mesh whose workloads and nodes this host runs.
    #[arg(long, env = "AVIARY_MESH")]
    pub mesh: String,
    /// This host's name: it runs the workloads that name it in `hosts` (or name none).
    #[arg(long, value_parser = host_name)]
    pub host: String,
    /// This host's address, where other hosts' proxies reach its replicas (inbound listeners).
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// The shared outbound listener, for callers on this host that are no local workload;
    /// each local virtual node also gets its own, on the same IP.
    #[arg(long, default_value = "127.0.0.1:15001")]
    pub outbound_listen: SocketAddr,
    /// Serve /metrics, /healthz and /config here.
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Workload logs and the proxy's saved configuration (created if missing).
    #[arg(long, default_value = ".aviary-agent")]
    pub data_dir: PathBuf,
    /// Health-check interval for local workloads, instead of each node's `intervalMillis`.
    #[arg(long, value_parser = parse_duration)]
    pub health_interval: Option<std::time::Duration>,
    /// Open connections at most on each listener; one more is answered 503 and closed.
    #[arg(long, default_value_t = proxy::Config::DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    pub max_connections: usize,
    #[command(flatten)]
    pub trace: TraceOpts,
    #[command(flatten)]
    pub mesh_tls: MeshTlsOpts,
    #[command(flatten)]
    pub connection: Connection,
}

/// A host name is a resource name: it ends up in endpoint ids.
fn host_name(name: &str) -> Result<String, String> {
    let problems = model::validate_name("--host", name);
    match problems.first() {
        None => Ok(name.to_string()),
        Some(problem) => Err(problem.to_string()),
    }
}

#[derive(Debug, Parser)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["gateway", "node"])))]
pub struct ProxyOpts {
    /// The mesh of the gateway or node.
    #[arg(long, env = "AVIARY_MESH")]
    pub mesh: String,
    /// Serve this virtual gateway's listeners.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Be the egress proxy of this virtual node.
    #[arg(long)]
    pub node: Option<String>,
    /// Address the gateway's listener ports are bound on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// The egress listener (with --node).
    #[arg(long, default_value = "127.0.0.1:15001")]
    pub egress_listen: SocketAddr,
    /// Serve /metrics, /healthz and /config here.
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Keep the last configuration here, to serve from when the control plane is down.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Open connections at most on each listener; one more is answered 503 and closed.
    #[arg(long, default_value_t = proxy::Config::DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    pub max_connections: usize,
    #[command(flatten)]
    pub trace: TraceOpts,
    #[command(flatten)]
    pub mesh_tls: MeshTlsOpts,
    #[command(flatten)]
    pub connection: Connection,
}

#[cfg(test)]
mod tests;

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Make a pipeline and start its first run with the branch's newest commit.
    Create(Box<PipelineCreateOpts>),
    /// Every pipeline of the mesh, with its newest run.
    List {
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// The pipeline and its newest run's stages.
    Status {
        /// The pipeline's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
        /// Follow the newest run until it ends; fail when it did not succeed.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// The pipeline's kept runs, newest first.
    History {
        /// The pipeline's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// Start a run with the branch's newest commit now (for a git hook to call).
    Trigger {
        /// The pipeline's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// Let a run waiting at its Approval stage deploy, or reject it.
    Approve {
        /// The pipeline's name.
        name: String,
        /// The run (default: the one waiting).
        run: Option<u64>,
        /// Reject instead, with this reason: the run fails and deploys nothing.
        #[arg(long, value_name = "REASON")]
        reject: Option<String>,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// A run's stage output (default: the newest run's build).
    Logs {
        /// The pipeline's name.
        name: String,
        /// The run (default: the newest).
        run: Option<u64>,
        /// The stage whose output to print.
        #[arg(long, default_value = "build", value_parser = ["source", "build", "approval", "deploy"])]
        stage: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
    /// Remove the pipeline and its runs (a deploy under way goes on).
    Delete {
        /// The pipeline's name.
        name: String,
        #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
        mesh: Option<String>,
    },
}

#[derive(Debug, Parser)]
pub struct PipelineCreateOpts {
    /// The pipeline's name (one per microservice, e.g. the service's).
    pub name: String,
    /// The repository: a path or any URL `git` can fetch.
    #[arg(long)]
    pub repository: String,
    /// The branch whose new commits start runs.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The build, run with `sh -c` in a checkout of the commit; it puts what the new version
    /// runs in $ARTIFACT_DIR and may rewrite the deploy file.
    #[arg(long)]
    pub build: String,
    /// The deploy settings in the checkout, as the AWS pipeline keeps them.
    #[arg(long, default_value = "specfiles/deploy.json")]
    pub deploy_file: String,
    /// Seconds between looks for a new commit; 0: only `aviary pipeline trigger`.
    #[arg(long, default_value_t = 30)]
    pub poll: u64,
    /// Seconds the build may take.
    #[arg(long, default_value_t = 600)]
    pub build_timeout: u64,
    /// Wait for `aviary pipeline approve` before each deploy.
    #[arg(long)]
    pub approval: bool,
    /// A newer commit ends a run that has not begun to deploy, instead of waiting for it.
    #[arg(long)]
    pub supersede: bool,
    #[arg(long, env = "AVIARY_MESH", help = MESH_HELP)]
    pub mesh: Option<String>,
}
