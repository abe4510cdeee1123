//! Where a canary is: its phase, step, weight, timers and the history of every decision, stored as JSON between inputs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::evidence::Evidence;
use crate::spec::StepSpec;

/// Everything the state machine remembers. The driver stores it (as JSON) before acting on
/// the actions that came with it, and feeds it back with the next input, also after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryState {
    pub phase: Phase,
    /// Index into `steps` of the current step. After an automatic promotion it is
    /// `steps.len()`: the promotion itself.
    pub step: usize,
    /// The steps before promotion, expanded from the strategy once at start
    /// ([`Strategy::expand`](crate::Strategy::expand)).
    pub steps: Vec<StepSpec>,
    /// The weight the route should give the canary now; stable gets `100 - canary_weight`.
    pub canary_weight: u32,
    /// When the current step's weight was applied; shifted forward by the time spent paused,
    /// so `step_started_at + interval` is always when the step may pass.
    pub step_started_at: Millis,
    /// When the last step passed (or the canary started or left a gate); also shifted by pauses.
    pub last_progress_at: Millis,
    /// When it was paused, while it is.
    pub paused_at: Option<Millis>,
    /// Why it ended, or why it is paused or waiting; `None` while it progresses.
    pub reason: Option<String>,
    /// Every transition, oldest first.
    pub history: Vec<HistoryEntry>,
    /// What both versions did so far, for `analysis.compare`, and where the current analysis
    /// window starts. Missing in states stored before it existed: then empty.
    #[serde(default)]
    pub evidence: Evidence,
}

impl CanaryState {
    /// The weight the route should give the stable node now.
    pub fn stable_weight(&self) -> u32 {
        100 - self.canary_weight.min(100)
    }
}

/// `progressing`, `paused`, `waitingForGate`, or one of the terminal `succeeded`, `failed`,
/// `aborted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Progressing,
    /// Held by a pause command: no progress, but failure checks still run.
    Paused,
    /// Reached a gate: no progress until a resume command; failure checks still run.
    WaitingForGate,
    Succeeded,
    /// Rolled back by analysis (a failed check or the progress deadline).
    Failed,
    /// Rolled back by an abort command.
    Aborted,
}

impl Phase {
    /// Succeeded, Failed and Aborted: no input changes the canary any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Aborted)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::WaitingForGate => "waitingForGate",
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
            Phase::Aborted => "aborted",
        })
    }
}

/// One transition: when, what, the canary's weight after it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub at: Millis,
    pub event: Event,
    pub canary_weight: u32,
    pub reason: String,
}

/// What happened; JSON is the lowercase words shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The first step's weight was applied.
    #[serde(rename = "started")]
    Started,
    /// A step passed and the next one's weight was applied.
    #[serde(rename = "step")]
    Step,
    /// A gate was reached; it waits for resume.
    #[serde(rename = "gate")]
    Gate,
    #[serde(rename = "paused")]
    Paused,
    /// A pause ended, or a gate was passed.
    #[serde(rename = "resumed")]
    Resumed,
    /// All traffic went to the canary, after the last step or by command.
    #[serde(rename = "promoted")]
    Promoted,
    /// All traffic went back to stable because analysis failed.
    #[serde(rename = "rolled back")]
    RolledBack,
    /// All traffic went back to stable by command.
    #[serde(rename = "aborted")]
    Aborted,
    /// The spec was invalid; nothing was changed.
    #[serde(rename = "rejected")]
    Rejected,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Event::Started => "started",
            Event::Step => "step",
            Event::Gate => "gate",
            Event::Paused => "paused",
            Event::Resumed => "resumed",
            Event::Promoted => "promoted",
            Event::RolledBack => "rolled back",
            Event::Aborted => "aborted",
            Event::Rejected => "rejected",
        })
    }
}
