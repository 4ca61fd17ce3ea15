//! The inference queue in shared memory: the one place where backends and inference workers
//! change shared state. Its layout, its slot state machine and every transition are here; the
//! worker process (src/worker.rs) and the backend's engine (src/worker_engine.rs) only call
//! the transitions and read or write a slot's contents while the state makes it theirs.
//!
//! The queue is `txclass.worker_queue_slots` fixed slots after a header that holds the
//! workers' states and counters. A slot carries one request: up to [`SLOT_ROWS`] rows of token
//! ids (at most [`SLOT_TOKENS`] in all), the model that must answer them (directory and
//! checksum), and room for the answers (top-1 of each row, and logits when asked).
//!
//! ```text
//!            claim            submit            take              finish
//!   FREE ───────────▶ FILLING ──────▶ SUBMITTED ──────▶ RUNNING ─────────▶ DONE / FAILED
//!    ▲   (backend)            (backend)         (worker)    │     (worker)        │
//!    │                                                      │ give_back         │ give_back
//!    │                                          finish      ▼ (backend)         │ (backend)
//!    ├───────────────────────────────────────────────── ABANDONED               │
//!    │                  worker_exited (worker)                                  │
//!    └──────────────────────────────────────────────────────────────────────────┘
//!      give_back also frees a FILLING or SUBMITTED slot; worker_exited fails RUNNING slots
//! ```
//!
//! Invariants:
//! 1. A slot's `state` is written only under the queue lock; every transition is a method of
//!    [`Queue`] in this file. Readers without the lock (a backend polling its own slots) may see
//!    a stale state, never a torn one (it is an atomic), and act only on states in which the
//!    slot's contents are theirs.
//! 2. A slot's contents have one writer at a time: the backend that claimed it while FILLING
//!    (and after DONE / FAILED, when it reads the answers); the worker that took it while
//!    RUNNING. So the bulk data (ids, answers, logits) is copied without the lock: the worker
//!    publishes DONE / FAILED with Release after writing, the backend reads with Acquire.
//! 3. Every slot a backend claimed is given back however its request ends (answered, failed,
//!    cancelled, ERROR, backend exit): a RUNNING one becomes ABANDONED, which the worker frees
//!    when its run ends; any other one becomes FREE at once. Backends waiting for a free slot
//!    are woken on the `slot_freed` condition variable whenever a slot becomes FREE.
//! 4. A worker that exits fails the slots it was running (WORKER_FAILURE: the backend may
//!    classify itself) and frees the abandoned ones; a worker that dies without running its
//!    exit callback takes the server down with it (the postmaster re-creates shared memory).
//! 5. A worker answers a slot only with a session of the model the slot names (directory and
//!    checksum), and the model's label count must equal the slot's (src/worker.rs).
use crate::settings;
use crate::shmem::{copy_in, copy_out, LockGuard};
pub use crate::shmem::{CHECKSUM_BYTES, DIR_BYTES};
use pgrx::pg_sys;
use std::ffi::CStr;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use txclass_core::{ErrorKind, ExecutionProvider, Prediction};

/// Most rows in one slot.
pub const SLOT_ROWS: usize = 128;
/// Most token ids in one slot (a row has at most txclass.max_length <= 512).
pub const SLOT_TOKENS: usize = 8192;
/// Most logits one slot returns (rows x labels); wider models get top-1 through the worker and
/// full logits from the backend's own session.
pub const LOGITS_CAP: usize = 16384;
/// Slots one request holds at once: a large batch keeps a worker busy without holding the queue.
pub const MAX_INFLIGHT: usize = 4;
/// How long a slot waits before a worker that was not woken for it takes it (µs).
const LOST_WAKEUP_US: i64 = 100_000;
/// Requests of at most this many rows are taken before larger ones.
const SMALL_ROWS: u32 = 8;
const ERROR_BYTES: usize = 1024;
/// Between a failure's message and its hint in a slot's `error`.
const HINT_SEPARATOR: char = '\u{1f}';
/// Queue-wait histogram: bucket b counts waits of [2^b, 2^(b+1)) microseconds.
pub const HIST: usize = 40;
/// Workers the header has room for (`txclass.workers` is bounded by it).
pub const MAX_WORKERS: usize = settings::MAX_WORKERS;

const TRANCHE_NAME: &CStr = c"txclass worker";

// slot states (module comment)
const FREE: u32 = 0;
const FILLING: u32 = 1;
const SUBMITTED: u32 = 2;
const RUNNING: u32 = 3;
const DONE: u32 = 4;
const FAILED: u32 = 5;
/// Running, but the requester left (cancel, timeout, exit): the worker frees it when done.
const ABANDONED: u32 = 6;

/// Why a slot FAILED (`Slot::failure`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Failure {
    None = 0,
    /// The model or the request is at fault: a backend session would fail the same way.
    Model = 1,
    /// The worker itself failed (exited, panicked): the backend may classify itself.
    Worker = 2,
}

/// One worker's state and counters. Atomics: written by the worker, read by anyone.
#[repr(C)]
pub struct WorkerState {
    pub pid: AtomicI32,
    pub procno: AtomicI32,
    /// Times the worker started (restarts + 1).
    pub starts: AtomicU64,
    pub started_at: AtomicI64,
    /// Sessions it holds.
    pub models: AtomicU64,
    /// Slots it answered.
    pub requests: AtomicU64,
    /// Rows in those slots.
    pub rows: AtomicU64,
    /// Passes: times it took what was queued and ran it (one pass runs many slots).
    pub passes: AtomicU64,
    /// ONNX Runtime runs those passes made (rows grouped by model and length).
    pub onnx_runs: AtomicU64,
    pub busy_us: AtomicU64,
    /// 1 while this worker runs what it took (set and read under the queue lock).
    running: AtomicU32,
    /// 1 when a backend woke it for queued slots since its last take (under the queue lock).
    woken: AtomicU32,
    pub wait_hist: [AtomicU64; HIST],
}

#[repr(C)]
pub struct Header {
    n_slots: u64,
    seq: AtomicU64,
    /// Times a backend classified itself because no worker answered.
    pub fallbacks: AtomicU64,
    /// Times a backend waited for a free slot (queue full).
    pub queue_full: AtomicU64,
    slot_freed: pg_sys::ConditionVariable,
    pub workers: [WorkerState; MAX_WORKERS],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Out {
    label: u32,
    confidence: f32,
}

#[repr(C)]
struct Slot {
    /// Written only under the queue lock (invariant 1).
    state: AtomicU32,
    want_logits: u32,
    rows: u32,
    tokens: u32,
    n_labels: u32,
    /// 0: cpu, 1: cuda (what the worker's session runs on)
    provider: u32,
    /// Why it FAILED (a [`Failure`]), with `error` and the error's `kind`; set by the worker.
    failure: u32,
    kind: u32,
    owner_procno: i32,
    owner_pid: i32,
    worker: i32,
    worker_pid: i32,
    pad_id: i64,
    seq: u64,
    submitted_at: i64,
    dir: [u8; DIR_BYTES],
    checksum: [u8; CHECKSUM_BYTES],
    /// Why it failed: the message, then [`HINT_SEPARATOR`] and the hint when there is one.
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

const HEADER_BYTES: usize = std::mem::size_of::<Header>().div_ceil(64) * 64;

fn shmem_size() -> usize {
    // SAFETY: N_SLOTS is written once in _PG_init (postmaster, single-threaded), only read after.
    HEADER_BYTES + unsafe { N_SLOTS } * std::mem::size_of::<Slot>()
}

/// From `_PG_init`: when preloading with workers configured, sizes the queue and registers it
/// with the shared-memory hooks.
pub fn init() {
    if !crate::shmem::preloading() || settings::workers() == 0 {
        return;
    }
    // SAFETY: _PG_init runs single-threaded before shared memory is requested.
    unsafe { N_SLOTS = settings::worker_queue_slots() };
    crate::shmem::register(crate::shmem::Part {
        size: shmem_size,
        tranche: Some(crate::shmem::Tranche { name: TRANCHE_NAME, locks: 1 }),
        startup: shmem_startup,
    });
}

/// The registered start-up (AddinShmemInitLock held).
unsafe fn shmem_startup() {
    // SAFETY: the caller holds AddinShmemInitLock; the struct is ours, sized by shmem_size().
    unsafe {
        let (base, found) = crate::shmem::init_struct(c"txclass inference queue", shmem_size());
        let h = base as *mut Header;
        if !found {
            (*h).n_slots = N_SLOTS as u64;
            pg_sys::ConditionVariableInit(std::ptr::addr_of_mut!((*h).slot_freed));
        }
        HEADER = h;
        SLOTS = base.add(HEADER_BYTES) as *mut Slot;
        LOCK = crate::shmem::lock(TRANCHE_NAME, 0);
    }
}

/// The queue, when the server started with txclass preloaded and workers configured.
pub fn queue() -> Option<Queue> {
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
pub struct Queue {
    header: *mut Header,
    slots: *mut Slot,
    n: usize,
}

/// What a backend asks of one slot.
pub struct Request<'a> {
    pub rows: &'a [&'a [u32]],
    pub want_logits: bool,
    pub n_labels: usize,
    pub pad_id: i64,
    pub dir: &'a str,
    pub checksum: &'a str,
}

/// What a worker reads of a slot it took.
pub struct Taken<'q> {
    pub dir: String,
    pub checksum: String,
    pub pad_id: i64,
    pub n_labels: usize,
    /// Each row's token ids, in the slot itself (valid while the slot is RUNNING and the
    /// worker's: until [`Queue::finish`]).
    pub rows: Vec<&'q [u32]>,
}

/// A backend's look at one of its slots.
pub enum Poll {
    /// Not answered yet (submitted, or running on a live worker).
    Waiting,
    /// Answered: top-1 of each row into `preds`, logits (rows x labels) into `logits` when
    /// asked; the provider the worker ran on.
    Done(ExecutionProvider),
    /// Failed: whose fault, the error's kind, message and hint.
    Failed(Failure, ErrorKind, String, Option<String>),
    /// The worker that took it is gone.
    WorkerGone,
}

impl Queue {
    pub fn header(&self) -> &Header {
        // SAFETY: the header lives for the server's life; through `&Header` only its atomics
        // are read or written (the condition variable is reached by pointer: slot_freed()).
        unsafe { &*self.header }
    }
    pub fn worker(&self, i: usize) -> &WorkerState {
        &self.header().workers[i]
    }
    /// A slot's raw pointer: fields are read and written through it (never through `&Slot`
    /// held across a state change).
    fn slot(&self, i: usize) -> *mut Slot {
        assert!(i < self.n);
        // SAFETY: i < n, and the slots array holds n slots.
        unsafe { self.slots.add(i) }
    }
    fn state(&self, i: usize) -> u32 {
        // SAFETY: an atomic field of slot i (< n).
        unsafe { (*self.slot(i)).state.load(Acquire) }
    }
    /// Invariant 1: only this module's transitions write a state, with the lock held.
    fn set_state(&self, _locked: &LockGuard, i: usize, state: u32) {
        // SAFETY: an atomic field of slot i (< n); the guard proves the lock is held.
        unsafe { (*self.slot(i)).state.store(state, Release) }
    }
    fn lock(&self) -> LockGuard {
        // SAFETY: LOCK is set with HEADER at start-up (queue() returned Some), never changed.
        LockGuard::exclusive(unsafe { LOCK })
    }
    fn slot_freed(&self) -> *mut pg_sys::ConditionVariable {
        // SAFETY: initialised at start-up; ConditionVariable functions take it by pointer.
        unsafe { std::ptr::addr_of_mut!((*self.header).slot_freed) }
    }
    fn broadcast_slot_freed(&self) {
        // SAFETY: an initialised condition variable in shared memory.
        unsafe { pg_sys::ConditionVariableBroadcast(self.slot_freed()) };
    }
    pub fn alive_workers(&self) -> usize {
        (0..MAX_WORKERS).filter(|&i| self.worker(i).pid.load(Relaxed) != 0).count()
    }
    /// Slots not FREE (for monitoring).
    pub fn busy_slots(&self) -> usize {
        let _l = self.lock();
        (0..self.n).filter(|&i| self.state(i) != FREE).count()
    }

    // ---- the backend's transitions ----------------------------------------------------------

    /// FREE → FILLING: claims a free slot for this backend, or None when the queue is full.
    pub fn claim(&self) -> Option<usize> {
        let _l = self.lock();
        let i = (0..self.n).find(|&i| self.state(i) == FREE)?;
        self.set_state(&_l, i, FILLING);
        // SAFETY: the slot is ours now (FILLING); its owner is recorded so that our exit frees it.
        unsafe { (*self.slot(i)).owner_pid = pg_sys::MyProcPid };
        Some(i)
    }

    /// Writes `r` into slot `i`, which this backend holds FILLING (no lock: invariant 2). Rows
    /// beyond the slot's token room are cut (callers cut chunks that fit).
    pub fn fill(&self, i: usize, r: &Request<'_>) {
        debug_assert_eq!(self.state(i), FILLING);
        let s = self.slot(i);
        // SAFETY: the slot is FILLING and ours: nobody else reads or writes it now; ids are
        // copied within the slot's SLOT_TOKENS and rows within SLOT_ROWS (asserted).
        unsafe {
            assert!(r.rows.len() <= SLOT_ROWS);
            (*s).want_logits = r.want_logits as u32;
            (*s).rows = r.rows.len() as u32;
            (*s).n_labels = r.n_labels as u32;
            (*s).pad_id = r.pad_id;
            (*s).owner_pid = pg_sys::MyProcPid;
            (*s).owner_procno = my_procno();
            (*s).worker = -1;
            (*s).worker_pid = 0;
            (*s).error[0] = 0;
            (*s).failure = Failure::None as u32;
            copy_in(&mut (*s).dir, r.dir);
            copy_in(&mut (*s).checksum, r.checksum);
            let base = std::ptr::addr_of_mut!((*s).ids) as *mut u32;
            let mut off = 0usize;
            for (k, row) in r.rows.iter().enumerate() {
                let len = row.len().min(SLOT_TOKENS - off);
                std::ptr::copy_nonoverlapping(row.as_ptr(), base.add(off), len);
                (*s).lengths[k] = len as u16;
                off += len;
            }
            (*s).tokens = off as u32;
        }
    }

    /// FILLING → SUBMITTED: the slot is the workers' to take.
    pub fn submit(&self, i: usize) {
        let l = self.lock();
        let s = self.slot(i);
        // SAFETY: seq and submitted_at are written under the lock, before the state that
        // publishes them.
        unsafe {
            (*s).seq = self.header().seq.fetch_add(1, Relaxed);
            (*s).submitted_at = now_us();
        }
        self.set_state(&l, i, SUBMITTED);
    }

    /// Wakes as many idle workers as there are submitted slots waiting, lowest number first. A
    /// lone request wakes one worker, the same one while the load is light (its caches hold
    /// the model's weights: waking every worker let them take turns, each with cold caches,
    /// and a lone MiniLM request took 1.6x as long as in the backend); a large request wakes
    /// every idle worker. A running worker is not woken: it takes what is queued when it
    /// finishes (the flags are read under the lock that submission and take() hold).
    pub fn wake_idle_workers(&self) {
        let mut wake = [-1i32; MAX_WORKERS];
        {
            let _l = self.lock();
            let mut waiting = (0..self.n).filter(|&i| self.state(i) == SUBMITTED).count();
            for (i, to) in wake.iter_mut().enumerate() {
                let w = self.worker(i);
                if waiting == 0 {
                    break;
                }
                if w.pid.load(Relaxed) != 0 && w.running.load(Relaxed) == 0 {
                    *to = w.procno.load(Relaxed);
                    w.woken.store(1, Relaxed);
                    waiting -= 1;
                }
            }
        }
        for procno in wake.into_iter().filter(|&p| p >= 0) {
            set_latch(procno);
        }
    }

    /// Looks at slot `i`, which this backend holds; on [`Poll::Done`] copies the answers of its
    /// rows into `preds` (and `logits`, `n_labels` wide, when asked).
    pub fn poll(&self, i: usize, preds: &mut [Prediction], logits: Option<&mut [f32]>) -> Poll {
        let s = self.slot(i);
        match self.state(i) {
            // SAFETY: DONE / FAILED slots are ours again: the worker published them with
            // Release after writing (invariant 2), and state() read with Acquire.
            DONE => unsafe {
                let rows = ((*s).rows as usize).min(preds.len());
                for (r, p) in preds.iter_mut().enumerate().take(rows) {
                    let o = (*s).out[r];
                    *p = Prediction { label: o.label as usize, confidence: o.confidence };
                }
                if let Some(l) = logits {
                    let n = (rows * (*s).n_labels as usize).min(l.len()).min(LOGITS_CAP);
                    let base = std::ptr::addr_of!((*s).logits) as *const f32;
                    std::ptr::copy_nonoverlapping(base, l.as_mut_ptr(), n);
                }
                Poll::Done(if (*s).provider == 1 { ExecutionProvider::Cuda } else { ExecutionProvider::Cpu })
            },
            FAILED => {
                // SAFETY: as DONE.
                let (failure, kind, message) = unsafe { ((*s).failure, (*s).kind, copy_out(&(*s).error)) };
                let failure = if failure == Failure::Worker as u32 { Failure::Worker } else { Failure::Model };
                let (message, hint) = match message.split_once(HINT_SEPARATOR) {
                    Some((m, h)) => (m.to_string(), Some(h.to_string())),
                    None => (message, None),
                };
                Poll::Failed(failure, kind_of(kind), message, hint)
            }
            RUNNING => {
                // SAFETY: worker and worker_pid were written under the lock when it was taken,
                // before the RUNNING state this read acquired.
                let (w, pid) = unsafe { ((*s).worker, (*s).worker_pid) };
                if w >= 0 && self.worker(w as usize).pid.load(Relaxed) != pid {
                    Poll::WorkerGone
                } else {
                    Poll::Waiting
                }
            }
            _ => Poll::Waiting,
        }
    }

    /// Any state → FREE (RUNNING or ABANDONED → ABANDONED): gives back every slot `mine`
    /// selects (decided under the lock); backends waiting for a slot are woken (invariant 3).
    pub fn give_back(&self, mine: impl Fn(usize) -> bool) {
        {
            let l = self.lock();
            for i in 0..self.n {
                let was = self.state(i);
                if was != FREE && mine(i) {
                    self.set_state(&l, i, if matches!(was, RUNNING | ABANDONED) { ABANDONED } else { FREE });
                }
            }
        }
        self.broadcast_slot_freed();
    }

    /// At a backend's exit: gives back every slot it claimed.
    pub fn give_back_all_of(&self, pid: i32) {
        // SAFETY: owner_pid is written at claim, under the lock give_back holds while `mine` runs.
        self.give_back(|i| unsafe { (*self.slot(i)).owner_pid } == pid);
    }

    /// Waits up to 10 ms for a slot to come free (the condition variable checks for interrupts).
    pub fn sleep_for_free_slot(&self) {
        // SAFETY: an initialised condition variable; PG_WAIT_EXTENSION names the wait.
        unsafe { pg_sys::ConditionVariableTimedSleep(self.slot_freed(), 10, pg_sys::PG_WAIT_EXTENSION) };
    }

    /// Leaves the wait list of [`Self::sleep_for_free_slot`] (harmless when not on it).
    pub fn stop_sleeping(&self) {
        // SAFETY: cancels this process's condition-variable sleep, if any.
        unsafe { pg_sys::ConditionVariableCancelSleep() };
    }

    // ---- the worker's transitions -----------------------------------------------------------

    /// A worker process starts as worker `idx`: recorded, and its exit callback registered.
    pub fn worker_started(&self, idx: usize) {
        let me = self.worker(idx);
        // SAFETY: MyProcPid is this process's; before_shmem_exit runs at any exit but a crash
        // (after which the postmaster re-creates shared memory: invariant 4).
        unsafe {
            me.procno.store(my_procno(), Relaxed);
            me.pid.store(pg_sys::MyProcPid, Relaxed);
            pg_sys::before_shmem_exit(Some(worker_exit), pg_sys::Datum::from(idx));
        }
        me.starts.fetch_add(1, Relaxed);
        me.started_at.store(now_us(), Relaxed);
        me.models.store(0, Relaxed);
        me.running.store(0, Relaxed);
        me.woken.store(0, Relaxed);
    }

    /// SUBMITTED → RUNNING: the slots worker `idx` runs next — small requests first, then by
    /// age, within `budget` tokens (at least one slot), and no more than its share when other
    /// workers are idle: the slots of one large request (a classify_batch, a statement flush)
    /// are run by every idle worker at once, not by the first one awake.
    ///
    /// A worker takes fresh slots when a backend woke it for them or when it just finished a run
    /// (`after_run`: what was queued meanwhile is its to take). Waking by itself (its periodic
    /// timeout), it takes only slots that have waited [`LOST_WAKEUP_US`]: the net under a lost
    /// wake-up, which does not steal a lone request from the worker that was woken for it (its
    /// caches hold the model).
    pub fn take(&self, idx: usize, budget: u64, after_run: bool) -> Vec<usize> {
        let me = self.worker(idx);
        let l = self.lock();
        let woken = me.woken.swap(0, Relaxed) != 0;
        let now = now_us();
        let min_wait = if after_run || woken { 0 } else { LOST_WAKEUP_US };
        let mut ready: Vec<(bool, u64, usize, u64)> = Vec::new();
        for i in (0..self.n).filter(|&i| self.state(i) == SUBMITTED) {
            let s = self.slot(i);
            // SAFETY: rows, seq, tokens and submitted_at were written before the SUBMITTED state
            // (under the lock).
            unsafe {
                if now - (*s).submitted_at >= min_wait {
                    ready.push(((*s).rows > SMALL_ROWS, (*s).seq, i, (*s).tokens as u64));
                }
            }
        }
        ready.sort_unstable();
        // this worker and the others that are up and not running (it is not running: it is here)
        let idle = (0..MAX_WORKERS)
            .filter(|&w| w == idx || (self.worker(w).pid.load(Relaxed) != 0 && self.worker(w).running.load(Relaxed) == 0))
            .count()
            .max(1);
        ready.truncate(ready.len().div_ceil(idle));
        let mut taken = Vec::new();
        let mut tokens = 0u64;
        let pid = me.pid.load(Relaxed);
        for (_, _, i, t) in ready {
            if !taken.is_empty() && tokens + t > budget {
                break;
            }
            tokens += t;
            let s = self.slot(i);
            self.set_state(&l, i, RUNNING);
            // SAFETY: the slot is now this worker's to read and write (invariant 2); its taker is
            // recorded under the lock for poll() and worker_exit().
            unsafe {
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

    /// What the worker reads of slot `i`, which it took (RUNNING, invariant 2).
    pub fn taken(&self, i: usize) -> Taken<'_> {
        let s = self.slot(i);
        // SAFETY: RUNNING slots are this worker's; the backend does not write them until they
        // are DONE or FAILED, so the id slices stay valid until finish(). Rows were written
        // within SLOT_TOKENS.
        unsafe {
            let ids_base: *const u32 = std::ptr::addr_of!((*s).ids) as *const u32;
            let mut rows = Vec::with_capacity((*s).rows as usize);
            let mut off = 0usize;
            for r in 0..((*s).rows as usize).min(SLOT_ROWS) {
                let len = ((*s).lengths[r] as usize).min(SLOT_TOKENS - off);
                rows.push(std::slice::from_raw_parts(ids_base.add(off), len));
                off += len;
            }
            Taken {
                dir: copy_out(&(*s).dir),
                checksum: copy_out(&(*s).checksum),
                pad_id: (*s).pad_id,
                n_labels: (*s).n_labels as usize,
                rows,
            }
        }
    }

    /// Writes row `r`'s answer into slot `i` (the worker's, RUNNING): top-1, and the row's
    /// `logits` when the backend asked for them.
    pub fn answer(&self, i: usize, r: usize, p: Prediction, logits: &[f32], provider: ExecutionProvider) {
        let s = self.slot(i);
        // SAFETY: RUNNING and the worker's (invariant 2); out and logits are disjoint from the
        // ids the worker still reads; r < rows <= SLOT_ROWS and r * n + n <= LOGITS_CAP (the
        // backend asks for logits only for chunks that fit).
        unsafe {
            (*s).provider = matches!(provider, ExecutionProvider::Cuda) as u32;
            (*s).out[r] = Out { label: p.label as u32, confidence: p.confidence };
            let n = logits.len();
            if (*s).want_logits != 0 && (r + 1) * n <= LOGITS_CAP {
                let base = std::ptr::addr_of_mut!((*s).logits) as *mut f32;
                std::ptr::copy_nonoverlapping(logits.as_ptr(), base.add(r * n), n);
            }
        }
    }

    /// Records why slot `i` (the worker's, RUNNING) failed; [`Self::finish`] publishes FAILED.
    pub fn fail(&self, i: usize, failure: Failure, kind: ErrorKind, message: &str, hint: Option<&str>) {
        let s = self.slot(i);
        let mut m = message.replace(HINT_SEPARATOR, " ");
        if let Some(h) = hint {
            m.push(HINT_SEPARATOR);
            m.push_str(&h.replace(HINT_SEPARATOR, " "));
        }
        if m.len() >= ERROR_BYTES {
            let mut cut = ERROR_BYTES - 4;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
        }
        // SAFETY: RUNNING and the worker's (invariant 2).
        unsafe {
            copy_in(&mut (*s).error, &m);
            (*s).failure = failure as u32;
            (*s).kind = kind_code(kind);
        }
    }

    /// RUNNING → DONE / FAILED (requester woken), ABANDONED → FREE: publishes the outcome of
    /// `taken` for worker `idx`, which is idle again.
    pub fn finish(&self, idx: usize, taken: &[usize]) {
        let mut freed = false;
        {
            let l = self.lock();
            for &i in taken {
                let s = self.slot(i);
                if self.state(i) == ABANDONED {
                    self.set_state(&l, i, FREE);
                    freed = true;
                } else {
                    // SAFETY: failure was written by this worker while the slot was its own.
                    let ok = unsafe { (*s).failure } == Failure::None as u32;
                    self.set_state(&l, i, if ok { DONE } else { FAILED });
                    // SAFETY: owner_procno was written by the backend before it submitted.
                    set_latch(unsafe { (*s).owner_procno });
                }
            }
            self.worker(idx).running.store(0, Relaxed);
        }
        if freed {
            self.broadcast_slot_freed();
        }
    }
}

/// A worker's exit (before_shmem_exit): RUNNING → FAILED (requester told), ABANDONED → FREE
/// for the slots it was running; the worker is marked gone (invariant 4).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worker_exit(_code: i32, arg: pg_sys::Datum) {
    let idx = arg.value();
    let Some(q) = queue() else { return };
    let me = q.worker(idx);
    {
        let l = q.lock();
        let pid = me.pid.load(Relaxed);
        for i in 0..q.n {
            let s = q.slot(i);
            // SAFETY: worker_pid is written under the lock we hold.
            if unsafe { (*s).worker_pid } != pid {
                continue;
            }
            match q.state(i) {
                ABANDONED => q.set_state(&l, i, FREE),
                RUNNING => {
                    // SAFETY: the slot is this worker's while RUNNING (invariant 2).
                    unsafe {
                        copy_in(&mut (*s).error, "the inference worker exited while running this request");
                        (*s).failure = Failure::Worker as u32;
                        (*s).kind = kind_code(ErrorKind::Runtime);
                    }
                    q.set_state(&l, i, FAILED);
                    // SAFETY: written by the backend before it submitted.
                    set_latch(unsafe { (*s).owner_procno });
                }
                _ => {}
            }
        }
        me.pid.store(0, Relaxed);
        me.procno.store(-1, Relaxed);
        me.running.store(0, Relaxed);
    }
    q.broadcast_slot_freed();
}

/// An error kind as a slot holds it, and back.
fn kind_code(k: ErrorKind) -> u32 {
    match k {
        ErrorKind::Config => 0,
        ErrorKind::Setting => 1,
        ErrorKind::Unreadable => 2,
        ErrorKind::Changed => 3,
        ErrorKind::Runtime => 4,
        ErrorKind::Input => 5,
    }
}

fn kind_of(code: u32) -> ErrorKind {
    match code {
        1 => ErrorKind::Setting,
        2 => ErrorKind::Unreadable,
        3 => ErrorKind::Changed,
        4 => ErrorKind::Runtime,
        5 => ErrorKind::Input,
        _ => ErrorKind::Config,
    }
}

/// This process's PGPROC number, the index of MyProc in ProcGlobal->allProcs (PostgreSQL 17
/// dropped the `pgprocno` field for GetNumberFromPGProc, which is this subtraction).
fn my_procno() -> i32 {
    // SAFETY: MyProc points into ProcGlobal->allProcs for every backend and background worker
    #[cfg(not(feature = "pg18"))]
    let n = unsafe { (*pg_sys::MyProc).pgprocno };
    // SAFETY: as above: both pointers are into the same array.
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

pub fn now_us() -> i64 {
    // SAFETY: reads the clock; no state.
    unsafe { pg_sys::GetCurrentTimestamp() }
}
