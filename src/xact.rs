//! Transaction ends, in one place.
//!
//! txclass registers one transaction callback and one subtransaction callback per backend, at
//! the first moment a concern keeps state that a transaction's end must settle. A concern
//! hands [`ensure_registered`] its [`Hooks`] (plain functions, in a static); they are called
//! from here, in the order the concerns first registered (they settle independent state). This
//! module knows no concern. Today:
//!
//! | event | registry (src/registry.rs) | statement queue (src/pending.rs) |
//! |---|---|---|
//! | pre-prepare | records the transaction as in doubt for every backend | — |
//! | commit | publishes what the transaction staged | cleared |
//! | prepare | drops what it staged (the in-doubt record stands for it) | cleared |
//! | abort | drops what it staged | cleared |
//! | subtransaction abort | — | drops rows queued in it |
//!
//! A prepared transaction (two-phase commit, as Citus runs every multi-node write) ends in
//! whatever session runs `COMMIT PREPARED`, without any of this backend's state: what it
//! changed is settled by the in-doubt record instead (see registry.rs). PostgreSQL runs no
//! commit or abort callback for the preparing session, so every per-transaction state is
//! cleared at `PREPARE` as it is at commit and abort — a stale state would otherwise fire at the
//! session's next, unrelated commit.
use pgrx::pg_sys;
use pgrx::pg_sys::{SubXactEvent, XactEvent};
use std::cell::RefCell;

/// What one concern does at each end. `end` runs at commit (after `commit`), at `PREPARE`
/// and at abort: the per-transaction state that must not survive any of them.
pub struct Hooks {
    /// Before `PREPARE TRANSACTION`, still inside it: may raise an ERROR (the PREPARE fails).
    pub pre_prepare: fn(),
    /// After the commit record: must not fail.
    pub commit: fn(),
    /// After commit, `PREPARE` or abort: drop per-transaction state. Must not fail.
    pub end: fn(),
    /// A subtransaction aborted: drop what it (or its children) added.
    pub subtransaction_abort: fn(pg_sys::SubTransactionId),
}

/// For hooks a concern does not need.
pub fn nothing() {}
/// For hooks a concern does not need.
pub fn nothing_sub(_: pg_sys::SubTransactionId) {}

thread_local! {
    /// The concerns registered in this backend (once each), in registration order; non-empty
    /// once the callbacks are registered with PostgreSQL.
    static CONCERNS: RefCell<Vec<&'static Hooks>> = const { RefCell::new(Vec::new()) };
}

/// Registers `hooks` (once per backend; cheap after the first call), and PostgreSQL's
/// callbacks with the first concern.
pub fn ensure_registered(hooks: &'static Hooks) {
    let first = CONCERNS.with(|c| {
        let mut c = c.borrow_mut();
        if c.iter().any(|h| std::ptr::eq(*h, hooks)) {
            return false;
        }
        c.push(hooks);
        c.len() == 1
    });
    if first {
        // SAFETY: registers plain function pointers with a null argument, once per backend (the
        // first concern); PostgreSQL keeps them for the life of the process.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        }
    }
}

/// The registered concerns (a copy: a hook may register another concern).
fn concerns() -> Vec<&'static Hooks> {
    CONCERNS.with(|c| c.borrow().clone())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact(event: XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        // still inside the transaction: may raise an ERROR (then the PREPARE fails, and the
        // transaction aborts)
        XactEvent::XACT_EVENT_PRE_PREPARE => concerns().iter().for_each(|h| (h.pre_prepare)()),
        // after the commit record: must not fail
        XactEvent::XACT_EVENT_COMMIT | XactEvent::XACT_EVENT_PARALLEL_COMMIT => {
            for h in concerns() {
                (h.commit)();
                (h.end)();
            }
        }
        // prepared (pre_prepare recorded what must outlive it) or aborted: nothing staged survives
        XactEvent::XACT_EVENT_PREPARE | XactEvent::XACT_EVENT_ABORT | XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            concerns().iter().for_each(|h| (h.end)())
        }
        _ => {}
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        concerns().iter().for_each(|h| (h.subtransaction_abort)(my_subid));
    }
}
