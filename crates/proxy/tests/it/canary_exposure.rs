//! Canary exposure beyond weights, end to end: canary records written into a real control
//! plane's store reach the proxy in its snapshot and watch stream, and real upstreams see A/B
//! rules, sticky cookies and mirrored copies carried out.
//!
//! The records are written straight into the store (as the control plane's canary driver
//! stores them) rather than started through `/v1`: each test holds its canary at one step,
//! paused, with the route's weights already as that step sets them, so whatever a driver might
//! do with it leaves the route as it is.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use model::wire::CanaryRecord;
use rollout::{CanarySpec, Phase};
use serde_json::{Value, json};
use store::Store;

use crate::*;

/// A mesh whose route `svc-route` splits between nodes `stable` and `canary` (each served by
/// an upstream answering its name), with one canary record, and a proxy that has read it.
struct Setup {
    store: Arc<dyn Store>,
    cp: ControlPlane,
    stable: Upstream,
    canary: Upstream,
    proxy: RunningProxy,
}

impl Setup {
    async fn start(canary: Behaviour, weights: (u32, u32), record: &CanaryRecord) -> Setup {
        let store: Arc<dyn Store> = Arc::new(store::MemoryStore::new());
        let config = control::Config {
            store: Some(control::SharedStore(store.clone())),
            ..ControlPlane::config()
        };
        let cp = ControlPlane::start_with(config, None).await;
        let stable = Upstream::start("stable", Behaviour::ok()).await;
        let canary = Upstream::start("canary", canary).await;
        mesh_with_router(
            &cp,
            &[("stable", &stable), ("canary", &canary)],
            &[("stable", weights.0), ("canary", weights.1)],
            json!({}),
        )
        .await;
        let revision = put_canary(&*store, record);
        let proxy = RunningProxy::node(&cp, None).await;
        proxy.wait_for_revision(revision).await;
        Setup {
            store,
            cp,
            stable,
            canary,
            proxy,
        }
    }

    async fn get(&self, headers: &[(&str, &str)]) -> Answer {
        let answer = Caller::new()
            .get(self.proxy.egress(), "svc.local", "/", headers)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer
    }

    /// The proxy's own counts of requests of the route to `node` (every attempt).
    fn counted(&self, node: &str) -> u64 {
        self.proxy
            .handle
            .metrics()
            .iter()
            .find(|(key, _)| key.route == "svc-route" && key.target_node == node)
            .map_or(0, |(_, counts)| counts.requests())
    }

    async fn stop(self) {
        self.proxy.stop().await;
        self.cp.stop().await;
    }
}

/// Stores `record` where the control plane keeps canaries; the store's revision after it.
fn put_canary(store: &dyn Store, record: &CanaryRecord) -> u64 {
    let key = format!("meshes/{MESH}/Canary/{}", record.name);
    let value = serde_json::to_vec(record).unwrap();
    store
        .txn(store::Txn {
            compares: Vec::new(),
            ops: vec![store::Op::Put(key, value)],
        })
        .expect("the store takes the record");
    store.revision()
}

/// Canary `c` of route `svc-route` from node `stable` to node `canary`, with `exposure`
/// (`mirror`, `match`, `sticky`) in its spec, at step `step` with canary weight `weight`,
/// paused there.
fn record(exposure: Value, step: usize, weight: u32) -> CanaryRecord {
    let mut spec = json!({
        "mesh": MESH, "router": "svc-router", "route": "svc-route",
        "stableNode": "stable", "canaryNode": "canary",
        "strategy": {"type": "steps", "stepWeight": 50, "interval": "5m"},
    });
    if let Value::Object(exposure) = exposure {
        for (k, v) in exposure {
            spec[k] = v;
        }
    }
    let spec: CanarySpec = serde_json::from_value(spec).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (mut state, _) = rollout::start(&spec, now);
    assert_eq!(state.phase, Phase::Progressing, "{:?}", state.reason);
    assert!(step < state.steps.len(), "{:?}", state.steps);
    state.step = step;
    state.canary_weight = weight;
    state.phase = Phase::Paused;
    state.paused_at = Some(now);
    CanaryRecord {
        name: "c".into(),
        acted: state.history.len(),
        spec,
        state,
        notes: Vec::new(),
    }
}

/// Waits up to 10 s for `done`.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn set_cookies(answer: &Answer) -> Vec<&str> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

fn last_headers(upstream: &Upstream) -> HeaderMap {
    upstream
        .last_headers
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_matching_a_rule_reach_the_canary_at_weight_0_and_others_stable() {
    let rules = json!({"match": [
        {"header": "x-canary", "exact": "always"},
        {"cookie": "canary", "prefix": "yes"},
    ]});
    let s = Setup::start(Behaviour::ok(), (100, 0), &record(rules, 0, 0)).await;
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("x-canary", "always")], "canary"),
        (&[("X-Canary", "always")], "canary"),
        (&[("x-canary", "sometimes")], "stable"),
        (&[("cookie", "a=1; canary=yes-please")], "canary"),
        (&[("cookie", "canary=no")], "stable"),
        (&[("cookie", "x-canary=always")], "stable"),
        (&[], "stable"),
    ];
    for (headers, want) in cases {
        for _ in 0..5 {
            let answer = s.get(headers).await;
            assert_eq!(answer.body, want, "{headers:?}");
            assert!(set_cookies(&answer).is_empty(), "sticky is off");
        }
    }
    assert_eq!(s.canary.hits(), 15);
    assert_eq!(s.counted("canary"), 15);
    assert_eq!(s.counted("stable"), 20);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_the_weights_sent_to_the_canary_stays_there_with_its_cookie() {
    let sticky = json!({"sticky": {"maxAge": "10m"}});
    let s = Setup::start(Behaviour::ok(), (50, 50), &record(sticky, 0, 50)).await;
    let handed_out = "aviary-canary=canary; Path=/; Max-Age=600; HttpOnly; SameSite=Lax";
    let (mut to_canary, mut to_stable) = (0, 0);
    for _ in 0..20 {
        let answer = s.get(&[]).await;
        match answer.body.as_str() {
            "canary" => {
                assert_eq!(set_cookies(&answer), [handed_out]);
                to_canary += 1;
            }
            "stable" => {
                assert_eq!(set_cookies(&answer), Vec::<&str>::new());
                to_stable += 1;
            }
            other => panic!("answered by {other}"),
        }
    }
    assert!(to_canary > 0 && to_stable > 0, "{to_canary} / {to_stable}");

    // The cookie as a browser sends it back: every request reaches the canary, and no new
    // cookie is handed out.
    for _ in 0..20 {
        let answer = s
            .get(&[("cookie", "theme=dark; aviary-canary=canary")])
            .await;
        assert_eq!(answer.body, "canary");
        assert!(set_cookies(&answer).is_empty());
    }
    // A cookie naming another node is no cookie: the weights choose again.
    let mut bodies = Vec::new();
    for _ in 0..10 {
        bodies.push(s.get(&[("cookie", "aviary-canary=stable")]).await.body);
    }
    assert!(bodies.iter().any(|b| b == "stable"), "{bodies:?}");
    assert!(bodies.iter().any(|b| b == "canary"), "{bodies:?}");
    // A canary answering 5xx ties nobody to it (500: App Mesh's default retry policy would
    // retry a 503 on stable).
    s.canary
        .behaviour
        .status
        .store(500, std::sync::atomic::Ordering::Relaxed);
    let mut failed = 0;
    for _ in 0..20 {
        let answer = Caller::new()
            .get(s.proxy.egress(), "svc.local", "/", &[])
            .await;
        if answer.status == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
            assert!(set_cookies(&answer).is_empty(), "a cookie with a 500");
        }
    }
    assert!(failed > 0, "the weights sent nobody to the canary");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_copies_requests_to_the_canary_while_stable_answers_them() {
    // The canary takes 2 s to answer: the caller must not wait for it.
    let slow = Behaviour {
        delay: Duration::from_secs(2),
        ..Behaviour::ok()
    };
    let mirror = json!({"mirror": {"percent": 100}});
    let s = Setup::start(slow, (100, 0), &record(mirror, 0, 0)).await;
    let caller = Caller::new();
    let mut sent = Vec::new();
    for i in 0..20 {
        let body = format!("order {i}");
        let started = Instant::now();
        let answer = caller
            .send(
                "POST",
                s.proxy.egress(),
                "svc.local",
                "/orders?page=1",
                &[("content-type", "text/plain"), ("x-request", "yes")],
                Bytes::from(body.clone()),
            )
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "stable")
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the caller waited {:?}",
            started.elapsed()
        );
        sent.push(body);
    }
    eventually("20 copies reach the canary", async || s.canary.hits() == 20).await;
    let bodies = |upstream: &Upstream| {
        let mut bodies: Vec<String> = (upstream.bodies.lock().unwrap().iter())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        bodies.sort();
        bodies
    };
    sent.sort();
    assert_eq!(
        bodies(&s.canary),
        sent,
        "each copy carries its request's body"
    );
    assert_eq!(bodies(&s.stable), sent);
    let copied = last_headers(&s.canary);
    assert_eq!(copied.get("x-aviary-mirrored").unwrap(), "1");
    assert_eq!(copied.get("x-request").unwrap(), "yes");
    assert_eq!(copied.get("content-type").unwrap(), "text/plain");
    assert_eq!(
        s.canary.last_uri.lock().unwrap().as_deref(),
        Some("/orders?page=1")
    );
    assert!(last_headers(&s.stable).get("x-aviary-mirrored").is_none());

    // Counted as the canary's requests, by the proxy and in the stats it pushes.
    eventually("the proxy counts the copies", async || {
        s.counted("canary") == 20
    })
    .await;
    assert_eq!(s.counted("stable"), 20);
    eventually("the control plane's stats count the copies", async || {
        let stats = s.cp.api.stats(MESH, "60s").await.unwrap();
        stats
            .nodes
            .iter()
            .any(|n| n.virtual_node == "canary" && n.requests == 20 && n.status_2xx == 20)
    })
    .await;
    let proxy = &s.proxy;
    let skipped = async |reason: &str| {
        let series = format!("aviary_proxy_mirror_skipped_total{{reason=\"{reason}\"}}");
        proxy.metric(&series).await
    };
    assert_eq!(skipped("in_flight_limit").await, 0);
    assert_eq!(skipped("body_not_replayable").await, 0);

    // A body too large to keep streams to stable, and no copy is made.
    let large = Bytes::from(vec![b'x'; 100 * 1024]);
    let answer = (caller.send("POST", s.proxy.egress(), "svc.local", "/", &[], large)).await;
    assert_eq!(
        (answer.status.as_u16(), answer.body.as_str()),
        (200, "stable")
    );
    assert_eq!(skipped("body_not_replayable").await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.canary.hits(), 20);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_past_the_in_flight_bound_are_skipped_and_counted() {
    // Every copy is held 3 s: 300 requests sent faster than that overrun the bound of 256.
    let slow = Behaviour {
        delay: Duration::from_secs(3),
        ..Behaviour::ok()
    };
    let s = Setup::start(
        slow,
        (100, 0),
        &record(json!({"mirror": {"percent": 100}}), 0, 0),
    )
    .await;
    let egress = s.proxy.egress();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..50 {
        let caller = Caller::new();
        workers.push(tokio::spawn(async move {
            let mut bodies = Vec::new();
            for _ in 0..6 {
                bodies.push(caller.get(egress, "svc.local", "/", &[]).await.body);
            }
            bodies
        }));
    }
    for worker in workers {
        assert!(worker.await.unwrap().iter().all(|b| b == "stable"));
    }
    let sending = started.elapsed();
    let skipped = s
        .proxy
        .metric("aviary_proxy_mirror_skipped_total{reason=\"in_flight_limit\"}")
        .await;
    assert!(
        sending < Duration::from_secs(3),
        "300 requests took {sending:?}: too slow to fill the bound"
    );
    assert!(skipped >= 300 - 256, "only {skipped} skipped");
    eventually("every copy that was not skipped arrives", async || {
        s.canary.hits() + skipped == 300
    })
    .await;
    assert!(
        s.canary.hits() <= 256,
        "{} copies in flight",
        s.canary.hits()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_event_moves_the_canary_from_its_mirror_step_to_its_match_step() {
    let exposure = json!({
        "mirror": {"percent": 100},
        "match": [{"header": "x-canary", "exact": "always"}],
    });
    let s = Setup::start(Behaviour::ok(), (100, 0), &record(exposure.clone(), 0, 0)).await;
    // The mirror step: everyone is answered by stable, and every request is copied.
    assert_eq!(s.get(&[("x-canary", "always")]).await.body, "stable");
    assert_eq!(s.get(&[]).await.body, "stable");
    eventually("both copies arrive", async || s.canary.hits() == 2).await;

    // A rewrite that leaves the exposure as it is (a note, an evidence window) is not compiled
    // again; the next change that matters is.
    let installs = "aviary_proxy_config_updates_total{source=\"control\"}";
    let before = s.proxy.metric(installs).await;
    let mut noted = record(exposure.clone(), 0, 0);
    noted.notes.push("rewritten".into());
    put_canary(&*s.store, &noted);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revision = put_canary(&*s.store, &record(exposure, 1, 0));
    s.proxy.wait_for_revision(revision).await;
    assert_eq!(s.proxy.metric(installs).await, before + 1);

    // The match step: matching requests go to the canary, the rest to stable, nothing copied.
    for _ in 0..5 {
        assert_eq!(s.get(&[("x-canary", "always")]).await.body, "canary");
        assert_eq!(s.get(&[]).await.body, "stable");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.canary.hits(), 2 + 5);
    assert!(last_headers(&s.canary).get("x-aviary-mirrored").is_none());
    assert_eq!(s.stable.hits(), 2 + 5);
    s.stop().await;
}
