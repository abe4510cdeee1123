//! Unit tests of the restart backoff.

use std::time::Duration;

use super::*;

#[test]
fn delays_double_from_one_second_up_to_thirty() {
    let mut backoff = Backoff::default();
    let delays: Vec<u64> = (0..8).map(|_| backoff.next_delay().as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
}

#[test]
fn reset_starts_over_at_one_second() {
    let mut backoff = Backoff::default();
    for _ in 0..4 {
        backoff.next_delay();
    }
    backoff.reset();
    assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    assert_eq!(backoff.next_delay(), Duration::from_secs(2));
}
