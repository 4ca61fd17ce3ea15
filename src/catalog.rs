//! Reads of txclass's own tables (registry, rules) that must see the latest committed state,
//! not the snapshot of the statement that happens to be running: a backend that notices a
//! registry change mid-statement must not cache what an older snapshot says.
//!
//! Plain SPI, read-only, under `GetLatestSnapshot()`. Inside a parallel operation a new snapshot
//! cannot be taken, so workers (and a leader while its workers run) read under the statement's
//! snapshot; see [`Snapshot`].
use pgrx::pg_sys;
use std::ffi::{CStr, CString};

/// Which snapshot a read used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// The latest committed state: safe to keep until the next registry change.
    Latest,
    /// The running statement's snapshot (parallel mode): keep it for this statement only.
    Statement,
}

/// Rows of `sql` as text (NULL → None), `ncols` columns each.
pub fn read_latest(sql: &CStr, ncols: usize) -> (Vec<Vec<Option<String>>>, Snapshot) {
    // SAFETY: a read-only SPI session opened and closed here (SPI_finish on every path that
    // returns; an ERROR aborts the transaction, which cleans SPI up); the snapshot pushed is
    // popped before SPI_finish; the tuptable is read only while SPI is connected, through
    // value_text, within SPI_processed rows and `ncols` columns of the query's own result.
    unsafe {
        let parallel = pg_sys::IsInParallelMode();
        if pg_sys::SPI_connect() < 0 {
            pgrx::error!("txclass: SPI_connect failed while reading its registry");
        }
        if !parallel {
            pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot());
        }
        let rc = pg_sys::SPI_execute(sql.as_ptr(), true, 0);
        if rc != pg_sys::SPI_OK_SELECT as i32 {
            crate::errors::raise_code(
                pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("txclass: reading its registry failed (SPI code {rc})"),
                "is the extension installed in this database? CREATE EXTENSION txclass",
            );
        }
        let table = pg_sys::SPI_tuptable;
        let mut rows = Vec::new();
        if !table.is_null() {
            let n = pg_sys::SPI_processed as usize;
            let desc = (*table).tupdesc;
            for i in 0..n {
                let tuple = *(*table).vals.add(i);
                let row = (1..=ncols as i32).map(|c| value_text(tuple, desc, c)).collect();
                rows.push(row);
            }
        }
        if !parallel {
            pg_sys::PopActiveSnapshot();
        }
        pg_sys::SPI_finish();
        (rows, if parallel { Snapshot::Statement } else { Snapshot::Latest })
    }
}

/// The text form (output function) of column `attnum` (1-based) of `tuple`; NULL → None.
///
/// # Safety
/// `tuple` and `desc` must be a valid heap tuple and its descriptor.
pub unsafe fn value_text(tuple: *mut pg_sys::HeapTupleData, desc: pg_sys::TupleDesc, attnum: i32) -> Option<String> {
    // SAFETY: the caller's contract; SPI_getvalue returns NULL or a palloc'd NUL-terminated
    // string, copied here and freed.
    unsafe {
        let v = pg_sys::SPI_getvalue(tuple, desc, attnum);
        if v.is_null() {
            return None;
        }
        let s = CStr::from_ptr(v).to_string_lossy().into_owned();
        pg_sys::pfree(v.cast());
        Some(s)
    }
}

/// The role the caller acts as: the session user, or the role chosen by SET ROLE, but not the
/// owner of a SECURITY DEFINER function on the call stack.
pub fn caller() -> pg_sys::Oid {
    // SAFETY: reads this backend's user state; no arguments.
    unsafe { pg_sys::GetOuterUserId() }
}

/// The name of role `oid` (an ERROR when there is none).
pub fn role_name(oid: pg_sys::Oid) -> String {
    // SAFETY: GetUserNameFromId(noerr = false) raises an ERROR for an unknown role, else returns
    // a palloc'd NUL-terminated name, copied here.
    unsafe { CStr::from_ptr(pg_sys::GetUserNameFromId(oid, false)).to_string_lossy().into_owned() }
}

/// Whether role `oid` is a superuser.
pub fn is_superuser(oid: pg_sys::Oid) -> bool {
    // SAFETY: a syscache look-up by OID (false for an unknown role).
    unsafe { pg_sys::superuser_arg(oid) }
}

/// Whether `role` has the privileges of the named role (membership with INHERIT).
pub fn has_privs_of(role: pg_sys::Oid, of: &str) -> bool {
    let Ok(c) = CString::new(of) else { return false };
    // SAFETY: c is NUL-terminated; get_role_oid(missing_ok = true) returns InvalidOid for an
    // unknown role; has_privs_of_role reads the catalogs.
    unsafe {
        let target = pg_sys::get_role_oid(c.as_ptr(), true);
        target != pg_sys::InvalidOid && pg_sys::has_privs_of_role(role, target)
    }
}

/// The name of relation `relid` (unqualified), or "relation <oid>" when it is gone.
pub fn rel_name(relid: pg_sys::Oid) -> String {
    // SAFETY: a syscache look-up by OID; NULL when the relation does not exist, else a palloc'd
    // NUL-terminated name copied here.
    unsafe {
        let n = pg_sys::get_rel_name(relid);
        if n.is_null() {
            format!("relation {}", relid.to_u32())
        } else {
            CStr::from_ptr(n).to_string_lossy().into_owned()
        }
    }
}
