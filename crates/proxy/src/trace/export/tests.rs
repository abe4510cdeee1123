//! The exporter's batching and bounds, on tokio's paused clock, with a sink that records each
//! post instead of sending it (the real HTTP post is covered by `tests/it/tracing.rs`).

use std::sync::{Arc, Mutex};

use super::*;
use crate::trace::{QUEUE_SPANS, TraceConfig, Tracer};

#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Fail,
    Hang,
}

#[derive(Clone)]
struct Recorder {
    answer: Answer,
    /// (when, spans) per post, times from the test's start.
    posts: Arc<Mutex<Vec<(Duration, usize)>>>,
    start: Instant,
}

impl Recorder {
    fn new(answer: Answer) -> Recorder {
        Recorder {
            answer,
            posts: Arc::default(),
            start: Instant::now(),
        }
    }

    fn posts(&self) -> Vec<(Duration, usize)> {
        self.posts.lock().unwrap().clone()
    }
}

impl Sink for Recorder {
    fn post(&self, request: ExportTraceServiceRequest) -> BoxFuture<Result<(), String>> {
        let spans = request.resource_spans[0].scope_spans[0].spans.len();
        let resource = request.resource_spans[0].resource.clone().unwrap();
        assert_eq!(
            resource.attributes,
            vec![super::super::string("service.name", "gateway gw")]
        );
        self.posts
            .lock()
            .unwrap()
            .push((self.start.elapsed(), spans));
        let answer = self.answer;
        Box::pin(async move {
            match answer {
                Answer::Ok => Ok(()),
                Answer::Fail => Err("the collector answered 503 Service Unavailable".into()),
                Answer::Hang => std::future::pending().await,
            }
        })
    }
}

fn span(i: usize) -> Span {
    Span {
        name: format!("span {i}"),
        ..Span::default()
    }
}

/// The value of one sample line of `/metrics`, 0 when absent.
fn metric(telemetry: &Telemetry, sample: &str) -> u64 {
    telemetry
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

struct Running {
    sender: mpsc::Sender<Span>,
    recorder: Recorder,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(answer: Answer) -> Running {
    let (sender, receiver) = mpsc::channel(QUEUE_SPANS);
    let recorder = Recorder::new(answer);
    let exporter = Exporter::with_sink(recorder.clone(), "gateway gw", receiver);
    let telemetry = Arc::new(Telemetry::new("demo"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let telemetry = telemetry.clone();
        let shutdown = shutdown.clone();
        async move { exporter.run(&telemetry, shutdown).await }
    });
    Running {
        sender,
        recorder,
        telemetry,
        shutdown,
        task,
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_batch_waits_a_second_for_company_then_goes() {
    let running = start(Answer::Ok);
    for i in 0..3 {
        running.sender.send(span(i)).await.unwrap();
    }
    tokio::time::sleep(SECOND - Duration::from_millis(1)).await;
    assert_eq!(running.recorder.posts(), vec![]);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(running.recorder.posts(), vec![(SECOND, 3)]);
    assert_eq!(
        metric(
            &running.telemetry,
            "aviary_proxy_trace_spans_exported_total"
        ),
        3
    );
    // The next span opens the next window.
    tokio::time::sleep(SECOND * 5).await;
    running.sender.send(span(3)).await.unwrap();
    tokio::time::sleep(SECOND * 2).await;
    assert_eq!(
        running.recorder.posts(),
        vec![(SECOND, 3), (Duration::from_millis(7001), 1)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_goes_at_once() {
    let running = start(Answer::Ok);
    for i in 0..1100 {
        running.sender.send(span(i)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        running.recorder.posts(),
        vec![(Duration::ZERO, 512), (Duration::ZERO, 512)]
    );
    tokio::time::sleep(SECOND).await;
    assert_eq!(
        running.recorder.posts(),
        vec![(Duration::ZERO, 512), (Duration::ZERO, 512), (SECOND, 76)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_is_dropped_and_counted_not_sent_again() {
    let running = start(Answer::Fail);
    for i in 0..5 {
        running.sender.send(span(i)).await.unwrap();
    }
    tokio::time::sleep(SECOND * 10).await;
    running.sender.send(span(5)).await.unwrap();
    tokio::time::sleep(SECOND * 10).await;
    assert_eq!(
        running.recorder.posts(),
        vec![(SECOND, 5), (SECOND * 11, 1)]
    );
    let t = &running.telemetry;
    assert_eq!(metric(t, "aviary_proxy_trace_export_failures_total"), 2);
    assert_eq!(
        metric(
            t,
            "aviary_proxy_trace_spans_dropped_total{reason=\"export_failed\"}"
        ),
        6
    );
    assert_eq!(metric(t, "aviary_proxy_trace_spans_exported_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_collector_that_never_answers_costs_one_timeout_per_batch() {
    let running = start(Answer::Hang);
    running.sender.send(span(0)).await.unwrap();
    tokio::time::sleep(SECOND + EXPORT_TIMEOUT - Duration::from_millis(1)).await;
    assert_eq!(
        metric(
            &running.telemetry,
            "aviary_proxy_trace_export_failures_total"
        ),
        0
    );
    running.sender.send(span(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(
        metric(
            &running.telemetry,
            "aviary_proxy_trace_export_failures_total"
        ),
        1
    );
    // The span that waited behind the hung post goes next, a second later.
    tokio::time::sleep(SECOND).await;
    assert_eq!(
        running.recorder.posts(),
        vec![(SECOND, 1), (SECOND * 2 + EXPORT_TIMEOUT, 1)]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_what_is_queued() {
    let running = start(Answer::Ok);
    for i in 0..600 {
        running.sender.try_send(span(i)).unwrap();
    }
    running.shutdown.cancel();
    let started = Instant::now();
    running.task.await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    let posted: usize = running.recorder.posts().iter().map(|p| p.1).sum();
    assert_eq!(posted, 600);
    // The queue is closed: a span finished now is not held for an exporter that is gone.
    assert!(running.sender.try_send(span(600)).is_err());
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_hung_collector_only_so_long() {
    let running = start(Answer::Hang);
    for i in 0..3 {
        running.sender.try_send(span(i)).unwrap();
    }
    running.shutdown.cancel();
    let started = Instant::now();
    running.task.await.unwrap();
    assert_eq!(started.elapsed(), FLUSH_TIMEOUT);
    assert_eq!(running.recorder.posts(), vec![(Duration::ZERO, 3)]);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_the_span_and_counts_it() {
    let config = TraceConfig {
        collector: "http://127.0.0.1:4318".into(),
        sampling: 1.0,
    };
    // No exporter runs: the queue only fills.
    let (tracer, _exporter) = Tracer::new(&config, "gateway gw").unwrap();
    let telemetry = Telemetry::new("demo");
    for i in 0..QUEUE_SPANS + 3 {
        tracer.submit(span(i), &telemetry);
    }
    assert_eq!(
        metric(
            &telemetry,
            "aviary_proxy_trace_spans_dropped_total{reason=\"queue_full\"}"
        ),
        3
    );
}
