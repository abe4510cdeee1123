//! Stats over time: per node, one point per step of the last window, for the console's
//! stable-versus-canary charts.

use std::time::Duration;

use model::wire::{MAX_SERIES_POINTS, NodeSeries, SeriesPoint, StatsSeries, quantile_ms};

use super::{Counts, MAX_WINDOW, SLOT, Series, StatsWindow};

impl StatsWindow {
    /// `nodes`' counts over `window`, in steps of `step` (at least one slot; the window is cut
    /// to `MAX_SERIES_POINTS` steps and ten minutes). `now_ms` is the wall clock of now, which
    /// dates the points.
    pub fn series(
        &self,
        mesh: &str,
        nodes: &[String],
        window: Duration,
        step: Duration,
        now_ms: u64,
    ) -> StatsSeries {
        let per = (step.as_millis() / SLOT.as_millis()).max(1) as u64;
        let step_ms = per * SLOT.as_millis() as u64;
        let window = window.clamp(SLOT, MAX_WINDOW);
        let points = (window.as_millis() as u64)
            .div_ceil(step_ms)
            .clamp(1, MAX_SERIES_POINTS as u64) as usize;
        let now = self.slot_now();
        let held = self.lock();
        let series = nodes
            .iter()
            .map(|node| {
                let mut steps = vec![Counts::default(); points];
                if let Some(ring) = held.rings.get(&Series::of(mesh, node, None)) {
                    for slot in ring.slots.iter().filter(|slot| slot.index <= now) {
                        let back = ((now - slot.index) / per) as usize;
                        if back < points {
                            steps[points - 1 - back].merge(&slot.counts);
                        }
                    }
                }
                let points = steps
                    .iter()
                    .enumerate()
                    .map(|(i, counts)| {
                        let back = (points - 1 - i) as u64;
                        point(counts, now_ms.saturating_sub(back * step_ms), step_ms)
                    })
                    .collect();
                NodeSeries {
                    virtual_node: node.clone(),
                    points,
                }
            })
            .collect();
        StatsSeries {
            mesh: mesh.to_string(),
            step_seconds: step_ms as f64 / 1000.0,
            nodes: series,
        }
    }
}

fn point(counts: &Counts, at: u64, step_ms: u64) -> SeriesPoint {
    let errors = counts.status_5xx.saturating_add(counts.failures);
    SeriesPoint {
        at,
        requests: counts.requests,
        requests_per_second: counts.requests as f64 * 1000.0 / step_ms as f64,
        error_rate: (counts.requests > 0).then(|| errors as f64 / counts.requests as f64),
        p99_ms: quantile_ms(&counts.latency, 0.99),
    }
}

#[cfg(test)]
mod tests {
    use model::wire::NodeStats;

    use super::*;

    fn sample(node: &str, requests: u64, status_5xx: u64) -> NodeStats {
        NodeStats {
            virtual_node: node.into(),
            requests,
            status_2xx: requests - status_5xx,
            status_5xx,
            latency_buckets: vec![0, 0, 0, 0, 0, requests],
            ..NodeStats::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn points_fall_into_the_step_they_were_reported_in() {
        let stats = StatsWindow::default();
        tokio::time::advance(Duration::from_millis(300)).await;
        stats.record("m", &[sample("a", 10, 0)]);
        tokio::time::advance(Duration::from_secs(2)).await;
        stats.record("m", &[sample("a", 4, 1)]);
        let series = stats.series(
            "m",
            &["a".into(), "unknown".into()],
            Duration::from_secs(10),
            Duration::from_secs(1),
            1_000_000,
        );
        assert_eq!(series.step_seconds, 1.0);
        let a = &series.nodes[0];
        assert_eq!(a.points.len(), 10);
        assert_eq!(a.points[9].at, 1_000_000);
        assert_eq!(a.points[8].at, 999_000);
        let requests: Vec<u64> = a.points.iter().map(|p| p.requests).collect();
        assert_eq!(requests, [0, 0, 0, 0, 0, 0, 0, 10, 0, 4]);
        assert_eq!(a.points[9].error_rate, Some(0.25));
        assert_eq!(a.points[7].error_rate, Some(0.0));
        assert_eq!(a.points[0].error_rate, None);
        assert_eq!(a.points[9].requests_per_second, 4.0);
        assert!(a.points[9].p99_ms.is_some_and(|p| p > 0.6 && p <= 1.0));
        assert!(series.nodes[1].points.iter().all(|p| p.requests == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_is_cut_to_the_most_points() {
        let stats = StatsWindow::default();
        let series = stats.series(
            "m",
            &["a".into()],
            Duration::from_secs(3600),
            Duration::from_millis(1),
            0,
        );
        assert_eq!(series.step_seconds, 0.25);
        assert_eq!(series.nodes[0].points.len(), MAX_SERIES_POINTS);
    }
}
