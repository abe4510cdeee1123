//! Unit tests of fault injection: exact failure patterns and duration parsing.

use std::time::Duration;

use super::{ErrorRate, Faults, parse_duration};

/// How many of the first `n` requests fail.
fn failures(faults: Faults, n: u64) -> usize {
    (1..=n).filter(|&i| faults.failure(i).is_some()).count()
}

fn rate(text: &str) -> Faults {
    Faults {
        error_rate: text.parse().unwrap(),
        ..Faults::default()
    }
}

#[test]
fn error_rate_fails_exactly_its_share() {
    let check = |text: &str, n: u64, expected: usize| {
        assert_eq!(failures(rate(text), n), expected, "rate {text} over {n}");
    };
    check("0", 1000, 0);
    check("1", 1000, 1000);
    check("0.25", 100, 25);
    check("0.1", 1000, 100);
    check("0.333", 1000, 333);
    check("0.5", 7, 3);
    check("0.000001", 999_999, 0);
    check("0.000001", 1_000_000, 1);
}

#[test]
fn error_rate_spreads_failures_evenly() {
    let faults = rate("0.25");
    let failed: Vec<u64> = (1..=12).filter(|&i| faults.failure(i).is_some()).collect();
    assert_eq!(failed, [4, 8, 12]);
}

#[test]
fn error_rate_outside_zero_to_one_is_refused() {
    for bad in ["1.5", "-0.1", "NaN", "inf", "a lot", ""] {
        let err = bad.parse::<ErrorRate>().unwrap_err();
        assert!(err.contains("fraction"), "{bad}: {err}");
    }
}

#[test]
fn fail_after_fails_every_request_after_the_limit() {
    let faults = Faults {
        fail_after: Some(3),
        ..Faults::default()
    };
    let failed: Vec<bool> = (1..=6).map(|i| faults.failure(i).is_some()).collect();
    assert_eq!(failed, [false, false, false, true, true, true]);
    assert!(faults.failure(4).unwrap().contains("after 3 requests"));
}

#[test]
fn durations_need_a_unit() {
    let check = |text: &str, expected: Option<Duration>| {
        assert_eq!(parse_duration(text).ok(), expected, "{text:?}");
    };
    check("0", Some(Duration::ZERO));
    check("50ms", Some(Duration::from_millis(50)));
    check("2s", Some(Duration::from_secs(2)));
    check("1.5s", Some(Duration::from_millis(1500)));
    check("0.5ms", Some(Duration::from_micros(500)));
    check(" 10ms ", Some(Duration::from_millis(10)));
    check("50", None);
    check("soon", None);
    check("ms", None);
    check("-5ms", None);
    check("5m", None);
    check("infs", None);
}
