//! Tracing end to end: `aviary up` with the demo mesh, its proxies exporting spans to an
//! OTLP/HTTP receiver this test runs; one request through the gateway into order, product and
//! customer is one trace whose spans link parent to child. On one host: the per-host agent is
//! not built yet, so the hops are the gateway proxy and the mesh's shared egress proxy, and the
//! demo's order service carries the headers between them as an X-Ray SDK would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{Span, span};
use prost::Message;
use testkit::{http, http_as};

use crate::canary::up_demo;

/// A span and the `service.name` of the proxy that exported it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    service: String,
    span: Span,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<String> {
        let kv = self.span.attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        }
    }

    fn trace(&self) -> String {
        hex(&self.span.trace_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver on 127.0.0.1:0: `POST /v1/traces` with a protobuf body, as an
/// OpenTelemetry Collector takes it, over keep-alive HTTP/1.1 (a thread per connection).
pub(crate) struct Collector {
    pub(crate) url: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    pub(crate) fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = spans.clone();
        // Ends with the test process; it holds nothing but its port.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || serve(stream, &store));
            }
        });
        Collector { url, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of `trace` once there are `n`, waiting up to 10 s (batches leave a proxy a
    /// second after their first span).
    pub(crate) fn trace(&self, trace: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Received> = self
                .spans()
                .into_iter()
                .filter(|r| r.trace() == trace)
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{n} spans of trace {trace} expected, got {found:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Requests on one connection until it closes; anything but a protobuf POST to `/v1/traces`
/// is a 404, so a wrong path or type fails the test by its missing spans.
fn serve(stream: TcpStream, store: &Mutex<Vec<Received>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        let header = |name: &str| {
            head.iter().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let good = head[0].starts_with("POST /v1/traces ")
            && header("content-type").as_deref() == Some("application/x-protobuf");
        if good {
            let export = ExportTraceServiceRequest::decode(&body[..]).unwrap();
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
        }
        let status = if good { "200 OK" } else { "404 Not Found" };
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn by_service<'a>(spans: &'a [Received], service: &str) -> Vec<&'a Received> {
    spans.iter().filter(|r| r.service == service).collect()
}

/// Gateway span → order's inbound hop → order's two outbound calls → product's and
/// customer's inbound hops, each the child of the one before; returns the gateway span.
/// `agents`: the `service.name` of the agent of order's, product's and customer's host.
pub(crate) fn assert_one_walk(spans: &[Received], agents: [&str; 3]) -> Received {
    assert_eq!(spans.len(), 6, "{spans:#?}");
    let gateway = by_service(spans, "gateway demo-gw");
    assert_eq!(gateway.len(), 1, "{spans:#?}");
    let gateway = gateway[0];
    assert_eq!(gateway.span.kind, span::SpanKind::Server as i32);
    assert_eq!(gateway.span.name, "order.demomesh.local order-r");
    assert_eq!(
        gateway.attribute("aviary.target_node").as_deref(),
        Some("order-vn")
    );
    assert_eq!(
        gateway.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    let host_of = |node: &str| match node {
        "order-vn" => agents[0],
        "product-vn" => agents[1],
        _ => agents[2],
    };
    let inbound = |node: &str| {
        let found: Vec<&Received> = by_service(spans, host_of(node))
            .into_iter()
            .filter(|r| {
                r.span.kind == span::SpanKind::Server as i32
                    && r.attribute("aviary.target_node").as_deref() == Some(node)
            })
            .collect();
        assert_eq!(found.len(), 1, "one inbound span of {node}: {spans:#?}");
        found[0].clone()
    };
    let order = inbound("order-vn");
    assert_eq!(
        order.span.parent_span_id, gateway.span.span_id,
        "order's inbound hop is the gateway's child: {spans:#?}"
    );
    let mut calls: Vec<(String, String)> = by_service(spans, agents[0])
        .into_iter()
        .filter(|r| r.span.kind == span::SpanKind::Client as i32)
        .map(|r| {
            assert_eq!(
                r.span.parent_span_id, order.span.span_id,
                "order's calls are children of its inbound hop: {spans:#?}"
            );
            // Order's own request is inside the gateway's span.
            assert!(r.span.start_time_unix_nano >= gateway.span.start_time_unix_nano);
            let target = r.attribute("aviary.target_node").unwrap();
            let callee = inbound(&target);
            assert_eq!(
                callee.span.parent_span_id, r.span.span_id,
                "{target}'s inbound hop is the child of order's call to it: {spans:#?}"
            );
            (r.span.name.clone(), target)
        })
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            (
                "customer.demomesh.local customer-r".to_string(),
                "customer-vn".to_string()
            ),
            (
                "product.demomesh.local product-r".to_string(),
                "product-vn".to_string()
            ),
        ]
    );
    gateway.clone()
}

#[test]
fn one_request_through_the_demo_is_one_trace_from_the_gateway_to_product_and_customer() {
    let collector = Collector::start();
    let (_up, _, gateway, _data) = up_demo(&["--trace-collector", &collector.url]);
    let url = format!("http://127.0.0.1:{gateway}/");

    // A request with no trace: it starts at the gateway, whose span is the root. The spans of
    // the readiness checks above have left the proxies by now (a batch waits 1 s).
    std::thread::sleep(Duration::from_millis(2500));
    let before = collector.spans().len();
    assert_eq!(http("GET", &url, None).0, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = loop {
        let spans = collector.spans();
        let roots: Vec<String> = spans[before..]
            .iter()
            .filter(|r| r.service == "gateway demo-gw")
            .map(Received::trace)
            .collect();
        assert!(
            roots.len() <= 1,
            "one request, one gateway span: {spans:#?}"
        );
        if let Some(trace) = roots.first() {
            break trace.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no gateway span arrived: {spans:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let spans = collector.trace(&started, 6);
    let root = assert_one_walk(&spans, ["agent"; 3]);
    assert!(root.span.parent_span_id.is_empty());

    // A request that comes with a trace (an X-Ray SDK's header): continued, the gateway's span
    // its child.
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let (status, _, body) = http_as("GET", &url, None, &[("X-Amzn-Trace-Id", xray)]);
    assert_eq!(status, 200, "{body}");
    let spans = collector.trace("5759e988bd862e3fe1be46a994272793", 6);
    let root = assert_one_walk(&spans, ["agent"; 3]);
    assert_eq!(hex(&root.span.parent_span_id), "53995c3f42cd8ad8");
}

#[test]
fn trace_flags_are_checked_before_anything_starts() {
    let check = |args: &[&str], expected: &str| {
        let mut cmd = crate::aviary_cmd();
        cmd.args([
            "proxy",
            "--mesh",
            "m",
            "--node",
            "n",
            "--egress-listen",
            "127.0.0.1:0",
        ])
        .args(args);
        let out = testkit::run(&mut cmd, Duration::from_secs(30));
        assert!(!out.success(), "{args:?} was accepted");
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
    };
    check(
        &[
            "--trace-collector",
            "http://127.0.0.1:4318",
            "--trace-sampling",
            "1.5",
        ],
        "'1.5' is not a number from 0 to 1",
    );
    check(
        &["--trace-sampling", "0.5"],
        "the following required arguments were not provided",
    );
    // The proxy refuses a collector URL it cannot post to, naming it, before it binds.
    check(
        &["--trace-collector", "https://collector:4318"],
        "trace collector \"https://collector:4318\": https is not supported",
    );
}
