//! `aviary control`'s connection limit and deadlines, against a real child: past `--max-connections` a connection gets a quick 503, a slow request head or a long idle spell is cut off.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use testkit::{ControlProcess, KeepAlive, http, wait_closed};

use crate::bin;

/// A keep-alive connection that has been served once, so it holds a slot while idle.
fn served(addr: &str) -> KeepAlive {
    let mut conn = KeepAlive::open(addr);
    let (status, _, _) = conn.get("/healthz").expect("an answer");
    assert_eq!(status, 200);
    conn
}

/// `/metrics`' value of a metric without labels.
fn metric(url: &str, name: &str) -> f64 {
    let (status, _, text) = http("GET", &format!("{url}/metrics"), None);
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn past_the_limit_a_connection_is_refused_at_once_and_served_again_when_one_closes() {
    let control = ControlProcess::start_with(bin(), &["--max-connections", "8"]);
    let addr = control.addr().to_string();
    let mut held: Vec<KeepAlive> = (0..8).map(|_| served(&addr)).collect();

    let start = Instant::now();
    let mut ninth = KeepAlive::open(&addr);
    let (status, headers, body) = ninth.get("/healthz").expect("a 503, not a silent close");
    assert_eq!(status, 503, "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        headers.get("x-amzn-ErrorType"),
        Some("ServiceUnavailableException")
    );
    assert!(body.contains("too many connections"), "{body}");
    // The held ones are still served.
    assert_eq!(held[0].get("/healthz").map(|a| a.0), Some(200));

    held.truncate(6);
    // The server notices the two closes asynchronously; a few tries at most.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = KeepAlive::open(&addr).get("/healthz").map(|a| a.0);
        if status == Some(200) || Instant::now() > deadline {
            break status;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, Some(200), "a slot freed up, yet no answer");
    drop(held);
    thread::sleep(Duration::from_millis(200));
    assert!(metric(control.url(), "aviary_control_connections_refused_total") >= 1.0);
}

#[test]
fn a_slow_request_head_and_a_long_idle_spell_are_cut_off() {
    let control = ControlProcess::start_with(
        bin(),
        &["--header-read-timeout", "1s", "--idle-timeout", "2s"],
    );
    let addr = control.addr().to_string();

    // A slowloris: a byte every 200 ms, each in time for any per-read timeout, the head not.
    let mut slow = TcpStream::connect(&addr).unwrap();
    let writer = slow.try_clone().unwrap();
    let dripping = thread::spawn(move || drip(writer, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    let closed = wait_closed(&mut slow, Duration::from_secs(6))
        .expect("the slow head was not cut off within 6 s");
    assert!(
        closed >= Duration::from_millis(900),
        "closed too early: {closed:?}"
    );
    assert!(closed < Duration::from_secs(3), "closed late: {closed:?}");
    assert!(!dripping.join().unwrap(), "the whole head was accepted");

    // A connection that sends its head in time is served, and then waits out its idle time.
    let mut idle = served(&addr);
    let idle_for = idle
        .wait_closed(Duration::from_secs(6))
        .expect("idle forever");
    assert!(idle_for >= Duration::from_millis(1800), "{idle_for:?}");
    assert!(idle_for < Duration::from_secs(4), "{idle_for:?}");

    // Idle time between requests restarts after each answer: three requests 1.5 s apart on one
    // connection outlast the 2 s idle limit together, never alone.
    let mut steady = served(&addr);
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(1500));
        assert_eq!(steady.get("/healthz").map(|a| a.0), Some(200));
    }
}

/// Writes `bytes` one at a time, 200 ms apart; `true` if every write went through.
fn drip(mut stream: TcpStream, bytes: &[u8]) -> bool {
    for byte in bytes {
        thread::sleep(Duration::from_millis(200));
        if stream.write_all(&[*byte]).is_err() {
            return false;
        }
    }
    true
}
