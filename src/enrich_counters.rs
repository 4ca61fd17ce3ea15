//! What the write path did, counted: in shared memory when txclass is preloaded (all backends
//! since server start), else this backend's own. Read through `txclass.enrichment_stats`.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[repr(C)]
#[derive(Default)]
pub struct Counters {
    /// Rows given outputs in place by the row trigger (a rule or a cache hit).
    pub in_place: AtomicU64,
    /// Rows classified one at a time in the row trigger: a statement's first miss, and every miss
    /// of a table without a usable key.
    pub row_by_row: AtomicU64,
    /// Rows queued by the row trigger and classified in the statement's batch.
    pub batched: AtomicU64,
    /// Statement batches run.
    pub batches: AtomicU64,
    /// Rows left with NULL outputs because classification or the output update failed.
    failed: AtomicU64,
    last_failure_at: AtomicI64,
}

static mut SHARED: *mut Counters = std::ptr::null_mut();
thread_local! {
    static LOCAL: Counters = Counters::default();
}

/// From `_PG_init`: registers the counters with the shared-memory hooks (preloading).
pub fn init() {
    if !crate::shmem::preloading() {
        return;
    }
    crate::shmem::register(crate::shmem::Part { size: shmem_size, tranche: None, startup: shmem_startup });
}

fn shmem_size() -> usize {
    std::mem::size_of::<Counters>()
}

/// The registered start-up (AddinShmemInitLock held).
unsafe fn shmem_startup() {
    // SAFETY: the caller holds AddinShmemInitLock; the struct is ours, sized by shmem_size()
    // (zeroed when new: every counter 0).
    unsafe {
        let (p, _) = crate::shmem::init_struct(c"txclass enrichment counters", shmem_size());
        SHARED = p as *mut Counters;
    }
}

fn shared() -> Option<&'static Counters> {
    // SAFETY: SHARED is set once at start-up (inherited through fork), never changed after;
    // the counters are atomics.
    unsafe { SHARED.as_ref() }
}

/// Runs `f` on the counters in force (shared, else this backend's).
pub fn count(f: impl FnOnce(&Counters)) {
    match shared() {
        Some(c) => f(c),
        None => LOCAL.with(f),
    }
}

/// `n` rows left with NULL outputs.
pub fn failed(n: u64) {
    // SAFETY: reads the clock; no state.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    count(|c| {
        c.failed.fetch_add(n, Relaxed);
        c.last_failure_at.store(now, Relaxed);
    });
}

/// The enrichment counters since server start (all tables; this backend's alone when txclass
/// is not preloaded). Read through the view txclass.enrichment_stats.
#[pg_extern(volatile, parallel_safe)]
fn enrichment_counters() -> TableIterator<
    'static,
    (
        name!(shared, bool),
        name!(in_place, i64),
        name!(row_by_row, i64),
        name!(batched, i64),
        name!(batches, i64),
        name!(failed, i64),
        name!(last_failure_at, Option<pgrx::datum::TimestampWithTimeZone>),
    ),
> {
    let shared = shared().is_some();
    let mut row = None;
    count(|c| {
        let at = c.last_failure_at.load(Relaxed);
        row = Some((
            shared,
            c.in_place.load(Relaxed) as i64,
            c.row_by_row.load(Relaxed) as i64,
            c.batched.load(Relaxed) as i64,
            c.batches.load(Relaxed) as i64,
            c.failed.load(Relaxed) as i64,
            (at != 0).then(|| pgrx::datum::TimestampWithTimeZone::try_from(at).ok()).flatten(),
        ))
    });
    TableIterator::once(row.expect("counters read"))
}
