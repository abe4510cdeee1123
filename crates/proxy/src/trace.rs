//! Distributed tracing: every request through the proxy continues the caller's trace (W3C
//! `traceparent`, or X-Ray's `X-Amzn-Trace-Id`) or starts one, records one span for its hop,
//! sends that span's id on as the parent in both headers, and hands sampled spans to the OTLP
//! exporter (`trace/export.rs`) without waiting for it.
//!
//! Which header wins: a valid `traceparent` is continued even when an `X-Amzn-Trace-Id` names
//! another trace, because it is the W3C standard every OpenTelemetry SDK speaks; X-Ray's header
//! is read only when `traceparent` is missing or invalid. Either way both go out, naming the
//! same trace, so an X-Ray SDK and an OpenTelemetry SDK downstream each find theirs.

mod export;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::ProxyError;
use crate::telemetry::{SeriesKey, SpanDropped, Telemetry};

pub use export::Exporter;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// Spans waiting for the exporter at most; past it a span is dropped and counted, so a
/// collector that is down costs memory once, not without bound.
pub const QUEUE_SPANS: usize = 2048;

/// Where spans go and how many new traces are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// The collector's base URL (`http://host:4318`); spans are posted to `/v1/traces` under it,
    /// as OpenTelemetry's `OTEL_EXPORTER_OTLP_ENDPOINT` is read.
    pub collector: String,
    /// The share of new traces that are sampled, 0.0 to 1.0. A caller's decision (the sampled
    /// flag it sends) is always followed.
    pub sampling: f64,
}

impl TraceConfig {
    /// Envoy's tracing samples every request unless told otherwise, and one trace of a request
    /// is what a mesh's user asks for first; lower it for busy meshes (X-Ray's default rule keeps
    /// one request a second and 5% of the rest).
    pub const DEFAULT_SAMPLING: f64 = 1.0;
}

/// A 16-byte trace id, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// `N` bytes from exactly `2 * N` hex digits; `lowercase_only` for W3C, which forbids capitals.
fn parse_hex<const N: usize>(text: &str, lowercase_only: bool) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if !lowercase_only => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn trace_id(bytes: [u8; 16]) -> Option<TraceId> {
    (bytes != [0; 16]).then_some(TraceId(bytes))
}

fn span_id(bytes: [u8; 8]) -> Option<SpanId> {
    (bytes != [0; 8]).then_some(SpanId(bytes))
}

/// A W3C `traceparent` (Trace Context, level 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub flags: u8,
}

impl TraceParent {
    const LEN: usize = 55;

    /// Version 00 exactly; a higher version by its first four fields, as the spec asks, so a
    /// future sender is still understood. Version `ff`, capitals, zero ids: invalid.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let b = value.as_bytes();
        if b.len() < Self::LEN || !value.is_ascii() {
            return None;
        }
        let [version] = parse_hex::<1>(&value[0..2], true)?;
        if version == 0xff || (version == 0 && b.len() != Self::LEN) {
            return None;
        }
        if b.len() > Self::LEN && b[Self::LEN] != b'-' {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        Some(TraceParent {
            trace_id: trace_id(parse_hex(&value[3..35], true)?)?,
            parent_id: span_id(parse_hex(&value[36..52], true)?)?,
            flags: parse_hex::<1>(&value[53..55], true)?[0],
        })
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// Always version 00; of the flags only `sampled`, the one flag version 00 defines.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.parent_id,
            self.flags & 1
        )
    }
}

/// X-Ray's tracing header: `Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=0|1`, in
/// any order, with whatever other fields (a load balancer's `Self`, Lambda's `Lineage`) kept
/// as they came, as the X-Ray SDKs keep them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XRayHeader {
    /// X-Ray's trace id as the 32-hex W3C id, the way OpenTelemetry's X-Ray propagator maps
    /// it: the 8 hex digits of the epoch, then the 24 of the unique part.
    pub root: TraceId,
    /// Missing when the caller (a load balancer, say) started the trace without a segment.
    pub parent: Option<SpanId>,
    /// `None` for `Sampled=?` or no field: the receiver decides.
    pub sampled: Option<bool>,
    /// Every other `Key=Value`, in order.
    pub others: Vec<String>,
}

impl XRayHeader {
    /// `None` without a valid `Root`, with an invalid `Parent`, or with a field given twice:
    /// such a header cannot say which trace it is.
    pub fn parse(value: &str) -> Option<XRayHeader> {
        let (mut root, mut parent, mut sampled) = (None, None, None);
        let mut others = Vec::new();
        for field in value.split(';').map(str::trim).filter(|f| !f.is_empty()) {
            let (key, val) = field.split_once('=')?;
            let (key, val) = (key.trim(), val.trim());
            if key.eq_ignore_ascii_case("root") {
                let id = val.strip_prefix("1-")?;
                let (epoch, unique) = id.split_once('-')?;
                let epoch = parse_hex::<4>(epoch, false)?;
                let unique = parse_hex::<12>(unique, false)?;
                let mut bytes = [0u8; 16];
                bytes[..4].copy_from_slice(&epoch);
                bytes[4..].copy_from_slice(&unique);
                if root.replace(trace_id(bytes)?).is_some() {
                    return None;
                }
            } else if key.eq_ignore_ascii_case("parent") {
                if parent.replace(span_id(parse_hex(val, false)?)?).is_some() {
                    return None;
                }
            } else if key.eq_ignore_ascii_case("sampled") {
                let decision = match val {
                    "1" => Some(true),
                    "0" => Some(false),
                    _ => None,
                };
                if sampled.replace(decision).is_some() {
                    return None;
                }
            } else {
                others.push(field.to_string());
            }
        }
        Some(XRayHeader {
            root: root?,
            parent,
            sampled: sampled.flatten(),
            others,
        })
    }
}

impl fmt::Display for XRayHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.root.to_string();
        write!(f, "Root=1-{}-{}", &hex[..8], &hex[8..])?;
        if let Some(parent) = self.parent {
            write!(f, ";Parent={parent}")?;
        }
        match self.sampled {
            Some(true) => f.write_str(";Sampled=1")?,
            Some(false) => f.write_str(";Sampled=0")?,
            None => f.write_str(";Sampled=?")?,
        }
        self.others.iter().try_for_each(|o| write!(f, ";{o}"))
    }
}

/// The trace a request came with, read from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: TraceId,
    pub parent: Option<SpanId>,
    /// The caller's sampling decision, if it made one.
    pub sampled: Option<bool>,
    /// Whether `traceparent` said so (else `X-Amzn-Trace-Id`): only then is `tracestate`
    /// the trace's, and passed on.
    pub w3c: bool,
    /// `X-Amzn-Trace-Id`'s other fields, passed on in the rewritten header.
    pub xray_others: Vec<String>,
}

/// The one value of a header that must appear once; several, or none, is `None`.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then(|| first.to_str().ok())?
}

impl Incoming {
    pub fn extract(headers: &HeaderMap) -> Option<Incoming> {
        let xray = single(headers, &X_AMZN_TRACE_ID).and_then(XRayHeader::parse);
        let xray_others = xray.as_ref().map(|x| x.others.clone()).unwrap_or_default();
        if let Some(parent) = single(headers, &TRACEPARENT).and_then(TraceParent::parse) {
            return Some(Incoming {
                trace_id: parent.trace_id,
                parent: Some(parent.parent_id),
                sampled: Some(parent.sampled()),
                w3c: true,
                xray_others,
            });
        }
        let xray = xray?;
        Some(Incoming {
            trace_id: xray.root,
            parent: xray.parent,
            sampled: xray.sampled,
            w3c: false,
            xray_others,
        })
    }
}

/// This hop's place in its trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub sampled: bool,
    pub w3c: bool,
    pub xray_others: Vec<String>,
}

impl Context {
    /// Parent-based sampling: the caller's decision stands; a trace that starts here (or whose
    /// caller left the decision open) is sampled when `draw` (uniform in 0..1) is below
    /// `sampling`. `new_trace` is called only when a trace starts here.
    pub fn new(
        incoming: Option<Incoming>,
        span_id: SpanId,
        sampling: f64,
        draw: f64,
        new_trace: impl FnOnce() -> TraceId,
    ) -> Context {
        let decide = || draw < sampling;
        match incoming {
            Some(incoming) => Context {
                trace_id: incoming.trace_id,
                span_id,
                parent: incoming.parent,
                sampled: incoming.sampled.unwrap_or_else(decide),
                w3c: incoming.w3c,
                xray_others: incoming.xray_others,
            },
            None => Context {
                trace_id: new_trace(),
                span_id,
                parent: None,
                sampled: decide(),
                w3c: false,
                xray_others: Vec::new(),
            },
        }
    }

    /// The headers the next hop reads: both name this span as the parent. `tracestate` stays
    /// as it came when the trace came by `traceparent`, and goes otherwise: the spec lets it
    /// travel only with the `traceparent` it belongs to.
    pub fn inject(&self, headers: &mut HeaderMap) {
        let parent = TraceParent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
            flags: u8::from(self.sampled),
        };
        let xray = XRayHeader {
            root: self.trace_id,
            parent: Some(self.span_id),
            sampled: Some(self.sampled),
            others: self.xray_others.clone(),
        };
        if !self.w3c {
            headers.remove(TRACESTATE);
        }
        // Hex, `-`, `;`, `=` and the other fields, which came in a header value: always valid.
        for (name, value) in [
            (TRACEPARENT, parent.to_string()),
            (X_AMZN_TRACE_ID, xray.to_string()),
        ] {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(name, value);
            }
        }
    }
}

/// A new trace id whose first four bytes are the time in seconds, as X-Ray's are, so the
/// `X-Amzn-Trace-Id` sent on is one X-Ray accepts; the rest is random.
fn new_trace_id(rng: &mut fastrand::Rng, now: SystemTime) -> TraceId {
    let epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as u32;
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&epoch.to_be_bytes());
    bytes[4..].copy_from_slice(&rng.u128(1..).to_be_bytes()[4..]);
    if bytes[4..] == [0; 12] {
        bytes[15] = 1;
    }
    TraceId(bytes)
}

fn new_span_id(rng: &mut fastrand::Rng) -> SpanId {
    SpanId(rng.u64(1..).to_be_bytes())
}

/// The span kind of a hop: what entered by a gateway listener or an agent's inbound listener
/// is served (SERVER); what entered by an egress (outbound) listener is a call out of the
/// application beside it (CLIENT), as Envoy marks its egress spans. One span per hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
}

impl From<&crate::forward::Entry> for Kind {
    fn from(entry: &crate::forward::Entry) -> Kind {
        match entry {
            crate::forward::Entry::Gateway { .. } => Kind::Server,
            crate::forward::Entry::Egress { .. } => Kind::Client,
        }
    }
}

/// Starts spans and queues the finished ones for the exporter.
pub struct Tracer {
    sampling: f64,
    queue: mpsc::Sender<Span>,
}

impl Tracer {
    /// The tracer and the exporter that drains its queue, or what in the configuration cannot
    /// work (named, for `StartError::Config`).
    pub fn new(config: &TraceConfig, service_name: &str) -> Result<(Tracer, Exporter), String> {
        if !(0.0..=1.0).contains(&config.sampling) {
            return Err(format!(
                "trace sampling must be between 0 and 1, not {}",
                config.sampling
            ));
        }
        let endpoint = export::traces_endpoint(&config.collector)
            .map_err(|why| format!("trace collector {:?}: {why}", config.collector))?;
        let (queue, receiver) = mpsc::channel(QUEUE_SPANS);
        let tracer = Tracer {
            sampling: config.sampling,
            queue,
        };
        Ok((tracer, Exporter::new(endpoint, service_name, receiver)))
    }

    /// Reads the request's trace headers, decides, and rewrites them for the next hop.
    pub fn start<B>(&self, kind: Kind, request: &mut Request<B>) -> Hop {
        let mut rng = fastrand::Rng::new();
        let now = SystemTime::now();
        let context = Context::new(
            Incoming::extract(request.headers()),
            new_span_id(&mut rng),
            self.sampling,
            rng.f64(),
            || new_trace_id(&mut rng, now),
        );
        context.inject(request.headers_mut());
        // Several `tracestate` fields are one list (the spec's own rule for combining them).
        let tracestate = (context.w3c && context.sampled).then(|| {
            let values = request.headers().get_all(TRACESTATE).iter();
            let values: Vec<&str> = values.filter_map(|v| v.to_str().ok()).collect();
            values.join(",")
        });
        Hop {
            context,
            kind,
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            tracestate,
            start_unix_nanos: unix_nanos(now),
            start: Instant::now(),
        }
    }

    fn submit(&self, span: Span, telemetry: &Telemetry) {
        if let Err(error) = self.queue.try_send(span) {
            let reason = match error {
                mpsc::error::TrySendError::Full(_) => "queue_full",
                mpsc::error::TrySendError::Closed(_) => "shutdown",
            };
            SpanDropped { reason }.emit(telemetry);
        }
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// What the request path learned about the request while it ran: the last attempt's target
/// and how many were retried. Kept in a task-local, filled in by the `Attempt` event, so the
/// retry loop, which counts attempts anyway, needs no tracing code of its own.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    pub virtual_service: Option<String>,
    pub route: Option<String>,
    pub target_node: Option<String>,
    pub endpoint: Option<SocketAddr>,
    pub retries: u32,
}

tokio::task_local! {
    static NOTES: RefCell<Notes>;
}

/// Runs `call` with a place for [`note_attempt`]; `on` false (no span) skips even that.
pub async fn observed<F: Future>(on: bool, call: F) -> (F::Output, Notes) {
    if !on {
        return (call.await, Notes::default());
    }
    NOTES
        .scope(RefCell::new(Notes::default()), async {
            let out = call.await;
            (out, NOTES.with(RefCell::take))
        })
        .await
}

/// One attempt at a target ended; a no-op outside [`observed`].
pub fn note_attempt(key: &SeriesKey, endpoint: Option<SocketAddr>, retried: bool) {
    let _ = NOTES.try_with(|notes| {
        let mut notes = notes.borrow_mut();
        notes.virtual_service = Some(key.virtual_service.clone());
        notes.route = Some(key.route.clone());
        notes.target_node = Some(key.target_node.clone());
        notes.endpoint = endpoint;
        if retried {
            notes.retries += 1;
        }
    });
}

/// One request's hop, from its headers to its response's.
#[derive(Debug)]
pub struct Hop {
    pub context: Context,
    kind: Kind,
    method: String,
    path: String,
    tracestate: Option<String>,
    start_unix_nanos: u64,
    start: Instant,
}

/// How a hop ended.
pub struct Outcome<'a> {
    pub status: StatusCode,
    pub error: Option<&'a ProxyError>,
    /// The virtual service, when the request got as far as naming one.
    pub virtual_service: Option<&'a str>,
    pub notes: Notes,
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// OTLP's span flags: the W3C flags, and that the parent's context came from another process.
const SPAN_FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_IS_REMOTE: u32 = 0x200;

impl Hop {
    /// The span of this hop, `None` when it is not sampled.
    pub fn span(self, mesh: &str, outcome: Outcome<'_>) -> Option<Span> {
        if !self.context.sampled {
            return None;
        }
        let notes = outcome.notes;
        let service = notes
            .virtual_service
            .as_deref()
            .or(outcome.virtual_service)
            .filter(|s| !s.is_empty());
        let route = notes.route.as_deref().filter(|r| !r.is_empty());
        let name = match (service, route) {
            (Some(service), Some(route)) => format!("{service} {route}"),
            (Some(service), None) => service.to_string(),
            // HTTP's convention for a span with no better name.
            (None, _) => self.method.clone(),
        };
        let mut attributes = vec![
            string("http.request.method", &*self.method),
            string("url.path", &*self.path),
            int(
                "http.response.status_code",
                i64::from(outcome.status.as_u16()),
            ),
            string("aviary.mesh", mesh),
        ];
        if let Some(service) = service {
            attributes.push(string("aviary.virtual_service", service));
        }
        if let Some(route) = route {
            attributes.push(string("aviary.route", route));
        }
        if let Some(node) = notes.target_node.filter(|n| !n.is_empty()) {
            attributes.push(string("aviary.target_node", node));
        }
        if let Some(endpoint) = notes.endpoint {
            attributes.push(string("aviary.upstream.address", endpoint.to_string()));
        }
        attributes.push(int("aviary.retries", i64::from(notes.retries)));
        // OpenTelemetry's HTTP rule: a 5xx is the server's failure, a 4xx the caller's (a
        // request no route matches still says why in `error.type`).
        let status = outcome.status.is_server_error().then(|| Status {
            message: match outcome.error {
                Some(error) => error.to_string(),
                None => format!("HTTP {}", outcome.status.as_u16()),
            },
            code: status::StatusCode::Error as i32,
        });
        if let Some(error) = outcome.error {
            attributes.push(string("error.type", error_type(error)));
        }
        let kind = match self.kind {
            Kind::Server => span::SpanKind::Server,
            Kind::Client => span::SpanKind::Client,
        };
        let remote = match self.context.parent {
            Some(_) => SPAN_FLAGS_HAS_IS_REMOTE | SPAN_FLAGS_IS_REMOTE,
            None => SPAN_FLAGS_HAS_IS_REMOTE,
        };
        let elapsed = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Some(Span {
            trace_id: self.context.trace_id.0.to_vec(),
            span_id: self.context.span_id.0.to_vec(),
            trace_state: self.tracestate.unwrap_or_default(),
            parent_span_id: self
                .context
                .parent
                .map(|p| p.0.to_vec())
                .unwrap_or_default(),
            flags: u32::from(self.context.sampled) | remote,
            name,
            kind: kind as i32,
            start_time_unix_nano: self.start_unix_nanos,
            end_time_unix_nano: self.start_unix_nanos.saturating_add(elapsed),
            attributes,
            status,
            ..Span::default()
        })
    }

    /// Ends the hop: a sampled span goes to the exporter's queue (or is dropped and counted).
    pub fn finish(self, tracer: &Tracer, telemetry: &Telemetry, mesh: &str, outcome: Outcome<'_>) {
        if let Some(span) = self.span(mesh, outcome) {
            tracer.submit(span, telemetry);
        }
    }
}

/// A low-cardinality name of what failed, for `error.type`.
fn error_type(error: &ProxyError) -> &'static str {
    match error {
        ProxyError::BadRequest(_) => "bad_request",
        ProxyError::UnknownService { .. } => "unknown_service",
        ProxyError::NoRoute { .. } => "no_route",
        ProxyError::NotABackend { .. } => "not_a_backend",
        ProxyError::NoHealthyEndpoint { .. } => "no_healthy_endpoint",
        ProxyError::Connect { .. } => "connect",
        ProxyError::Stream { .. } => "stream",
        ProxyError::Timeout { .. } => "timeout",
        ProxyError::NotConfigured { .. } => "not_configured",
        ProxyError::Tls { .. } => "tls",
    }
}

#[cfg(test)]
mod tests;
