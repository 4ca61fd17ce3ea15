//! The shared-memory result cache (needs `shared_preload_libraries = 'txclass'`).
//!
//! Like pg_stat_statements: sized at server start from a postmaster setting
//! (`txclass.cache_entries`), requested in the shmem request hook, created in the shmem startup
//! hook, split into [`PARTITIONS`] partitions each guarded by an LWLock of a named tranche.
//! Readers take their partition's lock shared, writers exclusive: no global lock on the hot
//! path, no torn reads. Entries are fixed-size plain data (`txclass_core::cache::Entry`); the
//! probing and usage-decay eviction live in `txclass_core::cache`. Counters are atomics.
//!
//! The same hooks set up the registry's shared state (src/registry.rs), with one more lock.
//!
//! Without `shared_preload_libraries`, each backend gets a [`LocalCache`] of the same capacity
//! and one NOTICE saying how to share it.
use crate::settings;
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use txclass_core::cache::{self as table, Entry, Key, LocalCache, Put, ResultCache, Stats};
use txclass_core::Prediction;

pub const PARTITIONS: usize = 16;
const TRANCHE: &CStr = c"txclass";
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
static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

fn shmem_size(capacity: usize) -> usize {
    HEADER_BYTES + capacity * std::mem::size_of::<Entry>()
}

/// Called from `_PG_init`: installs the shmem hooks when loaded by shared_preload_libraries.
pub fn init() {
    unsafe {
        if !pg_sys::process_shared_preload_libraries_in_progress {
            return;
        }
        CAPACITY = settings::CACHE_ENTRIES.get().max(0) as usize;
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(shmem_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            // another extension's hook: C code that may longjmp (ERROR), never unwinds; the
            // boundary turns a longjmp into a Rust panic that pgrx reports as the ERROR
            #[allow(ffi_unwind_calls)]
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| prev());
        }
        pg_sys::RequestAddinShmemSpace(shmem_size(CAPACITY));
        pg_sys::RequestAddinShmemSpace(crate::registry::shmem_size());
        pg_sys::RequestAddinShmemSpace(crate::enrich::shmem_size());
        // one lock per cache partition, and one for the registry's slots
        pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), PARTITIONS as i32 + 1);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            // another extension's hook: C code that may longjmp (ERROR), never unwinds; the
            // boundary turns a longjmp into a Rust panic that pgrx reports as the ERROR
            #[allow(ffi_unwind_calls)]
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| prev());
        }
        let init_lock = std::ptr::addr_of_mut!((*pg_sys::MainLWLockArray.add(21)).lock); // AddinShmemInitLock
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let size = shmem_size(CAPACITY);
        let base = pg_sys::ShmemInitStruct(SHMEM_NAME.as_ptr(), size, &mut found) as *mut u8;
        if !found {
            std::ptr::write_bytes(base, 0, size); // all entries empty (model 0), counters 0
            let h = base as *mut Header;
            (*h).capacity = CAPACITY as u64;
            (*h).per_partition = (CAPACITY / PARTITIONS) as u64;
            (*h).stats_reset.store(pg_sys::GetCurrentTimestamp(), Relaxed);
        }
        SHARED = base as *mut Header;
        LOCKS = pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr());
        crate::registry::shmem_startup(std::ptr::addr_of_mut!((*LOCKS.add(PARTITIONS)).lock));
        crate::enrich::shmem_startup();
        pg_sys::LWLockRelease(init_lock);
    }
}

/// The shared table, when the server started with txclass preloaded.
struct Shared {
    header: &'static Header,
    entries: *mut Entry,
    locks: *mut pg_sys::LWLockPadded,
}

fn shared() -> Option<Shared> {
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
        unsafe { (per, std::ptr::addr_of_mut!((*self.locks.add(p)).lock), self.entries.add(p * per)) }
    }
}

impl ResultCache for Shared {
    fn get(&self, k: &Key) -> Option<Prediction> {
        let (per, lock, first) = self.partition(k);
        let r = unsafe {
            pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_SHARED);
            let r = table::get(std::slice::from_raw_parts(first, per), k);
            pg_sys::LWLockRelease(lock);
            r
        };
        if r.is_some() { &self.header.hits } else { &self.header.misses }.fetch_add(1, Relaxed);
        r
    }

    fn put(&self, k: &Key, p: Prediction) {
        let (per, lock, first) = self.partition(k);
        let outcome = unsafe {
            pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
            let o = table::put(std::slice::from_raw_parts_mut(first, per), k, p);
            pg_sys::LWLockRelease(lock);
            o
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
    if !settings::CACHE.get() {
        return f(None);
    }
    if let Some(s) = shared() {
        return f(Some(&s));
    }
    LOCAL.with(|cell| {
        if cell.borrow().is_none() {
            let cap = settings::CACHE_ENTRIES.get().max(0) as usize;
            pgrx::notice!(
                "txclass is not in shared_preload_libraries: results are cached per backend ({cap} entries); \
                 add txclass to shared_preload_libraries and restart the server to share one cache across backends"
            );
            *cell.borrow_mut() = Some(LocalCache::new(cap));
            LOCAL_RESET.with(|r| r.set(unsafe { pg_sys::GetCurrentTimestamp() }));
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
            stats: Stats { capacity: settings::CACHE_ENTRIES.get().max(0) as u64, ..Stats::default() },
            stats_reset: None,
        },
    })
}

/// Empties the cache and zeroes its counters.
pub fn reset() {
    if let Some(s) = shared() {
        let per = s.header.per_partition as usize;
        for p in 0..PARTITIONS {
            unsafe {
                let lock = std::ptr::addr_of_mut!((*s.locks.add(p)).lock);
                pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
                table::clear(std::slice::from_raw_parts_mut(s.entries.add(p * per), per));
                pg_sys::LWLockRelease(lock);
            }
        }
        let h = s.header;
        for c in [&h.entries, &h.hits, &h.misses, &h.inserts, &h.evictions] {
            c.store(0, Relaxed);
        }
        h.stats_reset.store(unsafe { pg_sys::GetCurrentTimestamp() }, Relaxed);
        return;
    }
    LOCAL.with(|cell| {
        if let Some(c) = cell.borrow().as_ref() {
            c.reset();
        }
    });
    LOCAL_RESET.with(|r| r.set(unsafe { pg_sys::GetCurrentTimestamp() }));
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
