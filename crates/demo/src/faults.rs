//! Fault injection for canary tests: which requests fail, and how late every answer comes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[cfg(test)]
mod tests;

const PER_MILLION: u128 = 1_000_000;

/// The fraction of requests answered 500, kept in parts per million so the failure pattern is
/// exact integer arithmetic: of the first `n` requests, exactly `floor(n * rate)` fail, spread
/// evenly (rate 0.25 fails every 4th). Deterministic on purpose: a canary test that expects 25%
/// errors over 100 requests must not depend on luck.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorRate {
    ppm: u32,
}

impl ErrorRate {
    pub fn new(rate: f64) -> Result<ErrorRate, String> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{rate} is not a fraction between 0 and 1"));
        }
        Ok(ErrorRate {
            ppm: (rate * PER_MILLION as f64).round() as u32,
        })
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.ppm) / PER_MILLION as f64
    }

    /// Whether request number `n` (counting from 1) fails.
    pub fn fails(self, n: u64) -> bool {
        let failed_by = |n: u64| u128::from(n) * u128::from(self.ppm) / PER_MILLION;
        n > 0 && failed_by(n) > failed_by(n - 1)
    }
}

impl FromStr for ErrorRate {
    type Err = String;

    fn from_str(s: &str) -> Result<ErrorRate, String> {
        let rate: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number: expected a fraction like 0.25"))?;
        ErrorRate::new(rate)
    }
}

impl fmt::Display for ErrorRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

/// The faults one service instance injects into `GET /`; `/health` never sees them, so a broken
/// version still looks healthy and only traffic analysis can catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub error_rate: ErrorRate,
    /// Added before every answer, failed ones included.
    pub latency: Duration,
    /// After this many requests, every request fails.
    pub fail_after: Option<u64>,
}

impl Faults {
    /// Why request number `n` (counting from 1) must fail, if it must.
    pub fn failure(&self, n: u64) -> Option<String> {
        if let Some(limit) = self.fail_after
            && n > limit
        {
            return Some(format!("injected failure: failing after {limit} requests"));
        }
        if self.error_rate.fails(n) {
            return Some(format!("injected failure: error rate {}", self.error_rate));
        }
        None
    }
}

/// Parses `50ms`, `2s`, `1.5s` or `0`. A bare number other than 0 is refused: `--latency 50`
/// could mean either unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, millis) = if let Some(number) = text.strip_suffix("ms") {
        (number, true)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, false)
    } else {
        return Err(format!(
            "'{s}' is not a duration: expected a number with a unit, like 50ms or 2s"
        ));
    };
    let value: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| {
            format!("'{s}' is not a duration: expected a number with a unit, like 50ms or 2s")
        })?;
    let seconds = if millis { value / 1000.0 } else { value };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("'{s}' is not a duration: {e}"))
}
