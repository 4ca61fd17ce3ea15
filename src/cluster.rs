//! txclass on a Citus cluster: what differs from one node, in one room (with sql/cluster.sql).
//!
//! * **Which node this is** (`_cluster_role`, in SQL): `single` (no Citus, or a coordinator
//!   without workers), `coordinator`, or `worker`.
//! * **One registry for the whole cluster**: the registry's tables (`models`, `deployments`,
//!   `active`, `rules`) and the attachments of distributed tables (`monitored`) are changed on
//!   the coordinator only. Statement triggers there send each change, as its rows, through a
//!   Citus reference table (`txclass._cluster_mailbox`): Citus writes it on every node inside
//!   the coordinator's distributed transaction and commits it everywhere with two-phase commit,
//!   or nowhere (a node that is down fails the statement). On a worker, a trigger on the
//!   mailbox applies the rows (`_cluster_apply`) after checking, for a model, that its files are
//!   on that node with the registered checksum. A worker refuses such changes from anything but
//!   Citus' own connections ([`_cluster_internal`]). Under two-phase commit the worker's
//!   registry publishes the change when the prepared transaction is resolved
//!   (src/registry.rs). Only SQL-level Citus functions are used: Citus' C functions are not
//!   exported from its library on PostgreSQL 16 and later.
//! * **Shards find their table** ([`shard_parents_sql`]): a trigger firing on a shard
//!   (`tx_102008`) is resolved to the distributed table (`tx`) through Citus' metadata on the
//!   worker (src/target.rs).
use pgrx::pg_sys;
use pgrx::prelude::*;

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

/// Whether an extension script (`CREATE` or `ALTER EXTENSION`) is running in this session: it
/// runs on every node by itself (Citus propagates it), so nothing it changes is sent.
#[pg_extern(volatile, parallel_safe)]
fn _in_extension_script() -> bool {
    // SAFETY: a plain read of the backend-global flag set while an extension script runs.
    unsafe { pg_sys::creating_extension }
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
