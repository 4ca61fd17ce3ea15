//! Transaction ends, in one place.
//!
//! txclass registers one transaction callback and one subtransaction callback per backend, at
//! the first moment a concern keeps state that a transaction's end must settle; each concern
//! offers plain functions that are called from here, in a fixed order:
//!
//! | event | registry (src/registry.rs) | enrichment queue (src/enrich.rs) |
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
use std::cell::Cell;

thread_local! {
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Registers the callbacks once per backend (idempotent; cheap after the first call).
pub fn ensure_registered() {
    if REGISTERED.with(|r| r.replace(true)) {
        return;
    }
    // SAFETY: registers plain function pointers with a null argument, once per backend (the
    // flag above); PostgreSQL keeps them for the life of the process.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact(event: XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        // still inside the transaction: may raise an ERROR (then the PREPARE fails, and the
        // transaction aborts)
        XactEvent::XACT_EVENT_PRE_PREPARE => crate::registry::at_pre_prepare(),
        // after the commit record: must not fail
        XactEvent::XACT_EVENT_COMMIT | XactEvent::XACT_EVENT_PARALLEL_COMMIT => {
            crate::registry::at_commit();
            crate::enrich::at_end();
        }
        XactEvent::XACT_EVENT_PREPARE => {
            crate::registry::at_abort_or_prepare();
            crate::enrich::at_end();
        }
        XactEvent::XACT_EVENT_ABORT | XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            crate::registry::at_abort_or_prepare();
            crate::enrich::at_end();
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
        crate::enrich::at_subtransaction_abort(my_subid);
    }
}
