//! txclass's shared memory, in one place (needs `shared_preload_libraries = 'txclass'`).
//!
//! Each module that keeps state in shared memory offers its size, its locks and its start-up:
//! the result cache (src/cache.rs), the registry's published models (src/registry.rs), the
//! enrichment counters (src/enrich.rs) and the inference workers' queue (src/worker.rs). The
//! request hook asks the postmaster for all of it; the start-up hook creates (or, in a backend
//! after a restart of the worker, finds) each part under `AddinShmemInitLock`, as
//! pg_stat_statements does. Every lock tranche is named for its module, so `pg_stat_activity`
//! shows which one a backend waits on.
use pgrx::pg_sys;
use std::ffi::CStr;

static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// A named tranche of `locks` LWLocks.
pub struct Tranche {
    pub name: &'static CStr,
    pub locks: i32,
}

/// Every tranche txclass uses.
const TRANCHES: [Tranche; 3] = [crate::cache::TRANCHE, crate::registry::TRANCHE, crate::worker::TRANCHE];

/// Whether this process is loading txclass from shared_preload_libraries (the postmaster at
/// start-up): only then can shared memory and background workers be requested.
pub fn preloading() -> bool {
    // SAFETY: a plain global the postmaster sets while it loads shared_preload_libraries.
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

/// Called from `_PG_init`: installs the hooks when loaded by shared_preload_libraries.
pub fn init() {
    if !preloading() {
        return;
    }
    crate::cache::init();
    // SAFETY: _PG_init runs once per process, single-threaded, before any hook can fire; the
    // previous hooks are kept and called first (hook chaining as in contrib modules).
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(shmem_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

/// The lock of `name`'s tranche at `index` (after start-up).
pub fn lock(name: &CStr, index: usize) -> *mut pg_sys::LWLock {
    // SAFETY: the tranche was requested in shmem_request with at least `index + 1` locks (the
    // callers index within their own TRANCHE constant); GetNamedLWLockTranche errors otherwise.
    unsafe { std::ptr::addr_of_mut!((*pg_sys::GetNamedLWLockTranche(name.as_ptr()).add(index)).lock) }
}

/// `AddinShmemInitLock`: in C a macro, `&MainLWLockArray[21].lock` (storage/lwlocknames.h).
fn addin_shmem_init_lock() -> *mut pg_sys::LWLock {
    const ADDIN_SHMEM_INIT_LOCK: usize = 21;
    // SAFETY: MainLWLockArray is set up before any shmem_startup_hook runs; index 21 is the
    // fixed position of AddinShmemInitLock in PostgreSQL 15 to 18.
    unsafe { std::ptr::addr_of_mut!((*pg_sys::MainLWLockArray.add(ADDIN_SHMEM_INIT_LOCK)).lock) }
}

/// Creates (first caller) or attaches to (later callers) the named structure of `size` bytes;
/// a new one is zeroed. Returns (pointer, whether it already existed). Call with
/// AddinShmemInitLock held (from a module's start-up).
pub unsafe fn init_struct(name: &CStr, size: usize) -> (*mut u8, bool) {
    let mut found = false;
    // SAFETY: called from shmem_startup with AddinShmemInitLock held; the space was requested.
    unsafe {
        let p = pg_sys::ShmemInitStruct(name.as_ptr(), size, &mut found) as *mut u8;
        if !found {
            std::ptr::write_bytes(p, 0, size);
        }
        (p, found)
    }
}

/// Writes `s` NUL-terminated into the fixed-size field `dst`; false (field untouched) when it
/// does not fit.
pub fn copy_in(dst: &mut [u8], s: &str) -> bool {
    if s.len() >= dst.len() {
        return false;
    }
    dst.fill(0);
    dst[..s.len()].copy_from_slice(s.as_bytes());
    true
}

/// The NUL-terminated string in the fixed-size field `src`.
pub fn copy_out(src: &[u8]) -> String {
    let n = src.iter().position(|&b| b == 0).unwrap_or(src.len());
    String::from_utf8_lossy(&src[..n]).into_owned()
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    // SAFETY: the postmaster calls this once, in its request phase.
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            // another extension's hook: C code that may longjmp (ERROR), never unwinds; the
            // boundary turns a longjmp into a Rust panic that pgrx reports as the ERROR
            #[allow(ffi_unwind_calls)]
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| prev());
        }
        let size = crate::cache::shmem_size() + crate::registry::shmem_size() + crate::enrich::shmem_size() + crate::worker::shmem_size();
        pg_sys::RequestAddinShmemSpace(size);
        for t in &TRANCHES {
            pg_sys::RequestNamedLWLockTranche(t.name.as_ptr(), t.locks);
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    // SAFETY: runs in the postmaster (and in EXEC_BACKEND children) after the request phase.
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            #[allow(ffi_unwind_calls)]
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| prev());
        }
        let init_lock = addin_shmem_init_lock();
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        crate::cache::shmem_startup();
        crate::registry::shmem_startup();
        crate::enrich::shmem_startup();
        crate::worker::shmem_startup();
        pg_sys::LWLockRelease(init_lock);
    }
}
