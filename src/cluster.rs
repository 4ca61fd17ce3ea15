//! txclass on a Citus cluster: what differs from one node, in one room (with sql/cluster.sql).
//!
//! * **Which node this is** (`_cluster_role`, in SQL): `single` (no Citus, or a coordinator
//!   without workers), `coordinator`, or `worker`.
//! * **One registry for the whole cluster**: the registry's tables (`models`, `deployments`,
//!   `active`, `rules`) and the attachments of distributed tables (`monitored`) are changed on
//!   the coordinator only. Statement triggers there send each change, as its rows, to every
//!   worker inside the coordinator's distributed transaction ([`_cluster_send`]): Citus commits
//!   it on every node with two-phase commit, or on none (a node that is down fails the
//!   statement). A worker applies the rows (`_cluster_apply`) after checking, for a model, that
//!   its files are on that node with the registered checksum. A worker refuses such changes from
//!   anything but the coordinator's connections. Under two-phase commit the worker's registry
//!   publishes the change when the prepared transaction is resolved (src/registry.rs).
//! * **Shards find their table** ([`shard_parents_sql`]): a trigger firing on a shard
//!   (`tx_102008`) is resolved to the distributed table (`tx`) through Citus' metadata on the
//!   worker (src/target.rs).
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_char, CString};

/// Whether the Citus extension is installed in this database (a syscache look-up).
pub fn has_citus() -> bool {
    // SAFETY: a catalog look-up by name inside a transaction; missing_ok returns InvalidOid.
    unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid }
}

/// SQL rows `(rel oid, order)` to append (`UNION ALL ...`) to the relations a trigger's relation
/// `relid` is resolved through: on a Citus node, the distributed table it is a shard of (its
/// name ends in `_<shard id>`, listed in `pg_dist_shard` in the same schema), then that table's
/// partition ancestors, ordered from `base` on. Empty without Citus.
pub fn shard_parents_sql(relid: u32, base: i64) -> String {
    if !has_citus() {
        return String::new();
    }
    format!(
        "UNION ALL SELECT l.a::oid, {base} + l.o \
         FROM pg_catalog.pg_class sc \
         JOIN pg_catalog.pg_dist_shard s ON s.shardid = substring(sc.relname FROM '_([0-9]{{1,18}})$')::bigint \
         JOIN pg_catalog.pg_class lc ON lc.oid = s.logicalrelid AND lc.relnamespace = sc.relnamespace \
         CROSS JOIN LATERAL (SELECT s.logicalrelid::regclass AS a, 0::bigint AS o \
                             UNION ALL SELECT a, o FROM pg_catalog.pg_partition_ancestors(s.logicalrelid) WITH ORDINALITY x(a, o)) l \
         WHERE sc.oid = {relid}::oid"
    )
}

/// Citus' `SendCommandToWorkersWithMetadata(const char *)`: runs a command on every worker in
/// the current distributed transaction (committed with two-phase commit when this one commits).
type SendToWorkers = unsafe extern "C-unwind" fn(*const c_char);

/// Runs `command` on every Citus worker in this transaction (two-phase commit with it); an
/// unreachable worker or an error there fails the calling statement. Only the coordinator's
/// forwarding triggers call it (sql/cluster.sql); nothing happens while an extension script
/// runs (`CREATE`/`ALTER EXTENSION` run on every node themselves: Citus propagates them).
///
/// Citus offers no SQL function that runs a command inside the distributed transaction
/// (`run_command_on_workers` commits on its own connections), so this calls the C function its
/// own DDL propagation uses, found in the loaded Citus library by name — present with this
/// signature in Citus 11 to 14.
#[pg_extern(volatile, parallel_unsafe)]
fn _cluster_send(command: &str) {
    // SAFETY: a plain read of the backend-global flag set while an extension script runs.
    if unsafe { pg_sys::creating_extension } {
        return;
    }
    let Ok(command) = CString::new(command) else {
        crate::errors::raise_plain(pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "txclass: a command for the workers contains a NUL byte");
    };
    // SAFETY: load_external_function loads (or finds already loaded: Citus is in
    // shared_preload_libraries) $libdir/citus and looks the symbol up; with signalNotFound it
    // raises an ERROR when either is missing, so the pointer is valid.
    let f = unsafe {
        pg_sys::load_external_function(c"$libdir/citus".as_ptr(), c"SendCommandToWorkersWithMetadata".as_ptr(), true, std::ptr::null_mut())
    };
    if f.is_null() {
        crate::errors::raise_code(
            pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
            "txclass: Citus' SendCommandToWorkersWithMetadata was not found in $libdir/citus",
            "txclass supports Citus 11 to 14",
        );
    }
    // SAFETY: the symbol is Citus' `void SendCommandToWorkersWithMetadata(const char *command)`
    // (worker_transaction.c), not a V1 SQL function: the pointer is reinterpreted as what it
    // is. It may raise an ERROR (a longjmp); the FFI boundary turns that into the ERROR pgrx
    // reports, so no Rust frame is skipped. `command` outlives the call.
    unsafe {
        let send: SendToWorkers = std::mem::transmute::<*mut std::ffi::c_void, SendToWorkers>(f);
        #[allow(ffi_unwind_calls)]
        pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| send(command.as_ptr()));
    }
}

/// Whether this session is one of Citus' own connections (a coordinator running a distributed
/// statement, or its maintenance daemon) — the only ones a worker takes registry changes from —
/// or is running txclass's own extension script (an update run on each node).
#[pg_extern(volatile, parallel_safe)]
fn _cluster_internal() -> bool {
    // SAFETY: a plain read of the backend-global flag set while an extension script runs.
    if unsafe { pg_sys::creating_extension } {
        return true;
    }
    // SAFETY: application_name is a backend-local GUC string (NULL before it is set).
    let name = unsafe {
        let p = pg_sys::application_name;
        if p.is_null() {
            return false;
        }
        std::ffi::CStr::from_ptr(p).to_bytes().to_vec()
    };
    // Citus' CITUS_APPLICATION_NAME_PREFIX ("citus_internal gpid=") and its rebalancer's
    name.starts_with(b"citus_internal gpid=") || name.starts_with(b"citus_rebalancer gpid=")
}
