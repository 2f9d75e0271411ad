//! Counters every connection adds to: what came in, what went back and how. "Lost none"
//! means `images_received == images_denoised + images_passed_through + images_failed`
//! once the connections are done (`images_undeliverable` counts answers whose client had
//! already gone).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{self, Kind};

/// The daemon's metrics' prefix.
const PREFIX: &str = "crossdenoise_";

/// How many recent denoising latencies the percentiles are taken over.
const LATENCY_WINDOW: usize = 4096;

#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub connections_active: AtomicU64,
    /// Turned away at the connection limits (an error text, then close).
    pub connections_refused: AtomicU64,
    pub images_received: AtomicU64,
    pub images_denoised: AtomicU64,
    /// Sent back unchanged because they are not for the model (complex, phase, ...).
    pub images_passed_through: AtomicU64,
    /// Sent back unchanged because denoising failed or timed out.
    pub images_failed: AtomicU64,
    /// Of the failed: images for a guided model whose partner never came (and no `alone`
    /// model for their contrast).
    pub images_unpaired: AtomicU64,
    /// Of the denoised: images whose partner did not come, denoised by the single-contrast
    /// model of their contrast.
    pub images_alone: AtomicU64,
    /// Of the denoised: images guided by a kept partner slice of an earlier series (on this
    /// connection or another).
    pub images_paired_kept: AtomicU64,
    /// Images kept for partners to come (a gauge).
    pub images_kept: AtomicU64,
    /// Kept images let go before `pair_window_s` to stay within `pair_keep_mib`.
    pub images_kept_dropped: AtomicU64,
    pub images_undeliverable: AtomicU64,
    pub other_messages: AtomicU64,
    pub protocol_errors: AtomicU64,
    latencies: Mutex<VecDeque<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub connections: u64,
    pub connections_active: u64,
    pub connections_refused: u64,
    pub received: u64,
    pub denoised: u64,
    pub passed_through: u64,
    pub failed: u64,
    pub unpaired: u64,
    pub alone: u64,
    pub paired_kept: u64,
    pub kept: u64,
    pub kept_dropped: u64,
    pub undeliverable: u64,
    pub other_messages: u64,
    pub protocol_errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
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
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            connections: get(&self.connections),
            connections_active: get(&self.connections_active),
            connections_refused: get(&self.connections_refused),
            received: get(&self.images_received),
            denoised: get(&self.images_denoised),
            passed_through: get(&self.images_passed_through),
            failed: get(&self.images_failed),
            unpaired: get(&self.images_unpaired),
            alone: get(&self.images_alone),
            paired_kept: get(&self.images_paired_kept),
            kept: get(&self.images_kept),
            kept_dropped: get(&self.images_kept_dropped),
            undeliverable: get(&self.images_undeliverable),
            other_messages: get(&self.other_messages),
            protocol_errors: get(&self.protocol_errors),
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
            "connections {} ({} open, {} refused); images received {}, denoised {} ({} alone, \
             {} guided by a kept partner), passed through {}, failed {} ({} without a partner), \
             kept for partners {} ({} let go), undeliverable {}; latency p50 {}, p99 {}",
            self.connections,
            self.connections_active,
            self.connections_refused,
            self.received,
            self.denoised,
            self.alone,
            self.paired_kept,
            self.passed_through,
            self.failed,
            self.unpaired,
            self.kept,
            self.kept_dropped,
            self.undeliverable,
            ms(self.p50_ms),
            ms(self.p99_ms),
        )
    }

    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            metrics::write(&mut out, PREFIX, (Kind::Counter, name, help), v);
        };
        counter(
            "connections_total",
            "Client connections accepted.",
            self.connections,
        );
        counter(
            "connections_refused_total",
            "Connections turned away at max_connections or max_connections_per_peer.",
            self.connections_refused,
        );
        counter("images_received_total", "Images received.", self.received);
        counter(
            "images_denoised_total",
            "Images sent back denoised.",
            self.denoised,
        );
        counter(
            "images_passed_through_total",
            "Images sent back unchanged (not for the model).",
            self.passed_through,
        );
        counter(
            "images_failed_total",
            "Images sent back unchanged after a failed or late denoising.",
            self.failed,
        );
        counter(
            "images_unpaired_total",
            "Images for a guided model sent back unchanged: no partner image came.",
            self.unpaired,
        );
        counter(
            "images_alone_total",
            "Images for a guided model denoised by their contrast's single-contrast model: no partner image came.",
            self.alone,
        );
        counter(
            "images_paired_kept_total",
            "Images denoised with a kept partner slice of an earlier series as their guide.",
            self.paired_kept,
        );
        counter(
            "images_kept_dropped_total",
            "Images kept for partners let go before pair_window_s to stay within pair_keep_mib.",
            self.kept_dropped,
        );
        counter(
            "images_undeliverable_total",
            "Answers that could not be delivered: the client had gone, read nothing for write_timeout_s, or shutdown_grace_s ran out.",
            self.undeliverable,
        );
        counter(
            "protocol_errors_total",
            "Connections closed for a bad message.",
            self.protocol_errors,
        );
        let open = "Open client connections.";
        let kept = "Images kept for partner series to come.";
        metrics::write(
            &mut out,
            PREFIX,
            (Kind::Gauge, "connections_open", open),
            self.connections_active,
        );
        metrics::write(
            &mut out,
            PREFIX,
            (Kind::Gauge, "images_kept", kept),
            self.kept,
        );
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
