//! The retry decision: which outcomes are tried again, under which method and body, how many
//! times, and how long each attempt may take.

use std::net::SocketAddr;

use super::*;

fn policy(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        per_try: Some(Duration::from_secs(2)),
        server_error: true,
        gateway_error: false,
        client_error: false,
        stream_error: false,
        connection_error: true,
    }
}

fn stream_error() -> ProxyError {
    ProxyError::Stream {
        node: "n".into(),
        addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        detail: "reset".into(),
    }
}

fn connect_error() -> ProxyError {
    ProxyError::Connect {
        node: "n".into(),
        addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        detail: "refused".into(),
    }
}

/// (method, body kept, outcome) → retried?
#[tokio::test(start_paused = true)]
async fn which_outcomes_are_retried() {
    let policy = policy(1);
    let (stream, connect) = (stream_error(), connect_error());
    let check = |method: Method, replayable: bool, outcome: Outcome, expected: bool| {
        let mut retries = Retries::new(&policy, &method, replayable, None, Instant::now());
        assert_eq!(
            retries.after(&outcome, 0, None),
            expected,
            "{method} {replayable}"
        );
    };
    check(Method::GET, true, Outcome::Answered(500), true);
    check(Method::GET, true, Outcome::Answered(404), false);
    check(Method::POST, true, Outcome::Answered(500), false);
    check(Method::GET, false, Outcome::Answered(500), false);
    check(Method::GET, true, Outcome::Failed(&stream), true);
    // A POST that may have reached the upstream is not sent twice; one that provably did
    // not (no connection) is.
    check(Method::POST, true, Outcome::Failed(&stream), false);
    check(Method::POST, true, Outcome::Failed(&connect), true);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_maximum_and_avoid_what_failed() {
    let policy = policy(2);
    let mut retries = Retries::new(&policy, &Method::GET, true, None, Instant::now());
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    assert!(retries.after(&Outcome::Answered(500), 1, Some(addr)));
    assert_eq!(retries.avoid(), Some(addr));
    assert!(retries.after(&Outcome::Answered(500), 0, None));
    assert!(!retries.after(&Outcome::Answered(500), 0, None));
    let choice = WeightedChoice::new([1, 1, 1]);
    for _ in 0..50 {
        assert_eq!(retries.pick(&choice), Some(2), "targets 0 and 1 failed");
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_gets_what_is_left_of_the_per_request_timeout() {
    let policy = policy(2);
    let per_request = Some(Duration::from_secs(3));
    let retries = Retries::new(&policy, &Method::GET, true, per_request, Instant::now());
    assert_eq!(
        retries.attempt_timeout(),
        Some((Duration::from_secs(2), Duration::from_secs(2)))
    );
    tokio::time::advance(Duration::from_millis(2500)).await;
    assert_eq!(
        retries.attempt_timeout(),
        Some((Duration::from_millis(500), Duration::from_secs(3)))
    );
    let mut retries = retries;
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        !retries.after(&Outcome::Answered(500), 0, None),
        "no retry past the deadline"
    );
    let none = policy_without_retries();
    let retries = Retries::new(&none, &Method::GET, true, None, Instant::now());
    assert_eq!(retries.attempt_timeout(), None);
}

fn policy_without_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 0,
        ..policy(0)
    }
}
