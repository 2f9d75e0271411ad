//! Counters every connection adds to: what came in, what went back and how. "Lost none"
//! means `images_received == images_denoised + images_passed_through + images_failed`
//! once the connections are done (`images_undeliverable` counts answers whose client had
//! already gone).

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::counters;

/// The daemon's metrics' prefix.
const PREFIX: &str = "crossdenoise_";

/// How many recent denoising latencies the percentiles are taken over.
const LATENCY_WINDOW: usize = 4096;

counters! {
    /// What the daemon has done, for the log, /metrics and the tests: each counter with its
    /// Prometheus kind, name (after `crossdenoise_`) and help, declared once.
    pub struct Counts / CountsNow {
        connections: Counter "connections_total" "Client connections accepted.",
        connections_active: Gauge "connections_open" "Open client connections.",
        /// Turned away at the connection limits (an error text, then close).
        connections_refused: Counter "connections_refused_total" "Connections turned away at max_connections or max_connections_per_peer.",
        images_received: Counter "images_received_total" "Images received.",
        images_denoised: Counter "images_denoised_total" "Images sent back denoised.",
        /// Sent back unchanged because they are not for the model (complex, phase, ...).
        images_passed_through: Counter "images_passed_through_total" "Images sent back unchanged (not for the model).",
        /// Sent back unchanged because denoising failed or timed out.
        images_failed: Counter "images_failed_total" "Images sent back unchanged after a failed or late denoising.",
        /// Of the failed: images for a guided model whose partner never came (and no `alone`
        /// model for their contrast).
        images_unpaired: Counter "images_unpaired_total" "Images for a guided model sent back unchanged: no partner image came.",
        /// Of the denoised: images whose partner did not come, denoised by the single-contrast
        /// model of their contrast.
        images_alone: Counter "images_alone_total" "Images for a guided model denoised by their contrast's single-contrast model: no partner image came.",
        /// Of the denoised: images guided by a kept partner slice of an earlier series (on this
        /// connection or another).
        images_paired_kept: Counter "images_paired_kept_total" "Images denoised with a kept partner slice of an earlier series as their guide.",
        /// Images kept for partners to come (a gauge).
        images_kept: Gauge "images_kept" "Images kept for partner series to come.",
        /// Kept images let go before `pair_window_s` to stay within `pair_keep_mib`.
        images_kept_dropped: Counter "images_kept_dropped_total" "Images kept for partners let go before pair_window_s to stay within pair_keep_mib.",
        images_undeliverable: Counter "images_undeliverable_total" "Answers that could not be delivered: the client had gone, read nothing for write_timeout_s, or shutdown_grace_s ran out.",
        other_messages: Counter "other_messages_total" "Acquisitions and waveforms received (passed on or dropped as acquisitions / waveforms say).",
        protocol_errors: Counter "protocol_errors_total" "Connections closed for a bad message.",
    }
}

/// The daemon's counters and its recent latencies.
#[derive(Debug, Default)]
pub struct Stats {
    counts: Counts,
    latencies: Mutex<VecDeque<f64>>,
}

impl Deref for Stats {
    type Target = Counts;

    fn deref(&self) -> &Counts {
        &self.counts
    }
}

/// The counters at one moment, and the latency percentiles of the recent images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub counts: CountsNow,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Deref for Snapshot {
    type Target = CountsNow;

    fn deref(&self) -> &CountsNow {
        &self.counts
    }
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Records one image's time from arrival to its denoised result.
    pub fn record_latency(&self, seconds: f64) {
        let mut l = self.latencies.lock().expect("stats lock");
        if l.len() == LATENCY_WINDOW {
            l.pop_front();
        }
        l.push_back(seconds);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut l: Vec<f64> = self
            .latencies
            .lock()
            .expect("stats lock")
            .iter()
            .copied()
            .collect();
        l.sort_by(f64::total_cmp);
        let pct =
            |p: f64| (!l.is_empty()).then(|| l[((l.len() - 1) as f64 * p).round() as usize] * 1e3);
        Snapshot {
            counts: self.counts.now(),
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
        }
    }
}

impl Snapshot {
    /// One log line.
    pub fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
        format!(
            "{}; latency p50 {}, p99 {}",
            self.counts.line(),
            ms(self.p50_ms),
            ms(self.p99_ms)
        )
    }

    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = self.counts.prometheus(PREFIX);
        out.push_str(
            "# HELP crossdenoise_latency_seconds Arrival to denoised result, recent images.\n# TYPE crossdenoise_latency_seconds summary\n",
        );
        for (q, v) in [("0.5", self.p50_ms), ("0.99", self.p99_ms)] {
            if let Some(v) = v {
                out.push_str(&format!(
                    "crossdenoise_latency_seconds{{quantile=\"{q}\"}} {}\n",
                    v / 1e3
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_exposition() {
        let s = Stats::default();
        for i in 1..=100 {
            s.record_latency(f64::from(i) / 1000.0);
        }
        inc(&s.images_received);
        let snap = s.snapshot();
        assert_eq!(snap.p50_ms.unwrap().round(), 51.0);
        assert_eq!(snap.p99_ms.unwrap().round(), 99.0);
        let text = snap.prometheus();
        assert!(text.contains("crossdenoise_images_received_total 1\n"));
        assert!(text.contains("crossdenoise_latency_seconds{quantile=\"0.99\"} 0.099"));
    }
}
