//! txclass's shared memory (needs `shared_preload_libraries = 'txclass'`): the hooks, the
//! registration each feature makes, and the one lock guard every feature uses.
//!
//! A feature that keeps state in shared memory calls [`register`] from its `init` (in
//! `_PG_init`, while preloading) with its size, its lock tranche and its start-up. This module
//! knows none of them: the request hook asks the postmaster for the sum of the registered sizes
//! and every registered tranche; the start-up hook runs each registered start-up under
//! `AddinShmemInitLock`, as pg_stat_statements does. Each tranche is named for its feature, so
//! `pg_stat_activity` shows which one a backend waits on.
use pgrx::pg_sys;
use std::ffi::CStr;
use std::sync::Mutex;

static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// A named tranche of `locks` LWLocks.
pub struct Tranche {
    pub name: &'static CStr,
    pub locks: i32,
}

/// What one feature keeps in shared memory.
pub struct Part {
    /// Bytes it needs (asked once, in the postmaster's request phase).
    pub size: fn() -> usize,
    /// Its locks, if it has any.
    pub tranche: Option<Tranche>,
    /// Creates (postmaster) or finds (EXEC_BACKEND child) its structure: runs with
    /// `AddinShmemInitLock` held, after the request phase.
    pub startup: unsafe fn(),
}

/// The registered parts, in registration order.
static PARTS: Mutex<Vec<Part>> = Mutex::new(Vec::new());

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
    // SAFETY: _PG_init runs once per process, single-threaded, before any hook can fire; the
    // previous hooks are kept and called first (hook chaining as in contrib modules).
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(shmem_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

/// Registers a feature's shared memory (from its `init`, while [`preloading`]).
pub fn register(part: Part) {
    debug_assert!(preloading());
    PARTS.lock().unwrap_or_else(|p| p.into_inner()).push(part);
}

/// The lock of `name`'s tranche at `index` (after start-up).
pub fn lock(name: &CStr, index: usize) -> *mut pg_sys::LWLock {
    // SAFETY: the tranche was requested in shmem_request with at least `index + 1` locks (the
    // callers index within their own Tranche); GetNamedLWLockTranche errors for an unknown
    // name, and the array it returns holds the tranche's locks contiguously.
    unsafe { std::ptr::addr_of_mut!((*pg_sys::GetNamedLWLockTranche(name.as_ptr()).add(index)).lock) }
}

/// An LWLock held until the guard is dropped — also when an ERROR unwinds through the Rust
/// frames that hold it (the release runs before the transaction's abort releases all locks).
/// The one way txclass takes its locks.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    lock: *mut pg_sys::LWLock,
}

impl LockGuard {
    /// Takes `lock` exclusively (writers, and readers of state that changes under it).
    pub fn exclusive(lock: *mut pg_sys::LWLock) -> LockGuard {
        Self::new(lock, true)
    }
    /// Takes `lock` shared (readers).
    pub fn shared(lock: *mut pg_sys::LWLock) -> LockGuard {
        Self::new(lock, false)
    }
    pub fn new(lock: *mut pg_sys::LWLock, exclusive: bool) -> LockGuard {
        let mode = if exclusive { pg_sys::LWLockMode::LW_EXCLUSIVE } else { pg_sys::LWLockMode::LW_SHARED };
        // SAFETY: callers pass a lock of a registered tranche (or a built-in one) found after
        // start-up: an initialized LWLock in shared memory that lives as long as the server.
        unsafe { pg_sys::LWLockAcquire(lock, mode) };
        LockGuard { lock }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // SAFETY: acquired in new() by this process and not released since (the guard is the
        // only owner of the acquisition).
        unsafe { pg_sys::LWLockRelease(self.lock) };
    }
}

/// `AddinShmemInitLock`, found by its name among the individual LWLocks. In C it is a macro
/// over a fixed index of `MainLWLockArray` (21 from PostgreSQL 9.6 to 18) that a binding cannot
/// see; the name ("AddinShmemInit", what `pg_stat_activity.wait_event` shows) is what the
/// server itself reports, so a major that moves the lock still finds it.
fn addin_shmem_init_lock() -> *mut pg_sys::LWLock {
    // the individual locks come first in MainLWLockArray, each in a tranche numbered as its index
    const SEARCHED: u16 = 128;
    for id in 0..SEARCHED {
        // SAFETY: GetLWLockIdentifier(PG_WAIT_LWLOCK, id) reads the static name tables (a
        // registered name, "extension" or NULL for unknown ids); the result is a static string.
        let name = unsafe { pg_sys::GetLWLockIdentifier(pg_sys::PG_WAIT_LWLOCK, id) };
        // SAFETY: non-null: a NUL-terminated static string.
        if !name.is_null() && unsafe { CStr::from_ptr(name) } == c"AddinShmemInit" {
            // SAFETY: ids below NUM_INDIVIDUAL_LWLOCKS index MainLWLockArray, which is set up
            // before any shmem_startup_hook runs.
            return unsafe { std::ptr::addr_of_mut!((*pg_sys::MainLWLockArray.add(id as usize)).lock) };
        }
    }
    pgrx::error!("txclass: no LWLock named AddinShmemInit in this server; this PostgreSQL major is not supported")
}

/// Creates (first caller) or attaches to (later callers) the named structure of `size` bytes;
/// a new one is zeroed. Returns (pointer, whether it already existed).
///
/// # Safety
/// Call with `AddinShmemInitLock` held (from a registered start-up), for space requested in the
/// request phase.
pub unsafe fn init_struct(name: &CStr, size: usize) -> (*mut u8, bool) {
    let mut found = false;
    // SAFETY: the caller holds AddinShmemInitLock and requested the space; a new structure is
    // `size` writable bytes.
    unsafe {
        let p = pg_sys::ShmemInitStruct(name.as_ptr(), size, &mut found) as *mut u8;
        if !found {
            std::ptr::write_bytes(p, 0, size);
        }
        (p, found)
    }
}

/// Bytes of a fixed-size model-directory field in shared memory (the path and its NUL).
pub const DIR_BYTES: usize = 1024;
/// Bytes of a fixed-size checksum field in shared memory (64 hex digits and the NUL fit).
pub const CHECKSUM_BYTES: usize = 72;

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
    // SAFETY: the postmaster calls this once, in its request phase; a previous hook is another
    // extension's C code, which may longjmp (ERROR) but never unwinds: the boundary turns a
    // longjmp into a Rust panic that pgrx reports as the ERROR.
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            #[allow(ffi_unwind_calls)]
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| prev());
        }
    }
    let parts = PARTS.lock().unwrap_or_else(|p| p.into_inner());
    let size = parts.iter().map(|p| (p.size)()).sum();
    // SAFETY: the request phase is the one place these may be called.
    unsafe {
        pg_sys::RequestAddinShmemSpace(size);
        for t in parts.iter().filter_map(|p| p.tranche.as_ref()) {
            pg_sys::RequestNamedLWLockTranche(t.name.as_ptr(), t.locks);
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    // SAFETY: runs in the postmaster (and in EXEC_BACKEND children) after the request phase; a
    // previous hook as in shmem_request.
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            #[allow(ffi_unwind_calls)]
            pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| prev());
        }
    }
    let _init = LockGuard::exclusive(addin_shmem_init_lock());
    for p in PARTS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        // SAFETY: AddinShmemInitLock is held (the guard above) and the part's space was requested.
        unsafe { (p.startup)() };
    }
}
