//! The OTLP/HTTP exporter: one task that drains the span queue in batches and posts them, as
//! protobuf, to the collector's `/v1/traces`, off the request path.
//!
//! A batch that fails (refused, unreachable, past `EXPORT_TIMEOUT`) is dropped and counted, not
//! sent again: a collector that is down would otherwise hold every span in memory and make
//! each later batch wait behind the earlier ones. OTLP's retry advice is for SDKs inside an
//! application; a proxy's spans are worth less than its requests.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::endpoints::BoxFuture;
use crate::telemetry::{SpanDropped, SpansExported, Telemetry, TraceExportFailed};

/// Spans per request at most: OpenTelemetry SDKs' default batch size.
pub const MAX_BATCH: usize = 512;
/// How long the first span of a batch waits for others.
pub const BATCH_DELAY: Duration = Duration::from_secs(1);
/// One post, connect to answer.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// At shutdown, what is queued gets this long, within the proxy's own 5 s drain.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// A collector that stays down is logged once in this long, with how many failures it hid.
pub const FAILURE_LOG_EVERY: Duration = Duration::from_secs(30);
/// A collector's answer is read only to keep the connection; more than this is not an answer.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where a batch goes: the collector over HTTP, or a test's recorder.
pub trait Sink: Send + Sync + 'static {
    fn post(&self, request: ExportTraceServiceRequest) -> BoxFuture<Result<(), String>>;
}

/// `{collector}/v1/traces`, from a collector's base URL.
pub fn traces_endpoint(collector: &str) -> Result<Uri, String> {
    let uri: Uri = collector.parse().map_err(|e| format!("not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        // The proxy has no TLS client of its own yet; a collector beside it is plain HTTP.
        Some("https") => return Err("https is not supported; give an http:// URL".into()),
        _ => return Err("must be an http:// URL".into()),
    }
    let Some(authority) = uri.authority() else {
        return Err("has no host".into());
    };
    if uri.query().is_some() {
        return Err("must not have a query".into());
    }
    let base = uri.path().trim_end_matches('/');
    format!("http://{authority}{base}/v1/traces")
        .parse()
        .map_err(|e| format!("not a URL ({e})"))
}

/// Posts protobuf `ExportTraceServiceRequest`s with hyper-util's pooled client.
#[derive(Clone)]
pub struct HttpSink {
    endpoint: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpSink {
    pub fn new(endpoint: Uri) -> HttpSink {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(crate::pool::CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        HttpSink { endpoint, client }
    }
}

impl Sink for HttpSink {
    fn post(&self, request: ExportTraceServiceRequest) -> BoxFuture<Result<(), String>> {
        let sink = self.clone();
        Box::pin(async move {
            let body = Full::new(Bytes::from(request.encode_to_vec()));
            let request = Request::post(sink.endpoint.clone())
                .header(CONTENT_TYPE, "application/x-protobuf")
                .body(body)
                .map_err(|e| e.to_string())?;
            let response = sink
                .client
                .request(request)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = response.status();
            let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            if !status.is_success() {
                return Err(format!("the collector answered {status}"));
            }
            answer.map_err(|e| format!("reading the collector's answer: {e}"))?;
            Ok(())
        })
    }
}

/// An error and its sources: hyper-util's own text says only "client error (Connect)".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Drains the tracer's queue into the collector; run it as a task with [`Exporter::run`].
pub struct Exporter<S: Sink = HttpSink> {
    sink: S,
    resource: Resource,
    receiver: mpsc::Receiver<Span>,
    /// When a failure was last logged at warn, and how many failed since without a word.
    last_warned: Option<Instant>,
    unlogged_failures: u64,
}

fn resource(service_name: &str) -> Resource {
    Resource {
        attributes: vec![super::string("service.name", service_name)],
        ..Resource::default()
    }
}

impl Exporter<HttpSink> {
    pub fn new(endpoint: Uri, service_name: &str, receiver: mpsc::Receiver<Span>) -> Exporter {
        Exporter::with_sink(HttpSink::new(endpoint), service_name, receiver)
    }

    /// Where batches are posted.
    #[cfg(test)]
    pub fn endpoint(&self) -> &Uri {
        &self.sink.endpoint
    }
}

impl<S: Sink> Exporter<S> {
    pub fn with_sink(sink: S, service_name: &str, receiver: mpsc::Receiver<Span>) -> Exporter<S> {
        Exporter {
            sink,
            resource: resource(service_name),
            receiver,
            last_warned: None,
            unlogged_failures: 0,
        }
    }

    /// Exports until `shutdown`, then flushes what is queued within [`FLUSH_TIMEOUT`].
    pub async fn run(mut self, telemetry: &Telemetry, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                span = self.receiver.recv() => match span {
                    Some(span) => span,
                    None => break,
                },
            };
            let mut batch = vec![first];
            let deadline = Instant::now() + BATCH_DELAY;
            let mut ended = false;
            while batch.len() < MAX_BATCH {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => { ended = true; break }
                    span = self.receiver.recv() => match span {
                        Some(span) => batch.push(span),
                        None => { ended = true; break }
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            self.export(batch, telemetry).await;
            if ended {
                break;
            }
        }
        self.flush(telemetry).await;
    }

    async fn flush(&mut self, telemetry: &Telemetry) {
        // Spans finished from now on are counted as dropped at shutdown, not queued.
        self.receiver.close();
        let drain = async {
            loop {
                let mut batch = Vec::new();
                while batch.len() < MAX_BATCH
                    && let Ok(span) = self.receiver.try_recv()
                {
                    batch.push(span);
                }
                if batch.is_empty() {
                    return;
                }
                self.export(batch, telemetry).await;
            }
        };
        if tokio::time::timeout(FLUSH_TIMEOUT, drain).await.is_err() {
            while self.receiver.try_recv().is_ok() {
                SpanDropped { reason: "shutdown" }.emit(telemetry);
            }
        }
    }

    fn request(&self, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "aviary-proxy".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    async fn export(&mut self, batch: Vec<Span>, telemetry: &Telemetry) {
        let spans = batch.len();
        let post = self.sink.post(self.request(batch));
        let error = match tokio::time::timeout(EXPORT_TIMEOUT, post).await {
            Ok(Ok(())) => {
                SpansExported { spans }.emit(telemetry);
                return;
            }
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {EXPORT_TIMEOUT:?}"),
        };
        let now = Instant::now();
        let warn = self
            .last_warned
            .is_none_or(|at| now.duration_since(at) >= FAILURE_LOG_EVERY);
        TraceExportFailed {
            error: &error,
            spans,
            warn,
            unlogged_before: self.unlogged_failures,
        }
        .emit(telemetry);
        if warn {
            self.last_warned = Some(now);
            self.unlogged_failures = 0;
        } else {
            self.unlogged_failures += 1;
        }
    }
}

#[cfg(test)]
mod tests;
