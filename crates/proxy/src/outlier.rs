//! Passive outlier detection per App Mesh's `outlierDetection`: an endpoint that returns
//! `maxServerErrors` server errors within one `interval` is ejected for `baseEjectionDuration`
//! times the number of times it has been ejected in a row, while at most `maxEjectionPercent`
//! of the node's endpoints are ejected at once.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use model::typed;

/// The longest ejection, however often an endpoint was ejected (Envoy's default cap).
const MAX_EJECTION: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierConfig {
    pub max_server_errors: u32,
    pub interval: Duration,
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
}

impl OutlierConfig {
    /// From a listener's `outlierDetection`, when it has one.
    pub fn from_listener(listener: &typed::Listener) -> Option<OutlierConfig> {
        let detection = listener.outlier_detection.as_ref()?;
        Some(OutlierConfig {
            // Past u32::MAX errors in one interval an endpoint is never ejected either way.
            max_server_errors: u32::try_from(detection.max_server_errors)
                .unwrap_or(u32::MAX)
                .max(1),
            interval: detection.interval.to_std(),
            base_ejection: detection.base_ejection_duration.to_std(),
            max_ejection_percent: detection.max_ejection_percent.min(100),
        })
    }

    /// Whether one more of `total` endpoints may be ejected while `ejected` already are.
    pub fn may_eject(&self, ejected: usize, total: usize) -> bool {
        (ejected + 1) * 100 <= self.max_ejection_percent as usize * total
    }
}

/// One endpoint's error window and ejection, in milliseconds since its node's epoch; lock-free
/// because every request through the endpoint updates it.
#[derive(Debug, Default)]
pub struct OutlierState {
    window_start: AtomicU64,
    errors: AtomicU32,
    /// 0 when not ejected.
    ejected_until: AtomicU64,
    /// Ejections in a row, without a success in between.
    ejections: AtomicU32,
}

impl OutlierState {
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until.load(Ordering::Relaxed)
    }

    pub fn record_success(&self, now_ms: u64) {
        if self.ejections.load(Ordering::Relaxed) != 0 && !self.is_ejected(now_ms) {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a server error; true when the endpoint has now reached the limit of its window
    /// (the caller decides whether the node can afford to eject it).
    pub fn record_server_error(&self, config: &OutlierConfig, now_ms: u64) -> bool {
        let interval = config.interval.as_millis() as u64;
        let start = self.window_start.load(Ordering::Relaxed);
        if now_ms.saturating_sub(start) >= interval {
            self.window_start.store(now_ms, Ordering::Relaxed);
            self.errors.store(0, Ordering::Relaxed);
        }
        let errors = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        errors >= config.max_server_errors && !self.is_ejected(now_ms)
    }

    /// Ejects the endpoint; returns how long for.
    pub fn eject(&self, config: &OutlierConfig, now_ms: u64) -> Duration {
        let times = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let duration = config.base_ejection.saturating_mul(times).min(MAX_EJECTION);
        self.ejected_until
            .store(now_ms + duration.as_millis() as u64, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        duration
    }
}

#[cfg(test)]
mod tests;
