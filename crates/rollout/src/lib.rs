//! aviary's canary release controller core: the canary state machine and its analysis, sans-IO.
//! It owns what a canary spec means (strategies, analysis thresholds, clean-up), whether one is
//! valid ([`validate`]), and every decision: when a step passes, when the canary fails and why,
//! what pause, resume, promote and abort do. It is pure functions of data: [`start`] and
//! [`step`] take a spec, a state and an input carrying the caller's time and observations, and
//! return the next state and the [`Action`]s to carry out. It never reads a clock, a socket, a
//! file or the environment, has no async and no tokio, and knows nothing of the store, HTTP,
//! the proxy or the route's shape; the control plane's driver feeds it and acts for it, and
//! the CLI only shows its JSON and the [`status()`] the control plane derives from it (step i of
//! n, what the step waits for), which a dashboard shows in the same words.
//!
//! # The driver's loop
//!
//! 1. Create: [`validate`] the spec (answer 4xx with every [`Problem`]), then [`start`]; store the
//!    state, then carry out the actions.
//! 2. About every 250 ms per live canary: read the canary's and stable node's stats (requests,
//!    errors, latency buckets) over exactly [`analysis_window`] — never more, or requests are
//!    counted twice — and the canary's 5xx over `analysis.failureWindow`, add the current
//!    step's webhook results, call [`step`] with [`Input::Tick`]; if the state changed, store
//!    it, then carry out the actions. Commands (pause, resume, promote, abort) are inputs too.
//! 3. After a restart: for every stored canary, carry out [`reconcile`] (idempotent), then tick.
//!    [`next_deadline`] says when the current step is due at the latest.
//!
//! # Decisions
//!
//! - Failure checks run on every tick, in every live phase, paused and at a gate included: a
//!   held canary that breaks is still rolled back, because a person holding it does not mean
//!   they want broken answers served meanwhile. The 5xx count is judged over `failureWindow`
//!   (over the limit fails; a limit of 0 fails on any 5xx); error rate and p99 over the
//!   current analysis window, and only once the canary had at least one request in it; a webhook result
//!   that failed fails. Rollback is one action: 100% stable (plus removal of the canary if
//!   asked).
//! - `analysis.compare` judges the canary against stable on everything both did since the
//!   canary started: the state's [`Evidence`] (counts per weight, integers only) plus the
//!   current window. It fails the canary once the odds against it failing (or being slow) no
//!   more often than stable pass `1:1/(1-confidence)`, and holds each step until its error rate
//!   (and slow share) is shown below stable's plus a tolerance. Both are anytime-valid, so the
//!   judgement on every tick keeps its guarantees; the arithmetic is in `stats.rs`.
//! - An analysis window starts with each step and gate, goes on through pauses, and ends at
//!   a tick that passes the step or finds it [`MAX_ANALYSIS_WINDOW`] old; its counts then join
//!   the evidence. So nothing is counted twice and no window outgrows the driver's stats.
//! - A step passes on a tick at or after `step_started_at + interval` whose observation passes
//!   every check, shows at least `minRequests` canary requests in the step, has a passing
//!   result for every webhook, and (with `analysis.compare`) the evidence that the canary is
//!   no worse. A step short of `minRequests` once its interval is over waits, passes or fails
//!   as `analysis.noTraffic` says (`wait`, `pass`, `fail`), but only on stats that cover the
//!   whole interval (a fresh leader cannot tell "no traffic" from "not seen"). At most one
//!   step passes per tick, so a driver that was away long
//!   never skips a step's observation. If a step cannot pass and no step has passed for longer
//!   than `progressDeadline` (time paused or at a gate not counted), the canary fails. Time the
//!   driver was down does count.
//! - Reaching 100 promotes: `steps` never holds a weight of 100 (see [`Strategy::expand`]).
//! - Pause holds a progressing canary; resume gives back the rest of the step's interval.
//!   Pause at a gate changes nothing (it is already held); resume at a gate passes it and
//!   applies the next step at once. Promote and abort work in every live phase. Inputs that
//!   do not apply change nothing and record nothing.
//! - Every transition appends one [`HistoryEntry`] (resuming at a gate appends "resumed" and
//!   then what the next step did).

pub mod duration;

mod analysis;
mod compare;
mod evidence;
mod machine;
mod observe;
mod spec;
mod state;
mod stats;
mod status;
mod validate;

pub use evidence::{Counts, Evidence, MAX_ANALYSIS_WINDOW, StepEvidence};
pub use machine::{Action, Input, analysis_window, next_deadline, reconcile, start, step};
pub use observe::{LATENCY_BUCKETS_MS, MetricResult, NodeWindow, Observation, WebhookResult};
pub use spec::{
    Analysis, CanarySpec, Compare, Exposure, LatencyCompare, Load, Mirror, NoTraffic, Notify,
    OnFailure, OnSuccess, PrometheusCheck, ReplicaSplit, RequestMatch, StepSpec, Sticky, Strategy,
    Version, Webhook, exposure,
};
pub use state::{CanaryState, Event, HistoryEntry, Phase};
pub use status::{Metric, Share, Status, Wait, Waiting, count, plural, status};
pub use validate::{
    MAX_INTERVAL, MAX_LOAD_RATE, MAX_MATCHES, MAX_REPLICA_TOTAL, Problem, http_token, validate,
};

/// Milliseconds since the Unix epoch, supplied by the caller.
pub type Millis = u64;
