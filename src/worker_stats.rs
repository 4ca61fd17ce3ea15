//! Monitoring of the shared inference workers in SQL: `txclass.worker_stats` (one row per
//! worker) and `txclass.worker_stats_reset()`. Reads the counters the queue's header holds
//! (src/queue.rs); changes no slot.
use crate::queue::{self, now_us, HIST, MAX_WORKERS};
use crate::settings;
use pgrx::prelude::*;
use std::sync::atomic::Ordering::Relaxed;

fn percentile(hist: &[u64; HIST], p: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let want = (p * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (b, &c) in hist.iter().enumerate() {
        seen += c;
        if seen >= want {
            // the bucket's geometric middle, in milliseconds
            return Some((1u64 << b) as f64 * std::f64::consts::SQRT_2 / 1000.0);
        }
    }
    None
}

/// Per inference worker: process, models loaded, requests (slots answered), rows, runs (passes:
/// times it took what was queued and ran it), ONNX Runtime batches those passes made, mean rows
/// per pass, queue wait p50/p99 (ms, from a log2 histogram), busy share since it started (or
/// since the last reset), restarts; and the fallbacks and queue-full waits backends saw. Read
/// through the view txclass.worker_stats.
#[pg_extern(volatile, parallel_safe)]
fn worker_info() -> TableIterator<
    'static,
    (
        name!(worker, i32),
        name!(pid, Option<i32>),
        name!(started_at, Option<pgrx::datum::TimestampWithTimeZone>),
        name!(models_loaded, i64),
        name!(requests, i64),
        name!(rows, i64),
        name!(runs, i64),
        name!(onnx_batches, i64),
        name!(mean_rows_per_run, Option<f64>),
        name!(queue_wait_p50_ms, Option<f64>),
        name!(queue_wait_p99_ms, Option<f64>),
        name!(busy_share, Option<f64>),
        name!(restarts, i64),
        name!(backend_fallbacks, i64),
        name!(queue_full_waits, i64),
        name!(slots_busy, i64),
    ),
> {
    let Some(q) = queue::queue() else { return TableIterator::new(Vec::new()) };
    let workers = settings::workers();
    let h = q.header();
    let now = now_us();
    let busy = q.busy_slots() as i64;
    let rows = (0..workers)
        .map(|i| {
            let w = q.worker(i);
            let pid = w.pid.load(Relaxed);
            let started = w.started_at.load(Relaxed);
            let hist: [u64; HIST] = std::array::from_fn(|b| w.wait_hist[b].load(Relaxed));
            let passes = w.passes.load(Relaxed);
            let rows = w.rows.load(Relaxed);
            let alive_us = (now - started).max(1) as f64;
            (
                i as i32,
                (pid != 0).then_some(pid),
                (started != 0).then(|| pgrx::datum::TimestampWithTimeZone::try_from(started).ok()).flatten(),
                w.models.load(Relaxed) as i64,
                w.requests.load(Relaxed) as i64,
                rows as i64,
                passes as i64,
                w.onnx_runs.load(Relaxed) as i64,
                (passes > 0).then(|| rows as f64 / passes as f64),
                percentile(&hist, 0.5),
                percentile(&hist, 0.99),
                (started != 0).then(|| (w.busy_us.load(Relaxed) as f64 / alive_us).min(1.0)),
                w.starts.load(Relaxed).saturating_sub(1) as i64,
                h.fallbacks.load(Relaxed) as i64,
                h.queue_full.load(Relaxed) as i64,
                busy,
            )
        })
        .collect::<Vec<_>>();
    TableIterator::new(rows)
}

/// Zeroes the workers' counters and histograms (not restarts; busy share counts from the
/// reset) and the backends' fallback and queue-full counts. Superusers only, unless granted.
#[pg_extern(volatile, parallel_unsafe)]
fn worker_stats_reset() {
    let Some(q) = queue::queue() else { return };
    for i in 0..MAX_WORKERS {
        let w = q.worker(i);
        for c in [&w.requests, &w.rows, &w.passes, &w.onnx_runs, &w.busy_us] {
            c.store(0, Relaxed);
        }
        for b in &w.wait_hist {
            b.store(0, Relaxed);
        }
        w.started_at.store(now_us(), Relaxed); // busy share counts from here
    }
    let h = q.header();
    h.fallbacks.store(0, Relaxed);
    h.queue_full.store(0, Relaxed);
}

pgrx::extension_sql!(
    r#"
REVOKE ALL ON FUNCTION txclass.worker_stats_reset() FROM PUBLIC;
CREATE VIEW txclass.worker_stats AS SELECT * FROM txclass.worker_info();
COMMENT ON VIEW txclass.worker_stats IS 'Shared inference workers (txclass.inference = worker): one row per worker.';
"#,
    name = "worker_stats",
    requires = [worker_info, worker_stats_reset]
);
