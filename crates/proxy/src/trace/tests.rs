//! Trace header parsing and formatting, sampling, and the span a hop records.

use super::*;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

fn check_traceparent(input: &str, expected: Option<(&str, &str, u8)>) {
    let got = TraceParent::parse(input)
        .map(|p| (p.trace_id.to_string(), p.parent_id.to_string(), p.flags));
    let expected = expected.map(|(t, p, f)| (t.to_string(), p.to_string(), f));
    assert_eq!(got, expected, "traceparent {input:?}");
}

#[test]
fn traceparent_parses_version_00_and_the_first_fields_of_higher_versions() {
    let ok = Some((TRACE, PARENT, 1));
    check_traceparent(&format!("00-{TRACE}-{PARENT}-01"), ok);
    check_traceparent(&format!("00-{TRACE}-{PARENT}-00"), Some((TRACE, PARENT, 0)));
    // A later version may add fields after another dash; its first four are read.
    check_traceparent(&format!("cc-{TRACE}-{PARENT}-01-what-the-future-holds"), ok);
    check_traceparent(&format!("01-{TRACE}-{PARENT}-01"), ok);
    // Unknown flags are kept on parsing (only `sampled` goes on).
    check_traceparent(&format!("00-{TRACE}-{PARENT}-03"), Some((TRACE, PARENT, 3)));
}

#[test]
fn traceparent_rejects_what_the_spec_calls_invalid() {
    for input in [
        String::new(),
        format!("00-{TRACE}-{PARENT}-01-extra"), // version 00 is exactly 55 characters
        format!("00-{TRACE}-{PARENT}-1"),
        format!("ff-{TRACE}-{PARENT}-01"), // version ff is forbidden
        format!("0-{TRACE}-{PARENT}-01"),
        format!("00-{}-{PARENT}-01", "0".repeat(32)), // all-zero trace id
        format!("00-{TRACE}-{}-01", "0".repeat(16)),  // all-zero parent id
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()), // capitals
        format!("00-{}x-{PARENT}-01", &TRACE[..31]),  // not hex
        format!("00-{TRACE}-{PARENT}-0g"),
        format!("00_{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}_{PARENT}-01"),
        format!("00-{TRACE}-{PARENT}_01"),
        format!("00-{TRACE}{PARENT}-01"),
        format!("cc-{TRACE}-{PARENT}-01x"), // a longer later version needs a dash after flags
        format!("00-{TRACE}-{}é-01", &PARENT[..14]),
    ] {
        check_traceparent(&input, None);
    }
}

#[test]
fn traceparent_formats_version_00_with_only_the_sampled_flag() {
    let parent = TraceParent::parse(&format!("cc-{TRACE}-{PARENT}-03-x")).unwrap();
    assert_eq!(parent.to_string(), format!("00-{TRACE}-{PARENT}-01"));
}

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

/// Root, Parent, Sampled and the other fields of a parsed `X-Amzn-Trace-Id`.
type XRayFields<'a> = (&'a str, Option<&'a str>, Option<bool>, &'a [&'a str]);

fn check_xray(input: &str, expected: Option<XRayFields<'_>>) {
    let got = XRayHeader::parse(input).map(|x| {
        (
            x.root.to_string(),
            x.parent.map(|p| p.to_string()),
            x.sampled,
            x.others,
        )
    });
    let expected = expected.map(|(root, parent, sampled, others)| {
        (
            root.to_string(),
            parent.map(str::to_string),
            sampled,
            others.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
        )
    });
    assert_eq!(got, expected, "X-Amzn-Trace-Id {input:?}");
}

#[test]
fn xray_header_maps_its_root_onto_the_w3c_trace_id() {
    let w3c = "5759e988bd862e3fe1be46a994272793";
    check_xray(
        &format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"),
        Some((w3c, Some("53995c3f42cd8ad8"), Some(true), &[])),
    );
    // Any order, spaces around fields, and what a load balancer or Lambda adds, kept.
    check_xray(
        &format!(
            "Self=1-67891234-12456789abcdef012345678; Root={ROOT} ;Sampled=0;Lineage=a87bd80c:1|68fd508a:5"
        ),
        Some((
            w3c,
            None,
            Some(false),
            &[
                "Self=1-67891234-12456789abcdef012345678",
                "Lineage=a87bd80c:1|68fd508a:5",
            ],
        )),
    );
    // `Sampled=?` asks the receiver to decide, as no field does.
    check_xray(
        &format!("Root={ROOT};Sampled=?"),
        Some((w3c, None, None, &[])),
    );
    check_xray(&format!("Root={ROOT};"), Some((w3c, None, None, &[])));
    // Capitals are hex too here; the id is written back in lowercase.
    check_xray(
        &format!("Root={};Parent=53995C3F42CD8AD8", ROOT.to_uppercase()),
        Some((w3c, Some("53995c3f42cd8ad8"), None, &[])),
    );
}

#[test]
fn xray_header_without_a_valid_root_or_with_a_bad_parent_is_ignored() {
    for input in [
        String::new(),
        "Parent=53995c3f42cd8ad8;Sampled=1".to_string(),
        "Root=2-5759e988-bd862e3fe1be46a994272793".to_string(), // only version 1 exists
        "Root=1-5759e98-bd862e3fe1be46a994272793".to_string(),
        "Root=1-5759e988-bd862e3fe1be46a99427279".to_string(),
        "Root=1-5759e988bd862e3fe1be46a994272793".to_string(),
        "Root=1-00000000-000000000000000000000000".to_string(),
        format!("Root={ROOT};Parent=53995c3f42cd8ad"),
        format!("Root={ROOT};Parent=0000000000000000"),
        format!("Root={ROOT};Root={ROOT}"),
        format!("Root={ROOT};NoEquals"),
    ] {
        check_xray(&input, None);
    }
}

#[test]
fn xray_header_formats_back_as_it_came() {
    let input = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1");
    assert_eq!(XRayHeader::parse(&input).unwrap().to_string(), input);
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<_> = map
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

const SPAN: SpanId = SpanId([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
const NEW_TRACE: TraceId = TraceId([
    0x65, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
]);

/// One hop: the request's headers, sampling and the random draw, in; whether the hop is
/// sampled and the headers it sends on, out.
fn check(input: &[(&str, &str)], sampling: f64, draw: f64, expected: (bool, &[(&str, &str)])) {
    let mut map = headers(input);
    let context = Context::new(Incoming::extract(&map), SPAN, sampling, draw, || NEW_TRACE);
    context.inject(&mut map);
    let expected_headers = headers(expected.1);
    assert_eq!(
        (context.sampled, pairs(&map)),
        (expected.0, pairs(&expected_headers)),
        "input {input:?}"
    );
}

#[test]
fn a_hop_continues_the_trace_it_was_given_with_itself_as_the_parent() {
    let new_parent = "00-0af7651916cd43dd8448eb211c80319c-1122334455667788-01";
    let new_xray = "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=1122334455667788;Sampled=1";
    // traceparent alone: continued, tracestate untouched, X-Ray's header added.
    check(
        &[
            ("traceparent", &format!("00-{TRACE}-{PARENT}-01")),
            ("tracestate", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"),
        ],
        0.0,
        0.5,
        (
            true,
            &[
                ("traceparent", new_parent),
                ("tracestate", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"),
                ("x-amzn-trace-id", new_xray),
            ],
        ),
    );
    // Both, naming different traces: traceparent wins; X-Ray's other fields stay.
    check(
        &[
            ("traceparent", &format!("00-{TRACE}-{PARENT}-01")),
            (
                "x-amzn-trace-id",
                &format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=0;Lineage=a:1"),
            ),
        ],
        0.0,
        0.5,
        (
            true,
            &[
                ("traceparent", new_parent),
                ("x-amzn-trace-id", &format!("{new_xray};Lineage=a:1")),
            ],
        ),
    );
    // X-Ray's alone: its root, Parent rewritten, Root kept; tracestate without a traceparent
    // belongs to no trace and goes.
    check(
        &[
            (
                "x-amzn-trace-id",
                &format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"),
            ),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ],
        0.0,
        0.5,
        (
            true,
            &[
                (
                    "traceparent",
                    "00-5759e988bd862e3fe1be46a994272793-1122334455667788-01",
                ),
                (
                    "x-amzn-trace-id",
                    &format!("Root={ROOT};Parent=1122334455667788;Sampled=1"),
                ),
            ],
        ),
    );
}

#[test]
fn the_callers_sampling_decision_stands_and_an_open_one_is_made_here() {
    // Not sampled by the caller: not sampled at 100%, still propagated.
    check(
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-00"))],
        1.0,
        0.0,
        (
            false,
            &[
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-1122334455667788-00",
                ),
                (
                    "x-amzn-trace-id",
                    "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=1122334455667788;Sampled=0",
                ),
            ],
        ),
    );
    // X-Ray's `Sampled=?`: decided here, by the draw.
    for (draw, sampled) in [(0.24, true), (0.25, false)] {
        let flag = if sampled { "1" } else { "0" };
        check(
            &[("x-amzn-trace-id", &format!("Root={ROOT};Sampled=?"))],
            0.25,
            draw,
            (
                sampled,
                &[
                    (
                        "traceparent",
                        &format!("00-5759e988bd862e3fe1be46a994272793-1122334455667788-0{flag}"),
                    ),
                    (
                        "x-amzn-trace-id",
                        &format!("Root={ROOT};Parent=1122334455667788;Sampled={flag}"),
                    ),
                ],
            ),
        );
    }
}

#[test]
fn a_trace_starts_here_when_none_came_or_what_came_is_invalid() {
    let started = |sampled: bool| {
        let flag = if sampled { "1" } else { "0" };
        vec![
            (
                "traceparent".to_string(),
                format!("00-650000000102030405060708090a0b0c-1122334455667788-0{flag}"),
            ),
            (
                "x-amzn-trace-id".to_string(),
                format!(
                    "Root=1-65000000-0102030405060708090a0b0c;Parent=1122334455667788;Sampled={flag}"
                ),
            ),
        ]
    };
    let valid = format!("00-{TRACE}-{PARENT}-01");
    for (input, sampling, draw, sampled) in [
        (vec![], 1.0, 0.999, true),
        (vec![], 0.0, 0.0, false),
        (vec![], 0.5, 0.4, true),
        (vec![("traceparent", "00-junk")], 1.0, 0.0, true),
        // Twice is invalid too: which one would it be?
        (
            vec![("traceparent", &*valid), ("traceparent", &*valid)],
            1.0,
            0.0,
            true,
        ),
        (vec![("tracestate", "rojo=1")], 0.0, 0.0, false),
    ] {
        let expected = started(sampled);
        let expected: Vec<(&str, &str)> = expected
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        check(&input, sampling, draw, (sampled, &expected));
    }
}

#[test]
fn new_ids_are_never_zero_and_trace_ids_start_with_the_time() {
    let mut rng = fastrand::Rng::with_seed(7);
    let now = UNIX_EPOCH + std::time::Duration::from_secs(0x6543_2100);
    for _ in 0..1000 {
        let trace = new_trace_id(&mut rng, now);
        assert_eq!(&trace.0[..4], &[0x65, 0x43, 0x21, 0x00]);
        assert_ne!(&trace.0[4..], &[0; 12]);
        assert_ne!(new_span_id(&mut rng).0, [0; 8]);
    }
}

#[test]
fn sampling_draws_keep_about_the_configured_share() {
    let mut rng = fastrand::Rng::with_seed(1);
    let kept = (0..10_000)
        .filter(|_| Context::new(None, SPAN, 0.1, rng.f64(), || NEW_TRACE).sampled)
        .count();
    assert!((800..1200).contains(&kept), "{kept} of 10000 at 10%");
}

fn config(collector: &str, sampling: f64) -> TraceConfig {
    TraceConfig {
        collector: collector.into(),
        sampling,
    }
}

#[tokio::test]
async fn a_tracer_needs_an_http_collector_and_a_sampling_share() {
    for (collector, sampling, expected) in [
        (
            "http://127.0.0.1:4318",
            1.0,
            Ok("http://127.0.0.1:4318/v1/traces"),
        ),
        (
            "http://collector:4318/otlp/",
            0.0,
            Ok("http://collector:4318/otlp/v1/traces"),
        ),
        (
            "http://127.0.0.1:4318",
            1.5,
            Err("trace sampling must be between 0 and 1, not 1.5"),
        ),
        (
            "http://127.0.0.1:4318",
            -0.1,
            Err("trace sampling must be between 0 and 1, not -0.1"),
        ),
        (
            "http://127.0.0.1:4318",
            f64::NAN,
            Err("trace sampling must be between 0 and 1, not NaN"),
        ),
        (
            "127.0.0.1:4318",
            1.0,
            Err("trace collector \"127.0.0.1:4318\": must be an http:// URL"),
        ),
        (
            "https://c:4318",
            1.0,
            Err("trace collector \"https://c:4318\": https is not supported; give an http:// URL"),
        ),
        (
            "http://c:4318/?a=b",
            1.0,
            Err("trace collector \"http://c:4318/?a=b\": must not have a query"),
        ),
        (
            "",
            1.0,
            Err("trace collector \"\": not a URL (empty string)"),
        ),
    ] {
        let got = Tracer::new(&config(collector, sampling), "gateway gw")
            .map(|(_, exporter)| exporter.endpoint().to_string());
        assert_eq!(
            got.as_deref().map_err(String::as_str),
            expected,
            "{collector} {sampling}"
        );
    }
}

fn hop(context: Context, kind: Kind) -> Hop {
    Hop {
        context,
        kind,
        method: "GET".into(),
        path: "/orders/1".into(),
        tracestate: Some("rojo=1".into()),
        start_unix_nanos: 1_000,
        start: Instant::now(),
    }
}

fn attributes(span: &Span) -> Vec<(String, String)> {
    span.attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_hop_records_one_span_with_its_target_and_outcome() {
    let incoming = Incoming::extract(&headers(&[(
        "traceparent",
        &format!("00-{TRACE}-{PARENT}-01"),
    )]));
    let context = Context::new(incoming, SPAN, 1.0, 0.0, || NEW_TRACE);
    let hop = hop(context, Kind::Server);
    tokio::time::advance(std::time::Duration::from_millis(3)).await;
    let notes = Notes {
        virtual_service: Some("order.demo.local".into()),
        route: Some("order-r".into()),
        target_node: Some("order-vn".into()),
        endpoint: Some("127.0.0.1:8080".parse().unwrap()),
        retries: 1,
    };
    let span = hop
        .span(
            "demo",
            Outcome {
                status: StatusCode::OK,
                error: None,
                virtual_service: Some("order.demo.local"),
                notes,
            },
        )
        .unwrap();
    assert_eq!(span.name, "order.demo.local order-r");
    assert_eq!(
        span.trace_id,
        TraceParent::parse(&format!("00-{TRACE}-{PARENT}-01"))
            .unwrap()
            .trace_id
            .0
    );
    assert_eq!(span.span_id, SPAN.0);
    assert_eq!(span.parent_span_id, parse_hex::<8>(PARENT, true).unwrap());
    assert_eq!(span.kind, span::SpanKind::Server as i32);
    assert_eq!(span.trace_state, "rojo=1");
    assert_eq!(span.flags, 0x301);
    assert_eq!(
        (span.start_time_unix_nano, span.end_time_unix_nano),
        (1_000, 3_001_000)
    );
    assert_eq!(span.status, None);
    assert_eq!(
        attributes(&span),
        owned(&[
            ("http.request.method", "GET"),
            ("url.path", "/orders/1"),
            ("http.response.status_code", "200"),
            ("aviary.mesh", "demo"),
            ("aviary.virtual_service", "order.demo.local"),
            ("aviary.route", "order-r"),
            ("aviary.target_node", "order-vn"),
            ("aviary.upstream.address", "127.0.0.1:8080"),
            ("aviary.retries", "1"),
        ])
    );
}

#[tokio::test]
async fn a_failed_hop_says_why_and_an_unsampled_one_records_nothing() {
    let context = Context::new(None, SPAN, 1.0, 0.0, || NEW_TRACE);
    let error = ProxyError::NoHealthyEndpoint {
        node: "order-vn".into(),
        reason: "none registered".into(),
    };
    let span = hop(context, Kind::Client)
        .span(
            "demo",
            Outcome {
                status: error.status(),
                error: Some(&error),
                virtual_service: Some("order.demo.local"),
                notes: Notes::default(),
            },
        )
        .unwrap();
    assert_eq!(span.name, "order.demo.local");
    assert_eq!(span.kind, span::SpanKind::Client as i32);
    assert_eq!(span.parent_span_id, Vec::<u8>::new());
    assert_eq!(span.flags, 0x101);
    assert_eq!(
        span.status,
        Some(Status {
            message: error.to_string(),
            code: status::StatusCode::Error as i32,
        })
    );
    assert_eq!(
        attributes(&span),
        owned(&[
            ("http.request.method", "GET"),
            ("url.path", "/orders/1"),
            ("http.response.status_code", "503"),
            ("aviary.mesh", "demo"),
            ("aviary.virtual_service", "order.demo.local"),
            ("aviary.retries", "0"),
            ("error.type", "no_healthy_endpoint"),
        ])
    );
    // A 4xx of the proxy's own is the caller's failure: no error status, a reason still.
    let error = ProxyError::UnknownService {
        service: "nope".into(),
        mesh: "demo".into(),
    };
    let span = hop(
        Context::new(None, SPAN, 1.0, 0.0, || NEW_TRACE),
        Kind::Client,
    )
    .span(
        "demo",
        Outcome {
            status: error.status(),
            error: Some(&error),
            virtual_service: None,
            notes: Notes::default(),
        },
    )
    .unwrap();
    assert_eq!((span.name.as_str(), span.status), ("GET", None));
    let unsampled = Context::new(None, SPAN, 0.0, 0.0, || NEW_TRACE);
    let outcome = Outcome {
        status: StatusCode::OK,
        error: None,
        virtual_service: None,
        notes: Notes::default(),
    };
    assert_eq!(hop(unsampled, Kind::Server).span("demo", outcome), None);
}

#[tokio::test]
async fn attempts_are_noted_only_inside_observed() {
    let key = SeriesKey {
        virtual_service: "order.demo.local".into(),
        route: "order-r".into(),
        target_node: "order-v2".into(),
    };
    // Outside: nothing to note into, and nothing breaks.
    note_attempt(&key, None, true);
    let ((), notes) = observed(true, async {
        let first = SeriesKey {
            target_node: "order-v1".into(),
            ..key.clone()
        };
        note_attempt(&first, Some("127.0.0.1:1".parse().unwrap()), true);
        note_attempt(&key, Some("127.0.0.1:2".parse().unwrap()), false);
    })
    .await;
    assert_eq!(
        notes,
        Notes {
            virtual_service: Some("order.demo.local".into()),
            route: Some("order-r".into()),
            target_node: Some("order-v2".into()),
            endpoint: Some("127.0.0.1:2".parse().unwrap()),
            retries: 1,
        }
    );
    let ((), notes) = observed(false, async { note_attempt(&key, None, true) }).await;
    assert_eq!(notes, Notes::default());
}
