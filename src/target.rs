//! Which attached table a trigger's relation belongs to: one entry point, [`resolve`].
//!
//! The triggers carry no arguments: the relation they fire on is mapped, at first use in a
//! backend, to the nearest attached table (a row of `txclass.monitored`) among
//!
//! 1. the relation itself and its partition ancestors (a partition of an attached table, at any
//!    level), then
//! 2. on a Citus node, the distributed table the relation is a shard of, and that table's
//!    ancestors (a shard of a partition of a distributed table): see [`crate::cluster`].
//!
//! Columns and keys are then looked up by name in the relation itself (a shard's or a
//! partition's attribute numbers may differ from its parent's). What was resolved is cached per
//! relation and dropped when the relation's relcache entry is invalidated: any DDL on it or its
//! parent, and txclass.attach/detach (`_attached_changed`).
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::rc::Rc;

/// What the triggers need to know about the relation they fire on: one attached table, or a
/// partition of one (at any level). Resolved from `txclass.monitored` and the catalog at first
/// use in a backend, by the relation's OID — the triggers carry no arguments, so renaming the
/// table, moving it to another schema or renaming a column (followed into txclass.monitored by
/// txclass._on_ddl) needs no re-attach. Dropped when the relation's relcache entry is
/// invalidated: any DDL on it or its parent, and txclass.attach/detach (`_attached_changed`).
pub struct Target {
    /// The attached table (txclass.monitored.relid): the relation itself or an ancestor.
    pub root: pg_sys::Oid,
    /// The relation's owner, who writes the statement's outputs.
    pub owner: pg_sys::Oid,
    pub descriptor: String,
    pub label: String,
    pub category: String,
    pub confidence: String,
    pub model: String,
    pub level: Option<String>,
    /// The key misses are written back through, (column, type) in this relation; empty: none.
    pub keys: Vec<(String, String)>,
    pub strict: bool,
    /// The relation has the statement trigger that writes queued misses (a partition created
    /// while event triggers were off has not: its misses are classified in place).
    pub batched: bool,
}

thread_local! {
    static TARGETS: RefCell<HashMap<u32, Option<Rc<Target>>>> = RefCell::new(HashMap::new());
    /// Invalidations seen: a resolution that saw one arrive while it read does not cache what
    /// it read (it may predate the change).
    static INVALIDATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}
static mut RELCACHE_CALLBACK: bool = false;

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    forget(relid);
}

/// Tells every backend (at commit; this one at once) to resolve `tbl` and its partitions again:
/// run by txclass.attach, txclass.detach and txclass._follow.
#[pg_extern(volatile)]
fn _attached_changed(tbl: pg_sys::Oid) {
    // SAFETY: queues a relcache invalidation for an OID; a missing relation is harmless.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(tbl) };
    forget(tbl);
}

/// Drops what this backend resolved for `relid` (a relation, or an attached table with its
/// partitions); InvalidOid: everything.
fn forget(relid: pg_sys::Oid) {
    INVALIDATIONS.with(|n| n.set(n.get() + 1));
    TARGETS.with(|t| {
        let mut t = t.borrow_mut();
        if relid == pg_sys::InvalidOid {
            t.clear();
        } else {
            // a relation resolved to nothing is resolved again too: the change may attach it (on a
            // Citus worker, a shard learns of its table's attachment only this way)
            t.retain(|&k, v| k != relid.to_u32() && v.as_ref().is_some_and(|v| v.root != relid));
        }
    });
}

/// The attached table `rel` belongs to (None: not attached — triggers left behind by a detach
/// half-way, or a table that is not monitored).
pub fn resolve(rel: pg_sys::Relation) -> Option<Rc<Target>> {
    // SAFETY: rel is the trigger's open relation.
    let (relid, owner) = unsafe { ((*rel).rd_id, (*(*rel).rd_rel).relowner) };
    if let Some(t) = TARGETS.with(|t| t.borrow().get(&relid.to_u32()).cloned()) {
        return t;
    }
    // SAFETY: RELCACHE_CALLBACK is this backend's (one thread); the callback is registered
    // once per backend and only edits this backend's map.
    unsafe {
        if !RELCACHE_CALLBACK {
            pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0));
            RELCACHE_CALLBACK = true;
        }
    }
    let r = relid.to_u32();
    let seen = INVALIDATIONS.with(|n| n.get());
    // the nearest attached table among the relation and its ancestors; a Citus shard: the
    // distributed table it belongs to, and its ancestors, after the relation's own (an
    // attachment of the shard itself, which nobody makes, would win). The row comes back whole
    // through to_jsonb (a database not yet updated to 0.4.0 has no key_columns, 0.2.0 no
    // level_column, and its triggers keep working on this library) and is read here: a query
    // that also took it apart in SQL cost a new backend's first INSERT three times as long to plan.
    let shard = crate::cluster::shard_parents_sql(r, 1000);
    let sql = format!(
        "SELECT m.relid::oid::text, to_jsonb(m)::text \
         FROM (SELECT {r}::oid AS rel, 0::bigint AS o \
               UNION ALL SELECT a::oid, o FROM pg_catalog.pg_partition_ancestors({r}::oid::regclass) WITH ORDINALITY x(a, o) \
               {shard}) c \
         JOIN txclass.monitored m ON m.relid::oid = c.rel \
         ORDER BY c.o LIMIT 1"
    );
    let Ok(sql) = CString::new(sql) else { return None };
    let (rows, _) = crate::catalog::read_latest(&sql, 2);
    let target = rows.into_iter().next().and_then(|mut row| {
        let root = row.first().cloned().flatten().and_then(|o| o.parse::<u32>().ok()).map(pg_sys::Oid::from).unwrap_or(relid);
        let json = row.get_mut(1)?.take()?;
        Some(Rc::new(from_row(rel, root, owner, &serde_json::from_str(&json).ok()?)))
    });
    if INVALIDATIONS.with(|n| n.get()) == seen {
        TARGETS.with(|t| t.borrow_mut().insert(r, target.clone()));
    }
    target
}

/// The target of `rel` from its attached table's row of `txclass.monitored` (`to_jsonb`, any
/// schema version); the key's types are the relation's own (by name, from its descriptor).
fn from_row(rel: pg_sys::Relation, root: pg_sys::Oid, owner: pg_sys::Oid, j: &serde_json::Value) -> Target {
    let text = |k: &str| j.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let names: Vec<String> = match j.get("key_columns") {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => text("key_column").into_iter().collect(),
    };
    // SAFETY: rel is the trigger's open relation; its descriptor lives while it is open.
    let desc = unsafe { (*rel).rd_att };
    let keys: Vec<(String, String)> = names.iter().filter_map(|n| Some((n.clone(), column_type(desc, n)?))).collect();
    Target {
        root,
        owner,
        descriptor: text("descriptor_column").unwrap_or_default(),
        label: text("label_column").unwrap_or_default(),
        category: text("category_column").unwrap_or_default(),
        confidence: text("confidence_column").unwrap_or_default(),
        model: text("model_column").unwrap_or_default(),
        level: text("level_column"),
        strict: text("on_error").as_deref() == Some("error"),
        // every key column must still be there (else: row by row)
        keys: if keys.len() == names.len() { keys } else { Vec::new() },
        batched: has_statement_trigger(rel),
    }
}

/// `format_type` of column `name` of `desc` (None: no such live column).
fn column_type(desc: pg_sys::TupleDesc, name: &str) -> Option<String> {
    let c = CString::new(name).ok()?;
    // SAFETY: desc is an open relation's descriptor; SPI_fnumber only reads it.
    let n = unsafe { pg_sys::SPI_fnumber(desc, c.as_ptr()) };
    if n <= 0 {
        return None;
    }
    // SAFETY: as above; the descriptor is Postgres's (not released by the wrapper).
    let d = unsafe { pgrx::PgTupleDesc::from_pg_unchecked(desc) };
    let a = d.get(n as usize - 1)?;
    // SAFETY: a live column's type and modifier; format_type_with_typemod returns a palloc'd
    // NUL-terminated string in the current memory context.
    let t = unsafe { CStr::from_ptr(pg_sys::format_type_with_typemod(a.atttypid, a.atttypmod)) };
    Some(t.to_string_lossy().into_owned())
}

/// Whether `rel` has txclass's statement trigger (`txclass_enrich_batch`).
fn has_statement_trigger(rel: pg_sys::Relation) -> bool {
    // SAFETY: the relcache entry's trigger descriptor, read while the relation is open.
    unsafe {
        let td = (*rel).trigdesc;
        if td.is_null() {
            return false;
        }
        // enabled for ordinary sessions ('O' origin, 'A' always; the replica case is
        // replica_apply's)
        (0..(*td).numtriggers as usize).any(|i| {
            let t = (*td).triggers.add(i);
            !(*t).tgname.is_null()
                && CStr::from_ptr((*t).tgname).to_bytes() == b"txclass_enrich_batch"
                && matches!((*t).tgenabled as u8, b'O' | b'A')
        })
    }
}
