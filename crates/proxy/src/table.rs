//! `RouteTable`: a snapshot compiled for the request path, immutable once built. Virtual
//! service → provider (router routes in match order, or a node) → weighted targets → a node's
//! listeners and endpoints; plus the gateway's listeners and routes and the egress filter.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use model::Kind;
use model::typed::{self, DefaultGatewayRouteRewrite, EgressFilterType, HttpTimeout};
use serde::Deserialize;
use serde_json::Value;

use crate::Role;
use crate::canary::{Exposure, Overlay};
use crate::endpoints::{
    DnsSource, EndpointSource, EndpointWorkload, NoSource, NodeEndpoints, RegisteredSource,
};
use crate::error::ProxyError;
use crate::matching::{HttpMatch, RequestView};
use crate::outlier::OutlierConfig;
use crate::retry::RetryPolicy;
use crate::snapshot::Snapshot;
use crate::telemetry::{ConfigSource, Series, SeriesKey, Telemetry};
use crate::tls::{ClientTls, ServerTls};
use crate::weighted::WeightedChoice;

/// FNV-1a, for the map every request looks its service up in: its keys come from the
/// configuration, not from callers, so a hash that resists chosen collisions (std's SipHash,
/// several times slower on short names) buys nothing there.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// App Mesh's defaults for a route without `timeout`.
const DEFAULT_PER_REQUEST: Duration = Duration::from_secs(15);
const DEFAULT_IDLE: Duration = Duration::from_secs(300);
/// Routes without a priority come after every route with one (App Mesh allows 0..=1000).
const NO_PRIORITY: u32 = u32::MAX;

pub struct RouteTable {
    pub revision: u64,
    pub snapshot: Arc<Snapshot>,
    /// Where the snapshot came from; `None` before any configuration.
    pub source: Option<ConfigSource>,
    mesh: String,
    mesh_exists: bool,
    egress_filter: EgressFilterType,
    services: HashMap<String, Arc<ServiceEntry>, BuildHasherDefault<Fnv>>,
    nodes: HashMap<String, Arc<NodeEntry>>,
    /// Every node's backends (virtual service names), for the egress filter: whoever calls
    /// through a node's outbound listener is that node.
    backends: HashMap<String, HashSet<String>>,
    /// Registered endpoints that are agents' inbound listeners taking mesh mutual TLS.
    mesh_tls: HashSet<SocketAddr>,
    gateway: Option<GatewayEntry>,
    /// Resources that could not be compiled (they serve nothing); logged, shown at `/config`.
    pub problems: Vec<String>,
}

pub struct ServiceEntry {
    /// "virtual router 'r'" or "virtual node 'n'", for messages.
    pub provider: String,
    routes: Vec<Arc<RouteEntry>>,
    /// Why the service cannot be served (its provider is missing or has no listener).
    pub unavailable: Option<String>,
}

pub struct RouteEntry {
    pub name: String,
    matcher: HttpMatch,
    pub targets: Vec<TargetEntry>,
    pub choice: WeightedChoice,
    pub retry: RetryPolicy,
    pub per_request: Option<Duration>,
    pub idle: Option<Duration>,
    /// What a live canary of this route asks besides weights (mirror, A/B rules, sticky);
    /// `None` for nearly every route, and then the request path looks no further.
    pub canary: Option<Arc<Overlay>>,
}

pub struct TargetEntry {
    pub node: Arc<NodeEntry>,
    pub listener: Option<usize>,
    pub key: SeriesKey,
    pub series: Arc<Series>,
}

impl TargetEntry {
    pub fn listener(&self) -> Option<&NodeListener> {
        self.listener.and_then(|i| self.node.listeners.get(i))
    }

    /// Whether requests to this target go out as HTTP/2 (its listener's protocol).
    pub fn http2(&self) -> bool {
        self.listener().is_some_and(|l| l.http2)
    }
}

pub struct NodeEntry {
    pub name: String,
    pub listeners: Vec<NodeListener>,
    /// Endpoints when the node has no listener: none, with the reason.
    pub no_listener: Arc<NodeEndpoints>,
    /// How this node's proxy connects to its backends (App Mesh client policies).
    pub client_policies: ClientPolicies,
}

/// A node's client policies with TLS, built once per configuration: per backend virtual
/// service, and the node's `backendDefaults`. A policy that cannot be built (a file missing,
/// `sds`) is kept as its reason: requests under it fail rather than go out in plain text.
#[derive(Default)]
pub struct ClientPolicies {
    pub defaults: Option<Result<ClientTls, String>>,
    pub backends: HashMap<String, Result<ClientTls, String>>,
}

impl ClientPolicies {
    /// The TLS policy for calls to `service`, if any applies.
    pub fn for_service(&self, service: &str) -> Option<&Result<ClientTls, String>> {
        self.backends.get(service).or(self.defaults.as_ref())
    }
}

pub struct NodeListener {
    pub port: u16,
    /// http2 or grpc: speak HTTP/2 with prior knowledge upstream.
    pub http2: bool,
    pub outlier: Option<OutlierConfig>,
    pub endpoints: Arc<NodeEndpoints>,
    /// The listener's App Mesh `tls`, built (or why it cannot be: its inbound listeners then
    /// refuse every connection rather than serve without the TLS the spec asks for).
    pub tls: Option<Result<ServerTls, String>>,
}

impl NodeEntry {
    /// The endpoints serving `listener`, or the empty set of a node without listeners.
    pub fn endpoints<'a>(&'a self, listener: Option<&'a NodeListener>) -> &'a Arc<NodeEndpoints> {
        listener.map(|l| &l.endpoints).unwrap_or(&self.no_listener)
    }
}

pub struct GatewayEntry {
    pub name: String,
    /// Listener ports (HTTP/1.1 downstream, whatever the listener protocol).
    pub listeners: Vec<u16>,
    routes: Vec<GatewayRouteEntry>,
    /// Some route matches on the hostname (else the request's host need not be parsed).
    matches_hostnames: bool,
    /// Listener ports whose App Mesh `tls` is set: what they accept (or why they cannot).
    tls: HashMap<u16, Result<ServerTls, String>>,
    /// The gateway's `backendDefaults` client policy with TLS, for its calls to the mesh.
    pub client_policy: Option<Result<ClientTls, String>>,
}

pub struct GatewayRouteEntry {
    pub name: String,
    matcher: HttpMatch,
    pub service: String,
    pub target_port: Option<u16>,
    rewrite: Rewrite,
    /// The `Host` of a hostname rewrite: `service`, when it is a valid header value.
    host: Option<HeaderValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PrefixRewrite {
    /// `defaultPrefix` ENABLED (the default): the matched prefix becomes `/`.
    Default,
    /// `defaultPrefix` DISABLED: the path is kept.
    Keep,
    /// `value`: the matched prefix becomes this.
    Value(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rewrite {
    prefix: PrefixRewrite,
    path: Option<String>,
    /// `defaultTargetHostname` ENABLED (the default): Host becomes the target service's name.
    hostname: bool,
}

impl Rewrite {
    fn http(rewrite: Option<&typed::HttpGatewayRouteRewrite>) -> Rewrite {
        use typed::HttpGatewayRoutePrefixRewrite as P;
        let prefix = match rewrite.and_then(|r| r.prefix.as_ref()) {
            Some(P {
                value: Some(value), ..
            }) => PrefixRewrite::Value(value.clone()),
            Some(P {
                default_prefix: Some(DefaultGatewayRouteRewrite::Disabled),
                ..
            }) => PrefixRewrite::Keep,
            _ => PrefixRewrite::Default,
        };
        Rewrite {
            prefix,
            path: rewrite
                .and_then(|r| r.path.as_ref())
                .and_then(|p| p.exact.clone()),
            hostname: rewrites_hostname(rewrite.and_then(|r| r.hostname.as_ref())),
        }
    }

    fn grpc(rewrite: Option<&typed::GrpcGatewayRouteRewrite>) -> Rewrite {
        Rewrite {
            // App Mesh has no path rewrite for gRPC: `/package.Service/Method` is the call
            // itself, and a service that got `/Method` could not serve it.
            prefix: PrefixRewrite::Keep,
            path: None,
            hostname: rewrites_hostname(rewrite.and_then(|r| r.hostname.as_ref())),
        }
    }
}

fn rewrites_hostname(rewrite: Option<&typed::GatewayRouteHostnameRewrite>) -> bool {
    rewrite.and_then(|h| h.default_target_hostname) != Some(DefaultGatewayRouteRewrite::Disabled)
}

impl GatewayRouteEntry {
    /// The path the target virtual service sees, as two pieces to join.
    fn rewritten<'a>(&'a self, path: &'a str) -> (&'a str, &'a str) {
        match (&self.rewrite.path, self.matcher.matched_prefix()) {
            (Some(exact), _) => (exact, ""),
            (None, Some(prefix)) if !self.matcher.is_exact_path() => {
                let rest = &path[prefix.len().min(path.len())..];
                match &self.rewrite.prefix {
                    PrefixRewrite::Keep => (path, ""),
                    PrefixRewrite::Default => join_prefix("/", rest),
                    PrefixRewrite::Value(value) => join_prefix(value, rest),
                }
            }
            _ => (path, ""),
        }
    }

    /// The path (with query) the target virtual service sees.
    pub fn rewrite_path(&self, path: &str, query: Option<&str>) -> String {
        let (head, tail) = self.rewritten(path);
        let query_len = query.map_or(0, |q| q.len() + 1);
        let mut out = String::with_capacity(head.len() + tail.len() + query_len);
        out.push_str(head);
        out.push_str(tail);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }

    /// Whether [`rewrite_path`](Self::rewrite_path) leaves `path` as it is (the common
    /// `prefix: /` route), so the request's own path can be forwarded without a copy.
    pub fn keeps_path(&self, path: &str) -> bool {
        let (head, tail) = self.rewritten(path);
        head.len() + tail.len() == path.len() && path.starts_with(head) && path.ends_with(tail)
    }

    /// The `Host` the target service sees, when the route rewrites it.
    pub fn host_rewrite(&self) -> Option<&HeaderValue> {
        self.host.as_ref()
    }
}

/// `replacement` followed by what the prefix left, without doubling the slash between them.
fn join_prefix<'a>(replacement: &'a str, rest: &'a str) -> (&'a str, &'a str) {
    match (replacement.ends_with('/'), rest.strip_prefix('/')) {
        (true, Some(stripped)) => (replacement, stripped),
        _ => (replacement, rest),
    }
}

/// A gRPC route's match: service and method become a path.
fn grpc_match(service: Option<&str>, method: Option<&str>, port: Option<u16>) -> HttpMatch {
    let matcher = match (service, method) {
        (Some(service), Some(method)) => HttpMatch::exact_path(format!("/{service}/{method}")),
        (Some(service), None) => HttpMatch::prefix(format!("/{service}/")),
        _ => HttpMatch::prefix("/"),
    };
    matcher.with_port(port)
}

fn spec_of(item: &Value) -> &Value {
    &item["spec"]
}

fn name_of(item: &Value, kind: Kind) -> String {
    item[kind.name_field()]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Reuses endpoint state of the previous table for sources that did not change.
struct EndpointReuse<'a> {
    previous: HashMap<(String, String), &'a Arc<NodeEndpoints>>,
}

impl<'a> EndpointReuse<'a> {
    fn new(previous: Option<&'a RouteTable>) -> EndpointReuse<'a> {
        let mut map = HashMap::new();
        for node in previous.into_iter().flat_map(|t| t.nodes.values()) {
            let all = node
                .listeners
                .iter()
                .map(|l| &l.endpoints)
                .chain([&node.no_listener]);
            for endpoints in all {
                map.insert((node.name.clone(), endpoints.source()), endpoints);
            }
        }
        EndpointReuse { previous: map }
    }

    fn get(&self, node: &str, source: Box<dyn EndpointSource>) -> Arc<NodeEndpoints> {
        match self.previous.get(&(node.to_string(), source.describe())) {
            Some(kept) => Arc::clone(kept),
            None => Arc::new(NodeEndpoints::new(node, source)),
        }
    }
}

impl RouteTable {
    /// The table of a proxy that has no configuration yet: every request fails clearly.
    pub fn empty(mesh: &str) -> RouteTable {
        RouteTable {
            revision: 0,
            snapshot: Arc::new(Snapshot::default()),
            source: None,
            mesh: mesh.to_string(),
            mesh_exists: false,
            egress_filter: EgressFilterType::DropAll,
            services: HashMap::default(),
            nodes: HashMap::new(),
            backends: HashMap::new(),
            mesh_tls: HashSet::new(),
            gateway: None,
            problems: Vec::new(),
        }
    }

    /// Compiles `snapshot` for `role`, keeping `previous`'s endpoint state where sources match.
    pub fn compile(
        mesh: &str,
        snapshot: Arc<Snapshot>,
        source: ConfigSource,
        role: &Role,
        previous: Option<&RouteTable>,
        telemetry: &Telemetry,
    ) -> RouteTable {
        let mut problems = Vec::new();
        let reuse = EndpointReuse::new(previous);
        let (registered, mesh_tls) = registered_endpoints(&snapshot, telemetry, &mut problems);
        let mut nodes = HashMap::new();
        let mut backends = HashMap::new();
        for item in snapshot.of_kind(Kind::VirtualNode) {
            let name = name_of(item, Kind::VirtualNode);
            if let Some(spec) = typed::view::<typed::VirtualNodeSpec>(spec_of(item)) {
                let names = spec
                    .backends
                    .iter()
                    .filter_map(|b| b.virtual_service.as_ref());
                let names = names.map(|vs| vs.virtual_service_name.clone()).collect();
                backends.insert(name.clone(), names);
            }
            let node = compile_node(
                &name,
                spec_of(item),
                registered.get(&name),
                &reuse,
                &mut problems,
            );
            nodes.insert(name, Arc::new(node));
        }
        let mut services = HashMap::default();
        let mut overlays = Overlays::new(&snapshot, &mut problems);
        for item in snapshot.of_kind(Kind::VirtualService) {
            let name = name_of(item, Kind::VirtualService);
            let service = compile_service(
                &name,
                spec_of(item),
                &snapshot,
                &nodes,
                telemetry,
                &mut overlays,
                &mut problems,
            )
            .unwrap_or_else(|problem| {
                problems.push(format!("virtual service '{name}': {problem}"));
                ServiceEntry {
                    provider: "no provider".into(),
                    routes: Vec::new(),
                    unavailable: Some(problem),
                }
            });
            services.insert(name, Arc::new(service));
        }
        let egress_filter = snapshot
            .mesh
            .as_ref()
            .and_then(|mesh| typed::view::<typed::MeshSpec>(spec_of(mesh)))
            .unwrap_or_default()
            .egress_filter_type();
        let gateway = match role {
            Role::Gateway(name) => snapshot
                .get(Kind::VirtualGateway, None, name)
                .map(|item| compile_gateway(name, spec_of(item), &snapshot, &mut problems)),
            Role::Node(_) | Role::Mesh | Role::Agent { .. } => None,
        };
        for problem in &problems {
            tracing::warn!(%problem, "configuration problem");
        }
        RouteTable {
            revision: snapshot.revision,
            source: Some(source),
            mesh: mesh.to_string(),
            mesh_exists: snapshot.mesh.is_some(),
            egress_filter,
            services,
            nodes,
            backends,
            mesh_tls,
            gateway,
            problems,
            snapshot,
        }
    }

    pub fn mesh(&self) -> &str {
        &self.mesh
    }

    pub fn is_configured(&self) -> bool {
        self.mesh_exists
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn service(&self, name: &str) -> Result<&Arc<ServiceEntry>, ProxyError> {
        self.services
            .get(name)
            .ok_or_else(|| ProxyError::UnknownService {
                service: name.to_string(),
                mesh: self.mesh.clone(),
            })
    }

    /// The egress filter: with DROP_ALL a node may call only its backends. `caller` is the
    /// node whose outbound listener the request came in on (`None`: a listener shared by
    /// callers it cannot tell apart, which the filter cannot apply to).
    pub fn check_backend(&self, caller: Option<&str>, service: &str) -> Result<(), ProxyError> {
        let Some(caller) = caller else {
            return Ok(());
        };
        let allowed = self.egress_filter == EgressFilterType::AllowAll
            || self
                .backends
                .get(caller)
                .is_some_and(|backends| backends.contains(service));
        if allowed {
            Ok(())
        } else {
            Err(ProxyError::NotABackend {
                node: caller.to_string(),
                service: service.to_string(),
                mesh: self.mesh.clone(),
            })
        }
    }

    /// Whether the endpoint at `addr` is an agent's inbound listener taking mesh mutual TLS.
    pub fn speaks_mesh_tls(&self, addr: SocketAddr) -> bool {
        self.mesh_tls.contains(&addr)
    }

    /// The node `name`, if the configuration has it.
    pub fn node(&self, name: &str) -> Option<&Arc<NodeEntry>> {
        self.nodes.get(name)
    }

    /// Whether `node`'s listener speaks HTTP/2 (`http2`, `grpc`).
    pub fn node_speaks_http2(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .and_then(|n| n.listeners.first())
            .is_some_and(|l| l.http2)
    }

    /// The gateway's listener ports (empty in the mesh role).
    pub fn gateway_ports(&self) -> Vec<u16> {
        self.gateway
            .as_ref()
            .map(|g| g.listeners.clone())
            .unwrap_or_default()
    }

    /// The App Mesh `tls` of the gateway's listener on `port`, if it sets one.
    pub fn gateway_tls(&self, port: u16) -> Option<Result<ServerTls, String>> {
        self.gateway.as_ref()?.tls.get(&port).cloned()
    }

    /// The gateway's `backendDefaults` client policy with TLS, if it has one.
    pub fn gateway_client_policy(&self) -> Option<&Result<ClientTls, String>> {
        self.gateway.as_ref()?.client_policy.as_ref()
    }

    /// Whether any gateway route matches on the request's hostname.
    pub fn gateway_matches_hostnames(&self) -> bool {
        self.gateway.as_ref().is_some_and(|g| g.matches_hostnames)
    }

    pub fn gateway_name(&self) -> Option<&str> {
        self.gateway.as_ref().map(|g| g.name.as_str())
    }

    /// The first gateway route (in priority order) that matches.
    pub fn gateway_route(&self, request: &RequestView<'_>) -> Option<&GatewayRouteEntry> {
        self.gateway
            .as_ref()?
            .routes
            .iter()
            .find(|r| r.matcher.matches(request))
    }
}

impl ServiceEntry {
    /// The first route (in match order) that matches.
    pub fn route(&self, request: &RequestView<'_>) -> Option<&Arc<RouteEntry>> {
        self.routes.iter().find(|r| r.matcher.matches(request))
    }
}

/// The healthy registered endpoints of each node (an entry marked unhealthy counts as present:
/// the node then uses registered endpoints, but not that one), with their workloads where
/// they come from two or more, and the addresses of those that take mesh mutual TLS
/// (`meshTls`), in one pass over the snapshot's endpoints.
fn registered_endpoints(
    snapshot: &Snapshot,
    telemetry: &Telemetry,
    problems: &mut Vec<String>,
) -> (HashMap<String, RegisteredSource>, HashSet<SocketAddr>) {
    let mut out: HashMap<String, Vec<SocketAddr>> = HashMap::new();
    let mut workloads: HashMap<&str, Vec<(SocketAddr, &str)>> = HashMap::new();
    let mut mesh_tls = HashSet::new();
    for entry in &snapshot.endpoints {
        let node = &entry.virtual_node;
        let addrs = out.entry(node.clone()).or_default();
        let Ok(ip) = entry.address.parse::<std::net::IpAddr>() else {
            problems.push(format!(
                "registered endpoint of '{node}': '{}' is not an IP address",
                entry.address
            ));
            continue;
        };
        let addr = SocketAddr::new(ip, entry.port);
        if entry.mesh_tls {
            mesh_tls.insert(addr);
        }
        if entry.healthy {
            addrs.push(addr);
            if let Some(workload) = &entry.workload {
                workloads.entry(node).or_default().push((addr, workload));
            }
        }
    }
    let sources = out
        .into_iter()
        .map(|(node, mut addrs)| {
            addrs.sort();
            addrs.dedup();
            let mut labels = workloads.remove(node.as_str()).unwrap_or_default();
            labels.sort();
            labels.dedup_by_key(|(addr, _)| *addr);
            let distinct: HashSet<&str> = labels.iter().map(|(_, w)| *w).collect();
            // One workload (the usual case) is the node itself: nothing more to count.
            let workloads = if distinct.len() >= 2 {
                (labels.into_iter())
                    .map(|(addr, workload)| {
                        let label = EndpointWorkload {
                            name: workload.into(),
                            series: telemetry.workload_series(&node, workload),
                        };
                        (addr, label)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            (node, RegisteredSource { addrs, workloads })
        })
        .collect();
    (sources, mesh_tls)
}

fn compile_node(
    name: &str,
    spec: &Value,
    registered: Option<&RegisteredSource>,
    reuse: &EndpointReuse<'_>,
    problems: &mut Vec<String>,
) -> NodeEntry {
    let view = typed::view::<typed::VirtualNodeSpec>(spec);
    let hostname = view
        .as_ref()
        .and_then(|v| v.service_discovery.as_ref())
        .and_then(|sd| sd.dns.as_ref())
        .map(|dns| dns.hostname.clone());
    let listeners = view
        .as_ref()
        .map(|v| v.listeners.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|listener| {
            let port = listener.port_mapping.port;
            let source: Box<dyn EndpointSource> = match (registered, &hostname) {
                (Some(registered), _) => Box::new(registered.clone()),
                (None, Some(hostname)) => Box::new(DnsSource {
                    hostname: hostname.clone(),
                    port,
                }),
                (None, None) => Box::new(NoSource {
                    reason: "the node has no DNS service discovery and no registered endpoint"
                        .into(),
                }),
            };
            let tls = listener.tls.as_ref().map(|tls| {
                ServerTls::from_listener(tls).map_err(|e| {
                    let problem = format!("virtual node '{name}' listener {port}: {e}");
                    problems.push(problem.clone());
                    problem
                })
            });
            NodeListener {
                port,
                http2: listener.port_mapping.protocol.speaks_http2(),
                outlier: OutlierConfig::from_listener(listener),
                endpoints: reuse.get(name, source),
                tls,
            }
        })
        .collect();
    let mut client_policies = ClientPolicies::default();
    let mut build = |policy: Option<&typed::ClientPolicy>, what: String| {
        let tls = policy.and_then(|p| p.tls.as_ref())?;
        Some(ClientTls::from_policy(tls).map_err(|e| {
            let problem = format!("virtual node '{name}' {what}: {e}");
            problems.push(problem.clone());
            problem
        }))
    };
    if let Some(spec) = &view {
        let defaults = spec.backend_defaults.as_ref();
        client_policies.defaults = build(
            defaults.and_then(|d| d.client_policy.as_ref()),
            "backendDefaults.clientPolicy".into(),
        );
        for backend in spec
            .backends
            .iter()
            .filter_map(|b| b.virtual_service.as_ref())
        {
            let what = format!("backend '{}' clientPolicy", backend.virtual_service_name);
            if let Some(tls) = build(backend.client_policy.as_ref(), what) {
                client_policies
                    .backends
                    .insert(backend.virtual_service_name.clone(), tls);
            }
        }
    }
    let no_listener = reuse.get(
        name,
        Box::new(NoSource {
            reason: "the node has no listener".into(),
        }),
    );
    NodeEntry {
        name: name.to_string(),
        listeners,
        no_listener,
        client_policies,
    }
}

/// The canaries' overlays, each compiled once per configuration the first time a service
/// reaches its route, and shared by every service whose provider is that route's router.
struct Overlays<'a> {
    /// By (router, route): the one canary that drives it.
    exposures: HashMap<(&'a str, &'a str), &'a Exposure>,
    compiled: HashMap<(String, String), Option<Arc<Overlay>>>,
}

impl<'a> Overlays<'a> {
    fn new(snapshot: &'a Snapshot, problems: &mut Vec<String>) -> Overlays<'a> {
        let mut exposures: HashMap<(&str, &str), &Exposure> = HashMap::new();
        // In name order (the snapshot keeps them so): of two canaries on one route, the
        // first applies, and the second is a problem.
        for exposure in snapshot.exposures() {
            let key = (exposure.router.as_str(), exposure.route.as_str());
            match exposures.get(&key) {
                Some(first) => problems.push(format!(
                    "canary '{}': route '{}' of virtual router '{}' is driven by canary '{}' \
                     already; its exposure is not applied",
                    exposure.canary, exposure.route, exposure.router, first.canary
                )),
                None => {
                    exposures.insert(key, exposure);
                }
            }
        }
        Overlays {
            exposures,
            compiled: HashMap::new(),
        }
    }

    /// The overlay of `route` of `router`, whose compiled targets are `targets`.
    fn get(
        &mut self,
        router: &str,
        route: &str,
        targets: &[TargetEntry],
        problems: &mut Vec<String>,
    ) -> Option<Arc<Overlay>> {
        let exposure = self.exposures.get(&(router, route))?;
        // Allocates only for a route a canary drives.
        self.compiled
            .entry((router.to_string(), route.to_string()))
            .or_insert_with(|| {
                let nodes = targets.iter().map(|t| t.node.name.as_str());
                Overlay::compile(exposure, nodes, problems).map(Arc::new)
            })
            .clone()
    }
}

fn compile_service(
    name: &str,
    spec: &Value,
    snapshot: &Snapshot,
    nodes: &HashMap<String, Arc<NodeEntry>>,
    telemetry: &Telemetry,
    overlays: &mut Overlays<'_>,
    problems: &mut Vec<String>,
) -> Result<ServiceEntry, String> {
    let view =
        typed::view::<typed::VirtualServiceSpec>(spec).ok_or("spec does not fit the model")?;
    match view.provider {
        None => Err("no provider".into()),
        Some(typed::VirtualServiceProvider::VirtualNode { virtual_node_name }) => {
            let node = nodes
                .get(&virtual_node_name)
                .ok_or_else(|| format!("provider virtual node '{virtual_node_name}' not found"))?;
            let key = SeriesKey {
                virtual_service: name.to_string(),
                route: String::new(),
                target_node: virtual_node_name.clone(),
            };
            let route = RouteEntry {
                name: String::new(),
                matcher: HttpMatch::prefix("/"),
                targets: vec![TargetEntry {
                    node: node.clone(),
                    listener: (!node.listeners.is_empty()).then_some(0),
                    series: telemetry.series(&key),
                    key,
                }],
                choice: WeightedChoice::new([1]),
                retry: RetryPolicy::app_mesh_default(),
                per_request: Some(DEFAULT_PER_REQUEST),
                idle: Some(DEFAULT_IDLE),
                canary: None,
            };
            Ok(ServiceEntry {
                provider: format!("virtual node '{virtual_node_name}'"),
                routes: vec![Arc::new(route)],
                unavailable: None,
            })
        }
        Some(typed::VirtualServiceProvider::VirtualRouter {
            virtual_router_name: router,
        }) => {
            if snapshot.get(Kind::VirtualRouter, None, &router).is_none() {
                return Err(format!("provider virtual router '{router}' not found"));
            }
            let mut routes: Vec<(u32, RouteEntry)> = Vec::new();
            for item in snapshot.of_kind(Kind::Route) {
                if item["virtualRouterName"].as_str() != Some(router.as_str()) {
                    continue;
                }
                let route_name = name_of(item, Kind::Route);
                match compile_route(name, &route_name, spec_of(item), nodes, telemetry) {
                    Ok(Some((priority, mut entry))) => {
                        entry.canary = overlays.get(&router, &route_name, &entry.targets, problems);
                        routes.push((priority, entry));
                    }
                    Ok(None) => {}
                    Err(problem) => problems.push(format!(
                        "route '{route_name}' of virtual router '{router}': {problem}"
                    )),
                }
            }
            routes.sort_by(|(pa, a), (pb, b)| {
                pa.cmp(pb)
                    .then_with(|| b.matcher.specificity().cmp(&a.matcher.specificity()))
                    .then_with(|| a.name.cmp(&b.name))
            });
            Ok(ServiceEntry {
                provider: format!("virtual router '{router}'"),
                routes: routes.into_iter().map(|(_, r)| Arc::new(r)).collect(),
                unavailable: None,
            })
        }
    }
}

/// A route as `(priority, entry)`; `Ok(None)` for TCP routes, which HTTP requests never use.
fn compile_route(
    service: &str,
    name: &str,
    spec: &Value,
    nodes: &HashMap<String, Arc<NodeEntry>>,
    telemetry: &Telemetry,
) -> Result<Option<(u32, RouteEntry)>, String> {
    let spec = typed::RouteSpec::deserialize(spec).map_err(|e| e.to_string())?;
    let (matcher, action, retry, timeout) =
        match (&spec.http_route, &spec.http2_route, &spec.grpc_route) {
            (Some(r), _, _) | (None, Some(r), _) => (
                HttpMatch::from_route(&r.r#match)?,
                &r.action,
                r.retry_policy.as_ref().map(RetryPolicy::from_model),
                r.timeout.clone(),
            ),
            (None, None, Some(r)) => {
                let m = &r.r#match;
                (
                    grpc_match(m.service_name.as_deref(), m.method_name.as_deref(), m.port),
                    &r.action,
                    r.retry_policy.as_ref().map(RetryPolicy::from_grpc),
                    r.timeout.clone(),
                )
            }
            (None, None, None) => return Ok(None),
        };
    let mut targets = Vec::new();
    for target in &action.weighted_targets {
        let node = nodes
            .get(&target.virtual_node)
            .ok_or_else(|| format!("target virtual node '{}' not found", target.virtual_node))?;
        let listener = match target.port {
            Some(port) => node.listeners.iter().position(|l| l.port == port),
            None => (!node.listeners.is_empty()).then_some(0),
        };
        let key = SeriesKey {
            virtual_service: service.to_string(),
            route: name.to_string(),
            target_node: target.virtual_node.clone(),
        };
        targets.push(TargetEntry {
            node: node.clone(),
            listener,
            series: telemetry.series(&key),
            key,
        });
    }
    let timeout = timeout.unwrap_or(HttpTimeout {
        per_request: None,
        idle: None,
    });
    let nonzero = |d: Option<typed::Duration>, default: Duration| {
        Some(d.map_or(default, typed::Duration::to_std)).filter(|d| !d.is_zero())
    };
    let entry = RouteEntry {
        name: name.to_string(),
        matcher,
        choice: WeightedChoice::new(action.weighted_targets.iter().map(|t| t.weight)),
        targets,
        retry: retry.unwrap_or_else(RetryPolicy::app_mesh_default),
        per_request: nonzero(timeout.per_request, DEFAULT_PER_REQUEST),
        idle: nonzero(timeout.idle, DEFAULT_IDLE),
        canary: None,
    };
    Ok(Some((spec.priority.unwrap_or(NO_PRIORITY), entry)))
}

fn compile_gateway(
    name: &str,
    spec: &Value,
    snapshot: &Snapshot,
    problems: &mut Vec<String>,
) -> GatewayEntry {
    let view = typed::view::<typed::ListenersSpec>(spec);
    let listeners = view
        .as_ref()
        .map(|l| l.listeners.iter().map(|l| l.port_mapping.port).collect())
        .unwrap_or_default();
    let mut tls = HashMap::new();
    let mut client_policy = None;
    if let Some(view) = &view {
        for listener in &view.listeners {
            let port = listener.port_mapping.port;
            if let Some(listener_tls) = &listener.tls {
                let built = ServerTls::from_listener(listener_tls).map_err(|e| {
                    let problem = format!("virtual gateway '{name}' listener {port}: {e}");
                    problems.push(problem.clone());
                    problem
                });
                tls.insert(port, built);
            }
        }
        let policy = view
            .backend_defaults
            .as_ref()
            .and_then(|d| d.client_policy.as_ref());
        client_policy = policy.and_then(|p| p.tls.as_ref()).map(|policy| {
            ClientTls::from_policy(policy).map_err(|e| {
                let problem = format!("virtual gateway '{name}' backendDefaults.clientPolicy: {e}");
                problems.push(problem.clone());
                problem
            })
        });
    }
    let mut routes: Vec<(u32, GatewayRouteEntry)> = Vec::new();
    for item in snapshot.of_kind(Kind::GatewayRoute) {
        if item["virtualGatewayName"].as_str() != Some(name) {
            continue;
        }
        let route_name = name_of(item, Kind::GatewayRoute);
        match compile_gateway_route(&route_name, spec_of(item)) {
            Ok(entry) => routes.push(entry),
            Err(problem) => problems.push(format!("gateway route '{route_name}': {problem}")),
        }
    }
    routes.sort_by(|(pa, a), (pb, b)| {
        pa.cmp(pb)
            .then_with(|| b.matcher.specificity().cmp(&a.matcher.specificity()))
            .then_with(|| a.name.cmp(&b.name))
    });
    GatewayEntry {
        name: name.to_string(),
        listeners,
        tls,
        client_policy,
        matches_hostnames: routes.iter().any(|(_, r)| r.matcher.matches_hostname()),
        routes: routes.into_iter().map(|(_, r)| r).collect(),
    }
}

fn compile_gateway_route(name: &str, spec: &Value) -> Result<(u32, GatewayRouteEntry), String> {
    let spec = typed::GatewayRouteSpec::deserialize(spec).map_err(|e| e.to_string())?;
    let (matcher, target, rewrite) = match (&spec.http_route, &spec.http2_route, &spec.grpc_route) {
        (Some(r), _, _) | (None, Some(r), _) => (
            HttpMatch::from_gateway(&r.r#match)?,
            &r.action.target,
            Rewrite::http(r.action.rewrite.as_ref()),
        ),
        (None, None, Some(r)) => (
            grpc_match(r.r#match.service_name.as_deref(), None, r.r#match.port),
            &r.action.target,
            Rewrite::grpc(r.action.rewrite.as_ref()),
        ),
        (None, None, None) => return Err("no route type".into()),
    };
    let service = &target.virtual_service.virtual_service_name;
    let entry = GatewayRouteEntry {
        name: name.to_string(),
        matcher,
        service: service.clone(),
        target_port: target.port,
        host: rewrite
            .hostname
            .then(|| HeaderValue::from_str(service).ok())
            .flatten(),
        rewrite,
    };
    Ok((spec.priority.unwrap_or(NO_PRIORITY), entry))
}

#[cfg(test)]
mod tests;
