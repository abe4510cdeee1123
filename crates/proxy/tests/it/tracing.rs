//! Tracing: a request through a proxy is one span at a real OTLP/HTTP receiver run by the test,
//! and the upstream sees that span as its parent in both trace headers.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use prost::Message;

use crate::*;

/// A span as the collector got it, with the `service.name` of the proxy that sent it.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

impl Received {
    pub fn attribute(&self, key: &str) -> Option<String> {
        let kv = self.span.attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver: POST `/v1/traces` with a protobuf body, as an OpenTelemetry
/// Collector takes it. Anything else is a 404, so a wrong path fails the test.
pub struct Collector {
    pub url: String,
    spans: Arc<Mutex<Vec<Received>>>,
    token: CancellationToken,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let token = CancellationToken::new();
        let (store, stop) = (spans.clone(), token.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let store = store.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let store = store.clone();
                    async move {
                        let good = request.method() == http::Method::POST
                            && request.uri().path() == "/v1/traces"
                            && request.headers()["content-type"] == "application/x-protobuf";
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        if !good {
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = StatusCode::NOT_FOUND;
                            return Ok::<_, Infallible>(response);
                        }
                        let export = ExportTraceServiceRequest::decode(body).unwrap();
                        for resource_spans in export.resource_spans {
                            let service = resource_spans
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|kv| kv.key == "service.name")
                                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                                    any_value::Value::StringValue(s) => Some(s.clone()),
                                    _ => None,
                                })
                                .unwrap_or_default();
                            for scope in resource_spans.scope_spans {
                                for span in scope.spans {
                                    store.lock().unwrap().push(Received {
                                        service: service.clone(),
                                        span,
                                    });
                                }
                            }
                        }
                        let answer = ExportTraceServiceResponse::default().encode_to_vec();
                        let mut response = Response::new(Full::new(Bytes::from(answer)));
                        response
                            .headers_mut()
                            .insert("content-type", "application/x-protobuf".parse().unwrap());
                        Ok(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Collector { url, spans, token }
    }

    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until at least `n` spans arrived (batches go out a second after their first span).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{n} spans expected within 10 s, got {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn trace_config(collector: &Collector, sampling: f64) -> Option<proxy::TraceConfig> {
    Some(proxy::TraceConfig {
        collector: collector.url.clone(),
        sampling,
    })
}

/// Mesh `m` whose gateway `gw` sends `/` to `svc.local` (route `svc-route`, all to node `a`),
/// and a gateway proxy exporting to `collector` at `sampling`.
async fn traced_gateway(
    cp: &ControlPlane,
    a: &Upstream,
    collector: &Collector,
    sampling: f64,
) -> (RunningProxy, SocketAddr) {
    mesh_with_router(cp, &[("a", a)], &[("a", 1)], json!({})).await;
    let port = free_port().await;
    cp.create(
        Kind::VirtualGateway,
        None,
        "gw",
        json!({"listeners": [{"portMapping": {"port": port, "protocol": "http"}}]}),
    )
    .await;
    cp.create(
        Kind::GatewayRoute,
        Some("gw"),
        "all",
        json!({"httpRoute": {"match": {"prefix": "/"}, "action": {
            "target": {"virtualService": {"virtualServiceName": "svc.local"}}}}}),
    )
    .await;
    let mut config = proxy::Config::new(&cp.url, MESH, proxy::Role::Gateway("gw".into()));
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    config.trace = trace_config(collector, sampling);
    let proxy = RunningProxy::start(config).await;
    let gateway = proxy.addr(proxy::ListenerKind::Gateway);
    (proxy, gateway)
}

fn upstream_header(upstream: &Upstream, name: &str) -> Option<String> {
    let headers = upstream.last_headers.lock().unwrap();
    let value = headers.as_ref()?.get(name)?;
    Some(value.to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_request_is_one_span_and_the_upstream_is_its_child() {
    let cp = ControlPlane::start().await;
    let collector = Collector::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    let (proxy, gateway) = traced_gateway(&cp, &a, &collector, 1.0).await;

    let answer = Caller::new()
        .get(gateway, "www.example", "/orders/7?x=1", &[])
        .await;
    assert_eq!(answer.status, 200);
    let spans = collector.wait_for(1).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let got = &spans[0];
    assert_eq!(got.service, "gateway gw");
    assert_eq!(got.span.name, "svc.local svc-route");
    assert_eq!(got.span.kind, span::SpanKind::Server as i32);
    assert!(got.span.parent_span_id.is_empty(), "a trace starts here");
    assert!(got.span.end_time_unix_nano >= got.span.start_time_unix_nano);
    assert_eq!(got.span.status, None);
    let attributes: Vec<(&str, Option<String>)> = [
        "http.request.method",
        "url.path",
        "http.response.status_code",
        "aviary.mesh",
        "aviary.virtual_service",
        "aviary.route",
        "aviary.target_node",
        "aviary.upstream.address",
        "aviary.retries",
    ]
    .into_iter()
    .map(|k| (k, got.attribute(k)))
    .collect();
    let expected: Vec<(&str, Option<String>)> = [
        ("http.request.method", "GET".to_string()),
        ("url.path", "/orders/7".into()),
        ("http.response.status_code", "200".into()),
        ("aviary.mesh", MESH.into()),
        ("aviary.virtual_service", "svc.local".into()),
        ("aviary.route", "svc-route".into()),
        ("aviary.target_node", "a".into()),
        ("aviary.upstream.address", a.addr.to_string()),
        ("aviary.retries", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k, Some(v)))
    .collect();
    assert_eq!(attributes, expected);

    // The upstream is the span's child, by either header.
    let (trace, span_id) = (hex(&got.span.trace_id), hex(&got.span.span_id));
    assert_eq!(
        upstream_header(&a, "traceparent"),
        Some(format!("00-{trace}-{span_id}-01"))
    );
    assert_eq!(
        upstream_header(&a, "x-amzn-trace-id"),
        Some(format!(
            "Root=1-{}-{};Parent={span_id};Sampled=1",
            &trace[..8],
            &trace[8..]
        ))
    );
    assert_eq!(
        proxy
            .metric("aviary_proxy_trace_spans_exported_total")
            .await,
        1
    );
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_trace_is_continued_whatever_the_sampling() {
    let cp = ControlPlane::start().await;
    let collector = Collector::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    // Sampling 0 decides only for new traces: the caller's sampled flag stands.
    let (proxy, gateway) = traced_gateway(&cp, &a, &collector, 0.0).await;
    let caller = Caller::new();

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let incoming = [
        ("traceparent", format!("00-{trace}-{parent}-01")),
        (
            "tracestate",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".to_string(),
        ),
    ];
    let incoming: Vec<(&str, &str)> = incoming.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(caller.get(gateway, "w", "/", &incoming).await.status, 200);
    let spans = collector.wait_for(1).await;
    let got = &spans[0];
    assert_eq!(hex(&got.span.trace_id), trace);
    assert_eq!(hex(&got.span.parent_span_id), parent);
    assert_eq!(
        got.span.trace_state,
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
    let span_id = hex(&got.span.span_id);
    assert_ne!(span_id, parent);
    assert_eq!(
        upstream_header(&a, "traceparent"),
        Some(format!("00-{trace}-{span_id}-01"))
    );
    assert_eq!(
        upstream_header(&a, "tracestate").as_deref(),
        Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    );

    // X-Ray's header alone continues the trace too, Root kept and Parent rewritten.
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let answer = caller
        .get(gateway, "w", "/", &[("x-amzn-trace-id", xray)])
        .await;
    assert_eq!(answer.status, 200);
    let spans = collector.wait_for(2).await;
    let got = &spans[1];
    assert_eq!(hex(&got.span.trace_id), "5759e988bd862e3fe1be46a994272793");
    assert_eq!(hex(&got.span.parent_span_id), "53995c3f42cd8ad8");
    let span_id = hex(&got.span.span_id);
    assert_eq!(
        upstream_header(&a, "x-amzn-trace-id"),
        Some(format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={span_id};Sampled=1"
        ))
    );
    assert_eq!(upstream_header(&a, "tracestate"), None);
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_zero_exports_nothing_but_still_propagates() {
    let cp = ControlPlane::start().await;
    let collector = Collector::start().await;
    let a = Upstream::start("a", Behaviour::ok()).await;
    let (proxy, gateway) = traced_gateway(&cp, &a, &collector, 0.0).await;
    let caller = Caller::new();
    let mut parents = Vec::new();
    for _ in 0..20 {
        assert_eq!(caller.get(gateway, "w", "/", &[]).await.status, 200);
        let parent = upstream_header(&a, "traceparent").expect("a traceparent goes on");
        let fields: Vec<&str> = parent.split('-').collect();
        assert_eq!(
            (fields.len(), fields[0], fields[3]),
            (4, "00", "00"),
            "{parent}"
        );
        let xray = upstream_header(&a, "x-amzn-trace-id").unwrap();
        assert!(
            xray.ends_with(&format!(";Parent={};Sampled=0", fields[2])),
            "{xray}"
        );
        parents.push(parent);
    }
    parents.sort();
    parents.dedup();
    assert_eq!(parents.len(), 20, "a new trace for each request");
    // A batch would have gone a second after its first span.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(collector.spans().len(), 0);
    assert_eq!(
        proxy
            .metric("aviary_proxy_trace_spans_exported_total")
            .await,
        0
    );
    proxy.stop().await;
    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_egress_span_is_a_client_span_and_a_5xx_is_its_error() {
    let cp = ControlPlane::start().await;
    let collector = Collector::start().await;
    let a = Upstream::start("a", Behaviour::status(500)).await;
    mesh_with_router(&cp, &[("a", &a)], &[("a", 1)], json!({})).await;
    let mut config = node_config(&cp.url, None);
    config.trace = trace_config(&collector, 1.0);
    let proxy = RunningProxy::start(config).await;

    let answer = Caller::new()
        .get(proxy.egress(), "svc.local", "/pay", &[])
        .await;
    assert_eq!(answer.status, 500);
    let spans = collector.wait_for(1).await;
    let got = &spans[0];
    assert_eq!(got.service, "node client");
    assert_eq!(got.span.kind, span::SpanKind::Client as i32);
    assert_eq!(
        got.attribute("http.response.status_code").as_deref(),
        Some("500")
    );
    let status = got.span.status.clone().expect("an error status");
    assert_eq!(
        (status.code, status.message.as_str()),
        (status::StatusCode::Error as i32, "HTTP 500")
    );

    // A collector's URL the proxy cannot use is refused at bind, by name.
    let mut config = node_config(&cp.url, None);
    config.trace = Some(proxy::TraceConfig {
        collector: "http://127.0.0.1:4318".into(),
        sampling: 2.0,
    });
    let refused = proxy::Proxy::bind(config, CancellationToken::new()).await;
    assert_eq!(
        refused.err().map(|e| e.to_string()).as_deref(),
        Some("invalid configuration: trace sampling must be between 0 and 1, not 2")
    );
    proxy.stop().await;
    cp.stop().await;
}
