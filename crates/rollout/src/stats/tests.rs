//! Unit tests of the arithmetic: log-gamma against known values, the mixture against sums worked out by hand, and the bounds against brute force.

use super::{Split, ln_beta, ln_gamma, log_odds_worse, log_odds_worse_over, rate_bounds};

fn split(canary: (u64, u64), stable: (u64, u64)) -> Split {
    Split {
        canary_events: canary.0,
        canary_trials: canary.1,
        stable_events: stable.0,
        stable_trials: stable.1,
    }
}

#[track_caller]
fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance * expected.abs().max(1.0),
        "{actual} is not {expected}"
    );
}

#[test]
fn log_gamma_matches_known_values() {
    close(ln_gamma(1.0), 0.0, 1e-14);
    close(ln_gamma(2.0), 0.0, 1e-14);
    // ln √π, ln 9!, and Python's math.lgamma for the rest.
    close(ln_gamma(0.5), 0.572_364_942_924_700_4, 1e-14);
    close(ln_gamma(10.0), 362_880f64.ln(), 1e-14);
    close(ln_gamma(100.5), 361.435_540_467_777_6, 1e-14);
    close(ln_gamma(1e7), 151_180_949.369_473_9, 1e-13);
    close(ln_gamma(0.1), 2.252_712_651_734_205_5, 1e-13);
    // B(1, b) = 1/b and B(2, 3) = 1/12.
    close(ln_beta(1.0, 50.0), -(50f64.ln()), 1e-13);
    close(ln_beta(2.0, 3.0), -(12f64.ln()), 1e-13);
}

/// The mixture from its definition: ρ(r) = r·n_c / (r·n_c + n_s) per split, the likelihood
/// ratio of each grid point as a plain product, then their mean.
fn by_definition(splits: &[Split]) -> f64 {
    let mean: f64 = (1..=30)
        .map(|j| {
            let r = 1000f64.powf(j as f64 / 30.0);
            splits
                .iter()
                .map(|s| {
                    let (nc, ns) = (s.canary_trials as f64, s.stable_trials as f64);
                    let rho1 = nc / (nc + ns);
                    let rho = r * nc / (r * nc + ns);
                    (rho / rho1).powi(s.canary_events as i32)
                        * ((1.0 - rho) / (1.0 - rho1)).powi(s.stable_events as i32)
                })
                .product::<f64>()
        })
        .sum::<f64>()
        / 30.0;
    mean.ln()
}

#[test]
fn the_mixture_is_the_mean_likelihood_ratio_over_the_grid() {
    let cases = [
        // Three errors, all the canary's, at 10%: past 1:100 (ln 100 = 4.61).
        (vec![split((3, 3), (0, 27))], 6.183_770_395_565_602_5),
        // Two are not enough.
        (vec![split((2, 2), (0, 18))], 4.016_689_917_282_865),
        // 5% against 1% at 10%: odds of 1:2616.
        (vec![split((15, 300), (27, 2700))], 7.869_562_976_287_002_5),
        // Two splits: the canary's share of errors is less than its share of requests in one.
        (
            vec![split((1, 100), (9, 900)), split((6, 200), (1, 200))],
            -0.578_753_191_494_119_5,
        ),
    ];
    for (splits, expected) in cases {
        close(log_odds_worse(&splits), expected, 1e-12);
        close(log_odds_worse(&splits), by_definition(&splits), 1e-12);
        // The shortcut for "below the limit" says so only when it is.
        let limit = 100f64.ln();
        let shortcut = log_odds_worse_over(&splits, limit);
        assert_eq!(shortcut < limit, expected < limit, "{splits:?}");
        assert!(shortcut >= expected - 1e-12, "{shortcut} < {expected}");
    }
}

#[test]
fn the_mixture_ignores_what_cannot_tell_the_arms_apart() {
    // No errors at all: every likelihood ratio is 1.
    close(log_odds_worse(&[split((0, 500), (0, 4500))]), 0.0, 1e-15);
    // No splits.
    close(log_odds_worse(&[]), 0.0, 1e-15);
    // A split without stable requests (or without canary requests) counts for nothing.
    let with = [split((15, 300), (27, 2700)), split((40, 40), (0, 0))];
    close(log_odds_worse(&with), 7.869_562_976_287_002_5, 1e-12);
    let with = [split((15, 300), (27, 2700)), split((0, 0), (50, 50))];
    close(log_odds_worse(&with), 7.869_562_976_287_002_5, 1e-12);
    // Errors only on stable: evidence the canary is better, so below 1.
    assert!(log_odds_worse(&[split((0, 300), (30, 2700))]) < -1.0);
}

/// The interval by brute force: every rate on a fine grid whose Bayes factor is below
/// 2 / (1 - confidence), with B(1, 100) as the prior.
fn brute_force(x: u64, n: u64, confidence: f64) -> (f64, f64) {
    let (x, n) = (x as f64, n as f64);
    let evidence = ln_beta(1.0 + x, 100.0 + n - x) - ln_beta(1.0, 100.0);
    let log_bf = |p: f64| {
        let hits = if x > 0.0 { x * p.ln() } else { 0.0 };
        let misses = if n > x { (n - x) * (1.0 - p).ln() } else { 0.0 };
        evidence - hits - misses
    };
    let limit = (2.0 / (1.0 - confidence)).ln();
    let inside: Vec<f64> = (0..=1_000_000)
        .map(|i| i as f64 / 1_000_000.0)
        .filter(|p| log_bf(*p) < limit)
        .collect();
    (inside[0], inside[inside.len() - 1])
}

#[test]
fn the_rate_bounds_are_where_the_bayes_factor_reaches_its_limit() {
    for (x, n, confidence) in [
        (12, 1_200, 0.99),
        (108, 10_800, 0.99),
        (1, 20, 0.99),
        (3, 3, 0.99),
        (50, 100, 0.9),
        (0, 2_000, 0.99),
        (7, 70_000, 0.999),
    ] {
        let (lower, upper) = rate_bounds(x, n, confidence);
        let (low, high) = brute_force(x, n, confidence);
        let step = 1e-6;
        assert!(
            (lower - low).abs() <= step && (upper - high).abs() <= step,
            "{x} of {n} at {confidence}: ({lower}, {upper}) vs brute force ({low}, {high})"
        );
        assert!(lower <= x as f64 / n as f64 && x as f64 / n as f64 <= upper);
    }
    assert_eq!(rate_bounds(0, 0, 0.99), (0.0, 1.0));
    assert_eq!(rate_bounds(0, 10, 0.99).0, 0.0);
    assert_eq!(rate_bounds(10, 10, 0.99).1, 1.0);
    // More data, narrower interval; more confidence, wider.
    let width = |x, n, c| {
        let (l, u) = rate_bounds(x, n, c);
        u - l
    };
    assert!(width(100, 10_000, 0.99) < width(10, 1_000, 0.99));
    assert!(width(10, 1_000, 0.999) > width(10, 1_000, 0.99));
}
