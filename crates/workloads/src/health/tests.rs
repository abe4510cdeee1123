//! Unit tests of health policies and threshold counting.

use std::time::Duration;

use model::typed::HealthCheck;

use super::*;

fn check(protocol: &str, path: Option<&str>, port: Option<u16>) -> HealthCheck {
    HealthCheck {
        protocol: protocol.into(),
        path: path.map(str::to_string),
        port,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        interval_millis: 5000,
        timeout_millis: 2000,
    }
}

fn node(check: Option<HealthCheck>) -> NodeHealth {
    NodeHealth {
        check,
        listener_port: Some(8080),
    }
}

#[test]
fn the_spec_is_honoured_as_written() {
    let policy = Policy::new(
        Some(&node(Some(check("http", Some("/health"), None)))),
        None,
    );
    assert_eq!(
        policy,
        Policy {
            probe: Probe::Http {
                path: "/health".into()
            },
            port: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    );
}

#[test]
fn no_health_check_means_a_tcp_connect_every_second_threshold_one() {
    for node in [None, Some(node(None))] {
        let policy = Policy::new(node.as_ref(), None);
        assert_eq!(policy.probe, Probe::Tcp);
        assert_eq!(policy.interval, Duration::from_secs(1));
        assert_eq!(
            (policy.healthy_threshold, policy.unhealthy_threshold),
            (1, 1)
        );
    }
}

#[test]
fn the_interval_override_replaces_the_interval_and_caps_the_timeout() {
    let node = node(Some(check("tcp", None, None)));
    let policy = Policy::new(Some(&node), Some(Duration::from_millis(200)));
    assert_eq!(policy.interval, Duration::from_millis(200));
    assert_eq!(policy.timeout, Duration::from_millis(200));
    assert_eq!(policy.healthy_threshold, 2, "thresholds stay as written");
}

#[test]
fn a_health_check_port_other_than_the_listener_port_is_probed_instead_of_port() {
    let same = Policy::new(Some(&node(Some(check("http", None, Some(8080))))), None);
    assert_eq!(
        same.port, None,
        "the listener port stands for the replica's PORT"
    );
    assert_eq!(
        same.probe,
        Probe::Http { path: "/".into() },
        "the path defaults to /"
    );
    let other = Policy::new(Some(&node(Some(check("http", None, Some(9901))))), None);
    assert_eq!(other.port, Some(9901));
}

#[test]
fn grpc_checks_are_tcp_connects_and_http2_checks_are_http() {
    assert_eq!(
        Policy::new(Some(&node(Some(check("grpc", None, None)))), None).probe,
        Probe::Tcp
    );
    assert_eq!(
        Policy::new(Some(&node(Some(check("http2", Some("/h"), None)))), None).probe,
        Probe::Http { path: "/h".into() }
    );
}

fn policy(healthy: u32, unhealthy: u32) -> Policy {
    Policy {
        probe: Probe::Tcp,
        port: None,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        healthy_threshold: healthy,
        unhealthy_threshold: unhealthy,
    }
}

/// Feeds probe results (`+` pass, `-` fail) and spells the health after each.
fn check_trace(policy: &Policy, probes: &str, expected: &str) {
    let mut tracker = Tracker::default();
    let trace: Vec<&str> = probes
        .chars()
        .map(|probe| {
            tracker.record(probe == '+', policy);
            match tracker.health() {
                Health::Starting => "S",
                Health::Healthy => "H",
                Health::Unhealthy => "U",
            }
        })
        .collect();
    assert_eq!(trace.join(""), expected, "probes {probes}");
}

#[test]
fn thresholds_count_consecutive_results() {
    let p = policy(2, 3);
    check_trace(&p, "++", "SH");
    check_trace(&p, "+-+", "SSS");
    check_trace(&p, "++--+-", "SHHHHH");
    check_trace(&p, "++---", "SHHHU");
    check_trace(&p, "++---+-++", "SHHHUUUUH");
    check_trace(&p, "---", "SSU");
    check_trace(&policy(1, 1), "+-+", "HUH");
}

#[test]
fn record_reports_only_changes() {
    let p = policy(1, 1);
    let mut tracker = Tracker::default();
    assert_eq!(tracker.record(true, &p), Some(Health::Healthy));
    assert_eq!(tracker.record(true, &p), None);
    assert_eq!(tracker.record(false, &p), Some(Health::Unhealthy));
}

#[tokio::test]
async fn probes_pass_on_2xx_and_fail_on_404_or_a_closed_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = [0u8; 1024];
            let n = socket.read(&mut buffer).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..n]);
            let status = if request.starts_with("GET /ok ") {
                "200 OK"
            } else {
                "404 Not Found"
            };
            let answer =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    client::install_crypto_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut p = policy(1, 1);
    p.probe = Probe::Http { path: "/ok".into() };
    assert_eq!(p.check(&http, port).await, Ok(()));
    p.probe = Probe::Http {
        path: "/missing".into(),
    };
    let error = p.check(&http, port).await.unwrap_err();
    assert!(error.contains("404"), "{error}");
    p.probe = Probe::Tcp;
    assert_eq!(p.check(&http, port).await, Ok(()));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(p.check(&http, closed).await.is_err());
}
