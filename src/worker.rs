//! Shared inference workers: one copy of each model per worker process instead of one per
//! connection, and cache misses from every backend batched together.
//!
//! With `txclass.inference = 'worker'` a backend still normalizes, applies the rules, looks the
//! cache up and tokenizes the misses (all cheap, in parallel across backends); what it sends
//! the workers is token ids, through a queue in shared memory (no sockets, no serialization):
//!
//! * the queue is `txclass.worker_queue_slots` fixed slots; a backend claims free slots (at most
//!   [`MAX_INFLIGHT`] per request, so a large batch cannot hold the whole queue), writes up to
//!   [`SLOT_ROWS`] rows of ids into each, marks it submitted and sets the workers' latches;
//! * a worker takes every submitted slot it can within `txclass.worker_batch_tokens` (small
//!   requests first, then by age), groups their rows by model and token length, runs them, writes
//!   top-1 (or full logits when asked) into the slots and sets each requester's latch. Idle, it
//!   sleeps on its latch: a lone request runs at once, requests arriving during a run form the next;
//! * every slot names its model by directory and checksum. A worker keeps sessions per
//!   identity (`txclass.worker_models`, least recently used dropped), verifies the checksum of
//!   the files it loads, and never answers with another model's session;
//! * a waiting backend honours cancel and statement_timeout (its slots are reclaimed: a slot a
//!   worker is running is marked abandoned and freed by the worker when done), and waits at most
//!   `txclass.worker_timeout` without progress. When no worker answers, it classifies in the
//!   backend with one WARNING (`txclass.worker_fallback = on`) or raises an ERROR.
//!
//! Slot states change only under the tranche's lock; a slot's contents are written by exactly
//! one side at a time (the backend while filling, the worker while running), so the bulk data
//! is copied without the lock.
use crate::settings;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use crate::shmem::{copy_in, copy_out};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::time::{Duration, Instant};
use txclass_core::classifier::top_1;
use txclass_core::{Engine, Error, ExecutionProvider, ModelDir, Options, OrtEngine, Prediction};

/// Most worker processes (`txclass.workers`).
pub const MAX_WORKERS: usize = 16;
/// Most rows in one slot.
pub const SLOT_ROWS: usize = 128;
/// Most token ids in one slot (a row has at most txclass.max_length <= 512).
pub const SLOT_TOKENS: usize = 8192;
/// Most logits one slot returns (rows x labels); wider models get top-1 through the worker and
/// full logits from the backend's own session.
pub const LOGITS_CAP: usize = 16384;
/// Slots one request holds at once: a large batch keeps a worker busy without holding the queue.
pub const MAX_INFLIGHT: usize = 4;
/// Requests of at most this many rows are taken before larger ones.
const SMALL_ROWS: u32 = 8;
const DIR_BYTES: usize = 1024;
const CHECKSUM_BYTES: usize = 72;
const ERROR_BYTES: usize = 1024;
/// Queue-wait histogram: bucket b counts waits of [2^b, 2^(b+1)) microseconds.
const HIST: usize = 40;

pub const TRANCHE: crate::shmem::Tranche = crate::shmem::Tranche { name: c"txclass worker", locks: 1 };

// slot states
const FREE: u32 = 0;
const FILLING: u32 = 1;
const SUBMITTED: u32 = 2;
const RUNNING: u32 = 3;
const DONE: u32 = 4;
const FAILED: u32 = 5;
/// Running, but the requester left (cancel, timeout, exit): the worker frees it when done.
const ABANDONED: u32 = 6;

// why a slot FAILED (Slot::failure)
const NO_FAILURE: u32 = 0;
/// The model or the request is at fault: a backend session would fail the same way.
const MODEL_FAILURE: u32 = 1;
/// The worker itself failed (exited, panicked): the backend may classify itself.
const WORKER_FAILURE: u32 = 2;

#[repr(C)]
struct WorkerState {
    pid: AtomicI32,
    procno: AtomicI32,
    starts: AtomicU64,
    started_at: AtomicI64,
    models: AtomicU64,
    requests: AtomicU64,
    rows: AtomicU64,
    runs: AtomicU64,
    batches: AtomicU64,
    busy_us: AtomicU64,
    load_failures: AtomicU64,
    /// 1 while this worker runs what it took (set and read under the queue lock).
    running: AtomicU32,
    wait_hist: [AtomicU64; HIST],
}

#[repr(C)]
struct Header {
    n_slots: u64,
    seq: AtomicU64,
    /// Times a backend classified itself because no worker answered.
    fallbacks: AtomicU64,
    /// Times a backend waited for a free slot (queue full).
    queue_full: AtomicU64,
    stats_reset: AtomicI64,
    slot_freed: pg_sys::ConditionVariable,
    workers: [WorkerState; MAX_WORKERS],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Out {
    label: u32,
    confidence: f32,
}

#[repr(C)]
struct Slot {
    /// Written only under the queue lock; read without it where a stale value is harmless.
    state: AtomicU32,
    want_logits: u32,
    rows: u32,
    tokens: u32,
    n_labels: u32,
    /// 0: cpu, 1: cuda (what the worker's session runs on)
    provider: u32,
    /// NO_FAILURE, MODEL_FAILURE or WORKER_FAILURE (with `error`), set by the worker.
    failure: u32,
    owner_procno: i32,
    owner_pid: i32,
    worker: i32,
    worker_pid: i32,
    pad_id: i64,
    seq: u64,
    submitted_at: i64,
    dir: [u8; DIR_BYTES],
    checksum: [u8; CHECKSUM_BYTES],
    error: [u8; ERROR_BYTES],
    lengths: [u16; SLOT_ROWS],
    out: [Out; SLOT_ROWS],
    ids: [u32; SLOT_TOKENS],
    logits: [f32; LOGITS_CAP],
}

static mut N_SLOTS: usize = 0;
static mut HEADER: *mut Header = std::ptr::null_mut();
static mut SLOTS: *mut Slot = std::ptr::null_mut();
static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();

pub fn shmem_size() -> usize {
    // SAFETY: N_SLOTS is written once in _PG_init (postmaster, single-threaded).
    std::mem::size_of::<Header>().div_ceil(64) * 64 + unsafe { N_SLOTS } * std::mem::size_of::<Slot>()
}

/// From `_PG_init`: when preloading, sizes the queue and registers the workers.
pub fn init() {
    if !crate::shmem::preloading() {
        return;
    }
    let workers = settings::workers();
    // SAFETY: _PG_init runs single-threaded before shared memory is requested.
    unsafe { N_SLOTS = if workers == 0 { 0 } else { settings::worker_queue_slots() } };
    for i in 0..workers {
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

/// From the shmem startup hook (AddinShmemInitLock held).
pub unsafe fn shmem_startup() {
    // SAFETY: the caller holds AddinShmemInitLock; the struct is ours, sized by shmem_size().
    unsafe {
        if N_SLOTS == 0 {
            return;
        }
        let (base, found) = crate::shmem::init_struct(c"txclass inference queue", shmem_size());
        let h = base as *mut Header;
        if !found {
            (*h).n_slots = N_SLOTS as u64;
            (*h).stats_reset.store(pg_sys::GetCurrentTimestamp(), Relaxed);
            pg_sys::ConditionVariableInit(std::ptr::addr_of_mut!((*h).slot_freed));
        }
        HEADER = h;
        SLOTS = base.add(std::mem::size_of::<Header>().div_ceil(64) * 64) as *mut Slot;
        LOCK = crate::shmem::lock(TRANCHE.name, 0);
    }
}

/// The queue, when the server started with txclass preloaded and workers configured.
fn queue() -> Option<Queue> {
    // SAFETY: set once at start-up (inherited through fork), never changed after.
    unsafe {
        if HEADER.is_null() || SLOTS.is_null() || LOCK.is_null() {
            None
        } else {
            Some(Queue { header: HEADER, slots: SLOTS, n: (*HEADER).n_slots as usize })
        }
    }
}

#[derive(Clone, Copy)]
struct Queue {
    header: *mut Header,
    slots: *mut Slot,
    n: usize,
}

/// The queue lock, released on drop (also when an ERROR unwinds through).
struct Locked;
impl Locked {
    fn exclusive() -> Locked {
        // SAFETY: LOCK is a valid LWLock of our tranche once queue() returned Some.
        unsafe { pg_sys::LWLockAcquire(LOCK, pg_sys::LWLockMode::LW_EXCLUSIVE) };
        Locked
    }
}
impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: acquired in exclusive().
        unsafe { pg_sys::LWLockRelease(LOCK) };
    }
}

impl Queue {
    fn header(&self) -> &Header {
        // SAFETY: the header lives for the server's life; its shared fields are atomics.
        unsafe { &*self.header }
    }
    fn worker(&self, i: usize) -> &WorkerState {
        &self.header().workers[i]
    }
    /// A slot's raw pointer: fields are read and written through it (never through `&Slot`
    /// held across a state change).
    fn slot(&self, i: usize) -> *mut Slot {
        debug_assert!(i < self.n);
        // SAFETY: i < n, and the slots array holds n slots.
        unsafe { self.slots.add(i) }
    }
    fn slot_freed(&self) -> *mut pg_sys::ConditionVariable {
        // SAFETY: initialised at start-up; ConditionVariable functions take it by pointer.
        unsafe { std::ptr::addr_of_mut!((*self.header).slot_freed) }
    }
    fn alive_workers(&self) -> usize {
        (0..MAX_WORKERS).filter(|&i| self.worker(i).pid.load(Relaxed) != 0).count()
    }
    /// Wakes as many idle workers as there are submitted slots waiting, lowest number first. A
    /// lone request wakes one worker, the same one while the load is light (its caches hold
    /// the model's weights: waking every worker let them take turns, each with cold caches,
    /// and a lone MiniLM request took 1.6x as long as in the backend); a large request wakes
    /// every idle worker. A running worker is not woken: it takes what is queued when it
    /// finishes (the flags are read under the lock that submission and take() hold).
    fn wake_idle_workers(&self) {
        let mut wake = [-1i32; MAX_WORKERS];
        {
            let _l = Locked::exclusive();
            // SAFETY: states are read under the lock.
            let mut waiting = (0..self.n).filter(|&i| unsafe { (*self.slot(i)).state.load(Acquire) } == SUBMITTED).count();
            for (i, to) in wake.iter_mut().enumerate() {
                let w = self.worker(i);
                if waiting == 0 {
                    break;
                }
                if w.pid.load(Relaxed) != 0 && w.running.load(Relaxed) == 0 {
                    *to = w.procno.load(Relaxed);
                    waiting -= 1;
                }
            }
        }
        for procno in wake.into_iter().filter(|&p| p >= 0) {
            set_latch(procno);
        }
    }
}

/// This process's PGPROC number, the index of MyProc in ProcGlobal->allProcs (PostgreSQL 17
/// dropped the `pgprocno` field for GetNumberFromPGProc, which is this subtraction).
fn my_procno() -> i32 {
    // SAFETY: MyProc points into ProcGlobal->allProcs for every backend and background worker
    #[cfg(not(feature = "pg18"))]
    let n = unsafe { (*pg_sys::MyProc).pgprocno };
    #[cfg(feature = "pg18")]
    let n = unsafe { pg_sys::MyProc.offset_from((*pg_sys::ProcGlobal).allProcs) as i32 };
    n
}

fn set_latch(procno: i32) {
    if procno < 0 {
        return;
    }
    // SAFETY: procno is a PGPROC number recorded by a live process; allProcs has room for
    // every one, and SetLatch is safe to call on any process's latch.
    unsafe {
        let proc = (*pg_sys::ProcGlobal).allProcs.add(procno as usize);
        pg_sys::SetLatch(std::ptr::addr_of_mut!((*proc).procLatch));
    }
}


fn now_us() -> i64 {
    // SAFETY: reads the clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

// ================================ the worker process =========================================

/// One loaded session of a worker.
struct Loaded {
    dir: String,
    checksum: String,
    engine: OrtEngine,
}

#[pg_guard]
unsafe extern "C-unwind" fn worker_exit(_code: i32, arg: pg_sys::Datum) {
    let idx = arg.value();
    let Some(q) = queue() else { return };
    let me = q.worker(idx);
    // slots this worker was running: failed, and their requesters told
    let _l = Locked::exclusive();
    let pid = me.pid.load(Relaxed);
    for i in 0..q.n {
        let s = q.slot(i);
        // SAFETY: states change under the lock we hold.
        unsafe {
            if (*s).worker_pid == pid && ((*s).state.load(Acquire) == RUNNING || (*s).state.load(Acquire) == ABANDONED) {
                if (*s).state.load(Acquire) == ABANDONED {
                    (*s).state.store(FREE, Release);
                } else {
                    copy_in(&mut (*s).error, "the inference worker exited while running this request");
                    (*s).failure = WORKER_FAILURE;
                    (*s).state.store(FAILED, Release);
                    set_latch((*s).owner_procno);
                }
            }
        }
    }
    me.pid.store(0, Relaxed);
    me.procno.store(-1, Relaxed);
    me.running.store(0, Relaxed);
    // SAFETY: wakes anyone waiting for a slot.
    unsafe { pg_sys::ConditionVariableBroadcast(q.slot_freed()) };
}

/// The background worker's entry point (registered in [`init`]).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn txclass_worker_main(arg: pg_sys::Datum) {
    let idx = arg.value().min(MAX_WORKERS - 1);
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let Some(q) = queue() else {
        log!("txclass inference worker {idx}: no queue in shared memory; exiting");
        return;
    };
    let me = q.worker(idx);
    // SAFETY: MyProc and MyProcPid are this process's; before_shmem_exit runs at any exit
    // but a crash (after which the postmaster re-creates shared memory).
    unsafe {
        me.procno.store(my_procno(), Relaxed);
        me.pid.store(pg_sys::MyProcPid, Relaxed);
        pg_sys::before_shmem_exit(Some(worker_exit), pg_sys::Datum::from(idx));
    }
    me.starts.fetch_add(1, Relaxed);
    me.started_at.store(now_us(), Relaxed);
    me.models.store(0, Relaxed);
    me.running.store(0, Relaxed);
    let mut sessions: Vec<Loaded> = Vec::new();
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the standard reload in a background worker's main loop.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let taken = take(&q, idx);
        if taken.is_empty() {
            if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
                break;
            }
            continue;
        }
        let t = Instant::now();
        let batches = run(&q, &taken, &mut sessions);
        me.busy_us.fetch_add(t.elapsed().as_micros() as u64, Relaxed);
        me.runs.fetch_add(1, Relaxed);
        me.batches.fetch_add(batches, Relaxed);
        me.requests.fetch_add(taken.len() as u64, Relaxed);
        me.models.store(sessions.len() as u64, Relaxed);
        finish(&q, &taken);
        {
            let _l = Locked::exclusive();
            me.running.store(0, Relaxed);
        }
    }
    // exit code 1: the postmaster restarts a worker that someone terminated (not at shutdown)
    // SAFETY: ends the process through Postgres's exit path (callbacks run).
    unsafe { pg_sys::proc_exit(1) };
}

/// Marks the slots this worker runs next: small requests first, then by age, within the token
/// budget (at least one slot), and no more than its share when other workers are idle: the
/// slots of one large request (a classify_batch, a statement flush) are run by every idle
/// worker at once, not by the first one awake.
fn take(q: &Queue, idx: usize) -> Vec<usize> {
    let budget = settings::worker_batch_tokens();
    let me = q.worker(idx);
    let _l = Locked::exclusive();
    let mut ready: Vec<(bool, u64, usize, u64)> = Vec::new();
    for i in 0..q.n {
        let s = q.slot(i);
        // SAFETY: states are read under the lock.
        unsafe {
            if (*s).state.load(Acquire) == SUBMITTED {
                ready.push(((*s).rows > SMALL_ROWS, (*s).seq, i, (*s).tokens as u64));
            }
        }
    }
    ready.sort_unstable();
    // this worker and the others that are up and not running (it is not running: it is here)
    let idle = (0..MAX_WORKERS)
        .filter(|&w| w == idx || (q.worker(w).pid.load(Relaxed) != 0 && q.worker(w).running.load(Relaxed) == 0))
        .count()
        .max(1);
    ready.truncate(ready.len().div_ceil(idle));
    let mut taken = Vec::new();
    let mut tokens = 0u64;
    let now = now_us();
    let pid = me.pid.load(Relaxed);
    for (_, _, i, t) in ready {
        if !taken.is_empty() && tokens + t > budget {
            break;
        }
        tokens += t;
        let s = q.slot(i);
        // SAFETY: state change under the lock; the slot is now this worker's to read and write.
        unsafe {
            (*s).state.store(RUNNING, Release);
            (*s).worker = idx as i32;
            (*s).worker_pid = pid;
            let wait = (now - (*s).submitted_at).max(1) as u64;
            me.wait_hist[(63 - wait.leading_zeros() as usize).min(HIST - 1)].fetch_add(1, Relaxed);
            me.rows.fetch_add((*s).rows as u64, Relaxed);
        }
        taken.push(i);
    }
    if !taken.is_empty() {
        me.running.store(1, Relaxed);
    }
    taken
}

fn fail(s: *mut Slot, failure: u32, message: &str) {
    // SAFETY: the slot is RUNNING and this worker's: only it writes the slot now.
    unsafe {
        let mut m = message.to_string();
        if m.len() >= ERROR_BYTES {
            let mut cut = ERROR_BYTES - 4;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
        }
        copy_in(&mut (*s).error, &m);
        (*s).failure = failure; // finish() publishes FAILED
    }
}

/// Runs the rows of `taken`, grouped by model; returns the ONNX runs made.
fn run(q: &Queue, taken: &[usize], sessions: &mut Vec<Loaded>) -> u64 {
    let mut runs = 0u64;
    let mut groups: Vec<((String, String, i64), Vec<usize>)> = Vec::new();
    for &i in taken {
        let s = q.slot(i);
        // SAFETY: RUNNING slots are this worker's.
        let id = unsafe { (copy_out(&(*s).dir), copy_out(&(*s).checksum), (*s).pad_id) };
        match groups.iter_mut().find(|(k, _)| *k == id) {
            Some((_, v)) => v.push(i),
            None => groups.push((id, vec![i])),
        }
    }
    for ((dir, checksum, pad_id), slots) in groups {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let engine = session(sessions, &dir, &checksum, pad_id)?;
            run_group(q, &slots, engine, &mut runs)
        }));
        let (failure, message) = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => (
                MODEL_FAILURE,
                match e.hint {
                    Some(h) => format!("{} (hint: {h})", e.message),
                    None => e.message,
                },
            ),
            Err(p) => (
                WORKER_FAILURE,
                format!(
                    "the inference worker failed: {}",
                    p.downcast_ref::<String>().map(String::as_str).or_else(|| p.downcast_ref::<&str>().copied()).unwrap_or("panic")
                ),
            ),
        };
        for &i in &slots {
            fail(q.slot(i), failure, &message);
        }
    }
    runs
}

fn run_group(q: &Queue, slots: &[usize], engine: &mut OrtEngine, runs: &mut u64) -> Result<(), Error> {
    let n = engine.n_labels();
    let provider = match engine.provider() {
        ExecutionProvider::Cpu => 0,
        ExecutionProvider::Cuda => 1,
    };
    // (slot, row) of every row, and its ids, straight from shared memory
    let mut at: Vec<(usize, usize)> = Vec::new();
    let mut ids: Vec<&[u32]> = Vec::new();
    for &i in slots {
        let s = q.slot(i);
        // SAFETY: RUNNING slots are this worker's; the backend does not write them until they
        // are DONE or FAILED. The slices live until finish().
        unsafe {
            if (*s).n_labels as usize != n {
                fail(
                    s,
                    MODEL_FAILURE,
                    &format!(
                        "model {}/model.onnx has {n} outputs but the requesting backend's config.json lists {} labels",
                        copy_out(&(*s).dir),
                        (*s).n_labels
                    ),
                );
                continue;
            }
            (*s).provider = provider;
            let ids_base: *const u32 = std::ptr::addr_of!((*s).ids) as *const u32;
            let mut off = 0usize;
            for r in 0..(*s).rows as usize {
                let len = (*s).lengths[r] as usize;
                ids.push(std::slice::from_raw_parts(ids_base.add(off), len));
                at.push((i, r));
                off += len;
            }
        }
    }
    let batch_size = settings::batch_size();
    let temperature = engine.temperature();
    engine.for_each(&ids, batch_size, &mut || *runs += 1, &mut |k, logits| {
        let (i, r) = at[k];
        let s = q.slot(i);
        let p = top_1(logits, temperature);
        // SAFETY: as above; out and logits are disjoint from ids.
        unsafe {
            (*s).out[r] = Out { label: p.label as u32, confidence: p.confidence };
            if (*s).want_logits != 0 {
                let base = std::ptr::addr_of_mut!((*s).logits) as *mut f32;
                std::ptr::copy_nonoverlapping(logits.as_ptr(), base.add(r * n), n);
            }
        }
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
    let model = ModelDir::open(Path::new(dir))?;
    if model.checksum != checksum {
        return Err(Error::config(
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

/// Publishes the outcome of `taken` and wakes their requesters; abandoned slots are freed.
fn finish(q: &Queue, taken: &[usize]) {
    let mut freed = false;
    {
        let _l = Locked::exclusive();
        for &i in taken {
            let s = q.slot(i);
            // SAFETY: state change under the lock.
            unsafe {
                if (*s).state.load(Acquire) == ABANDONED {
                    (*s).state.store(FREE, Release);
                    freed = true;
                } else {
                    (*s).state.store(if (*s).failure == NO_FAILURE { DONE } else { FAILED }, Release);
                    set_latch((*s).owner_procno);
                }
            }
        }
    }
    if freed {
        // SAFETY: wakes backends waiting for a slot.
        unsafe { pg_sys::ConditionVariableBroadcast(q.slot_freed()) };
    }
}

// ================================ the backend side ===========================================

thread_local! {
    /// Whether this backend has warned that it classifies itself (reset when a worker answers).
    static WARNED: Cell<bool> = const { Cell::new(false) };
    /// Until when this backend skips the workers after one timed out.
    static SKIP_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
    static EXIT_HOOKED: Cell<bool> = const { Cell::new(false) };
    static NOTICED: Cell<bool> = const { Cell::new(false) };
}

/// Whether worker mode can serve in this server (preloaded, workers configured).
pub fn available() -> bool {
    queue().is_some()
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

#[pg_guard]
unsafe extern "C-unwind" fn backend_exit(_code: i32, _arg: pg_sys::Datum) {
    // SAFETY: MyProcPid is this process's.
    let pid = unsafe { pg_sys::MyProcPid };
    if let Some(q) = queue() {
        // SAFETY: owner_pid is read under the queue lock (give_back holds it).
        give_back(&q, |_, s| unsafe { (*s).owner_pid == pid });
    }
}

/// Gives back every slot `mine` selects (decided under the lock): a slot a worker is running
/// becomes ABANDONED (the worker frees it when its run ends), any other one FREE; backends
/// waiting for a slot are woken.
fn give_back(q: &Queue, mine: impl Fn(usize, *mut Slot) -> bool) {
    {
        let _l = Locked::exclusive();
        for i in 0..q.n {
            let s = q.slot(i);
            // SAFETY: states change under the lock.
            unsafe {
                let was = (*s).state.load(Acquire);
                if was != FREE && mine(i, s) {
                    (*s).state.store(if matches!(was, RUNNING | ABANDONED) { ABANDONED } else { FREE }, Release);
                }
            }
        }
    }
    // SAFETY: wakes backends waiting for a slot.
    unsafe { pg_sys::ConditionVariableBroadcast(q.slot_freed()) };
}

/// Slots one request holds; given back however the request ends (an ERROR unwinding through
/// included).
struct Held {
    q: Queue,
    slots: Vec<(usize, usize)>, // (slot, chunk)
}

impl Held {
    fn release(&mut self, slot: usize) {
        give_back(&self.q, |i, _| i == slot);
        self.slots.retain(|&(s, _)| s != slot);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.slots.is_empty() {
            give_back(&self.q, |i, _| self.slots.iter().any(|&(s, _)| s == i));
        }
    }
}

/// Why the workers did not answer.
enum Failure {
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
        let (e, w) = OrtEngine::load(model, opts, pad_id)?;
        return Ok((Box::new(e), w));
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
    ) -> Result<(Vec<Prediction>, Vec<f32>), Failure> {
        let q = queue().ok_or_else(|| Failure::Unavailable("txclass is not preloaded".into()))?;
        if let Some(t) = SKIP_UNTIL.with(|s| s.get()) {
            if Instant::now() < t {
                return Err(Failure::Unavailable("an inference worker timed out moments ago".into()));
            }
            SKIP_UNTIL.with(|s| s.set(None));
        }
        if q.alive_workers() == 0 {
            return Err(Failure::Unavailable("no inference worker is running".into()));
        }
        if !EXIT_HOOKED.with(|h| h.replace(true)) {
            // SAFETY: registers a callback that frees this backend's slots at exit.
            unsafe { pg_sys::before_shmem_exit(Some(backend_exit), pg_sys::Datum::from(0)) };
        }
        let n_labels = self.model.labels.len();
        // cut the rows into chunks that fit a slot
        let max_rows = if want_logits { (LOGITS_CAP / n_labels.max(1)).clamp(1, SLOT_ROWS) } else { SLOT_ROWS };
        let mut chunks: Vec<std::ops::Range<usize>> = Vec::new();
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
        let mut preds = vec![Prediction { label: 0, confidence: 0.0 }; ids.len()];
        let mut logits = if want_logits { vec![0f32; ids.len() * n_labels] } else { Vec::new() };
        let timeout = settings::worker_timeout();
        let mut deadline = Instant::now() + timeout;
        let mut held = Held { q, slots: Vec::new() };
        let (mut next, mut done) = (0usize, 0usize);
        let dir = self.model.path.display().to_string();
        // SAFETY: this process's identity.
        let (my_pid, my_procno) = (unsafe { pg_sys::MyProcPid }, my_procno());
        while done < chunks.len() {
            // submit what fits
            let mut submitted = false;
            while held.slots.len() < MAX_INFLIGHT && next < chunks.len() {
                let Some(i) = claim(&q) else { break };
                held.slots.push((i, next));
                let c = chunks[next].clone();
                let s = q.slot(i);
                // SAFETY: the slot is FILLING and ours: nobody else reads or writes it now.
                unsafe {
                    (*s).want_logits = want_logits as u32;
                    (*s).rows = c.len() as u32;
                    (*s).n_labels = n_labels as u32;
                    (*s).pad_id = self.pad_id;
                    (*s).owner_pid = my_pid;
                    (*s).owner_procno = my_procno;
                    (*s).worker = -1;
                    (*s).worker_pid = 0;
                    (*s).error[0] = 0;
                    (*s).failure = NO_FAILURE;
                    copy_in(&mut (*s).dir, &dir);
                    copy_in(&mut (*s).checksum, &self.model.checksum);
                    let base = std::ptr::addr_of_mut!((*s).ids) as *mut u32;
                    let mut off = 0usize;
                    for (r, row) in ids[c].iter().enumerate() {
                        let len = row.len().min(SLOT_TOKENS - off);
                        std::ptr::copy_nonoverlapping(row.as_ptr(), base.add(off), len);
                        (*s).lengths[r] = len as u16;
                        off += len;
                    }
                    (*s).tokens = off as u32;
                }
                {
                    let _l = Locked::exclusive();
                    // SAFETY: state change under the lock.
                    unsafe {
                        (*s).seq = q.header().seq.fetch_add(1, Relaxed);
                        (*s).submitted_at = now_us();
                        (*s).state.store(SUBMITTED, Release);
                    }
                }
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
                    // SAFETY: leaves the condition variable's wait list.
                    unsafe { pg_sys::ConditionVariableCancelSleep() };
                    return Err(Failure::Unavailable(format!(
                        "no slot of the inference queue came free within txclass.worker_timeout = {} ms",
                        timeout.as_millis()
                    )));
                }
                // SAFETY: sleeps on the queue's condition variable (it checks for interrupts).
                unsafe {
                    pg_sys::ConditionVariableTimedSleep(q.slot_freed(), 10, pg_sys::PG_WAIT_EXTENSION);
                }
                continue;
            }
            // SAFETY: no longer waiting for a free slot.
            unsafe { pg_sys::ConditionVariableCancelSleep() };
            // collect what finished
            let mut progressed = false;
            for (i, chunk) in held.slots.clone() {
                let s = q.slot(i);
                // DONE/FAILED slots are ours again (the worker is finished with them)
                // SAFETY: the worker publishes DONE / FAILED with release after writing the outputs.
                let state = unsafe { (*s).state.load(Acquire) };
                match state {
                    DONE => unsafe {
                        let c = chunks[chunk].clone();
                        for (r, row) in c.clone().enumerate() {
                            let o = (*s).out[r];
                            preds[row] = Prediction { label: o.label as usize, confidence: o.confidence };
                        }
                        if want_logits {
                            let base = std::ptr::addr_of!((*s).logits) as *const f32;
                            std::ptr::copy_nonoverlapping(base, logits.as_mut_ptr().add(c.start * n_labels), c.len() * n_labels);
                        }
                        self.provider = if (*s).provider == 1 { ExecutionProvider::Cuda } else { ExecutionProvider::Cpu };
                        held.release(i);
                        done += 1;
                        progressed = true;
                    },
                    FAILED => {
                        // SAFETY: as above.
                        let (failure, message) = unsafe { ((*s).failure, copy_out(&(*s).error)) };
                        held.release(i);
                        return Err(if failure == WORKER_FAILURE {
                            Failure::Unavailable(message)
                        } else {
                            Failure::Model(Error::config(message, "check the model directory (txclass.inspect_model) and the server log"))
                        });
                    }
                    RUNNING => {
                        // SAFETY: worker and worker_pid were set when it took the slot.
                        let (w, pid) = unsafe { ((*s).worker, (*s).worker_pid) };
                        if w >= 0 && q.worker(w as usize).pid.load(Relaxed) != pid {
                            return Err(Failure::Unavailable("the inference worker running this request exited".into()));
                        }
                    }
                    _ => {}
                }
            }
            if progressed {
                deadline = Instant::now() + timeout;
                between_batches();
                continue;
            }
            if q.alive_workers() == 0 {
                return Err(Failure::Unavailable("no inference worker is running".into()));
            }
            let now = Instant::now();
            if now > deadline {
                SKIP_UNTIL.with(|s| s.set(Some(now + Duration::from_secs(5))));
                return Err(Failure::Unavailable(format!(
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
            pg_sys::check_for_interrupts!();
        }
        Ok((preds, logits))
    }

    /// What to do when the workers did not answer: the backend's own session (one WARNING) or
    /// an ERROR (txclass.worker_fallback = off).
    fn fall_back(&mut self, reason: String) -> Result<&mut OrtEngine, Error> {
        if let Some(q) = queue() {
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
            Err(Failure::Model(e)) => Err(e),
            Err(Failure::Unavailable(reason)) => self.fall_back(reason)?.logits(ids, batch_size, between_batches),
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
            Err(Failure::Model(e)) => Err(e),
            Err(Failure::Unavailable(reason)) => self.fall_back(reason)?.top1(ids, batch_size, between_batches),
        }
    }

    fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    fn mode(&self) -> String {
        if self.served_by_worker { "worker" } else { "backend (worker fallback)" }.to_string()
    }
}

/// Claims a free slot (FREE → FILLING), or None when the queue is full.
fn claim(q: &Queue) -> Option<usize> {
    let _l = Locked::exclusive();
    for i in 0..q.n {
        let s = q.slot(i);
        // SAFETY: state change under the lock.
        unsafe {
            if (*s).state.load(Acquire) == FREE {
                (*s).state.store(FILLING, Release);
                // SAFETY: identity of the claimant, so that its exit frees the slot
                (*s).owner_pid = pg_sys::MyProcPid;
                return Some(i);
            }
        }
    }
    None
}

// ================================ SQL ========================================================

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

/// Per inference worker: process, models loaded, requests, rows, runs, mean rows per run, queue
/// wait p50/p99 (ms, from a log2 histogram), busy share since it started, restarts; and the
/// fallbacks and queue-full waits backends saw. Read through the view txclass.worker_stats.
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
    let Some(q) = queue() else { return TableIterator::new(Vec::new()) };
    let workers = settings::workers();
    let h = q.header();
    let now = now_us();
    let busy = {
        let _l = Locked::exclusive();
        // SAFETY: states read under the lock.
        (0..q.n).filter(|&i| unsafe { (*q.slot(i)).state.load(Acquire) } != FREE).count() as i64
    };
    let rows = (0..workers)
        .map(|i| {
            let w = q.worker(i);
            let pid = w.pid.load(Relaxed);
            let started = w.started_at.load(Relaxed);
            let hist: [u64; HIST] = std::array::from_fn(|b| w.wait_hist[b].load(Relaxed));
            let runs = w.runs.load(Relaxed);
            let rows = w.rows.load(Relaxed);
            let alive_us = (now - started).max(1) as f64;
            (
                i as i32,
                (pid != 0).then_some(pid),
                (started != 0).then(|| pgrx::datum::TimestampWithTimeZone::try_from(started).ok()).flatten(),
                w.models.load(Relaxed) as i64,
                w.requests.load(Relaxed) as i64,
                rows as i64,
                runs as i64,
                w.batches.load(Relaxed) as i64,
                (runs > 0).then(|| rows as f64 / runs as f64),
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

/// Zeroes the workers' counters and histograms (not restarts) and the backends' fallback and
/// queue-full counts. Superusers only, unless granted.
#[pg_extern(volatile, parallel_unsafe)]
fn worker_stats_reset() {
    let Some(q) = queue() else { return };
    for i in 0..MAX_WORKERS {
        let w = q.worker(i);
        for c in [&w.requests, &w.rows, &w.runs, &w.batches, &w.busy_us, &w.load_failures] {
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
    h.stats_reset.store(now_us(), Relaxed);
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
