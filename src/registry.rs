//! Which model serves, and how every backend learns that it changed.
//!
//! The truth is in tables (sql/registry.sql): `txclass.models`, the append-only
//! `txclass.deployments` log, and `txclass.active`, one row pointing at the deployment in force.
//! Activation and rollback write them transactionally, so an aborted transaction changes
//! nothing.
//!
//! Backends must not query those tables on every call, so changes are *published* to shared
//! memory at commit: a deferred trigger on `txclass.active` reads the new state inside the
//! committing transaction and stages it; the commit callback copies it into this database's
//! slot and bumps a generation counter (an abort drops it). Every classification compares one
//! atomic with the generation it last saw; only when it moved does the backend look at the slot
//! (and reload its session if the model differs). Rule changes bump the same counter.
//!
//! Two-phase commit (Citus runs every write that reaches several nodes so, and it propagates
//! `CREATE EXTENSION` and every activation to its workers that way): a prepared transaction
//! commits later, in whatever session runs `COMMIT PREPARED`, where nothing is staged. So at
//! `PREPARE` the transaction is recorded *in doubt* for its database (its xid, in shared
//! memory) and its staged state is dropped. While an entry is in doubt, backends keep serving
//! what the tables say under the latest snapshot — the committed state, which the prepared
//! transaction's rows are not part of — and re-check once per statement; the first backend that
//! finds the transaction no longer running (committed or rolled back) drops the entry, clears the
//! database's slot and bumps the generation, so every backend reads the tables again. No node
//! ever serves a model that was not committed, and a committed one is served from the next
//! statement on.
//!
//! After a server start there is nothing in shared memory: the first backend that needs the
//! active model reads the tables (latest snapshot) and fills its database's slot, unless a
//! commit got there first (checked by generation). Without shared_preload_libraries there is no
//! shared memory, and each backend re-reads the tables once per transaction.
use crate::catalog::{self, Snapshot};
use crate::shmem::{copy_in, copy_out, LockGuard, CHECKSUM_BYTES, DIR_BYTES};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Databases whose active model is published (more databases still work: they read the
/// tables whenever the generation moves).
const SLOTS: usize = 64;
const NAME_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub name: String,
    pub directory: String,
    /// Hex SHA-256 of the model's files when registered.
    pub checksum: String,
    pub deployment: i64,
}

#[repr(C)]
struct Slot {
    dboid: pg_sys::Oid,
    /// 0: the database has no active model; 1: the fields below describe it.
    has_active: u32,
    deployment: i64,
    name: [u8; NAME_BYTES],
    checksum: [u8; CHECKSUM_BYTES],
    directory: [u8; DIR_BYTES],
}

/// Prepared transactions that changed the registry or the rules and are not yet resolved.
const IN_DOUBT: usize = 16;

#[repr(C)]
#[derive(Clone, Copy)]
struct InDoubt {
    dboid: pg_sys::Oid,
    /// The prepared transaction's id; InvalidTransactionId (0): a free entry.
    xid: pg_sys::TransactionId,
}

#[repr(C)]
struct Shared {
    generation: AtomicU64,
    /// How many `in_doubt` entries are used: read on every call without the lock (0 almost
    /// always), the entries only under it.
    in_doubt_count: AtomicU32,
    in_doubt: [InDoubt; IN_DOUBT],
    slots: [Slot; SLOTS],
}

static mut SHARED: *mut Shared = std::ptr::null_mut();
static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();

/// The lock that guards the slots and the in-doubt entries.
const TRANCHE_NAME: &std::ffi::CStr = c"txclass registry";

/// From `_PG_init`: registers the published state with the shared-memory hooks (preloading).
pub fn init() {
    if !crate::shmem::preloading() {
        return;
    }
    crate::shmem::register(crate::shmem::Part {
        size: shmem_size,
        tranche: Some(crate::shmem::Tranche { name: TRANCHE_NAME, locks: 1 }),
        startup: shmem_startup,
    });
}

fn shmem_size() -> usize {
    std::mem::size_of::<Shared>()
}

/// The registered start-up (AddinShmemInitLock held).
unsafe fn shmem_startup() {
    // SAFETY: the caller holds AddinShmemInitLock; the struct is ours, sized by shmem_size().
    unsafe {
        let (p, found) = crate::shmem::init_struct(c"txclass registry", shmem_size());
        let p = p as *mut Shared;
        if !found {
            // 0 is the token of "valid for this statement only" (see active())
            (*p).generation.store(1, Ordering::Release);
        }
        SHARED = p;
        LOCK = crate::shmem::lock(TRANCHE_NAME, 0);
    }
}

/// The published state in shared memory: its atomics are read through `Deref`, its slots and
/// in-doubt entries only through [`Locked`].
#[derive(Clone, Copy)]
struct Registry {
    p: *mut Shared,
}

impl std::ops::Deref for Registry {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        // SAFETY: p is SHARED, non-null (checked by shared()), and lives as long as the server;
        // through `&Shared` only the atomics are used (the rest is read and written through
        // Locked's raw pointers, under the lock).
        unsafe { &*self.p }
    }
}

impl Registry {
    fn lock(self, exclusive: bool) -> Locked {
        Locked { p: self.p, _guard: LockGuard::new(self.lock_ptr(), exclusive) }
    }
    fn lock_ptr(self) -> *mut pg_sys::LWLock {
        // SAFETY: LOCK is set with SHARED at start-up, never changed after.
        unsafe { LOCK }
    }
}

fn shared() -> Option<Registry> {
    // a hot standby replays activations without running the primary's commit callback:
    // there, read the registry once per transaction, as without shared_preload_libraries
    // SAFETY: SHARED and LOCK are set once at start-up (inherited through fork), never changed
    // after; RecoveryInProgress reads shared state under its own spinlock.
    unsafe {
        if SHARED.is_null() || LOCK.is_null() || pg_sys::RecoveryInProgress() {
            None
        } else {
            Some(Registry { p: SHARED })
        }
    }
}

fn my_db() -> pg_sys::Oid {
    // SAFETY: a plain read of this backend's database, set before any SQL runs.
    unsafe { pg_sys::MyDatabaseId }
}

/// The registry's lock held (shared or exclusive): the slots and in-doubt entries may be read
/// (and, exclusive, written) through the pointers it gives.
struct Locked {
    p: *mut Shared,
    _guard: LockGuard,
}

impl Locked {
    fn slots(&self) -> *mut Slot {
        // SAFETY: derived from the `*mut` that ShmemInitStruct returned (never through a shared
        // reference), so writes through it under the exclusive lock are sound.
        unsafe { std::ptr::addr_of_mut!((*self.p).slots) as *mut Slot }
    }
    fn in_doubt(&self) -> *mut InDoubt {
        // SAFETY: as slots().
        unsafe { std::ptr::addr_of_mut!((*self.p).in_doubt) as *mut InDoubt }
    }
    fn find(&self, db: pg_sys::Oid) -> Option<*mut Slot> {
        // SAFETY: i < SLOTS; dboid is read under the lock this guard holds.
        (0..SLOTS).map(|i| unsafe { self.slots().add(i) }).find(|&s| unsafe { (*s).dboid == db })
    }
    fn find_or_claim(&self, db: pg_sys::Oid) -> Option<*mut Slot> {
        self.find(db).or_else(|| {
            let free = self.find(pg_sys::InvalidOid)?;
            // SAFETY: claiming writes the slot: callers hold the lock exclusively.
            unsafe { (*free).dboid = db };
            Some(free)
        })
    }
}

/// Writes `active` into `slot`; false when it does not fit (then the slot is released and the
/// database falls back to reading the tables).
///
/// # Safety
/// `slot` is one of the registry's slots and the caller holds the lock exclusively.
unsafe fn write_slot(slot: *mut Slot, active: Option<&Active>) -> bool {
    // SAFETY: the caller's contract: the slot is ours to write.
    unsafe {
        let s = &mut *slot;
        match active {
            None => {
                s.has_active = 0;
                true
            }
            Some(a) => {
                let ok = copy_in(&mut s.name, &a.name)
                    && copy_in(&mut s.checksum, &a.checksum)
                    && copy_in(&mut s.directory, &a.directory);
                s.deployment = a.deployment;
                s.has_active = 1;
                if !ok {
                    s.dboid = pg_sys::InvalidOid;
                    s.has_active = 0;
                }
                ok
            }
        }
    }
}

// ---- what a backend sees ------------------------------------------------------------------

/// A value that changes whenever the registry or the rules may have changed for this backend:
/// the shared generation when preloaded, otherwise this backend's transaction number (the
/// tables are then re-read once per transaction).
pub fn token() -> u64 {
    match shared() {
        Some(s) => {
            if s.in_doubt_count.load(Ordering::Acquire) > 0 {
                settle_in_doubt(s);
            }
            s.generation.load(Ordering::Acquire)
        }
        None => (1u64 << 63) | local_xid(),
    }
}

/// This backend's local transaction number (PostgreSQL 17 moved it into `PGPROC.vxid`).
pub(crate) fn local_xid() -> u64 {
    // SAFETY: MyProc is this backend's own PGPROC, set before any SQL function runs
    #[cfg(not(feature = "pg18"))]
    let lxid = unsafe { (*pg_sys::MyProc).lxid };
    // SAFETY: as above (PostgreSQL 17 moved the field into vxid)
    #[cfg(feature = "pg18")]
    let lxid = unsafe { (*pg_sys::MyProc).vxid.lxid };
    lxid as u64
}

const STATEMENT_TOKEN: u64 = 1 << 62;

/// A token that names the running statement (its transaction and start time): what an answer
/// read under the statement's snapshot is valid for.
pub fn statement_token() -> u64 {
    // SAFETY: a backend's statement start time, read in that backend
    let (lxid, started) = (local_xid(), unsafe { pg_sys::GetCurrentStatementStartTimestamp() } as u64);
    STATEMENT_TOKEN | ((lxid.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ started) & (STATEMENT_TOKEN - 1))
}

/// Whether something loaded under `token` is still valid.
pub fn is_current(token: u64) -> bool {
    token == self::token() || (token & (3 << 62) == STATEMENT_TOKEN && token == statement_token())
}

const ACTIVE_SQL: &std::ffi::CStr = c"SELECT m.name, m.directory, m.checksum, d.id \
    FROM txclass.active a JOIN txclass.deployments d ON d.id = a.deployment \
    JOIN txclass.models m ON m.name = d.model";

fn parse_active(rows: Vec<Vec<Option<String>>>) -> Option<Active> {
    let mut row = rows.into_iter().next()?;
    let mut take = |i: usize| row[i].take().unwrap_or_default();
    Some(Active {
        name: take(0),
        directory: take(1),
        checksum: take(2),
        deployment: take(3).parse().unwrap_or(0),
    })
}

/// The active registered model of this database (None: no model was ever activated, and the
/// bundled default serves), with the token it is valid for. When the answer came from a
/// statement snapshot (parallel mode, nothing published yet), the token is
/// [`statement_token`]: valid for this statement only.
pub fn active() -> (Option<Active>, u64) {
    let Some(s) = shared() else {
        let t = token();
        let (rows, _) = catalog::read_latest(ACTIVE_SQL, 4);
        return (parse_active(rows), t);
    };
    // settles a resolved prepared transaction first: its database's slot may still hold what
    // was committed before it
    let generation = token();
    {
        let locked = s.lock(false);
        if let Some(slot) = locked.find(my_db()) {
            // SAFETY: read under the lock (shared); slots are written only under the exclusive one.
            let slot = unsafe { &*slot };
            let a = (slot.has_active == 1).then(|| Active {
                name: copy_out(&slot.name),
                directory: copy_out(&slot.directory),
                checksum: copy_out(&slot.checksum),
                deployment: slot.deployment,
            });
            return (a, generation);
        }
    }
    // nothing published for this database since the server started: read the tables, and
    // publish what they say unless a commit has published since we looked
    let (rows, snapshot) = catalog::read_latest(ACTIVE_SQL, 4);
    let a = parse_active(rows);
    if snapshot == Snapshot::Statement {
        return (a, statement_token());
    }
    // prepared transactions still in doubt that changed the registry or the rules: a server
    // restart forgot what at_pre_prepare recorded (their locks survive it), and what is
    // published now must be dropped when they end
    let (prepared, _) = catalog::read_latest(IN_DOUBT_SQL, 1);
    let xids: Vec<pg_sys::TransactionId> =
        prepared.into_iter().filter_map(|r| r.into_iter().next().flatten()?.parse::<u32>().ok()).map(pg_sys::TransactionId::from).collect();
    let locked = s.lock(true);
    if s.generation.load(Ordering::Acquire) == generation && locked.find(my_db()).is_none() {
        if !record_in_doubt(&s, &locked, &xids) {
            // more in doubt than shared memory holds: valid for this statement only
            return (a, statement_token());
        }
        if let Some(slot) = locked.find_or_claim(my_db()) {
            // SAFETY: the slot is written under the exclusive lock, held here.
            unsafe { write_slot(slot, a.as_ref()) };
        }
    }
    (a, generation)
}

/// Prepared transactions of this database holding a lock on txclass.active or txclass.rules
/// (`pg_locks` names a prepared transaction's locks `-1/<xid>`).
const IN_DOUBT_SQL: &std::ffi::CStr = c"SELECT DISTINCT split_part(l.virtualtransaction, '/', 2) FROM pg_catalog.pg_locks l \
    WHERE l.virtualtransaction LIKE '-1/%' AND l.pid IS NULL \
      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) \
      AND l.relation IN (pg_catalog.to_regclass('txclass.active'), pg_catalog.to_regclass('txclass.rules'))";

/// Records `xids` of this database in doubt (those not recorded yet); false when they do not all
/// fit. Called with the exclusive lock held.
fn record_in_doubt(s: &Shared, locked: &Locked, xids: &[pg_sys::TransactionId]) -> bool {
    let entries = locked.in_doubt();
    for &xid in xids {
        // SAFETY: the entries are read and written under the exclusive lock, held by the caller.
        unsafe {
            if (0..IN_DOUBT).any(|i| (*entries.add(i)).xid == xid) {
                continue;
            }
            let Some(i) = (0..IN_DOUBT).find(|&i| (*entries.add(i)).xid == pg_sys::InvalidTransactionId) else {
                return false;
            };
            *entries.add(i) = InDoubt { dboid: my_db(), xid };
        }
        s.in_doubt_count.fetch_add(1, Ordering::AcqRel);
    }
    true
}

// ---- publishing at commit -----------------------------------------------------------------

thread_local! {
    /// What this transaction will publish at commit: Some(state) once staged.
    static STAGED: RefCell<Option<Option<Active>>> = const { RefCell::new(None) };
    /// Whether this transaction changed the registry or the rules (then its end bumps the
    /// generation, or, prepared, records it in doubt).
    static CHANGED: Cell<bool> = const { Cell::new(false) };
    /// When this backend last looked at the in-doubt entries: (statement token, time in µs).
    static SETTLE_CHECKED: Cell<(u64, i64)> = const { Cell::new((0, 0)) };
}

/// What a transaction's end does to the registry's per-transaction state (src/xact.rs).
static HOOKS: crate::xact::Hooks = crate::xact::Hooks {
    pre_prepare: at_pre_prepare,
    commit: at_commit,
    end: at_end,
    subtransaction_abort: crate::xact::nothing_sub,
};

fn mark_changed() {
    CHANGED.with(|c| c.set(true));
    crate::xact::ensure_registered(&HOOKS);
}

/// Transaction end: committed — publish what was staged, bump the generation.
fn at_commit() {
    if !CHANGED.with(|c| c.replace(false)) {
        return;
    }
    let staged = STAGED.with(|s| s.borrow_mut().take());
    publish(staged);
}

/// Transaction end (after at_commit on commit): aborted, or prepared (then `at_pre_prepare`
/// recorded it in doubt) — nothing staged survives.
fn at_end() {
    CHANGED.with(|c| c.set(false));
    STAGED.with(|s| *s.borrow_mut() = None);
}

/// Before `PREPARE TRANSACTION` (may raise an ERROR, which fails the PREPARE): a
/// transaction that changed the registry or the rules is recorded in doubt, so that every
/// backend re-reads the tables once it is resolved (module comment).
fn at_pre_prepare() {
    if !CHANGED.with(|c| c.get()) {
        return;
    }
    let Some(s) = shared() else { return }; // without shared memory, every transaction re-reads
    // SAFETY: reads this backend's own top-level transaction id.
    let xid = unsafe { pg_sys::GetTopTransactionIdIfAny() };
    if xid == pg_sys::InvalidTransactionId {
        return; // wrote nothing after all
    }
    let locked = s.lock(true);
    if !record_in_doubt(&s, &locked, &[xid]) {
        drop(locked);
        crate::errors::raise_code(
            pgrx::PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!("txclass: {IN_DOUBT} prepared transactions that change its registry or rules are already in doubt"),
            "resolve them first: see pg_prepared_xacts, then COMMIT PREPARED or ROLLBACK PREPARED \
             (Citus resolves its own in its maintenance daemon)",
        );
    }
}

/// While some prepared transaction is in doubt: at most once per statement (and every 100 ms
/// within a long one), drops the entries whose transaction ended, clears their databases' slots
/// and bumps the generation.
fn settle_in_doubt(s: Registry) {
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let statement = statement_token();
    let (last_statement, last_time) = SETTLE_CHECKED.with(|c| c.get());
    if last_statement == statement && now - last_time < 100_000 {
        return;
    }
    SETTLE_CHECKED.with(|c| c.set((statement, now)));
    let pending: Vec<InDoubt> = {
        let locked = s.lock(false);
        let entries = locked.in_doubt();
        // SAFETY: read under the shared lock; written only under the exclusive one.
        (0..IN_DOUBT).map(|i| unsafe { *entries.add(i) }).filter(|e| e.xid != pg_sys::InvalidTransactionId).collect()
    };
    // SAFETY: TransactionIdIsInProgress reads the proc array (a prepared transaction counts as
    // in progress until COMMIT/ROLLBACK PREPARED); called without our lock held.
    let ended: Vec<InDoubt> = pending.into_iter().filter(|e| !unsafe { pg_sys::TransactionIdIsInProgress(e.xid) }).collect();
    if ended.is_empty() {
        return;
    }
    let locked = s.lock(true);
    let entries = locked.in_doubt();
    let mut settled = 0;
    for e in ended {
        for i in 0..IN_DOUBT {
            // SAFETY: written under the exclusive lock, held here; i < IN_DOUBT.
            unsafe {
                let entry = &mut *entries.add(i);
                if entry.xid == e.xid && entry.dboid == e.dboid {
                    *entry = InDoubt { dboid: pg_sys::InvalidOid, xid: pg_sys::InvalidTransactionId };
                    settled += 1;
                    if let Some(slot) = locked.find(e.dboid) {
                        (*slot).dboid = pg_sys::InvalidOid;
                        (*slot).has_active = 0;
                    }
                }
            }
        }
    }
    if settled > 0 {
        s.in_doubt_count.fetch_sub(settled, Ordering::AcqRel);
        s.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// In the commit callback: must not fail.
fn publish(staged: Option<Option<Active>>) {
    let Some(s) = shared() else { return };
    let locked = s.lock(true);
    if let Some(state) = staged {
        if let Some(slot) = locked.find_or_claim(my_db()) {
            // SAFETY: one of our slots, under the exclusive lock held here.
            unsafe { write_slot(slot, state.as_ref()) };
        }
    }
    s.generation.fetch_add(1, Ordering::AcqRel);
    drop(locked);
}

/// Called by the deferred trigger on txclass.active (and at CREATE EXTENSION): reads the active
/// model as this transaction leaves it and publishes it to every backend at commit.
#[pg_extern(volatile, parallel_unsafe)]
fn _publish_at_commit() {
    let active = Spi::connect(|client| {
        let t = client.select(ACTIVE_SQL, None, &[])?;
        let mut rows = Vec::new();
        for row in t {
            rows.push(vec![
                row.get::<String>(1)?,
                row.get::<String>(2)?,
                row.get::<String>(3)?,
                row.get::<i64>(4)?.map(|v| v.to_string()),
            ]);
        }
        Ok::<_, pgrx::spi::Error>(rows)
    })
    .unwrap_or_else(|e| error!("txclass: cannot read the active model to publish it: {e}"));
    let active = parse_active(active);
    if let Some(a) = &active {
        if a.name.len() >= NAME_BYTES || a.directory.len() >= DIR_BYTES {
            // cannot be published to shared memory: backends will read the tables instead
            pgrx::debug1!("txclass: model {} has a name or path too long for shared memory", a.name);
        }
    }
    STAGED.with(|s| *s.borrow_mut() = Some(active));
    mark_changed();
}

/// Called by the statement trigger on txclass.rules: every backend reloads its rules after
/// this transaction commits.
#[pg_extern(volatile, parallel_unsafe)]
fn _bump_at_commit() {
    mark_changed();
}

/// The role the caller acts as (not the owner of a SECURITY DEFINER function): recorded as
/// registered_by / deployed_by.
#[pg_extern(stable, parallel_safe)]
fn _caller() -> String {
    catalog::role_name(catalog::caller())
}

/// This backend's view of the registry generation (for tests and monitoring).
#[pg_extern(volatile, parallel_safe)]
fn registry_generation() -> i64 {
    shared().map(|s| s.generation.load(Ordering::Acquire) as i64).unwrap_or(-1)
}

/// What shared memory holds for this database: the published active model's name, '' when it
/// holds "no model activated", NULL when nothing is published (not preloaded, or not yet).
#[pg_extern(volatile, parallel_safe)]
fn _published_model() -> Option<String> {
    let s = shared()?;
    let locked = s.lock(false);
    let slot = locked.find(my_db())?;
    // SAFETY: read under the lock (shared); slots are written only under the exclusive one.
    let slot = unsafe { &*slot };
    Some(if slot.has_active == 1 { copy_out(&slot.name) } else { String::new() })
}
