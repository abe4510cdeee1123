//! The judgement benchmark: thousands of simulated canaries through the real state machine, judged by the pipeline's 5xx threshold and by `analysis.compare`, printed as a markdown table.
//!
//! Run with `cargo run --release -p rollout --example judgement [RUNS]` (or `bench/judgement.sh`).
//! Every canary is fed `Input::Tick` every 250 ms of simulated time with the counts of its
//! current analysis window, as the control plane's driver does. Traffic: Poisson arrivals of 20
//! canary requests per second and `20·(100−w)/w` stable ones at canary weight `w`; each request
//! fails with its version's probability and gets a log-normal latency (median 20 ms, σ 0.5,
//! times 1.5 on the canary in the "slower" row), counted into `LATENCY_BUCKETS_MS` (sampled
//! straight from the bucket probabilities, which is the same distribution as drawing the
//! latency and then bucketing it). Seeded, so every run prints the same table; both methods
//! see the same traffic (same seed per canary).

use std::collections::VecDeque;
use std::time::Duration;

use rollout::{
    Analysis, CanarySpec, CanaryState, Compare, Input, LATENCY_BUCKETS_MS, LatencyCompare, Millis,
    NodeWindow, Observation, Phase, Strategy, analysis_window, start, step,
};

const TICK: Millis = 250;
const CANARY_PER_SECOND: f64 = 20.0;
const MEDIAN_MS: f64 = 20.0;
const SIGMA: f64 = 0.5;
/// A canary still undecided after this much simulated time is counted as undecided.
const GIVE_UP: Millis = 4 * 3600 * 1000;

struct Row {
    name: &'static str,
    stable_errors: f64,
    canary_errors: f64,
    canary_slower: f64,
}

const ROWS: [Row; 7] = [
    Row {
        name: "stable 1% / canary 1%",
        stable_errors: 0.01,
        canary_errors: 0.01,
        canary_slower: 1.0,
    },
    Row {
        name: "stable 0.1% / canary 0.1%",
        stable_errors: 0.001,
        canary_errors: 0.001,
        canary_slower: 1.0,
    },
    Row {
        name: "stable 0% / canary 0%",
        stable_errors: 0.0,
        canary_errors: 0.0,
        canary_slower: 1.0,
    },
    Row {
        name: "stable 1% / canary 2%",
        stable_errors: 0.01,
        canary_errors: 0.02,
        canary_slower: 1.0,
    },
    Row {
        name: "stable 1% / canary 5%",
        stable_errors: 0.01,
        canary_errors: 0.05,
        canary_slower: 1.0,
    },
    Row {
        name: "stable 1% / canary 100%",
        stable_errors: 0.01,
        canary_errors: 1.0,
        canary_slower: 1.0,
    },
    Row {
        name: "1% / 1%, canary 1.5× slower",
        stable_errors: 0.01,
        canary_errors: 0.01,
        canary_slower: 1.5,
    },
];

#[derive(Clone, Copy)]
enum Method {
    /// The App Mesh pipeline's defaults: max5xx 0 over a failureWindow of 600 s.
    Threshold,
    /// `analysis.compare` at 99% with 0.5 points of tolerance on errors and the default latency
    /// comparison, no 5xx limit, and this progress deadline.
    Compare { deadline_secs: u64 },
}

impl Method {
    fn name(self) -> String {
        match self {
            Method::Threshold => "threshold".into(),
            Method::Compare { deadline_secs } => {
                format!(
                    "compare, deadline {}",
                    rollout::duration::format(secs(deadline_secs))
                )
            }
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const STEP_WEIGHT: u32 = 10;
const INTERVAL_SECS: u64 = 60;
/// The pipeline's deadline for a 60 s wait: `max(10 × wait, 600 s)`.
const PIPELINE_DEADLINE_SECS: u64 = 600;
/// Long enough for the evidence that 1% is no worse than 1% by 0.5 points.
const COMPARE_DEADLINE_SECS: u64 = 1800;

fn spec(method: Method) -> CanarySpec {
    let mut analysis = Analysis::default();
    match method {
        Method::Threshold => {
            analysis.max_5xx = Some(0);
            analysis.failure_window = secs(600);
            analysis.progress_deadline = secs(PIPELINE_DEADLINE_SECS);
        }
        Method::Compare { deadline_secs } => {
            analysis.compare = Some(Compare {
                latency: Some(LatencyCompare::default()),
                ..Compare::default()
            });
            analysis.progress_deadline = secs(deadline_secs);
        }
    }
    CanarySpec {
        mesh: "bench".into(),
        router: "product-vr".into(),
        route: "product-route".into(),
        stable_node: "product-v1".into(),
        canary_node: "product-v2".into(),
        strategy: Strategy::Steps {
            step_weight: STEP_WEIGHT,
            interval: secs(INTERVAL_SECS),
            max_weight: 100,
        },
        analysis,
        on_success: Default::default(),
        on_failure: Default::default(),
        notify: Vec::new(),
        mirror: None,
        matches: Vec::new(),
        sticky: None,
    }
}

/// xoshiro256** seeded through splitmix64.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Poisson by inversion (means here are at most 45).
    fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        let u = self.uniform();
        let mut k = 0u64;
        let mut p = (-mean).exp();
        let mut cumulative = p;
        while u > cumulative && k < 10_000 {
            k += 1;
            p *= mean / k as f64;
            cumulative += p;
        }
        k
    }
}

/// Φ, the standard normal distribution function (Abramowitz and Stegun 7.1.26, absolute error
/// below 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// One version's traffic: failure probability and cumulative latency bucket probabilities.
struct Version {
    errors: f64,
    cumulative: Vec<f64>,
}

impl Version {
    fn new(errors: f64, slower: f64) -> Version {
        let median = (MEDIAN_MS * slower).ln();
        let cumulative = LATENCY_BUCKETS_MS
            .iter()
            .map(|bound| normal_cdf((bound.ln() - median) / SIGMA))
            .collect();
        Version { errors, cumulative }
    }

    /// `n` requests into `window`.
    fn serve(&self, rng: &mut Rng, n: u64, window: &mut Window) {
        for _ in 0..n {
            window.requests += 1;
            if rng.uniform() < self.errors {
                window.errors += 1;
            }
            let u = rng.uniform();
            let bucket = self.cumulative.partition_point(|c| *c < u);
            window.buckets[bucket] += 1;
        }
    }
}

#[derive(Clone, Default)]
struct Window {
    requests: u64,
    errors: u64,
    buckets: [u64; 29],
}

impl Window {
    fn node(&self) -> NodeWindow {
        NodeWindow {
            requests: self.requests,
            status_5xx: self.errors,
            error_rate: if self.requests == 0 {
                0.0
            } else {
                self.errors as f64 / self.requests as f64
            },
            p99_ms: None,
            latency_buckets: self.buckets.to_vec(),
        }
    }
}

/// How one canary ended.
struct Outcome {
    rolled_back: bool,
    /// Simulated milliseconds from start to promotion or rollback; `None`: undecided.
    decided_ms: Option<Millis>,
    /// Ticks from the tick of the canary's first error to the rollback (0: that same tick).
    ticks_after_first_error: Option<u64>,
    /// Why it was rolled back.
    reason: Option<String>,
}

fn simulate(spec: &CanarySpec, row: &Row, seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let stable = Version::new(row.stable_errors, 1.0);
    let canary = Version::new(row.canary_errors, row.canary_slower);
    let (mut state, _): (CanaryState, _) = start(spec, 0);
    let mut canary_window = Window::default();
    let mut stable_window = Window::default();
    let failure_ticks = (spec.analysis.failure_window.as_millis() as u64 / TICK) as usize;
    let mut recent_errors: VecDeque<u64> = VecDeque::with_capacity(failure_ticks + 1);
    let mut recent_sum = 0u64;
    let mut first_error_tick = None;
    let mut now = 0;
    let until = std::env::var("JUDGEMENT_UNTIL")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(GIVE_UP, |s| s * 1000);
    while !state.phase.is_terminal() && now < until {
        now += TICK;
        let tick = now / TICK;
        let w = f64::from(state.canary_weight);
        let canary_mean = CANARY_PER_SECOND * TICK as f64 / 1000.0;
        let stable_mean = canary_mean * (100.0 - w) / w;
        let errors_before = canary_window.errors;
        let n = rng.poisson(canary_mean);
        canary.serve(&mut rng, n, &mut canary_window);
        let n = rng.poisson(stable_mean);
        stable.serve(&mut rng, n, &mut stable_window);
        let new_errors = canary_window.errors - errors_before;
        if new_errors > 0 && first_error_tick.is_none() {
            first_error_tick = Some(tick);
        }
        recent_errors.push_back(new_errors);
        recent_sum += new_errors;
        if recent_errors.len() > failure_ticks {
            recent_sum -= recent_errors.pop_front().unwrap_or(0);
        }
        let observation = Observation {
            canary: canary_window.node(),
            stable: stable_window.node(),
            canary_5xx_in_failure_window: recent_sum,
            webhooks: Vec::new(),
            metrics: Vec::new(),
            covered_ms: None,
        };
        state = step(spec, &state, Input::Tick { now, observation }).0;
        if analysis_window(&state, now) == 0 {
            canary_window = Window::default();
            stable_window = Window::default();
        }
    }
    let rolled_back = state.phase == Phase::Failed;
    Outcome {
        rolled_back,
        decided_ms: state.phase.is_terminal().then_some(now),
        ticks_after_first_error: match first_error_tick {
            Some(first) if rolled_back => Some(now / TICK - first),
            _ => None,
        },
        reason: rolled_back.then(|| state.reason.clone().unwrap_or_default()),
    }
}

/// The `q`-quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".into(), |ms| format!("{:.2}", ms / 1000.0))
}

fn main() {
    let runs: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let compare = Method::Compare {
        deadline_secs: COMPARE_DEADLINE_SECS,
    };
    // Every row with both methods; the first also with the pipeline's deadline, the only row
    // where it makes a difference (proving 1% against 1% within 0.5 points takes longer).
    let mut cases: Vec<(usize, Method)> = Vec::new();
    for r in 0..ROWS.len() {
        cases.push((r, Method::Threshold));
        cases.push((r, compare));
        if r == 0 {
            cases.push((
                r,
                Method::Compare {
                    deadline_secs: PIPELINE_DEADLINE_SECS,
                },
            ));
        }
    }
    println!(
        "Strategy: steps of {STEP_WEIGHT}% every {INTERVAL_SECS}s (10%…90%, then promotion), \
         ticks every {TICK} ms, {CANARY_PER_SECOND} canary requests/s, {runs} canaries per row \
         and method."
    );
    println!("threshold: max5xx 0, failureWindow 10m, progressDeadline 10m (the pipeline's).");
    println!(
        "compare: confidence 0.99, maxErrorRateIncrease 0.005, latency quantile 0.99 with \
         maxSlowShareIncrease 0.01, no max5xx; progressDeadline as named."
    );
    println!();
    println!(
        "| traffic | method | rolled back | decided: median s | decided: p95 s | rollback: median s | undecided |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut first_error_notes = Vec::new();
    let mut five_percent_notes = Vec::new();
    let mut false_rollbacks = Vec::new();
    let only_rows = std::env::var("JUDGEMENT_ROWS").ok();
    for (r, method) in cases {
        let row = &ROWS[r];
        if let Some(only) = &only_rows
            && !only.split(',').any(|n| n == r.to_string())
        {
            continue;
        }
        {
            let spec = spec(method);
            let mut decided = Vec::new();
            let mut rollbacks = Vec::new();
            let mut after_first_error = Vec::new();
            let mut undecided = 0;
            for run in 0..runs {
                let outcome = simulate(&spec, row, ((r as u64) << 32) | run);
                match outcome.decided_ms {
                    Some(ms) => decided.push(ms as f64),
                    None => undecided += 1,
                }
                if std::env::var_os("JUDGEMENT_REASONS").is_some()
                    && let Some(reason) = &outcome.reason
                {
                    eprintln!("{} / {} / run {run}: {reason}", row.name, method.name());
                }
                if outcome.rolled_back {
                    rollbacks.push(outcome.decided_ms.unwrap_or(GIVE_UP) as f64);
                }
                if let Some(ticks) = outcome.ticks_after_first_error {
                    after_first_error.push(ticks as f64);
                }
            }
            decided.sort_by(f64::total_cmp);
            rollbacks.sort_by(f64::total_cmp);
            after_first_error.sort_by(f64::total_cmp);
            let share = rollbacks.len() as f64 / runs as f64 * 100.0;
            println!(
                "| {} | {} | {:.2}% | {} | {} | {} | {} |",
                row.name,
                method.name(),
                share,
                seconds(quantile(&decided, 0.5)),
                seconds(quantile(&decided, 0.95)),
                seconds(quantile(&rollbacks, 0.5)),
                undecided
            );
            if row.stable_errors == row.canary_errors && row.canary_slower == 1.0 {
                false_rollbacks.push(format!("{} ({}): {share:.2}%", row.name, method.name()));
            }
            if row.canary_errors == 0.05 {
                five_percent_notes.push(format!(
                    "{}: median {} s, p95 {} s of the rollbacks",
                    method.name(),
                    seconds(quantile(&rollbacks, 0.5)),
                    seconds(quantile(&rollbacks, 0.95)),
                ));
            }
            if row.canary_errors == 1.0 {
                let same_tick = after_first_error.iter().filter(|t| **t == 0.0).count();
                first_error_notes.push(format!(
                    "{}: rolled back on the tick of the first 5xx in {same_tick} of {} \
                     rollbacks; ticks after it: median {}, p95 {}, max {}",
                    method.name(),
                    after_first_error.len(),
                    quantile(&after_first_error, 0.5).unwrap_or(f64::NAN),
                    quantile(&after_first_error, 0.95).unwrap_or(f64::NAN),
                    after_first_error.last().copied().unwrap_or(f64::NAN),
                ));
            }
        }
    }
    println!();
    println!("Goal: false rollbacks at most 1% (rows with equal versions):");
    for line in false_rollbacks {
        println!("- {line}");
    }
    println!("Goal: 5% against 1% rolled back in under 15 s:");
    for line in five_percent_notes {
        println!("- {line}");
    }
    println!(
        "Goal: a canary failing every request rolled back on the first tick after its first 5xx:"
    );
    for line in first_error_notes {
        println!("- {line}");
    }
}
