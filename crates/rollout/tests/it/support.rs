//! The scenario runner: a spec and timed inputs in, a one-line-per-input trace out, compared with the expected trace by `check`.

use std::time::Duration;

use rollout::{
    Action, Analysis, CanarySpec, CanaryState, Input, Millis, NodeWindow, Observation, Phase,
    Strategy, WebhookResult, next_deadline, start, step,
};

/// Scenarios start here, an ordinary wall-clock time; traces show times relative to it.
pub const T0: Millis = 1_700_000_000_000;

pub fn secs(s: u64) -> Millis {
    s * 1000
}

/// A spec for the demo's product service with the given strategy, no checks, one request per
/// step and a 10m progress deadline; tests change what they need.
pub fn spec(strategy: Strategy) -> CanarySpec {
    CanarySpec {
        mesh: "demomesh".into(),
        router: "product-vr".into(),
        route: "product-route".into(),
        stable_node: "product-vn".into(),
        canary_node: "product-2-vn".into(),
        strategy,
        analysis: Analysis::default(),
        on_success: Default::default(),
        on_failure: Default::default(),
        notify: Vec::new(),
        mirror: None,
        matches: Vec::new(),
        sticky: None,
    }
}

pub fn steps(step_weight: u32, interval_secs: u64, max_weight: u32) -> Strategy {
    Strategy::Steps {
        step_weight,
        interval: Duration::from_secs(interval_secs),
        max_weight,
    }
}

/// A canary and stable answering fine: `requests` canary requests (nine times as many on
/// stable), no errors, p99 of 20 ms.
pub fn healthy(requests: u64) -> Observation {
    let window = |requests| NodeWindow {
        requests,
        status_5xx: 0,
        error_rate: 0.0,
        p99_ms: Some(20.0),
        latency_buckets: Vec::new(),
    };
    Observation {
        canary: window(requests),
        stable: window(requests * 9),
        canary_5xx_in_failure_window: 0,
        webhooks: Vec::new(),
        metrics: Vec::new(),
        covered_ms: None,
    }
}

/// Builder methods on an [`Observation`] for the way a scenario goes wrong.
pub trait Seen {
    fn fives(self, n: u64) -> Self;
    fn error_rate(self, rate: f64) -> Self;
    fn p99(self, ms: f64) -> Self;
    fn hook(self, name: &str, outcome: Result<(), &str>) -> Self;
    fn covered(self, ms: Millis) -> Self;
}

impl Seen for Observation {
    fn fives(mut self, n: u64) -> Self {
        self.canary_5xx_in_failure_window = n;
        self.canary.status_5xx = n;
        self
    }
    fn error_rate(mut self, rate: f64) -> Self {
        self.canary.error_rate = rate;
        self
    }
    fn p99(mut self, ms: f64) -> Self {
        self.canary.p99_ms = Some(ms);
        self
    }
    fn covered(mut self, ms: Millis) -> Self {
        self.covered_ms = Some(ms);
        self
    }
    fn hook(mut self, name: &str, outcome: Result<(), &str>) -> Self {
        self.webhooks.push(WebhookResult {
            name: name.into(),
            outcome: outcome.map_err(str::to_string),
        });
        self
    }
}

pub fn tick(at: Millis, observation: Observation) -> Input {
    Input::Tick {
        now: T0 + at,
        observation,
    }
}

pub fn pause(at: Millis) -> Input {
    Input::Pause { now: T0 + at }
}

pub fn resume(at: Millis) -> Input {
    Input::Resume { now: T0 + at }
}

pub fn promote(at: Millis) -> Input {
    Input::Promote { now: T0 + at }
}

pub fn abort(at: Millis, reason: &str) -> Input {
    Input::Abort {
        now: T0 + at,
        reason: reason.into(),
    }
}

/// A canary started at [`T0`], then fed `inputs` in order.
#[derive(Clone)]
pub struct Scenario {
    pub spec: CanarySpec,
    pub inputs: Vec<Input>,
}

/// What a run produced: one trace line and one state per input, the start first.
pub struct Run {
    pub lines: Vec<String>,
    pub states: Vec<CanaryState>,
}

impl Run {
    pub fn last(&self) -> &CanaryState {
        self.states.last().expect("a run has at least its start")
    }
}

/// Runs `scenario` twice — once keeping the state in memory, once storing spec and state as
/// JSON and reading them back before every input, as a restarting driver does — asserts both
/// runs are identical and that every step kept the machine's invariants, then compares the
/// trace with `expected` (one line per input; runs of spaces do not matter).
#[track_caller]
pub fn check(scenario: &Scenario, expected: &str) -> Run {
    let run = run(scenario, false);
    let stored = run_stored(scenario);
    assert_eq!(
        run.lines, stored.lines,
        "the JSON round trip changed the trace"
    );
    assert_eq!(
        run.states, stored.states,
        "the JSON round trip changed the states"
    );
    let expected: Vec<String> = expected
        .lines()
        .map(normalize)
        .filter(|line| !line.is_empty())
        .collect();
    if run.lines != expected {
        panic!(
            "trace differs\n--- expected\n{}\n--- actual\n{}\n",
            expected.join("\n"),
            run.lines.join("\n")
        );
    }
    run
}

fn run_stored(scenario: &Scenario) -> Run {
    run(scenario, true)
}

pub fn run(scenario: &Scenario, through_json: bool) -> Run {
    let spec = &scenario.spec;
    let (mut state, actions) = start(spec, T0);
    let mut lines = vec![line(0, "start", &state, &actions, 0)];
    let mut states = vec![state.clone()];
    for input in &scenario.inputs {
        let (spec, before) = if through_json {
            (reparse(spec), reparse(&state))
        } else {
            (spec.clone(), state.clone())
        };
        let at = input.now().saturating_sub(T0);
        let label = label(input);
        let (after, actions) = step(&spec, &before, input.clone());
        invariants(&spec, &before, &after, &actions, input);
        lines.push(line(at, label, &after, &actions, before.history.len()));
        state = after;
        states.push(state.clone());
    }
    Run { lines, states }
}

fn reparse<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let text = serde_json::to_string(value).expect("serializes");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// What must hold after every input, whatever the scenario.
#[track_caller]
pub fn invariants(
    spec: &CanarySpec,
    before: &CanaryState,
    after: &CanaryState,
    actions: &[Action],
    input: &Input,
) {
    if before.phase.is_terminal() {
        assert_eq!(before, after, "a terminal canary changed on {input:?}");
        assert!(actions.is_empty(), "a terminal canary acted: {actions:?}");
    }
    assert!(
        after.history.starts_with(&before.history),
        "history was rewritten on {input:?}"
    );
    if !actions.is_empty() {
        assert!(
            after.history.len() > before.history.len(),
            "actions without a history entry on {input:?}: {actions:?}"
        );
    }
    if after.history.len() > before.history.len() {
        assert_ne!(
            (
                before.phase,
                before.step,
                before.canary_weight,
                &before.reason
            ),
            (after.phase, after.step, after.canary_weight, &after.reason),
            "a history entry without a transition on {input:?}"
        );
    }
    assert!(after.canary_weight <= 100);
    for action in actions {
        if let Action::SetWeights { stable, canary } = action {
            assert_eq!(stable + canary, 100, "{action:?}");
            assert_eq!(
                *canary, after.canary_weight,
                "{action:?} but the state says otherwise"
            );
        }
    }
    match after.phase {
        Phase::Succeeded => assert_eq!(after.canary_weight, 100),
        Phase::Failed | Phase::Aborted => assert_eq!(after.canary_weight, 0),
        _ => {}
    }
    assert_eq!(
        next_deadline(spec, after).is_some(),
        after.phase == Phase::Progressing
    );
}

fn label(input: &Input) -> &'static str {
    match input {
        Input::Tick { .. } => "tick",
        Input::Pause { .. } => "pause",
        Input::Resume { .. } => "resume",
        Input::Promote { .. } => "promote",
        Input::Abort { .. } => "abort",
    }
}

/// `30s tick | progressing 20 | setWeights 80/20, callWebhooks | step`: when (after [`T0`]),
/// which input, the phase and canary weight after it, the actions, the new history events.
fn line(at: Millis, label: &str, state: &CanaryState, actions: &[Action], seen: usize) -> String {
    let actions: Vec<String> = actions
        .iter()
        .map(|a| match a {
            Action::SetWeights { stable, canary } => format!("setWeights {stable}/{canary}"),
            Action::CallWebhooks => "callWebhooks".into(),
            Action::RemoveStable => "removeStable".into(),
            Action::RemoveCanary => "removeCanary".into(),
        })
        .collect();
    let events: Vec<String> = state.history[seen.min(state.history.len())..]
        .iter()
        .map(|h| h.event.to_string())
        .collect();
    let or_dash = |list: Vec<String>| {
        if list.is_empty() {
            "-".to_string()
        } else {
            list.join(", ")
        }
    };
    normalize(&format!(
        "{} {label} | {} {} | {} | {}",
        rollout::duration::format_millis(at),
        state.phase,
        state.canary_weight,
        or_dash(actions),
        or_dash(events)
    ))
}

fn normalize(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}
