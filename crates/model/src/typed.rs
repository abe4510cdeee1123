//! Typed read-only views of validated specs, for the code that acts on them (the data plane).
//!
//! These views deserialize from the App Mesh JSON and ignore fields they do not model, because
//! the JSON was already checked by [`crate::validate_spec`]; they are not a validator.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Deserialize a view of a (validated) spec; `None` if it does not fit the view.
pub fn view<T: DeserializeOwned>(spec: &Value) -> Option<T> {
    T::deserialize(spec).ok()
}

/// The weighted targets of whichever route type a route spec sets (http, http2, grpc, tcp).
/// Empty when the spec sets none or does not fit.
pub fn route_targets(spec: &Value) -> Vec<WeightedTarget> {
    view::<RouteSpec>(spec)
        .and_then(|route| route.action().map(|a| a.weighted_targets.clone()))
        .unwrap_or_default()
}

/// One target of a route action and its relative weight.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTarget {
    pub virtual_node: String,
    /// Relative; 0..=10000 in aviary.
    pub weight: u32,
    pub port: Option<u16>,
}

/// A route action: where traffic goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteAction {
    pub weighted_targets: Vec<WeightedTarget>,
}

/// `RouteSpec`: exactly one route type is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    pub priority: Option<u32>,
    pub http_route: Option<HttpRoute>,
    pub http2_route: Option<HttpRoute>,
    pub grpc_route: Option<GrpcRoute>,
    pub tcp_route: Option<TcpRoute>,
}

impl RouteSpec {
    /// The action of whichever route type is set.
    pub fn action(&self) -> Option<&RouteAction> {
        self.http_route
            .as_ref()
            .map(|r| &r.action)
            .or(self.http2_route.as_ref().map(|r| &r.action))
            .or(self.grpc_route.as_ref().map(|r| &r.action))
            .or(self.tcp_route.as_ref().map(|r| &r.action))
    }
}

/// `MeshSpec` (the parts the data plane acts on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshSpec {
    pub egress_filter: Option<EgressFilter>,
}

impl MeshSpec {
    /// The egress filter's type; App Mesh's default, without one, is `DROP_ALL`.
    pub fn egress_filter_type(&self) -> EgressFilterType {
        self.egress_filter
            .as_ref()
            .map_or(EgressFilterType::DropAll, |f| f.r#type)
    }
}

/// `EgressFilter`: whom a mesh's nodes may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct EgressFilter {
    pub r#type: EgressFilterType,
}

/// `EgressFilterType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EgressFilterType {
    /// Any destination.
    AllowAll,
    /// A node's backends only.
    DropAll,
}

/// An HTTP or HTTP/2 route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    pub r#match: HttpRouteMatch,
    pub action: RouteAction,
    pub retry_policy: Option<HttpRetryPolicy>,
    pub timeout: Option<HttpTimeout>,
}

/// What requests an HTTP route matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    pub prefix: Option<String>,
    pub path: Option<HttpPathMatch>,
    pub method: Option<HttpMethod>,
    pub scheme: Option<HttpScheme>,
    pub port: Option<u16>,
    #[serde(default)]
    pub headers: Vec<HttpRouteHeader>,
    #[serde(default)]
    pub query_parameters: Vec<HttpQueryParameter>,
}

/// `HttpMethod`: App Mesh accepts only these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Connect => "CONNECT",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Trace => "TRACE",
            HttpMethod::Patch => "PATCH",
        }
    }
}

/// `HttpScheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpScheme {
    Http,
    Https,
}

/// A query parameter condition: present, or (with `match`) equal to a value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpQueryParameter {
    pub name: String,
    pub r#match: Option<QueryParameterMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueryParameterMatch {
    pub exact: Option<String>,
}

/// Exact path or path regex.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpPathMatch {
    pub exact: Option<String>,
    pub regex: Option<String>,
}

/// A header condition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpRouteHeader {
    pub name: String,
    #[serde(default)]
    pub invert: bool,
    pub r#match: Option<HeaderMatch>,
}

/// How a header value matches (a union: one variant).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(String),
    Range { start: i64, end: i64 },
}

/// Retries of an HTTP route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetryPolicy {
    pub max_retries: u64,
    pub per_retry_timeout: Duration,
    #[serde(default)]
    pub http_retry_events: Vec<HttpRetryEvent>,
    #[serde(default)]
    pub tcp_retry_events: Vec<TcpRetryEvent>,
}

/// `HttpRetryPolicyEvent`. App Mesh's model types it as any string of 1 to 25 characters and
/// only documents these, so other values decode as [`HttpRetryEvent::Unknown`] rather than fail
/// the whole spec's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpRetryEvent {
    /// 500–508, 510, 511.
    ServerError,
    /// 502, 503, 504.
    GatewayError,
    /// 409.
    ClientError,
    /// A refused stream.
    StreamError,
    /// A value App Mesh accepts but does not document: retries nothing.
    #[serde(other)]
    Unknown,
}

/// `TcpRetryPolicyEvent`: the model's enum has this one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpRetryEvent {
    ConnectionError,
}

/// Retries of a gRPC route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRetryPolicy {
    pub max_retries: u64,
    pub per_retry_timeout: Duration,
    #[serde(default)]
    pub grpc_retry_events: Vec<GrpcRetryEvent>,
    #[serde(default)]
    pub http_retry_events: Vec<HttpRetryEvent>,
    #[serde(default)]
    pub tcp_retry_events: Vec<TcpRetryEvent>,
}

/// `GrpcRetryPolicyEvent`: a gRPC status, by the model's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrpcRetryEvent {
    Cancelled,
    DeadlineExceeded,
    Internal,
    ResourceExhausted,
    Unavailable,
}

/// Timeouts of an HTTP route (a gRPC route's `GrpcTimeout` has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTimeout {
    pub per_request: Option<Duration>,
    pub idle: Option<Duration>,
}

/// A gRPC route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRoute {
    pub r#match: GrpcRouteMatch,
    pub action: RouteAction,
    pub retry_policy: Option<GrpcRetryPolicy>,
    pub timeout: Option<HttpTimeout>,
}

/// What calls a gRPC route matches (`metadata` is not modelled).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteMatch {
    pub service_name: Option<String>,
    pub method_name: Option<String>,
    pub port: Option<u16>,
}

/// A TCP route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    pub action: RouteAction,
}

/// App Mesh's `Duration`: a value and a unit (`s` or `ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Duration {
    pub unit: DurationUnit,
    pub value: u64,
}

impl Duration {
    pub fn to_std(self) -> std::time::Duration {
        match self.unit {
            DurationUnit::Seconds => std::time::Duration::from_secs(self.value),
            DurationUnit::Millis => std::time::Duration::from_millis(self.value),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DurationUnit {
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "ms")]
    Millis,
}

/// `VirtualServiceSpec`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VirtualServiceSpec {
    pub provider: Option<VirtualServiceProvider>,
}

/// Who serves a virtual service (a union: one variant).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VirtualServiceProvider {
    #[serde(rename_all = "camelCase")]
    VirtualNode { virtual_node_name: String },
    #[serde(rename_all = "camelCase")]
    VirtualRouter { virtual_router_name: String },
}

/// A listener's port and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortMapping {
    pub port: u16,
    pub protocol: PortProtocol,
}

/// `PortProtocol` (a gateway's `VirtualGatewayPortProtocol` is the same without `tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    Http,
    Http2,
    Grpc,
    Tcp,
}

impl PortProtocol {
    /// Whether the listener's clients speak HTTP/2 (gRPC is HTTP/2 too).
    pub fn speaks_http2(self) -> bool {
        matches!(self, PortProtocol::Http2 | PortProtocol::Grpc)
    }
}

/// A listener of a virtual node, router or gateway (health check only on nodes and gateways).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub port_mapping: PortMapping,
    pub health_check: Option<HealthCheck>,
    /// Inbound TLS (virtual nodes' and gateways' listeners; routers have none).
    pub tls: Option<ListenerTls>,
    /// Passive ejection of failing endpoints (virtual nodes' listeners only).
    pub outlier_detection: Option<OutlierDetection>,
}

/// `OutlierDetection`: eject an endpoint after `max_server_errors` within one `interval`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// At least 1; the model sets no upper bound.
    pub max_server_errors: u64,
    pub interval: Duration,
    pub base_ejection_duration: Duration,
    /// 0..=100.
    pub max_ejection_percent: u32,
}

/// An active health check of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub protocol: String,
    pub path: Option<String>,
    pub port: Option<u16>,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub interval_millis: u64,
    pub timeout_millis: u64,
}

/// `VirtualNodeSpec` (the parts the data plane and supervisor act on).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNodeSpec {
    #[serde(default)]
    pub listeners: Vec<Listener>,
    pub service_discovery: Option<ServiceDiscovery>,
    #[serde(default)]
    pub backends: Vec<Backend>,
    /// The client policy of every backend that sets none of its own.
    pub backend_defaults: Option<BackendDefaults>,
}

/// How a node's instances are found (a union; only DNS is modelled here).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServiceDiscovery {
    pub dns: Option<DnsServiceDiscovery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DnsServiceDiscovery {
    pub hostname: String,
}

/// A virtual service a node may call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    pub virtual_service: Option<VirtualServiceBackend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceBackend {
    pub virtual_service_name: String,
    /// Overrides the node's `backendDefaults` for this backend.
    pub client_policy: Option<ClientPolicy>,
}

/// `VirtualRouterSpec` and `VirtualGatewaySpec` as far as listeners (and a gateway's client
/// policy) go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenersSpec {
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// A virtual gateway's client policy for its calls to the mesh (routers have none).
    pub backend_defaults: Option<BackendDefaults>,
}

/// `GatewayRouteSpec`: exactly one route type is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRouteSpec {
    pub priority: Option<u32>,
    pub http_route: Option<HttpGatewayRoute>,
    pub http2_route: Option<HttpGatewayRoute>,
    pub grpc_route: Option<GrpcGatewayRoute>,
}

impl GatewayRouteSpec {
    /// The target of whichever route type is set.
    pub fn target(&self) -> Option<&GatewayRouteTarget> {
        self.http_route
            .as_ref()
            .map(|r| &r.action.target)
            .or(self.http2_route.as_ref().map(|r| &r.action.target))
            .or(self.grpc_route.as_ref().map(|r| &r.action.target))
    }
}

/// An HTTP or HTTP/2 gateway route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGatewayRoute {
    pub r#match: HttpGatewayRouteMatch,
    pub action: HttpGatewayRouteAction,
}

/// What requests an HTTP gateway route matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGatewayRouteMatch {
    pub prefix: Option<String>,
    pub path: Option<HttpPathMatch>,
    pub method: Option<HttpMethod>,
    pub port: Option<u16>,
    #[serde(default)]
    pub headers: Vec<HttpRouteHeader>,
    #[serde(default)]
    pub query_parameters: Vec<HttpQueryParameter>,
    pub hostname: Option<GatewayRouteHostnameMatch>,
}

/// `GatewayRouteHostnameMatch`: the request's host, exactly or by suffix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GatewayRouteHostnameMatch {
    pub exact: Option<String>,
    pub suffix: Option<String>,
}

/// Where an HTTP gateway route sends a request, and how it rewrites it on the way.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpGatewayRouteAction {
    pub target: GatewayRouteTarget,
    pub rewrite: Option<HttpGatewayRouteRewrite>,
}

/// `HttpGatewayRouteRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HttpGatewayRouteRewrite {
    pub prefix: Option<HttpGatewayRoutePrefixRewrite>,
    pub path: Option<HttpGatewayRoutePathRewrite>,
    pub hostname: Option<GatewayRouteHostnameRewrite>,
}

/// `HttpGatewayRoutePrefixRewrite`: `value` replaces the matched prefix; without one,
/// `defaultPrefix` says whether the prefix becomes `/` (ENABLED, App Mesh's default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGatewayRoutePrefixRewrite {
    pub default_prefix: Option<DefaultGatewayRouteRewrite>,
    pub value: Option<String>,
}

/// `HttpGatewayRoutePathRewrite`: the whole path becomes `exact`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HttpGatewayRoutePathRewrite {
    pub exact: Option<String>,
}

/// `GatewayRouteHostnameRewrite`: whether `Host` becomes the target virtual service's name
/// (ENABLED, App Mesh's default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRouteHostnameRewrite {
    pub default_target_hostname: Option<DefaultGatewayRouteRewrite>,
}

/// `DefaultGatewayRouteRewrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DefaultGatewayRouteRewrite {
    Enabled,
    Disabled,
}

/// A gRPC gateway route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcGatewayRoute {
    pub r#match: GrpcGatewayRouteMatch,
    pub action: GrpcGatewayRouteAction,
}

/// What calls a gRPC gateway route matches (`hostname` and `metadata` are not modelled).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcGatewayRouteMatch {
    pub service_name: Option<String>,
    pub port: Option<u16>,
}

/// A gRPC gateway route's action: its rewrite has only the hostname.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GrpcGatewayRouteAction {
    pub target: GatewayRouteTarget,
    pub rewrite: Option<GrpcGatewayRouteRewrite>,
}

/// `GrpcGatewayRouteRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GrpcGatewayRouteRewrite {
    pub hostname: Option<GatewayRouteHostnameRewrite>,
}

/// The virtual service (and optionally port) a gateway route sends traffic to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRouteTarget {
    pub virtual_service: GatewayRouteVirtualService,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRouteVirtualService {
    pub virtual_service_name: String,
}

/// A listener's `tls` (`ListenerTls`; a gateway's `VirtualGatewayListenerTls` has the same
/// shape with fewer trust sources, so it reads through this view too).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    pub mode: TlsMode,
    pub certificate: TlsCertificate,
    pub validation: Option<ListenerTlsValidation>,
}

/// `ListenerTlsMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// TLS only: plain text is refused.
    Strict,
    /// TLS and plain text on the same port.
    Permissive,
    /// Plain text only.
    Disabled,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Strict => "STRICT",
            TlsMode::Permissive => "PERMISSIVE",
            TlsMode::Disabled => "DISABLED",
        }
    }
}

/// Where a listener's certificate comes from (`ListenerTlsCertificate`, a union).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TlsCertificate {
    /// PEM files on the proxy's host.
    #[serde(rename_all = "camelCase")]
    File {
        certificate_chain: String,
        private_key: String,
    },
    /// An Envoy secret discovery service secret.
    #[serde(rename_all = "camelCase")]
    Sds { secret_name: String },
    /// An AWS Certificate Manager certificate.
    #[serde(rename_all = "camelCase")]
    Acm { certificate_arn: String },
}

/// `ListenerTlsValidationContext`: which client certificates a listener accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTlsValidation {
    pub trust: TlsTrust,
    #[serde(default, deserialize_with = "san_match")]
    pub subject_alternative_names: Option<SanMatch>,
}

/// Whom a peer's certificate must chain to (`TlsValidationContextTrust`, a union; a
/// listener's trust has no `acm`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TlsTrust {
    /// A PEM file of CA certificates.
    #[serde(rename_all = "camelCase")]
    File { certificate_chain: String },
    #[serde(rename_all = "camelCase")]
    Sds { secret_name: String },
    #[serde(rename_all = "camelCase")]
    Acm {
        certificate_authority_arns: Vec<String>,
    },
}

/// `SubjectAlternativeNames.match`: the peer must present one of these names (DNS or URI
/// SANs). App Mesh's extra `match` level is folded away, since it has only `exact`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct SanMatch {
    pub exact: Vec<String>,
}

fn san_match<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SanMatch>, D::Error> {
    #[derive(Deserialize)]
    struct SubjectAlternativeNames {
        r#match: SanMatch,
    }
    Ok(Option::<SubjectAlternativeNames>::deserialize(d)?.map(|s| s.r#match))
}

/// A node's `backendDefaults`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendDefaults {
    pub client_policy: Option<ClientPolicy>,
}

/// `ClientPolicy`: how a node's proxy connects to a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct ClientPolicy {
    pub tls: Option<ClientPolicyTls>,
}

/// `ClientPolicyTls`: TLS towards a backend's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientPolicyTls {
    /// App Mesh's default is `true`; read it through [`ClientPolicyTls::enforced`].
    pub enforce: Option<bool>,
    /// The backend ports it applies to; empty: every port.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// A client certificate, for listeners that ask for one (mutual TLS).
    pub certificate: Option<ClientTlsCertificate>,
    pub validation: TlsValidationContext,
}

impl ClientPolicyTls {
    pub fn enforced(&self) -> bool {
        self.enforce.unwrap_or(true)
    }

    /// Whether TLS is used towards `port`: enforced, and `port` listed (or no list).
    pub fn applies_to(&self, port: u16) -> bool {
        self.enforced() && (self.ports.is_empty() || self.ports.contains(&port))
    }
}

/// `ClientTlsCertificate` (a union).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClientTlsCertificate {
    #[serde(rename_all = "camelCase")]
    File {
        certificate_chain: String,
        private_key: String,
    },
    #[serde(rename_all = "camelCase")]
    Sds { secret_name: String },
}

/// `TlsValidationContext`: which server certificates a client accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsValidationContext {
    pub trust: TlsTrust,
    #[serde(default, deserialize_with = "san_match")]
    pub subject_alternative_names: Option<SanMatch>,
}

#[cfg(test)]
mod tests;
