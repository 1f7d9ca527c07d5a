//! A run's progress: a bar on a terminal, a log line every 10 s otherwise.

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::output::metrics::Metrics;

/// Progress on a terminal (a bar) or in the log (a line every 10 s).
pub(super) struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
    last_log: Cell<Instant>,
}

impl Progress {
    pub(super) fn new() -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Progress {
            bar,
            started: Instant::now(),
            last_log: Cell::new(Instant::now()),
        }
    }

    pub(super) fn update(&self, (bytes, total): (u64, Option<u64>), metrics: &Metrics) {
        if let Some(total) = total {
            self.bar.set_length(total);
        }
        self.bar.set_position(bytes);
        let read = metrics.read.load(Relaxed);
        let rate = read as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let msg = format!(
            "{read} events, {} rejected, {rate:.0} events/s",
            metrics.rejected_total()
        );
        if self.bar.is_hidden() {
            if self.last_log.get().elapsed() >= Duration::from_secs(10) {
                self.last_log.set(Instant::now());
                tracing::info!(
                    events = read,
                    rejected = metrics.rejected_total(),
                    rate = rate as u64,
                    "progress"
                );
            }
        } else {
            self.bar.set_message(msg);
            self.bar.tick();
        }
    }

    pub(super) fn finish(self) {
        self.bar.finish_and_clear();
    }
}
