//! The arithmetic behind `analysis.compare`: the odds that the canary fails more often than stable, confidence bounds for a rate, and the log-gamma function they need.
//!
//! Both tests are anytime-valid: they may be looked at after every request and stopped at any
//! moment without spending more than their error budget, because each is built on a
//! nonnegative (super)martingale and Ville's inequality bounds the chance that one ever grows
//! past `1/α`.

use std::f64::consts::PI;

/// Alternatives of the mixture in [`log_odds_worse_over`]: canary-to-stable ratios of the event
/// probability `r = 1000^(j/30)`, `j = 1..=30` (1.26, 1.58, 2, 2.5, … 1000), equally weighted.
/// Log-spaced, so a canary twice as bad and one a hundred times as bad each have a point close
/// to them; reaching up to 1000 lets three failed canary requests against none on stable at a
/// 10% weight reach odds of 1:485. Fewer points or a lower top barely changed the time to fail
/// 5% against 1% (see `bench/README.md`).
const RATIOS: usize = 30;
const LARGEST_RATIO: f64 = 1000.0;

/// The prior of the confidence sequences of a rate: Beta(PRIOR_A, PRIOR_B), mean 1%. The bounds
/// are tightest for rates the prior expects, and canaries' error rates are mostly well below
/// 10%. Computed for 1% against 1% at 20 canary requests per second and a 10% weight, the time
/// until non-inferiority by 0.5 points is shown: 660 s with Beta(1, 100), 675 s with
/// Beta(1, 50), 970 s with the uniform Beta(1, 1); at 0.1%, 125 s, 150 s and 215 s. High rates
/// pay a little for it: the prior's weight there is small.
const PRIOR_A: f64 = 1.0;
const PRIOR_B: f64 = 100.0;

/// One stretch of time at one traffic split: how many requests each arm had, and how many of
/// them were events (errors, or slow requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Split {
    pub canary_events: u64,
    pub canary_trials: u64,
    pub stable_events: u64,
    pub stable_trials: u64,
}

/// The mixture itself, whatever its value.
#[cfg(test)]
pub(crate) fn log_odds_worse(splits: &[Split]) -> f64 {
    log_odds_worse_over(splits, f64::NEG_INFINITY)
}

/// The natural log of the mixture likelihood ratio M that the canary's per-request event
/// probability is `r > 1` times stable's, against `r = 1`, on every split so far.
///
/// Conditional on an event happening in a split with `n_c` canary and `n_s` stable requests,
/// it is the canary's with probability `ρ(r) = r·n_c / (r·n_c + n_s)`, whatever stable's own
/// rate (the nuisance cancels). So the canary's share of the events is binomial, and
/// `Π_k [ρ_k(r)/ρ_k(1)]^x_ck [(1-ρ_k(r))/(1-ρ_k(1))]^x_sk` is, for any fixed `r`, a martingale
/// when the canary is exactly as good as stable and a supermartingale when it is better; so is
/// their average over the grid of `r`. Splits without requests on either arm say nothing and
/// are skipped. `M ≥ 1/α` happens, ever, with probability at most `α` for a canary no worse
/// than stable.
///
/// When it is below `limit`, the result may be any number below `limit`: each split's
/// likelihood ratio is at most its value at the best `r` for that split alone,
/// `exp(m · KL(x_c/m ‖ ρ(1)))` for `m` events when the canary has more than its share of
/// them (else 1), so when the sum of those bounds is below `limit` the mixture is too, and
/// the 30 grid points are not summed. Under a healthy canary that is nearly every tick, and
/// it made the benchmark 2.6 times faster.
pub(crate) fn log_odds_worse_over(splits: &[Split], limit: f64) -> f64 {
    let bound: f64 = splits.iter().map(best_single).sum();
    if bound < limit {
        return bound;
    }
    let mut terms = [0.0f64; RATIOS];
    for (j, term) in terms.iter_mut().enumerate() {
        let ln_r = (j + 1) as f64 / RATIOS as f64 * LARGEST_RATIO.ln();
        let r = ln_r.exp();
        let mut sum = 0.0;
        for split in splits {
            // No requests on an arm, or no events at all: a likelihood ratio of 1.
            let quiet = split.canary_events == 0 && split.stable_events == 0;
            if split.canary_trials == 0 || split.stable_trials == 0 || quiet {
                continue;
            }
            let canary = split.canary_events.min(split.canary_trials) as f64;
            let stable = split.stable_events.min(split.stable_trials) as f64;
            let q = split.canary_trials as f64 / split.stable_trials as f64;
            // ρ(r)/ρ(1) = r (1+q) / (1+rq) and (1-ρ(r))/(1-ρ(1)) = (1+q) / (1+rq).
            sum += canary * ln_r + (canary + stable) * (q.ln_1p() - (r * q).ln_1p());
        }
        *term = sum;
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    max + (total / RATIOS as f64).ln()
}

/// `ln` of one split's largest likelihood ratio over every `r ≥ 1`.
fn best_single(split: &Split) -> f64 {
    if split.canary_trials == 0 || split.stable_trials == 0 {
        return 0.0;
    }
    let canary = split.canary_events.min(split.canary_trials) as f64;
    let events = canary + split.stable_events.min(split.stable_trials) as f64;
    let share =
        split.canary_trials as f64 / (split.canary_trials as f64 + split.stable_trials as f64);
    if events == 0.0 || canary / events <= share {
        return 0.0;
    }
    let seen = canary / events;
    let hits = seen * (seen / share).ln();
    let misses = if seen < 1.0 {
        (1.0 - seen) * ((1.0 - seen) / (1.0 - share)).ln()
    } else {
        0.0
    };
    events * (hits + misses)
}

/// An anytime-valid confidence interval for the per-request probability of an event, from
/// `events` of `trials`: it holds the true rate at every moment at once, except with
/// probability `(1 - confidence) / 2` (half, so two arms' bounds hold together at
/// `confidence`). Robbins' beta-binomial mixture: the rates `p` whose Bayes factor
/// `B(a+x, b+n-x) / B(a, b) / (p^x (1-p)^(n-x))` is below `2 / (1 - confidence)`. No trials:
/// `(0, 1)`.
pub(crate) fn rate_bounds(events: u64, trials: u64, confidence: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let x = events.min(trials) as f64;
    let n = trials as f64;
    let target = ln_beta(PRIOR_A + x, PRIOR_B + n - x)
        - ln_beta(PRIOR_A, PRIOR_B)
        - (2.0 / (1.0 - confidence)).ln();
    // The log-likelihood is concave with its top at x/n (where it is at least the target, the
    // Bayes factor being at most 1 there), so each bound is where it crosses the target.
    let top = x / n;
    // Steps of about one standard deviation, doubling, but never past the ends.
    let sd = (top * (1.0 - top) / n).sqrt() + 1.0 / n;
    let lower = if x == 0.0 {
        0.0
    } else {
        crossing(x, n, target, |k| {
            (top - sd * 2f64.powi(k - 1)).max(top * 0.5f64.powi(k))
        })
    };
    let upper = if x == n {
        1.0
    } else {
        crossing(x, n, target, |k| {
            (top + sd * 2f64.powi(k - 1)).min(1.0 - (1.0 - top) * 0.5f64.powi(k))
        })
    };
    (lower, upper)
}

/// Where `x ln p + (n-x) ln(1-p)` falls to `target` on one side of its top: `away(k)` walks
/// away from the top, to a first point below the target; Newton's method then walks back.
/// On a concave function each Newton step from below the target lands short of the
/// crossing, so the result errs wide (by less than one part in 10^10), never narrow.
fn crossing(x: f64, n: f64, target: f64, away: impl Fn(i32) -> f64) -> f64 {
    let f = |p: f64| {
        let hits = if x > 0.0 { x * p.ln() } else { 0.0 };
        let misses = if n > x { (n - x) * (-p).ln_1p() } else { 0.0 };
        hits + misses
    };
    let slope = |p: f64| x / p - (n - x) / (1.0 - p);
    let mut p = away(1);
    for k in 2..64 {
        if f(p) < target {
            break;
        }
        p = away(k);
    }
    for _ in 0..100 {
        let step = (target - f(p)) / slope(p);
        if !step.is_finite() || step.abs() <= 1e-10 * p.min(1.0 - p) {
            break;
        }
        let next = p + step;
        if !(0.0..=1.0).contains(&next) || f(next) > target {
            // Rounding at the crossing itself: stay on the outside.
            break;
        }
        p = next;
    }
    p
}

/// `ln B(a, b) = ln Γ(a) + ln Γ(b) - ln Γ(a + b)`, for `a, b > 0`.
pub(crate) fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// `ln Γ(x)` for `x > 0`: Lanczos' approximation (g = 7, nine terms), good to about 15
/// digits; below 0.5 through the reflection formula.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests;
