//! Writing a statement's batch of outputs back into the rows the row trigger wrote: one
//! `UPDATE ... FROM unnest(...)` per relation, run as the table's owner (the inserting role need
//! not have UPDATE on it, as with a foreign-key check) inside a subtransaction, so that a
//! failure leaves the rows as written instead of failing the statement.
use crate::target::Target;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

fn quote_ident(s: &str) -> String {
    let Ok(c) = CString::new(s) else { return format!("\"{}\"", s.replace('"', "\"\"")) };
    // SAFETY: quote_identifier returns its argument or a palloc'd copy; both live long enough.
    unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())).to_string_lossy().into_owned() }
}

/// The UPDATE that writes a batch into `relid` (named as it is called now: a table renamed or
/// moved to another schema keeps its enrichment): outputs $1..$5, the key's columns $6...
pub fn update_sql(relid: pg_sys::Oid, t: &Target) -> Option<String> {
    // SAFETY: catalog look-ups by OID; NULL when the relation is gone.
    let table = unsafe {
        let rel = pg_sys::get_rel_name(relid);
        if rel.is_null() {
            return None;
        }
        let ns = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        if ns.is_null() {
            return None;
        }
        CStr::from_ptr(pg_sys::quote_qualified_identifier(ns, rel)).to_string_lossy().into_owned()
    };
    let mut set = format!(
        "{} = u.l, {} = u.c, {} = u.f, {} = u.m",
        quote_ident(&t.label),
        quote_ident(&t.category),
        quote_ident(&t.confidence),
        quote_ident(&t.model)
    );
    if let Some(l) = &t.level {
        set.push_str(&format!(", {} = u.v", quote_ident(l)));
    }
    let params: String = (0..t.keys.len()).map(|i| format!(", ${}::text[]", i + 6)).collect();
    let names: String = (0..t.keys.len()).map(|i| format!(", k{i}")).collect();
    let on: Vec<String> = t.keys.iter().enumerate().map(|(i, (k, ty))| format!("t.{} = u.k{i}::{ty}", quote_ident(k))).collect();
    Some(format!(
        "UPDATE {table} AS t SET {set} FROM unnest($1::text[], $2::text[], $3::real[], $4::text[], $5::text[]{params}) \
         AS u(l, c, f, m, v{names}) WHERE {}",
        on.join(" AND ")
    ))
}

/// The outputs of a statement's batch for one relation, by column: the parameters of
/// [`update_sql`].
pub struct Batch {
    pub labels: Vec<Option<String>>,
    pub categories: Vec<Option<String>>,
    pub confidences: Vec<f32>,
    pub models: Vec<String>,
    pub levels: Vec<String>,
    /// one vector per key column
    pub keys: Vec<Vec<String>>,
}

impl Batch {
    pub fn new(key_columns: usize) -> Batch {
        Batch {
            labels: Vec::new(),
            categories: Vec::new(),
            confidences: Vec::new(),
            models: Vec::new(),
            levels: Vec::new(),
            keys: vec![Vec::new(); key_columns],
        }
    }
}

/// Runs the outputs UPDATE as the table's owner (the owner attached the table; the inserting
/// role need not have UPDATE on it), in a subtransaction so that a failure leaves the rows as
/// written instead of failing the statement. The error's message on failure.
pub fn update_as_owner(owner: pg_sys::Oid, sql: &str, b: Batch) -> Result<(), String> {
    // SAFETY: the four pieces of state this changes are put back on every path out:
    // * the memory context: BeginInternalSubTransaction switches to the subtransaction's
    //   context; we switch back to the caller's at once (the SPI call allocates in its own), and
    //   again after the subtransaction ends (Release/RollbackAndRelease switch to the parent's);
    // * the resource owner: the subtransaction's while it runs; the caller's is restored after
    //   it ends, as PL/pgSQL's exception blocks do;
    // * the user: switched to the owner with SECURITY_LOCAL_USERID_CHANGE (so SET ROLE and
    //   friends are refused inside, as in a foreign-key check) and switched back before the
    //   subtransaction ends, whether the UPDATE succeeded or raised;
    // * the subtransaction: released on success, rolled back on any error — the error is
    //   caught by PgTryBuilder inside it (catch_others), so no ERROR escapes with the
    //   subtransaction open or the user switched.
    // The SPI call runs inside pgrx's guard; this function is only called from a trigger, in a
    // transaction.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let resowner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let (mut saved_user, mut saved_sec) = (pg_sys::InvalidOid, 0);
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_sec);
        pg_sys::SetUserIdAndSecContext(owner, saved_sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        let outcome = PgTryBuilder::new(|| {
            let mut args: Vec<pgrx::datum::DatumWithOid> = vec![
                b.labels.clone().into(),
                b.categories.clone().into(),
                b.confidences.clone().into(),
                b.models.clone().into(),
                b.levels.clone().into(),
            ];
            args.extend(b.keys.iter().map(|k| k.clone().into()));
            Spi::run_with_args(sql, &args).map_err(|e| e.to_string())
        })
        .catch_others(|e| match e {
            pg_sys::panic::CaughtError::PostgresError(r) | pg_sys::panic::CaughtError::ErrorReport(r) => Err(r.message().to_string()),
            other => Err(format!("{other:?}")),
        })
        .execute();
        pg_sys::SetUserIdAndSecContext(saved_user, saved_sec);
        match outcome {
            Ok(()) => pg_sys::ReleaseCurrentSubTransaction(),
            Err(_) => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = resowner;
        outcome
    }
}
