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
    unsafe { pg_sys::GetOuterUserId() }
}

pub fn role_name(oid: pg_sys::Oid) -> String {
    unsafe { CStr::from_ptr(pg_sys::GetUserNameFromId(oid, false)).to_string_lossy().into_owned() }
}

pub fn is_superuser(oid: pg_sys::Oid) -> bool {
    unsafe { pg_sys::superuser_arg(oid) }
}

/// Whether `role` has the privileges of the named role (membership with INHERIT).
pub fn has_privs_of(role: pg_sys::Oid, of: &str) -> bool {
    let Ok(c) = CString::new(of) else { return false };
    unsafe {
        let target = pg_sys::get_role_oid(c.as_ptr(), true);
        target != pg_sys::InvalidOid && pg_sys::has_privs_of_role(role, target)
    }
}
