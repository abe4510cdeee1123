//! Canaries: the stored `Canary` (its spec and the rollout state machine's state), its `/v1`
//! API, and the driver that feeds `rollout` fresh stats every tick and carries out its actions,
//! in four parts: `api` (what a create or a command is checked against), `records` (the record
//! in the store and one input to it), `act` (carrying out actions with the leader's fence) and
//! `drive` (the loop). The time is the App's [`Clock`](crate::clock::Clock), so the driver's
//! timing is tested on tokio's paused time.
//!
//! Durability: every transition is stored before it is acted on. A record counts how many of its
//! history entries have been acted on (`acted`); whatever is stored but not acted on (a crash
//! between storing and acting, a former leader, a command taken by a follower) the leader's
//! next pass finishes. Acting is idempotent (weights are written only when the route differs),
//! so no step is applied twice.
//!
//! The index: every canary that is not settled (live, or ended with its last decision not yet
//! acted on) has a key under `canaries-live/`, written in the same transaction as its record,
//! so the driver ranges those few keys every tick instead of the whole store. A key whose
//! record is gone (its mesh was deleted) is removed by the driver when it finds it so.

use std::time::Duration;

use crate::objects::{self, ObjectKind};

mod act;
mod api;
mod drive;
mod load;
mod outside;
mod records;

pub use drive::drive;
pub use load::Loads;
pub use outside::Metrics;

/// How often the driver looks at every active canary: the bound on how late a broken canary
/// is noticed after its stats arrive.
pub const TICK: Duration = Duration::from_millis(250);

fn key(mesh: &str, name: &str) -> String {
    objects::key(ObjectKind::Canary, mesh, None, name)
}

/// Where the index of canaries the driver must look at is kept; see the module doc.
const INDEX: &str = "canaries-live/";

fn index_key(mesh: &str, name: &str) -> String {
    format!("{INDEX}{mesh}/{name}")
}

/// Where the answers of a canary's webhooks are stored, one key per webhook of the current
/// step: a new leader reads them there, where the one that called them left them. Outside
/// `meshes/`, so no proxy's watch carries them.
fn webhooks_prefix(mesh: &str, name: &str) -> String {
    format!("webhooks/{mesh}/{name}/")
}

#[cfg(test)]
mod tests;
