//! Canaries on the wire: the stored record (spec, state machine state, what was acted on) and the view served with its derived status.

use rollout::{CanarySpec, CanaryState, Status};
use serde::{Deserialize, Serialize};

/// One stored canary (`meshes/{mesh}/Canary/{name}`), as the control plane keeps it and as a
/// snapshot or watch event carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRecord {
    pub name: String,
    pub spec: CanarySpec,
    pub state: CanaryState,
    /// How many entries of `state.history` have been acted on.
    pub acted: usize,
    /// What happened while acting that the state machine does not know (cleanup left undone).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl CanaryRecord {
    /// Not yet succeeded, failed or aborted.
    pub fn is_active(&self) -> bool {
        !self.state.phase.is_terminal()
    }

    /// Ended, and the controller has acted on its last decision (the route and any removal
    /// are done): a decision is stored before it is acted on, so the phase alone is early.
    pub fn settled(&self) -> bool {
        !self.is_active() && self.acted >= self.state.history.len()
    }
}

/// `GET /v1/meshes/{mesh}/canaries/{name}`, each entry of the list, and the answer to a create
/// or a command: the record, plus its status computed by the control plane when it answered
/// (its clock, and fresh stats where the step counts requests or waits for webhooks).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CanaryView {
    #[serde(flatten)]
    pub record: CanaryRecord,
    pub status: Status,
}

/// `GET /v1/meshes/{mesh}/canaries`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CanaryList {
    pub canaries: Vec<CanaryView>,
}

/// A command to a live canary (`POST .../canaries/{name}/{command}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CanaryCommand {
    Pause,
    Resume,
    Promote,
    Abort,
}

impl CanaryCommand {
    pub const ALL: [CanaryCommand; 4] = [
        CanaryCommand::Pause,
        CanaryCommand::Resume,
        CanaryCommand::Promote,
        CanaryCommand::Abort,
    ];

    /// The path segment: `pause`.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryCommand::Pause => "pause",
            CanaryCommand::Resume => "resume",
            CanaryCommand::Promote => "promote",
            CanaryCommand::Abort => "abort",
        }
    }

    pub fn parse(text: &str) -> Option<CanaryCommand> {
        CanaryCommand::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// The optional body of a command: why (kept as an abort's reason).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
