//! The engine of a backend in worker mode (`txclass.inference = 'worker'`): it sends token ids
//! to the shared inference workers through the queue (src/queue.rs) and waits for their
//! answers; it classifies in this backend (loading its own session) only when they do not
//! answer.
//!
//! * a request is cut into chunks that fit a slot; at most [`MAX_INFLIGHT`] slots are held at
//!   once, so a large batch cannot hold the whole queue (a full queue is back-pressure: the
//!   backend waits for a free slot);
//! * a waiting backend honours cancel and statement_timeout (its slots are given back: a slot
//!   a worker is running is abandoned and freed by the worker when done), and waits at most
//!   `txclass.worker_timeout` without progress. When no worker answers, it classifies in the
//!   backend with one WARNING (`txclass.worker_fallback = on`) or raises an ERROR; after a
//!   timeout it skips the workers for five seconds.
use crate::queue::{self, Failure, Poll, Queue, Request, CHECKSUM_BYTES, DIR_BYTES, LOGITS_CAP, MAX_INFLIGHT, SLOT_ROWS, SLOT_TOKENS};
use crate::settings;
use pgrx::pg_sys;
use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use txclass_core::{Engine, Error, ExecutionProvider, ModelDir, Options, OrtEngine, Prediction};

thread_local! {
    /// Whether this backend has warned that it classifies itself (reset when a worker answers).
    static WARNED: Cell<bool> = const { Cell::new(false) };
    /// Until when this backend skips the workers after one timed out.
    static SKIP_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
    static EXIT_HOOKED: Cell<bool> = const { Cell::new(false) };
    static NOTICED: Cell<bool> = const { Cell::new(false) };
    /// Whether this backend has warned that the workers run another execution provider.
    static PROVIDER_WARNED: Cell<bool> = const { Cell::new(false) };
}

/// The workers answered with `used` while this session asks for `wanted`: the workers' provider
/// is the server's setting, not the session's; one WARNING per backend says so.
fn warn_provider(wanted: ExecutionProvider, used: ExecutionProvider) {
    if wanted != used && !PROVIDER_WARNED.with(|w| w.replace(true)) {
        pgrx::warning!(
            "txclass.execution_provider = '{}' in this session, but the inference workers run the model with '{}': in worker mode \
             the workers' own setting applies, and a worker without a usable GPU says so in the server log and uses CPU \
             (ALTER SYSTEM SET txclass.execution_provider, then SELECT pg_reload_conf(): their next model load uses it); \
             SET txclass.inference = 'backend' runs this session's own",
            wanted.name(),
            used.name()
        );
    }
}

/// Whether worker mode can serve in this server (preloaded, workers configured).
pub fn available() -> bool {
    queue::queue().is_some()
}

/// `txclass.inference = 'worker'` where it cannot work: one NOTICE per backend.
pub fn notice_unavailable() {
    if !NOTICED.with(|n| n.replace(true)) {
        pgrx::notice!(
            "txclass.inference = 'worker' needs shared_preload_libraries = 'txclass' and txclass.workers > 0 at server start; \
             classifying in this backend (txclass.inference = 'backend')"
        );
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn backend_exit(_code: i32, _arg: pg_sys::Datum) {
    if let Some(q) = queue::queue() {
        // SAFETY: MyProcPid is this process's.
        q.give_back_all_of(unsafe { pg_sys::MyProcPid });
    }
}

/// Slots one request holds; given back however the request ends (an ERROR unwinding through
/// included: the queue's invariant 3).
struct Held {
    q: Queue,
    slots: Vec<(usize, usize)>, // (slot, chunk)
}

impl Held {
    fn release(&mut self, slot: usize) {
        self.q.give_back(|i| i == slot);
        self.slots.retain(|&(s, _)| s != slot);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.slots.is_empty() {
            self.q.give_back(|i| self.slots.iter().any(|&(s, _)| s == i));
        }
    }
}

/// Why the workers did not answer.
enum NoAnswer {
    /// No worker, a worker died, or the wait timed out: the backend may classify itself.
    Unavailable(String),
    /// The worker answered with an error about the model or the request: no fallback would help.
    Model(Error),
}

/// The engine of a backend in worker mode: sends token ids to the workers, and classifies in
/// this backend (loading its own session) only when they do not answer.
pub struct WorkerEngine {
    model: ModelDir,
    opts: Options,
    pad_id: i64,
    provider: ExecutionProvider,
    local: Option<OrtEngine>,
    served_by_worker: bool,
}

/// The engine for `model` in worker mode (for `Classifier::load_with`).
pub fn engine(model: &ModelDir, opts: &Options, pad_id: i64) -> Result<(Box<dyn Engine>, Vec<String>), Error> {
    if model.checksum.len() >= CHECKSUM_BYTES || model.path.as_os_str().len() >= DIR_BYTES {
        // cannot be named in a slot: serve from the backend
        return txclass_core::classifier::session_engine(model, opts, pad_id);
    }
    Ok((
        Box::new(WorkerEngine {
            model: model.clone(),
            opts: opts.clone(),
            pad_id,
            provider: ExecutionProvider::Cpu,
            local: None,
            served_by_worker: true,
        }),
        Vec::new(),
    ))
}

/// `ids` cut into runs of rows that fit a slot: at most `max_rows` rows and SLOT_TOKENS ids.
fn chunks(ids: &[&[u32]], max_rows: usize) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut tokens) = (0usize, 0usize);
    for (i, r) in ids.iter().enumerate() {
        let len = r.len().min(SLOT_TOKENS);
        if i > start && (i - start >= max_rows || tokens + len > SLOT_TOKENS) {
            chunks.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += len;
    }
    if start < ids.len() {
        chunks.push(start..ids.len());
    }
    chunks
}

impl WorkerEngine {
    fn local(&mut self) -> Result<&mut OrtEngine, Error> {
        if self.local.is_none() {
            let (e, warnings) = OrtEngine::load(&self.model, &self.opts, self.pad_id)?;
            for w in warnings {
                pgrx::warning!("{w}");
            }
            self.local = Some(e);
        }
        Ok(self.local.as_mut().expect("just loaded"))
    }

    /// Runs `ids` through the workers: top-1 of each row, and its logits when `want_logits`.
    fn through_workers(
        &mut self,
        ids: &[&[u32]],
        want_logits: bool,
        between_batches: &mut dyn FnMut(),
    ) -> Result<(Vec<Prediction>, Vec<f32>), NoAnswer> {
        let q = queue::queue().ok_or_else(|| NoAnswer::Unavailable("txclass is not preloaded".into()))?;
        if let Some(t) = SKIP_UNTIL.with(|s| s.get()) {
            if Instant::now() < t {
                return Err(NoAnswer::Unavailable("an inference worker timed out moments ago".into()));
            }
            SKIP_UNTIL.with(|s| s.set(None));
        }
        if q.alive_workers() == 0 {
            return Err(NoAnswer::Unavailable("no inference worker is running".into()));
        }
        if !EXIT_HOOKED.with(|h| h.replace(true)) {
            // SAFETY: registers a callback that frees this backend's slots at exit.
            unsafe { pg_sys::before_shmem_exit(Some(backend_exit), pg_sys::Datum::from(0)) };
        }
        let n_labels = self.model.labels.len();
        let max_rows = if want_logits { (LOGITS_CAP / n_labels.max(1)).clamp(1, SLOT_ROWS) } else { SLOT_ROWS };
        let chunks = chunks(ids, max_rows);
        let mut preds = vec![Prediction { label: 0, confidence: 0.0 }; ids.len()];
        let mut logits = if want_logits { vec![0f32; ids.len() * n_labels] } else { Vec::new() };
        let timeout = settings::worker_timeout();
        let mut deadline = Instant::now() + timeout;
        let mut held = Held { q, slots: Vec::new() };
        let (mut next, mut done) = (0usize, 0usize);
        let dir = self.model.path.display().to_string();
        while done < chunks.len() {
            // submit what fits
            let mut submitted = false;
            while held.slots.len() < MAX_INFLIGHT && next < chunks.len() {
                let Some(i) = q.claim() else { break };
                held.slots.push((i, next));
                q.fill(
                    i,
                    &Request {
                        rows: &ids[chunks[next].clone()],
                        want_logits,
                        n_labels,
                        pad_id: self.pad_id,
                        dir: &dir,
                        checksum: &self.model.checksum,
                    },
                );
                q.submit(i);
                next += 1;
                submitted = true;
            }
            if submitted {
                q.wake_idle_workers();
            }
            if held.slots.is_empty() {
                // queue full: wait for a free slot (back-pressure, not an error)
                q.header().queue_full.fetch_add(1, Relaxed);
                if Instant::now() > deadline {
                    q.stop_sleeping();
                    return Err(NoAnswer::Unavailable(format!(
                        "no slot of the inference queue came free within txclass.worker_timeout = {} ms",
                        timeout.as_millis()
                    )));
                }
                q.sleep_for_free_slot();
                continue;
            }
            q.stop_sleeping();
            // collect what finished
            let mut progressed = false;
            for (i, chunk) in held.slots.clone() {
                let c = chunks[chunk].clone();
                let l = want_logits.then(|| &mut logits[c.start * n_labels..c.end * n_labels]);
                match q.poll(i, &mut preds[c], l) {
                    Poll::Done(provider) => {
                        warn_provider(self.opts.provider, provider);
                        self.provider = provider;
                        held.release(i);
                        done += 1;
                        progressed = true;
                    }
                    Poll::Failed(failure, kind, message, hint) => {
                        held.release(i);
                        return Err(match failure {
                            Failure::Worker | Failure::None => NoAnswer::Unavailable(message),
                            Failure::Model => NoAnswer::Model(Error {
                                kind,
                                message,
                                hint: hint.or_else(|| Some("check the model directory (txclass.inspect_model) and the server log".into())),
                            }),
                        });
                    }
                    Poll::WorkerGone => {
                        return Err(NoAnswer::Unavailable("the inference worker running this request exited".into()));
                    }
                    Poll::Waiting => {}
                }
            }
            if progressed {
                deadline = Instant::now() + timeout;
                between_batches();
                continue;
            }
            if q.alive_workers() == 0 {
                return Err(NoAnswer::Unavailable("no inference worker is running".into()));
            }
            let now = Instant::now();
            if now > deadline {
                SKIP_UNTIL.with(|s| s.set(Some(now + Duration::from_secs(5))));
                return Err(NoAnswer::Unavailable(format!(
                    "no inference worker answered within txclass.worker_timeout = {} ms",
                    timeout.as_millis()
                )));
            }
            let wait = (deadline - now).min(Duration::from_millis(100)).as_millis().max(1) as std::ffi::c_long;
            // SAFETY: waits on this backend's latch, which the worker sets when a slot is done.
            unsafe {
                pg_sys::WaitLatch(
                    pg_sys::MyLatch,
                    (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                    wait,
                    pg_sys::PG_WAIT_EXTENSION,
                );
                pg_sys::ResetLatch(pg_sys::MyLatch);
            }
            crate::interrupt::check();
        }
        Ok((preds, logits))
    }

    /// What to do when the workers did not answer: the backend's own session (one WARNING) or
    /// an ERROR (txclass.worker_fallback = off).
    fn fall_back(&mut self, reason: String) -> Result<&mut OrtEngine, Error> {
        if let Some(q) = queue::queue() {
            q.header().fallbacks.fetch_add(1, Relaxed);
        }
        if !settings::worker_fallback() {
            return Err(Error::runtime(
                format!("txclass: {reason}"),
                Some(
                    "see txclass.worker_stats and the server log; txclass.worker_fallback = on classifies in the backend \
                     meanwhile"
                        .into(),
                ),
            ));
        }
        if !WARNED.with(|w| w.replace(true)) {
            pgrx::warning!(
                "txclass: {reason}; this backend classifies with its own ONNX Runtime session until a worker answers again \
                 (txclass.worker_fallback = on; see txclass.worker_stats)"
            );
        }
        self.served_by_worker = false;
        self.local()
    }

    fn answered(&mut self) {
        self.served_by_worker = true;
        WARNED.with(|w| w.set(false));
    }
}

impl Engine for WorkerEngine {
    fn logits(&mut self, ids: &[&[u32]], batch_size: usize, between_batches: &mut dyn FnMut()) -> Result<Vec<f32>, Error> {
        if self.model.labels.len() > LOGITS_CAP {
            return self.local()?.logits(ids, batch_size, between_batches);
        }
        match self.through_workers(ids, true, between_batches) {
            Ok((_, l)) => {
                self.answered();
                Ok(l)
            }
            Err(NoAnswer::Model(e)) => Err(e),
            Err(NoAnswer::Unavailable(reason)) => self.fall_back(reason)?.logits(ids, batch_size, between_batches),
        }
    }

    fn top1(&mut self, ids: &[&[u32]], batch_size: usize, between_batches: &mut dyn FnMut()) -> Result<Vec<Prediction>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.through_workers(ids, false, between_batches) {
            Ok((p, _)) => {
                self.answered();
                Ok(p)
            }
            Err(NoAnswer::Model(e)) => Err(e),
            Err(NoAnswer::Unavailable(reason)) => self.fall_back(reason)?.top1(ids, batch_size, between_batches),
        }
    }

    fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    fn mode(&self) -> String {
        if self.served_by_worker { "worker" } else { "backend (worker fallback)" }.to_string()
    }

    /// The worker validates what it loads (OrtEngine::load: inputs, output width) and checks
    /// each slot's label count, so a backend's load sends no smoke request.
    fn checked_by_runner(&self) -> bool {
        true
    }
}
