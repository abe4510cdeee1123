//! Synthetic load (`analysis.load`, Flagger's load tester): GET requests the leader sends into
//! the mesh while a canary runs, so that a canary without users can be judged.
//!
//! One generator per live canary with a load, started by the driver's tick of that canary and
//! kept alive by it: every tick renews the generator's lease, and a generator whose lease is
//! older than [`LEASE`] stops by itself. So a canary that ended or was deleted, or whose
//! driver lost its leadership, stops being loaded within [`LEASE`], and a new leader's
//! generator overlaps a deposed one's for at most that long. Requests are bounded three ways:
//! `rate` per second (validated to at most [`rollout::MAX_LOAD_RATE`]), at most `rate` in
//! flight (a tick that finds them all busy is skipped, not queued), and [`REQUEST_TIMEOUT`]
//! each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::wire::CanaryRecord;
use rollout::Load;
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

use crate::App;
use crate::webhooks::WebhookPolicy;

/// How long a generator goes on without its canary's tick renewing it.
pub const LEASE: Duration = Duration::from_secs(2);

/// How long one synthetic request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The running generators, by (mesh, canary): at most one per live canary with a load.
#[derive(Default)]
pub struct Loads {
    running: Mutex<HashMap<(String, String), Arc<Generator>>>,
}

struct Generator {
    load: Load,
    renewed: Mutex<Instant>,
    sent: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

impl Loads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Generator>>> {
        // Every operation leaves the map consistent between statements.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the canary's generator (its task ends at its next request).
    pub fn stop(&self, mesh: &str, name: &str) {
        self.lock().remove(&(mesh.to_string(), name.to_string()));
    }
}

impl App {
    /// The driver's part, on every tick of a live canary: renews its generator, or starts one
    /// (also when the canary's load changed, replacing the old generator).
    pub(super) fn drive_load(&self, record: &CanaryRecord) {
        let Some(load) = &record.spec.analysis.load else {
            return;
        };
        let key = (record.spec.mesh.clone(), record.name.clone());
        let mut running = self.loads.lock();
        if let Some(generator) = running.get(&key)
            && generator.load == *load
        {
            *generator.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            return;
        }
        let generator = Arc::new(Generator {
            load: load.clone(),
            renewed: Mutex::new(Instant::now()),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        });
        running.insert(key.clone(), generator.clone());
        tracing::info!(canary = %record.name, url = %load.url, rate = load.rate, "synthetic load started");
        tokio::spawn(generator.run(self.webhook_policy.clone(), self.loads.clone(), key));
    }
}

impl Generator {
    async fn run(
        self: Arc<Self>,
        policy: Arc<WebhookPolicy>,
        loads: Arc<Loads>,
        key: (String, String),
    ) {
        let rate = self.load.rate.clamp(1, rollout::MAX_LOAD_RATE);
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let in_flight = Arc::new(Semaphore::new(rate as usize));
        loop {
            tick.tick().await;
            let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
            let current = loads
                .lock()
                .get(&key)
                .is_some_and(|g| Arc::ptr_eq(g, &self));
            if !current || renewed.elapsed() > LEASE {
                break;
            }
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (me, policy) = (self.clone(), policy.clone());
            tokio::spawn(async move {
                let host = me.load.host.as_deref();
                let answer = policy
                    .get_discard(&me.load.url, host, REQUEST_TIMEOUT)
                    .await;
                me.sent.fetch_add(1, Ordering::Relaxed);
                if answer.is_err() {
                    me.failed.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
        }
        let mut running = loads.lock();
        if running.get(&key).is_some_and(|g| Arc::ptr_eq(g, &self)) {
            running.remove(&key);
        }
        tracing::info!(
            canary = %key.1,
            sent = self.sent.load(Ordering::Relaxed),
            failed = self.failed.load(Ordering::Relaxed),
            skipped = self.skipped.load(Ordering::Relaxed),
            "synthetic load stopped"
        );
    }
}
