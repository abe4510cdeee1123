//! Weighted choice among route targets: cumulative weights and one draw per pick.
//!
//! The draws of [`WeightedChoice::pick`] are a golden-ratio (Kronecker) low-discrepancy
//! sequence from a random start, not independent random numbers: over N picks each target's
//! share is within about `log N / N` of its weight, where independent draws stray by
//! `1/sqrt(N)` (a 75/25 split over 10,000 requests would miss by more than one percentage
//! point 2% of the time). Retries, which must avoid a target, draw at random.

use std::sync::atomic::{AtomicU64, Ordering};

/// The fractional part of the golden ratio: consecutive multiples of it fill [0, 1) evenly.
const GOLDEN: f64 = 0.618_033_988_749_894_9;

/// Relative weights, precomputed as running sums so a pick is one draw and a binary search.
/// A target of weight 0 is never picked: its running sum equals its predecessor's.
#[derive(Debug)]
pub struct WeightedChoice {
    cumulative: Vec<u64>,
    /// Where this choice's sequence starts, so proxies and routes do not move in lockstep.
    start: f64,
    picks: AtomicU64,
}

impl WeightedChoice {
    pub fn new(weights: impl IntoIterator<Item = u32>) -> WeightedChoice {
        let mut sum = 0u64;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                sum += u64::from(w);
                sum
            })
            .collect();
        WeightedChoice {
            cumulative,
            start: fastrand::f64(),
            picks: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// The sum of all weights.
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    pub fn weight(&self, index: usize) -> u64 {
        let before = if index == 0 {
            0
        } else {
            self.cumulative[index - 1]
        };
        self.cumulative[index] - before
    }

    /// The target that `draw` (in `0..total()`) lands on; `None` when every weight is 0.
    pub fn pick_with(&self, draw: u64) -> Option<usize> {
        if draw >= self.total() {
            return None;
        }
        Some(self.cumulative.partition_point(|&sum| sum <= draw))
    }

    /// The next target: over many picks each gets its weight's share, evenly spread.
    pub fn pick(&self) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let n = self.picks.fetch_add(1, Ordering::Relaxed);
        // n fits f64 exactly far beyond any process lifetime of picks.
        let point = (self.start + n as f64 * GOLDEN).fract();
        let draw = ((point * total as f64) as u64).min(total - 1);
        self.pick_with(draw)
    }

    /// A random target, each with probability weight / total.
    pub fn pick_random(&self) -> Option<usize> {
        match self.total() {
            0 => None,
            total => self.pick_with(fastrand::u64(0..total)),
        }
    }

    /// A random target among those `excluded` rejects, by their weights; when they all have
    /// weight 0 this falls back to [`pick_random`](Self::pick_random), because a retry somewhere beats none.
    pub fn pick_avoiding(&self, excluded: impl Fn(usize) -> bool) -> Option<usize> {
        let allowed: u64 = (0..self.len())
            .filter(|&i| !excluded(i))
            .map(|i| self.weight(i))
            .sum();
        if allowed == 0 {
            return self.pick_random();
        }
        let mut draw = fastrand::u64(0..allowed);
        for i in (0..self.len()).filter(|&i| !excluded(i)) {
            let weight = self.weight(i);
            if draw < weight {
                return Some(i);
            }
            draw -= weight;
        }
        unreachable!("the draw is below the sum of the allowed weights")
    }
}

#[cfg(test)]
mod tests;
