//! The driver on the memory store and tokio's paused time: a canary steps through its weights
//! on the tick and promotes, a 5xx rolls it back on the first tick that counts it, and the
//! driver finds canaries through the index (also ones stored before the index existed). Minutes
//! of canary time take milliseconds, and every time asserted is the simulated one.

use std::sync::Arc;
use std::time::Duration;

use model::wire::{CanaryRecord, NodeStats};
use model::{Kind, ResourcePath};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{INDEX, TICK, drive, index_key, key};
use crate::clock::Clock;
use crate::{App, Config, Control, SharedStore};

/// A control plane on the memory store whose canary clock is tokio's, with mesh `m`: nodes
/// `v1` and `v2`, router `r` whose route `rt` sends everything to `v1`.
async fn control() -> (Arc<App>, Arc<dyn store::Store>) {
    let store: Arc<dyn store::Store> = Arc::new(store::MemoryStore::new());
    let app = replica(store.clone()).await;
    let listeners =
        json!({ "listeners": [ { "portMapping": { "port": 80, "protocol": "http" } } ] });
    let create = |kind, parent: Option<&str>, name: &str, body: Value| {
        let app = app.clone();
        let path = ResourcePath::new(kind, "m", parent.map(str::to_string), name);
        async move { app.resources.create(&path, &body).await.unwrap() }
    };
    app.resources
        .create(&ResourcePath::mesh("m"), &json!({ "meshName": "m" }))
        .await
        .unwrap();
    for node in ["v1", "v2"] {
        let body = json!({ "virtualNodeName": node, "spec": listeners });
        create(Kind::VirtualNode, None, node, body).await;
    }
    let body = json!({ "virtualRouterName": "r", "spec": listeners });
    create(Kind::VirtualRouter, None, "r", body).await;
    let body = json!({ "routeName": "rt", "spec": { "httpRoute": {
        "match": { "prefix": "/" },
        "action": { "weightedTargets": [ { "virtualNode": "v1", "weight": 100 } ] } } } });
    create(Kind::Route, Some("r"), "rt", body).await;
    (app, store)
}

/// A control plane on `store` that leads from now: its term starts now, with no stats.
async fn replica(store: Arc<dyn store::Store>) -> Arc<App> {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        store: Some(SharedStore(store)),
        clock: Clock::tokio(),
        ..Config::default()
    };
    let control = Control::bind(config, CancellationToken::new())
        .await
        .unwrap();
    control.app.clone()
}

fn spec(strategy: Value, analysis: Value) -> Value {
    json!({
        "router": "r", "route": "rt", "stableNode": "v1", "canaryNode": "v2",
        "strategy": strategy, "analysis": analysis,
    })
}

/// The route's weight of `v2` (the canary), 0 when it is not a target.
async fn canary_weight(app: &App) -> u32 {
    let path = ResourcePath::new(Kind::Route, "m", Some("r".into()), "rt");
    let (route, _) = app.resources.require(&path).await.unwrap();
    model::typed::route_targets(&route.spec)
        .iter()
        .find(|t| t.virtual_node == "v2")
        .map_or(0, |t| t.weight)
}

async fn phase(app: &App, name: &str) -> String {
    app.get_canary("m", name)
        .await
        .unwrap()
        .state
        .phase
        .to_string()
}

/// What one proxy would push for a node every tick: `requests` answers, `errors` of them 5xx.
fn sample(node: &str, requests: u64, errors: u64) -> NodeStats {
    NodeStats {
        virtual_node: node.into(),
        requests,
        status_2xx: requests - errors,
        status_5xx: errors,
        latency_buckets: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, requests],
        ..NodeStats::default()
    }
}

/// Traffic every tick until the returned token is cancelled: 5 canary and 15 stable requests,
/// with `errors()` 5xx among the canary's.
fn traffic(app: &Arc<App>, errors: impl Fn() -> u64 + Send + 'static) -> CancellationToken {
    let stop = CancellationToken::new();
    let (app, stopped) = (app.clone(), stop.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        while !stopped.is_cancelled() {
            tick.tick().await;
            app.stats
                .record("m", &[sample("v1", 15, 0), sample("v2", 5, errors())]);
        }
    });
    stop
}

/// Waits (in simulated time, at most `limit`) until `check` holds; returns how long it took.
async fn until<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_canary_steps_on_the_tick_after_each_interval_and_promotes() {
    let (app, _store) = control().await;
    let _traffic = traffic(&app, || 0).drop_guard();
    let body = json!({ "name": "c", "spec": spec(
        json!({"type": "steps", "stepWeight": 25, "interval": "60s"}),
        json!({"max5xx": 0}),
    )});
    app.create_canary("m", &body).await.unwrap();
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    tokio::spawn(drive(app.clone(), shutdown.clone()));
    assert_eq!(canary_weight(&app).await, 25);
    for weight in [50, 75, 100] {
        until(Duration::from_secs(61), || async {
            canary_weight(&app).await == weight
        })
        .await;
        let at = started.elapsed();
        let due = Duration::from_secs(60 * u64::from(weight / 25 - 1));
        assert!(
            at >= due && at <= due + TICK * 2,
            "weight {weight} at {at:?}, due at {due:?}"
        );
    }
    until(Duration::from_secs(1), || async {
        phase(&app, "c").await == "succeeded"
    })
    .await;
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_5xx_rolls_the_canary_back_on_the_first_tick_that_counts_it() {
    let (app, _store) = control().await;
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let errors = failing.clone();
    let _traffic = traffic(&app, move || {
        u64::from(errors.load(std::sync::atomic::Ordering::Relaxed))
    })
    .drop_guard();
    let body = json!({ "name": "c", "spec": spec(
        json!({"type": "steps", "stepWeight": 10, "interval": "60s"}),
        json!({"max5xx": 0}),
    )});
    app.create_canary("m", &body).await.unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(drive(app.clone(), shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(phase(&app, "c").await, "progressing");
    assert_eq!(canary_weight(&app).await, 10);

    failing.store(true, std::sync::atomic::Ordering::Relaxed);
    let took = until(Duration::from_secs(5), || async {
        canary_weight(&app).await == 0
    })
    .await;
    // One tick for the traffic to be pushed, one for the driver to see it.
    assert!(took <= TICK * 2, "rolled back {took:?} after the first 5xx");
    let record = app.get_canary("m", "c").await.unwrap();
    assert_eq!(record.state.phase.to_string(), "failed");
    let reason = record.state.reason.unwrap_or_default();
    assert!(reason.contains("5xx") && reason.contains("v2"), "{reason}");
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn the_driver_finds_canaries_through_the_index_and_drops_it_when_they_settle() {
    let (app, store) = control().await;
    let _traffic = traffic(&app, || 0).drop_guard();
    let index = |store: Arc<dyn store::Store>| async move {
        let (kvs, _) = crate::resources::blocking(move || store.range(INDEX))
            .await
            .unwrap()
            .unwrap();
        kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>()
    };
    let body = json!({ "name": "c", "spec": spec(
        json!({"type": "steps", "stepWeight": 50, "interval": "10s"}),
        json!({}),
    )});
    app.create_canary("m", &body).await.unwrap();
    assert_eq!(index(store.clone()).await, vec![index_key("m", "c")]);

    // A canary stored as an older control plane stored it, without an index entry: the first
    // pass of the term finds it in the store and indexes it.
    let mut older: CanaryRecord = app.get_canary("m", "c").await.unwrap();
    older.name = "old".into();
    older.spec.route = "rt".into();
    let value = serde_json::to_vec(&older).unwrap();
    let txn = store::Txn::default().then(store::Op::Put(key("m", "old"), value));
    let moved = store.clone();
    crate::resources::blocking(move || moved.txn(txn))
        .await
        .unwrap()
        .unwrap();
    // And an index entry whose canary is gone (its mesh was deleted).
    let txn = store::Txn::default().then(store::Op::Put(index_key("m", "gone"), Vec::new()));
    let moved = store.clone();
    crate::resources::blocking(move || moved.txn(txn))
        .await
        .unwrap()
        .unwrap();

    let shutdown = CancellationToken::new();
    tokio::spawn(drive(app.clone(), shutdown.clone()));
    tokio::time::sleep(TICK * 3).await;
    assert_eq!(
        index(store.clone()).await,
        vec![index_key("m", "c"), index_key("m", "old")],
        "the stale entry is dropped, the unindexed canary indexed"
    );
    // Once both have ended and been acted on, the index is empty: nothing to range each tick.
    until(Duration::from_secs(30), || async {
        phase(&app, "c").await == "succeeded" && phase(&app, "old").await == "succeeded"
    })
    .await;
    tokio::time::sleep(TICK * 2).await;
    assert_eq!(index(store.clone()).await, Vec::<String>::new());
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn after_a_leader_change_a_step_passes_only_on_a_whole_interval_of_fresh_stats() {
    let (first, store) = control().await;
    let body = json!({ "name": "c", "spec": spec(
        json!({"type": "steps", "stepWeight": 25, "interval": "60s"}),
        json!({}),
    )});
    first.create_canary("m", &body).await.unwrap();
    let started = Instant::now();
    // The first leader drives the step's first 50 s, then is gone.
    let shutdown = CancellationToken::new();
    tokio::spawn(drive(first.clone(), shutdown.clone()));
    let traffic_1 = traffic(&first, || 0);
    tokio::time::sleep(Duration::from_secs(50)).await;
    shutdown.cancel();
    traffic_1.cancel();

    // The next one has no stats from before its term: at 60 s the step would be due, but it
    // has seen 10 s of them, so it waits for a whole interval of its own.
    let second = replica(store).await;
    let _traffic = traffic(&second, || 0).drop_guard();
    let shutdown = CancellationToken::new();
    tokio::spawn(drive(second.clone(), shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        canary_weight(&second).await,
        25,
        "passed on stats it does not have"
    );
    let status = second
        .canary_view(second.get_canary("m", "c").await.unwrap())
        .await
        .status;
    assert!(
        status.summary.contains("waiting for fresh stats"),
        "{}",
        status.summary
    );
    until(Duration::from_secs(60), || async {
        canary_weight(&second).await == 50
    })
    .await;
    let at = started.elapsed();
    assert!(
        at >= Duration::from_secs(110) && at <= Duration::from_secs(110) + TICK * 2,
        "the step passed at {at:?}: a whole interval after the second leader began at 50 s"
    );
    shutdown.cancel();
}

/// A loopback HTTP server answering every GET with an empty 200, counting them.
async fn counting_server() -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    // Bodiless GETs: one request per head.
                    let heads = buffer[..n].windows(4).filter(|w| w == b"\r\n\r\n").count();
                    for _ in 0..heads {
                        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, count)
}

/// Real time: the load goes out only while a driver renews it.
#[tokio::test]
async fn synthetic_load_runs_while_the_driver_ticks_and_stops_within_its_lease_without_it() {
    let (app, _store) = control().await;
    let (url, count) = counting_server().await;
    let requests = || count.load(std::sync::atomic::Ordering::Relaxed);
    let body = json!({ "name": "c", "spec": spec(
        json!({"type": "steps", "stepWeight": 10, "interval": "10m"}),
        json!({"load": {"url": url, "rate": 20}, "progressDeadline": "1h"}),
    )});
    app.create_canary("m", &body).await.unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(drive(app.clone(), shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = requests();
    assert!((20..=50).contains(&sent), "{sent} requests in 2 s at 20/s");

    // The driver stops (as on a lost lead): the canary lives on, unrenewed, and its load ends
    // within the lease.
    shutdown.cancel();
    tokio::time::sleep(super::load::LEASE + Duration::from_millis(500)).await;
    let after_lease = requests();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(requests(), after_lease, "load went on past its lease");
    assert_eq!(phase(&app, "c").await, "progressing");
    assert!(after_lease > sent, "the load ran until the lease ran out");
}
