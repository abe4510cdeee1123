//! The control plane's clock: wall-clock milliseconds, the time canaries are stored in. It is
//! injected (`Config::clock`) so that the canary driver's timing can be tested on tokio's paused
//! time, where a test of ten simulated minutes takes milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use rollout::Millis;

/// The wall clock, for what does not take the App's [`Clock`].
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// The system's wall clock: replicas compare the times they store, so it is the clock
    /// they share.
    #[default]
    System,
    /// Wall time when made, advanced by tokio's clock since: under `tokio::time::pause` it
    /// moves only as the test's time does.
    Tokio {
        wall: Millis,
        at: tokio::time::Instant,
    },
}

impl Clock {
    pub fn tokio() -> Clock {
        Clock::Tokio {
            wall: now_millis(),
            at: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        match self {
            Clock::System => now_millis(),
            Clock::Tokio { wall, at } => wall + at.elapsed().as_millis() as Millis,
        }
    }
}
