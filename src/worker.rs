//! The shared inference worker process: one copy of each model per worker instead of one per
//! connection, and cache misses from every backend batched together.
//!
//! With `txclass.inference = 'worker'` a backend still normalizes, applies the rules, looks the
//! cache up and tokenizes the misses (all cheap, in parallel across backends); what it sends
//! the workers is token ids, through the queue in shared memory (src/queue.rs: its layout,
//! states and invariants). The backend's side is src/worker_engine.rs. A worker:
//!
//! * takes every submitted slot it can within `txclass.worker_batch_tokens` (small requests
//!   first, then by age), groups their rows by model and token length, runs them, writes top-1
//!   (or full logits when asked) into the slots and wakes each requester. Idle, it sleeps on its
//!   latch: a lone request runs at once, requests arriving during a run form the next;
//! * keeps sessions per model identity (`txclass.worker_models`, least recently used dropped),
//!   verifies the checksum of the files it loads, and never answers with another model's
//!   session;
//! * restarts after a second when it exits (its running slots fail over to the backends).
use crate::queue::{self, Failure, Queue};
use crate::settings;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use txclass_core::prediction::top_1;
use txclass_core::{Engine, Error, ErrorKind, Options, OrtEngine};

/// From `_PG_init`: when preloading, registers `txclass.workers` background workers.
pub fn init() {
    if !crate::shmem::preloading() {
        return;
    }
    for i in 0..settings::workers() {
        BackgroundWorkerBuilder::new(&format!("txclass inference worker {i}"))
            .set_type("txclass inference worker")
            .set_library("txclass")
            .set_function("txclass_worker_main")
            .set_argument(Some(pg_sys::Datum::from(i)))
            .enable_shmem_access(None)
            .set_start_time(BgWorkerStartTime::PostmasterStart)
            .set_restart_time(Some(Duration::from_secs(1)))
            .load();
    }
}

/// One loaded session of a worker.
struct Loaded {
    dir: String,
    checksum: String,
    engine: OrtEngine,
}

/// The background worker's entry point (registered in [`init`]).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn txclass_worker_main(arg: pg_sys::Datum) {
    let idx = arg.value().min(queue::MAX_WORKERS - 1);
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let Some(q) = queue::queue() else {
        log!("txclass inference worker {idx}: no queue in shared memory; exiting");
        return;
    };
    q.worker_started(idx);
    let me = q.worker(idx);
    let mut sessions: Vec<Loaded> = Vec::new();
    let mut after_run = false;
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the standard reload in a background worker's main loop.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let taken = q.take(idx, settings::worker_batch_tokens(), after_run);
        after_run = !taken.is_empty();
        if taken.is_empty() {
            if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
                break;
            }
            continue;
        }
        let t = Instant::now();
        let onnx_runs = run(&q, &taken, &mut sessions);
        me.busy_us.fetch_add(t.elapsed().as_micros() as u64, Relaxed);
        me.passes.fetch_add(1, Relaxed);
        me.onnx_runs.fetch_add(onnx_runs, Relaxed);
        me.requests.fetch_add(taken.len() as u64, Relaxed);
        me.models.store(sessions.len() as u64, Relaxed);
        q.finish(idx, &taken);
    }
    // exit code 1: the postmaster restarts a worker that someone terminated (not at shutdown)
    // SAFETY: ends the process through Postgres's exit path (callbacks run).
    unsafe { pg_sys::proc_exit(1) };
}

/// Runs the rows of `taken`, grouped by model; returns the ONNX Runtime runs made. A group that
/// fails fails its slots (the model's fault, or the worker's when it panicked).
fn run(q: &Queue, taken: &[usize], sessions: &mut Vec<Loaded>) -> u64 {
    let mut onnx_runs = 0u64;
    let mut groups: Vec<((String, String, i64), Vec<usize>)> = Vec::new();
    for &i in taken {
        let t = q.taken(i);
        let id = (t.dir, t.checksum, t.pad_id);
        match groups.iter_mut().find(|(k, _)| *k == id) {
            Some((_, v)) => v.push(i),
            None => groups.push((id, vec![i])),
        }
    }
    for ((dir, checksum, pad_id), slots) in groups {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let engine = session(sessions, &dir, &checksum, pad_id)?;
            run_group(q, &slots, engine, &mut onnx_runs)
        }));
        let (failure, kind, message, hint) = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => (Failure::Model, e.kind, e.message, e.hint),
            Err(p) => (
                Failure::Worker,
                ErrorKind::Runtime,
                format!(
                    "the inference worker failed: {}",
                    p.downcast_ref::<String>().map(String::as_str).or_else(|| p.downcast_ref::<&str>().copied()).unwrap_or("panic")
                ),
                None,
            ),
        };
        for &i in &slots {
            q.fail(i, failure, kind, &message, hint.as_deref());
        }
    }
    onnx_runs
}

/// Runs the rows of `slots` (one model) through `engine`, in length-bucketed batches.
fn run_group(q: &Queue, slots: &[usize], engine: &mut OrtEngine, onnx_runs: &mut u64) -> Result<(), Error> {
    let n = engine.n_labels();
    let provider = engine.provider();
    // (slot, row) of every row, and its ids, straight from shared memory
    let mut at: Vec<(usize, usize)> = Vec::new();
    let mut ids: Vec<&[u32]> = Vec::new();
    for &i in slots {
        let t = q.taken(i);
        if t.n_labels != n {
            q.fail(
                i,
                Failure::Model,
                ErrorKind::Config,
                &format!("model {}/model.onnx has {n} outputs but the requesting backend's config.json lists {} labels", t.dir, t.n_labels),
                Some("the ONNX file and config.json come from different exports, or the files changed under the server; export them together"),
            );
            continue;
        }
        for (r, row) in t.rows.into_iter().enumerate() {
            ids.push(row);
            at.push((i, r));
        }
    }
    let batch_size = settings::batch_size();
    let temperature = engine.temperature();
    engine.for_each(&ids, batch_size, &mut || *onnx_runs += 1, &mut |k, logits| {
        let (i, r) = at[k];
        q.answer(i, r, top_1(logits, temperature), logits, provider);
    })
}

/// The session for (dir, checksum): a loaded one, or a new one when the files there have that
/// checksum. The least recently used session goes when txclass.worker_models are loaded.
fn session<'a>(sessions: &'a mut Vec<Loaded>, dir: &str, checksum: &str, pad_id: i64) -> Result<&'a mut OrtEngine, Error> {
    if let Some(k) = sessions.iter().position(|l| l.dir == dir && l.checksum == checksum) {
        let l = sessions.remove(k);
        sessions.push(l);
        return Ok(&mut sessions.last_mut().expect("just pushed").engine);
    }
    let model = crate::identity::open(Path::new(dir))?;
    if model.checksum != checksum {
        return Err(Error::changed(
            format!(
                "the model files in {dir} changed: their checksum is now {}…, the backend asked for {}…",
                &model.checksum[..12],
                &checksum[..checksum.len().min(12)]
            ),
            "registered models are immutable: restore the files, or register the new files under a new name",
        ));
    }
    let keep = settings::worker_models();
    if sessions.len() >= keep {
        while sessions.len() >= keep {
            sessions.remove(0); // drop before loading: never more than worker_models in memory
        }
        // what the dropped sessions held leaves the process, not only the session
        txclass_core::memory::release_freed();
    }
    let opts = Options {
        onnxruntime_library: settings::onnxruntime_library(),
        provider: settings::options().provider,
        intra_op_threads: settings::worker_threads(),
        max_length: 512,
        batch_size: settings::batch_size(),
    };
    let t = Instant::now();
    let (engine, warnings) = OrtEngine::load(&model, &opts, pad_id)?;
    for w in warnings {
        pgrx::warning!("txclass inference worker: {w}");
    }
    log!(
        "txclass inference worker loaded {} ({} labels, {} threads, {:.0} ms)",
        model.identity(),
        model.labels.len(),
        opts.intra_op_threads,
        t.elapsed().as_secs_f64() * 1e3
    );
    sessions.push(Loaded { dir: dir.to_string(), checksum: checksum.to_string(), engine });
    Ok(&mut sessions.last_mut().expect("just pushed").engine)
}
