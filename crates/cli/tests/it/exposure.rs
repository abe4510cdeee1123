//! Ways to expose a canary besides weights, with real processes through a real gateway proxy:
//! shadow traffic first (copies judged, users answered by stable), then only requests with a
//! chosen header, then weighted with a sticky cookie; driven by the canary's own synthetic load
//! (`--load`), with no other caller.

use std::time::Duration;

use serde_json::Value;
use testkit::{Headers, http_as};

use crate::canary::{Bench, aviary, start_canary};

/// GET / through the gateway with `headers`: the version that answered, and the headers.
fn ask(gateway: u16, headers: &[(&str, &str)]) -> (String, Headers) {
    let (status, answer_headers, body) = http_as(
        "GET",
        &format!("http://127.0.0.1:{gateway}/"),
        None,
        headers,
    );
    assert_eq!(status, 200, "{body}");
    let version = if body.contains("2.0") { "2.0" } else { "1.0" };
    (version.to_string(), answer_headers)
}

/// Waits (bounded) until the canary is at `step` (0-based) in `phase`; returns the record.
fn wait_step(bench: &Bench, name: &str, step: u64, phase: &str, limit: Duration) -> Value {
    let what = format!("step {step} {phase}");
    bench.wait_state(name, &what, limit, |state| {
        state["step"] == step && state["phase"] == phase
    })
}

#[test]
fn a_canary_is_shadowed_then_shown_to_testers_then_kept_sticky_on_its_own_synthetic_load() {
    let bench = Bench::start(&[]);
    let url = bench.control.url();
    let gateway = bench.gateway.to_string();
    let load = format!("http://127.0.0.1:{gateway}/");
    // Steps: mirror 100% → header x-canary=always only → 50% → a gate, 6 s each; nobody but
    // the canary's own load calls the gateway between the test's probes.
    start_canary(
        url,
        "c",
        "stable-vn",
        "canary-vn",
        &[
            "--weights",
            "50,gate",
            "--interval",
            "6s",
            "--min-requests",
            "10",
            "--mirror",
            "100",
            "--match-header",
            "x-canary=always",
            "--sticky",
            "--load",
            &load,
            "--load-rate",
            "20",
        ],
    );

    // The mirror step: every user answer is stable's, while the canary gets the copies.
    wait_step(&bench, "c", 0, "progressing", Duration::from_secs(10));
    for _ in 0..10 {
        let (version, headers) = ask(bench.gateway, &[("x-canary", "always")]);
        assert_eq!(
            version, "1.0",
            "no user request reaches the canary in the mirror step"
        );
        assert_eq!(headers.get("set-cookie"), None);
    }

    // The A/B step: only requests with the header reach the canary.
    let ab = wait_step(&bench, "c", 1, "progressing", Duration::from_secs(20));
    let passed = ab["state"]["history"][1]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        passed.starts_with("step 1 of 4 (mirror 100%) passed with ")
            && !passed.starts_with("step 1 of 4 (mirror 100%) passed with 0 "),
        "the mirrored copies are the canary's requests: {passed}"
    );
    for _ in 0..10 {
        assert_eq!(ask(bench.gateway, &[("x-canary", "always")]).0, "2.0");
        let (version, headers) = ask(bench.gateway, &[("x-canary", "never")]);
        assert_eq!(version, "1.0");
        assert_eq!(
            headers.get("set-cookie"),
            None,
            "the A/B step sets no cookie"
        );
    }

    // The weighted step, held at its gate: a caller sent to the canary by weight gets the
    // cookie, and stays on the canary with it.
    wait_step(&bench, "c", 3, "waitingForGate", Duration::from_secs(30));
    let mut cookie = None;
    for _ in 0..60 {
        let (version, headers) = ask(bench.gateway, &[]);
        match (version.as_str(), headers.get("set-cookie")) {
            ("2.0", Some(set)) => {
                cookie = Some(set.split(';').next().unwrap().to_string());
                assert!(
                    set.contains("Max-Age=3600") && set.contains("HttpOnly"),
                    "{set}"
                );
                break;
            }
            ("1.0", None) => {}
            other => panic!("a stable answer carries no cookie, a canary one does: {other:?}"),
        }
    }
    let cookie = cookie.expect("in 60 requests at 50% one reaches the canary");
    assert_eq!(cookie, "aviary-canary=canary-vn");
    for _ in 0..20 {
        assert_eq!(ask(bench.gateway, &[("Cookie", &cookie)]).0, "2.0");
    }

    aviary(url, &["canary", "resume", "c", "--mesh", "m"]);
    let done = bench.wait_phase("c", &["succeeded"], Duration::from_secs(20));
    assert_eq!(done["state"]["canaryWeight"], 100);
    // Promoted: nothing but the route decides, and the load has stopped with the canary
    // (within its 2 s lease): the gateway's request count stands still.
    let (version, headers) = ask(bench.gateway, &[]);
    assert_eq!((version.as_str(), headers.get("set-cookie")), ("2.0", None));
    std::thread::sleep(Duration::from_secs(3));
    let before = requests_seen(bench.admin);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        requests_seen(bench.admin),
        before,
        "the load goes on after the canary ended"
    );
}

/// Every request the gateway proxy counted (`aviary_proxy_requests_total`, all series).
fn requests_seen(admin: u16) -> f64 {
    let (status, _, text) =
        testkit::http("GET", &format!("http://127.0.0.1:{admin}/metrics"), None);
    assert_eq!(status, 200);
    text.lines()
        .filter(|line| line.starts_with("aviary_proxy_requests_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
