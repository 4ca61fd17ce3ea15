//! Model identities verified once per server: a directory's checksum, remembered with the
//! [`DirStamp`] its files had when they were hashed.
//!
//! A model's identity is the SHA-256 of its three files; computing it reads the weights (90 MB
//! for MiniLM, 440 MB for a BERT-base). Every backend used to do that at its first
//! classification, so 64 connections opening at once read gigabytes before answering. Now the
//! first process that hashes a directory (a backend, or an inference worker verifying what it
//! loads) publishes (directory, stamps, checksum) here; a process that finds the files with the
//! same stamps takes the checksum and reads only `config.json`. Files changed since (a write, a
//! rename over, a touch) have other stamps, so they are hashed again — a registered model whose
//! files changed is still refused.
//!
//! In shared memory when txclass is preloaded ([`ENTRIES`] directories, least recently used
//! replaced); without it, per backend (a backend that reloads a model skips the hash).
use crate::shmem::{copy_in, copy_out, LockGuard, CHECKSUM_BYTES, DIR_BYTES};
use pgrx::pg_sys;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use txclass_core::model::DirStamp;
use txclass_core::{Error, ModelDir};

/// Directories remembered.
const ENTRIES: usize = 32;
const TRANCHE_NAME: &CStr = c"txclass identity";

#[repr(C)]
struct Entry {
    /// 0: free; else the clock at the last look-up or publication (orders replacement).
    last_used: AtomicU64,
    stamp: DirStamp,
    dir: [u8; DIR_BYTES],
    checksum: [u8; CHECKSUM_BYTES],
}

#[repr(C)]
struct Shared {
    clock: AtomicU64,
    entries: [Entry; ENTRIES],
}

static mut SHARED: *mut Shared = std::ptr::null_mut();
static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();

thread_local! {
    /// Without shared memory: this backend's own.
    static LOCAL: RefCell<HashMap<String, (DirStamp, String)>> = RefCell::new(HashMap::new());
}

/// From `_PG_init`: registers the table with the shared-memory hooks (preloading).
pub fn init() {
    if !crate::shmem::preloading() {
        return;
    }
    crate::shmem::register(crate::shmem::Part {
        size: || std::mem::size_of::<Shared>(),
        tranche: Some(crate::shmem::Tranche { name: TRANCHE_NAME, locks: 1 }),
        startup: shmem_startup,
    });
}

/// The registered start-up (AddinShmemInitLock held).
unsafe fn shmem_startup() {
    // SAFETY: the caller holds AddinShmemInitLock; the struct is ours, sized by the registered
    // size; a new one is zeroed (every entry free).
    unsafe {
        let (p, _) = crate::shmem::init_struct(c"txclass model identities", std::mem::size_of::<Shared>());
        SHARED = p as *mut Shared;
        LOCK = crate::shmem::lock(TRANCHE_NAME, 0);
    }
}

/// The table and its lock, when preloaded.
fn shared() -> Option<(*mut Shared, *mut pg_sys::LWLock)> {
    // SAFETY: both are set once at start-up (inherited through fork), never changed after.
    unsafe { (!SHARED.is_null() && !LOCK.is_null()).then_some((SHARED, LOCK)) }
}

/// The checksum published for `dir` with files stamped `stamp`, if any.
fn lookup(dir: &str, stamp: &DirStamp) -> Option<String> {
    let Some((s, lock)) = shared() else {
        return LOCAL.with(|l| l.borrow().get(dir).filter(|(st, _)| st == stamp).map(|(_, c)| c.clone()));
    };
    let _l = LockGuard::shared(lock);
    // SAFETY: the entries are read under the lock (shared) and written only under it
    // exclusively; `s` is the structure ShmemInitStruct returned; clock is an atomic.
    unsafe {
        let e = (0..ENTRIES).map(|i| std::ptr::addr_of_mut!((*s).entries[i])).find(|&e| {
            (*e).last_used.load(Relaxed) != 0 && (*e).stamp == *stamp && copy_out(&(*e).dir) == dir
        })?;
        // recency is an atomic: readers under the shared lock may update it together
        (*e).last_used.store((*s).clock.fetch_add(1, Relaxed) + 1, Relaxed);
        Some(copy_out(&(*e).checksum))
    }
}

/// Publishes that `dir`, with files stamped `stamp`, has `checksum`.
fn publish(dir: &str, stamp: &DirStamp, checksum: &str) {
    if dir.len() >= DIR_BYTES || checksum.len() >= CHECKSUM_BYTES {
        return;
    }
    let Some((s, lock)) = shared() else {
        LOCAL.with(|l| l.borrow_mut().insert(dir.to_string(), (*stamp, checksum.to_string())));
        return;
    };
    let _l = LockGuard::exclusive(lock);
    // SAFETY: written under the exclusive lock; i < ENTRIES.
    unsafe {
        let at = |i: usize| std::ptr::addr_of_mut!((*s).entries[i]);
        let i = (0..ENTRIES)
            .find(|&i| (*at(i)).last_used.load(Relaxed) != 0 && copy_out(&(*at(i)).dir) == dir)
            .unwrap_or_else(|| (0..ENTRIES).min_by_key(|&i| (*at(i)).last_used.load(Relaxed)).unwrap_or(0));
        let e = at(i);
        copy_in(&mut (*e).dir, dir);
        copy_in(&mut (*e).checksum, checksum);
        (*e).stamp = *stamp;
        (*e).last_used.store((*s).clock.fetch_add(1, Relaxed) + 1, Relaxed);
    }
}

/// Opens the model directory `dir`: with the checksum a process of this server computed over
/// these very files when their stamps match (only `config.json` is read), else hashing the files
/// ([`ModelDir::open`]) and publishing the result. Errors are [`ModelDir::open`]'s.
pub fn open(dir: &Path) -> Result<ModelDir, Error> {
    let key = dir.display().to_string();
    let Ok(before) = ModelDir::stamp(dir) else {
        return ModelDir::open(dir); // a file is missing: its error, as open() words it
    };
    if let Some(checksum) = lookup(&key, &before) {
        return ModelDir::open_known(dir, checksum);
    }
    let model = ModelDir::open(dir)?;
    // only what did not change while it was hashed
    if ModelDir::stamp(dir).ok() == Some(before) {
        publish(&key, &before, &model.checksum);
    }
    Ok(model)
}
