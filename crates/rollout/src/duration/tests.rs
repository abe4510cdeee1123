//! Unit tests of duration parsing and formatting.

use std::time::Duration;

use super::{format, parse};

fn check(text: &str, expected: Result<u64, &str>) {
    let got = parse(text)
        .map(|d| d.as_millis() as u64)
        .map_err(|e| e.to_string());
    match (&got, expected) {
        (Ok(ms), Ok(want)) => assert_eq!(*ms, want, "{text:?}"),
        (Err(message), Err(want)) => {
            assert!(
                message.contains(want),
                "{text:?}: {message:?} lacks {want:?}"
            );
            assert!(
                message.contains(&format!("{text:?}")),
                "{message:?} does not name the text {text:?}"
            );
        }
        _ => panic!("{text:?}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn parses_what_people_write() {
    check("30s", Ok(30_000));
    check("500ms", Ok(500));
    check("2m", Ok(120_000));
    check("1h", Ok(3_600_000));
    check("1h30m", Ok(5_400_000));
    check("1m30s250ms", Ok(90_250));
    check("0", Ok(0));
    check("0s", Ok(0));
    check("007s", Ok(7_000));
}

#[test]
fn rejects_nonsense_naming_the_text() {
    check("", Err("it is empty"));
    check("30", Err("30 has no unit"));
    check("30x", Err("unknown unit \"x\""));
    check("30 s", Err("unexpected ' ' after 30"));
    check("1.5s", Err("fractions are not supported"));
    check("-5s", Err("expected a whole number at \"-5s\""));
    check("s", Err("expected a whole number at \"s\""));
    check("30s1m", Err("largest to smallest"));
    check("1s1s", Err("largest to smallest"));
    check("10us", Err("unknown unit \"us\""));
    check("99999999999999999999h", Err("too large"));
    check("5124095576030432h", Err("too large"));
}

#[test]
fn formats_largest_units_first_and_parses_back() {
    for (ms, text) in [
        (0, "0s"),
        (500, "500ms"),
        (30_000, "30s"),
        (60_000, "1m"),
        (90_250, "1m30s250ms"),
        (3_600_000, "1h"),
        (86_400_000, "24h"),
    ] {
        let d = Duration::from_millis(ms);
        assert_eq!(format(d), text);
        assert_eq!(parse(text), Ok(d));
    }
    let max = Duration::from_millis(u64::MAX);
    assert_eq!(parse(&format(max)), Ok(max));
}

#[test]
fn drops_what_is_below_a_millisecond() {
    assert_eq!(format(Duration::from_micros(1_500)), "1ms");
    assert_eq!(format(Duration::from_nanos(999)), "0s");
}
