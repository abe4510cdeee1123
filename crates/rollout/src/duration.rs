//! Durations as people write them in specs — `"30s"`, `"500ms"`, `"2m"`, `"1h30m"` — parsed, formatted and (de)serialized.
//!
//! The grammar is one or more `<digits><unit>` parts, units `h`, `m`, `s`, `ms`, each at most
//! once and largest first; a bare `0` is zero. Millisecond resolution: there are no fractions and
//! no `us`/`ns`. [`format()`] writes the same grammar, so `parse(&format(d)) == Ok(d)` for every
//! whole-millisecond `d` below `u64::MAX` milliseconds. Use it on a field with
//! `#[serde(with = "rollout::duration")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

use crate::Millis;

/// Why a text is not a duration. Displays with the text itself, so a caller can show it as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {text:?}: {problem}; write it like \"30s\", \"500ms\", \"2m\" or \"1h30m\""
)]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses `"30s"`, `"500ms"`, `"2m"`, `"1h30m"`, `"0"`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |problem: String| DurationError {
        text: text.to_string(),
        problem,
    };
    if text.is_empty() {
        return Err(fail("it is empty".into()));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed: units go largest first, each once.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(fail(format!("expected a whole number at {rest:?}")));
        }
        let (number, after) = rest.split_at(digits);
        let letters = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(letters);
        if unit.is_empty() {
            return Err(match after.chars().next() {
                Some('.') | Some(',') => fail("fractions are not supported".into()),
                Some(other) => fail(format!("unexpected {other:?} after {number}")),
                None => fail(format!("{number} has no unit (ms, s, m or h)")),
            });
        }
        let Some(position) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(fail(format!("unknown unit {unit:?} (use ms, s, m or h)")));
        };
        if position < next_unit {
            return Err(fail(
                "units must go from largest to smallest, each at most once".into(),
            ));
        }
        next_unit = position + 1;
        let value = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[position].1))
            .and_then(|ms| total.checked_add(ms));
        total = value.ok_or_else(|| fail("it is too large".into()))?;
        rest = after;
    }
    Ok(Duration::from_millis(total))
}

/// Writes `d` in the grammar [`parse`] reads, largest units first: `"1m30s"`, `"500ms"`, `"0s"`.
/// Anything below a millisecond is dropped.
pub fn format(d: Duration) -> String {
    let mut left = to_millis(d);
    if left == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (name, size) in UNITS {
        let count = left / size;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            left -= count * size;
        }
    }
    out
}

/// Whole milliseconds, saturating at `u64::MAX` so arithmetic on [`Millis`] stays total.
pub fn to_millis(d: Duration) -> Millis {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Formats milliseconds like [`format()`]; for durations measured between two [`Millis`].
pub fn format_millis(ms: Millis) -> String {
    format(Duration::from_millis(ms))
}

/// For `#[serde(with = "rollout::duration")]`.
pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*d))
}

/// For `#[serde(with = "rollout::duration")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests;
