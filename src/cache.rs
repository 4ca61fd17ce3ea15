//! The shared-memory result cache (needs `shared_preload_libraries = 'txclass'`).
//!
//! Like pg_stat_statements: sized at server start from a postmaster setting
//! (`txclass.cache_entries`), requested in the shmem request hook, created in the shmem startup
//! hook, split into [`PARTITIONS`] partitions each guarded by an LWLock of a named tranche.
//! Readers take their partition's lock shared, writers exclusive: no global lock on the hot
//! path, no torn reads. Entries are fixed-size plain data (`txclass_core::cache::Entry`); the
//! probing and usage-decay eviction live in `txclass_core::cache`. Counters are atomics.
//!
//! Without `shared_preload_libraries`, each backend gets a [`LocalCache`] of the same capacity
//! and one NOTICE saying how to share it.
use crate::settings;
use crate::shmem::LockGuard;
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use txclass_core::cache::{self as table, Entry, Key, LocalCache, Put, ResultCache, Stats};
use txclass_core::Prediction;

pub const PARTITIONS: usize = 16;
/// The name of the tranche with one lock per partition.
const TRANCHE_NAME: &CStr = c"txclass cache";
const SHMEM_NAME: &CStr = c"txclass result cache";

#[repr(C)]
struct Header {
    capacity: u64,
    per_partition: u64,
    entries: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    stats_reset: AtomicI64,
}

const HEADER_BYTES: usize = std::mem::size_of::<Header>().div_ceil(64) * 64;

// Set in the postmaster's shmem startup hook; backends inherit them through fork().
static mut SHARED: *mut Header = std::ptr::null_mut();
static mut LOCKS: *mut pg_sys::LWLockPadded = std::ptr::null_mut();
static mut CAPACITY: usize = 0;

fn shmem_size() -> usize {
    // SAFETY: CAPACITY is written once in _PG_init (postmaster, single-threaded) and only read after.
    HEADER_BYTES + unsafe { CAPACITY } * std::mem::size_of::<Entry>()
}

/// Called from `_PG_init`: when preloading, fixes the capacity from txclass.cache_entries and
/// registers the table with the shared-memory hooks.
pub fn init() {
    if !crate::shmem::preloading() {
        return;
    }
    // SAFETY: _PG_init runs single-threaded before shared memory is requested.
    unsafe { CAPACITY = settings::cache_entries() };
    crate::shmem::register(crate::shmem::Part {
        size: shmem_size,
        tranche: Some(crate::shmem::Tranche { name: TRANCHE_NAME, locks: PARTITIONS as i32 }),
        startup: shmem_startup,
    });
}

/// The registered start-up (AddinShmemInitLock held).
unsafe fn shmem_startup() {
    // SAFETY: the caller holds AddinShmemInitLock; the struct is ours, sized by shmem_size(),
    // and the tranche was requested with PARTITIONS locks.
    unsafe {
        let (base, found) = crate::shmem::init_struct(SHMEM_NAME, shmem_size());
        let h = base as *mut Header;
        if !found {
            (*h).capacity = CAPACITY as u64;
            (*h).per_partition = (CAPACITY / PARTITIONS) as u64;
            (*h).stats_reset.store(pg_sys::GetCurrentTimestamp(), Relaxed);
        }
        SHARED = h;
        LOCKS = pg_sys::GetNamedLWLockTranche(TRANCHE_NAME.as_ptr());
    }
}

/// The shared table, when the server started with txclass preloaded.
struct Shared {
    header: &'static Header,
    entries: *mut Entry,
    locks: *mut pg_sys::LWLockPadded,
}

fn shared() -> Option<Shared> {
    // SAFETY: SHARED and LOCKS are set once at start-up (inherited through fork) and never
    // changed after; the entries follow the header in the structure shmem_size() sized.
    unsafe {
        let h = SHARED;
        if h.is_null() || LOCKS.is_null() {
            return None;
        }
        Some(Shared { header: &*h, entries: (h as *mut u8).add(HEADER_BYTES) as *mut Entry, locks: LOCKS })
    }
}

impl Shared {
    fn partition(&self, k: &Key) -> (usize, *mut pg_sys::LWLock, *mut Entry) {
        let p = (k.text[0] % PARTITIONS as u64) as usize;
        let per = self.header.per_partition as usize;
        // SAFETY: p < PARTITIONS locks in the tranche, and p * per + per <= capacity entries.
        unsafe { (per, std::ptr::addr_of_mut!((*self.locks.add(p)).lock), self.entries.add(p * per)) }
    }
}

impl ResultCache for Shared {
    fn get(&self, k: &Key) -> Option<Prediction> {
        let (per, lock, first) = self.partition(k);
        let r = {
            let _l = LockGuard::shared(lock);
            // SAFETY: the partition's `per` entries, read under its lock held shared.
            table::get(unsafe { std::slice::from_raw_parts(first, per) }, k)
        };
        if r.is_some() { &self.header.hits } else { &self.header.misses }.fetch_add(1, Relaxed);
        r
    }

    fn put(&self, k: &Key, p: Prediction) {
        let (per, lock, first) = self.partition(k);
        let outcome = {
            let _l = LockGuard::exclusive(lock);
            // SAFETY: the partition's `per` entries, written under its lock held exclusively.
            table::put(unsafe { std::slice::from_raw_parts_mut(first, per) }, k, p)
        };
        let h = self.header;
        match outcome {
            Some(Put::Inserted) => {
                h.inserts.fetch_add(1, Relaxed);
                h.entries.fetch_add(1, Relaxed);
            }
            Some(Put::Evicted) => {
                h.inserts.fetch_add(1, Relaxed);
                h.evictions.fetch_add(1, Relaxed);
            }
            Some(Put::Updated) | None => {}
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Option<LocalCache>> = const { RefCell::new(None) };
    static LOCAL_RESET: Cell<i64> = const { Cell::new(0) };
}

/// Runs `f` with the cache in force: shared, per-backend, or none (`txclass.cache = off`).
pub fn with_cache<R>(f: impl FnOnce(Option<&dyn ResultCache>) -> R) -> R {
    if !settings::cache_enabled() {
        return f(None);
    }
    if let Some(s) = shared() {
        return f(Some(&s));
    }
    LOCAL.with(|cell| {
        if cell.borrow().is_none() {
            let cap = settings::cache_entries();
            pgrx::notice!(
                "txclass is not in shared_preload_libraries: results are cached per backend ({cap} entries); \
                 add txclass to shared_preload_libraries and restart the server to share one cache across backends"
            );
            *cell.borrow_mut() = Some(LocalCache::new(cap));
            LOCAL_RESET.with(|r| r.set(now()));
        }
        let guard = cell.borrow();
        f(guard.as_ref().map(|c| c as &dyn ResultCache))
    })
}

pub struct Info {
    pub shared: bool,
    pub stats: Stats,
    pub stats_reset: Option<pg_sys::TimestampTz>,
}

pub fn info() -> Info {
    if let Some(s) = shared() {
        let h = s.header;
        return Info {
            shared: true,
            stats: Stats {
                capacity: h.per_partition * PARTITIONS as u64,
                entries: h.entries.load(Relaxed),
                hits: h.hits.load(Relaxed),
                misses: h.misses.load(Relaxed),
                inserts: h.inserts.load(Relaxed),
                evictions: h.evictions.load(Relaxed),
            },
            stats_reset: Some(h.stats_reset.load(Relaxed)),
        };
    }
    LOCAL.with(|cell| match cell.borrow().as_ref() {
        Some(c) => Info { shared: false, stats: c.stats(), stats_reset: Some(LOCAL_RESET.with(|r| r.get())) },
        None => Info {
            shared: false,
            stats: Stats { capacity: (settings::cache_entries() as u64), ..Stats::default() },
            stats_reset: None,
        },
    })
}

/// Empties the cache and zeroes its counters.
pub fn reset() {
    if let Some(s) = shared() {
        let per = s.header.per_partition as usize;
        for p in 0..PARTITIONS {
            // SAFETY: p < PARTITIONS locks in the tranche.
            let lock = unsafe { std::ptr::addr_of_mut!((*s.locks.add(p)).lock) };
            let _l = LockGuard::exclusive(lock);
            // SAFETY: the partition's entries, written under its lock held exclusively.
            table::clear(unsafe { std::slice::from_raw_parts_mut(s.entries.add(p * per), per) });
        }
        let h = s.header;
        for c in [&h.entries, &h.hits, &h.misses, &h.inserts, &h.evictions] {
            c.store(0, Relaxed);
        }
        h.stats_reset.store(now(), Relaxed);
        return;
    }
    LOCAL.with(|cell| {
        if let Some(c) = cell.borrow().as_ref() {
            c.reset();
        }
    });
    LOCAL_RESET.with(|r| r.set(now()));
}

fn now() -> pg_sys::TimestampTz {
    // SAFETY: reads the clock; no state.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

// ---- SQL ------------------------------------------------------------------------------------

/// Counters of the result cache: the shared one, or this backend's when txclass is not
/// preloaded. Read through the view txclass.cache_stats.
#[pgrx::pg_extern(volatile, parallel_safe)]
fn cache_info() -> pgrx::iter::TableIterator<
    'static,
    (
        pgrx::name!(shared, bool),
        pgrx::name!(capacity, i64),
        pgrx::name!(entries, i64),
        pgrx::name!(hits, i64),
        pgrx::name!(misses, i64),
        pgrx::name!(hit_ratio, Option<f64>),
        pgrx::name!(inserts, i64),
        pgrx::name!(evictions, i64),
        pgrx::name!(stats_reset, Option<pgrx::datum::TimestampWithTimeZone>),
    ),
> {
    let i = info();
    let s = i.stats;
    let lookups = s.hits + s.misses;
    let ratio = if lookups == 0 { None } else { Some(s.hits as f64 / lookups as f64) };
    let reset = i.stats_reset.and_then(|t| pgrx::datum::TimestampWithTimeZone::try_from(t).ok());
    pgrx::iter::TableIterator::once((
        i.shared,
        s.capacity as i64,
        s.entries as i64,
        s.hits as i64,
        s.misses as i64,
        ratio,
        s.inserts as i64,
        s.evictions as i64,
        reset,
    ))
}

/// Empties the result cache and zeroes its counters. Superusers only, unless granted
/// (GRANT EXECUTE ON FUNCTION txclass.cache_reset() TO some_role).
#[pgrx::pg_extern(volatile, parallel_unsafe)]
fn cache_reset() {
    reset();
}

pgrx::extension_sql_file!("../sql/cache.sql", name = "cache_sql", requires = [cache_info, cache_reset]);
