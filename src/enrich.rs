//! Enrichment in the write path: the triggers `txclass.attach()` installs.
//!
//! * `_enrich_row` — BEFORE INSERT OR UPDATE OF <descriptor>, per row. Rules and the result
//!   cache answer in place (about the cost of `md5()` per row). A miss is not sent to the model
//!   one row at a time: the row is written with NULL outputs and its key is queued for the
//!   statement. Tables without a primary or unique key classify misses in place instead.
//! * `_enrich_statement` — AFTER INSERT OR UPDATE OF <descriptor>, per statement (on the table
//!   and on each partition of a partitioned one): classifies
//!   the queued misses of the statement in length-bucketed batches (one model call per batch,
//!   not per row), fills the cache, and writes the outputs with one UPDATE ... FROM unnest(...),
//!   run as the table's owner (like a foreign-key check) inside a subtransaction.
//!
//! A classification that fails (no model, a broken model) never loses the row: the row keeps
//! NULL outputs, the failure is counted (`txclass.enrichment_stats`) and reported with one
//! WARNING per statement. With `on_error => 'error'` the statement fails instead.
//!
//! This file holds the two triggers and what they decide; the counters are in
//! src/enrich_counters.rs, the statement's queue in src/pending.rs, the write-back as the
//! owner in src/writeback.rs, and which attached table a relation belongs to in src/target.rs.
use crate::catalog::rel_name;
use crate::enrich_counters::{count, failed};
use crate::errors::raise;
use crate::pending::{self, Queued};
use crate::session::{try_with_serving, Serving};
use crate::target::{resolve, Target};
use crate::writeback::{update_as_owner, update_sql, Batch};
use crate::{intern, serve};
use pgrx::heap_tuple::PgHeapTupleError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::AllocatedByRust;
use std::cell::RefCell;
use std::ffi::CString;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use txclass_core::classifier::Decision;
use txclass_core::{normalize, Answer, Error};

thread_local! {
    /// The (relation, statement) last warned about: one WARNING per statement.
    static WARNED: RefCell<Option<(pg_sys::Oid, i64)>> = const { RefCell::new(None) };
}


/// The attribute number of `column` in `desc`, if the table still has it.
fn attnum(desc: pg_sys::TupleDesc, column: &str) -> Option<i32> {
    let name = CString::new(column).ok()?;
    // SAFETY: desc is the trigger relation's descriptor; SPI_fnumber only reads it.
    let n = unsafe { pg_sys::SPI_fnumber(desc, name.as_ptr()) };
    (n > 0).then_some(n)
}

/// The text form of a column of `tuple` (NULL → None); the column must exist (see
/// [`missing_columns`]).
unsafe fn column_text(tuple: *mut pg_sys::HeapTupleData, desc: pg_sys::TupleDesc, column: &str) -> Option<String> {
    let n = attnum(desc, column)?;
    // SAFETY: tuple belongs to desc's relation and n is one of its columns.
    unsafe { crate::catalog::value_text(tuple, desc, n) }
}

/// The columns txclass.monitored names that the table no longer has (dropped since
/// txclass.attach; a rename is followed).
fn missing_columns(desc: pg_sys::TupleDesc, a: &Target) -> Vec<String> {
    let mut named: Vec<&str> = vec![&a.descriptor, &a.label, &a.category, &a.confidence, &a.model];
    if let Some(l) = &a.level {
        named.push(l);
    }
    named
        .into_iter()
        .filter(|c| attnum(desc, c).is_none())
        .map(|c| format!("column \"{c}\" no longer exists"))
        .collect()
}

enum Outcome {
    /// label and category are None when the model abstained (its confidence and level are kept)
    Known {
        label: Option<&'static str>,
        category: Option<&'static str>,
        confidence: f32,
        model: &'static str,
        level: &'static str,
    },
    Nothing,
    Queue,
}

/// One decision (one cache lookup) for the normalized descriptor `n`; a miss is queued for the
/// statement's batch when `queue_miss()` says so, else classified here.
fn answer(s: &mut Serving, n: &str, queue_miss: &mut dyn FnMut() -> bool) -> Result<Outcome, Error> {
    let a = match serve::decide(s, n) {
        Decision::Known(a) => {
            count(|c| {
                c.in_place.fetch_add(1, Relaxed);
            });
            a
        }
        Decision::Miss(_) if queue_miss() => return Ok(Outcome::Queue),
        Decision::Miss(key) => {
            let a = serve::answer_miss(s, n, key)?;
            count(|c| {
                c.row_by_row.fetch_add(1, Relaxed);
            });
            a
        }
    };
    Ok(known(s, a))
}

/// The outputs of an answer, through the SQL functions' one conversion.
fn known(s: &Serving, a: Answer) -> Outcome {
    let o = serve::outputs(s, a);
    Outcome::Known {
        label: o.label,
        category: o.category,
        confidence: o.confidence,
        model: intern::text(&s.classifier.model.identity()),
        level: o.level,
    }
}

/// Writes the outputs into the row; the first column that cannot take its value (its type was
/// changed since attach) is returned as the cause.
fn set_outputs(t: &mut PgHeapTuple<'_, AllocatedByRust>, a: &Target, o: &Outcome) -> Result<(), String> {
    fn set<T: pgrx::IntoDatum>(t: &mut PgHeapTuple<'_, AllocatedByRust>, column: &str, v: T) -> Result<(), String> {
        t.set_by_name(column, v).map_err(|_| {
            format!("column \"{column}\" no longer has the type txclass writes (label, category, model and level text, confidence real)")
        })
    }
    match o {
        Outcome::Known { label, category, confidence, model, level } => {
            set(t, &a.label, *label)?;
            set(t, &a.category, *category)?;
            set(t, &a.confidence, *confidence)?;
            if let Some(l) = &a.level {
                set(t, l, *level)?;
            }
            set(t, &a.model, *model)
        }
        Outcome::Nothing | Outcome::Queue => {
            set(t, &a.label, Option::<&str>::None)?;
            set(t, &a.category, Option::<&str>::None)?;
            set(t, &a.confidence, Option::<f32>::None)?;
            if let Some(l) = &a.level {
                set(t, l, Option::<&str>::None)?;
            }
            set(t, &a.model, Option::<&str>::None)
        }
    }
}

/// DDL since attach broke enrichment of `relid`: one WARNING per statement naming the cause
/// and the fix; the row is written as the application gave it (never rejected).
fn warn_ddl(relid: pg_sys::Oid, causes: &[String]) {
    failed(1);
    let e = Error::config(
        format!("the table changed since txclass.attach(): {}", causes.join("; ")),
        "re-run txclass.attach() (it adds missing output columns), or txclass.detach()",
    );
    warn_once_with(relid, &e, "re-run txclass.attach() (it adds missing output columns) or txclass.detach(), then txclass.backfill()");
}

fn warn_once(relid: pg_sys::Oid, e: &Error) {
    warn_once_with(relid, e, "txclass.backfill() fills them later; see txclass.enrichment_stats");
}

fn warn_once_with(relid: pg_sys::Oid, e: &Error, fix: &str) {
    // SAFETY: this backend's statement start time, read inside a trigger.
    let statement = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    let first = WARNED.with(|w| {
        let mut w = w.borrow_mut();
        let first = *w != Some((relid, statement));
        *w = Some((relid, statement));
        first
    });
    if first {
        pgrx::warning!("txclass could not classify rows of {}: {}; they are written with NULL outputs ({fix})", rel_name(relid), e.message);
    }
}

/// BEFORE INSERT OR UPDATE OF <descriptor> FOR EACH ROW (installed by txclass.attach; on a
/// partitioned table, cloned onto every partition).
#[pg_trigger]
fn _enrich_row<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, PgHeapTupleError> {
    let td = trigger.trigger_data();
    let is_update = matches!(trigger.op(), Ok(PgTriggerOperation::Update));
    let Some(new) = trigger.new() else { return Ok(None) };
    let mut new = new.into_owned();
    // SAFETY: the trigger data of a row trigger: its relation is open, with its descriptor, and
    // the tuples are the row's (the new one is tg_newtuple for an UPDATE).
    let (rel, relid, desc, new_tuple) = unsafe {
        let rel = td.tg_relation;
        (rel, (*rel).rd_id, (*rel).rd_att, if is_update { td.tg_newtuple } else { td.tg_trigtuple })
    };
    let Some(a) = resolve(rel) else {
        warn_ddl(relid, &["the table has txclass's trigger but is not attached (txclass.monitored has no row for it)".into()]);
        return Ok(Some(new));
    };
    let missing = missing_columns(desc, &a);
    if !missing.is_empty() {
        warn_ddl(relid, &missing);
        return Ok(Some(new));
    }
    // SAFETY: new_tuple is the row's and desc its relation's (above); the column exists
    // (missing_columns found none missing).
    let descriptor = unsafe { column_text(new_tuple, desc, &a.descriptor) };
    if is_update {
        // SAFETY: the old row of an UPDATE, of the same relation.
        let old = unsafe { column_text(td.tg_trigtuple, desc, &a.descriptor) };
        if old == descriptor {
            return Ok(Some(new)); // the descriptor did not change: keep the outputs
        }
    }
    let n = descriptor.as_deref().map(normalize).unwrap_or_default();
    let batch = a.batched && !a.keys.is_empty() && !replica_apply();
    let mut queue_key = None;
    let outcome = if n.is_empty() {
        Outcome::Nothing
    } else {
        // a miss is queued for the statement's batch, except the command's first (a single-row
        // INSERT answers at once) and a row whose key has a NULL (it cannot be found again)
        let mut queue_miss = || {
            if !batch || pending::first_miss_of_command(a.root) {
                return false;
            }
            // SAFETY: as for the descriptor: the row's tuple and its relation's descriptor.
            queue_key = a.keys.iter().map(|(k, _)| unsafe { column_text(new_tuple, desc, k) }).collect();
            queue_key.is_some()
        };
        let decided = try_with_serving(|s| answer(s, &n, &mut queue_miss)).and_then(|r| r);
        match decided {
            Ok(o) => o,
            Err(e) if a.strict => raise(e),
            Err(e) => {
                failed(1);
                warn_once(relid, &e);
                Outcome::Nothing
            }
        }
    };
    if let Err(cause) = set_outputs(&mut new, &a, &outcome) {
        warn_ddl(relid, &[cause]);
        // the row as the application wrote it
        return Ok(trigger.new().map(|t| t.into_owned()));
    }
    if let (Outcome::Queue, Some(key), Some(d)) = (&outcome, queue_key, descriptor) {
        // flush what is queued (rows already written) before queueing this row, which is
        // not written until the trigger returns
        if pending::full(a.root) {
            flush(a.root, a.strict);
            pending::continue_command(a.root);
        }
        // SAFETY: this backend's running subtransaction, read inside a trigger.
        let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
        pending::push(Queued { target: a.clone(), relid, subxact, key, descriptor: d });
    }
    Ok(Some(new))
}

/// Whether this backend applies replicated changes (a logical replication apply worker, or any
/// session with `session_replication_role = replica`). The apply worker fires row triggers only
/// (`ENABLE ALWAYS TRIGGER`), never statement triggers: a miss queued for the statement's batch
/// would never be written, so misses are classified in place there.
fn replica_apply() -> bool {
    // SAFETY: a plain read of a backend-local GUC variable.
    unsafe { pg_sys::SessionReplicationRole == pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32 }
}

/// AFTER INSERT OR UPDATE OF <descriptor> FOR EACH STATEMENT (installed by txclass.attach on
/// a table with a key, and on each of its partitions): classifies the statement's queued
/// misses in batches and writes their outputs. (A 0.2.0 or 0.3.0 trigger's arguments are not
/// read: the table is resolved from txclass.monitored like the row trigger's.)
#[pg_trigger]
fn _enrich_statement<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, PgHeapTupleError> {
    let rel = trigger.trigger_data().tg_relation;
    if let Some(t) = resolve(rel) {
        flush(t.root, t.strict);
    }
    Ok(None)
}

/// Classifies the queued misses of the attached table `root` (all its partitions) in batches
/// and writes their outputs, one UPDATE per partition.
fn flush(root: pg_sys::Oid, strict: bool) {
    let queued: Vec<Queued> = pending::take(root);
    if queued.is_empty() {
        return;
    }
    let raw: Vec<Option<&str>> = queued.iter().map(|e| Some(e.descriptor.as_str())).collect();
    // per relation (partition): its rows' outputs
    let result = try_with_serving(|s| {
        let answers = serve::answer_misses(s, &raw)?;
        let mut out: Vec<(pg_sys::Oid, Rc<Target>, Batch)> = Vec::new();
        for (e, a) in queued.iter().zip(answers) {
            let Some(a) = a else { continue };
            let Outcome::Known { label, category, confidence, model, level } = known(s, a) else { continue };
            let i = match out.iter().position(|(r, _, _)| *r == e.relid) {
                Some(i) => i,
                None => {
                    out.push((e.relid, e.target.clone(), Batch::new(e.target.keys.len())));
                    out.len() - 1
                }
            };
            let b = &mut out[i].2;
            for (col, v) in b.keys.iter_mut().zip(&e.key) {
                col.push(v.clone());
            }
            b.labels.push(label.map(str::to_string));
            b.categories.push(category.map(str::to_string));
            b.confidences.push(confidence);
            b.models.push(model.to_string());
            b.levels.push(level.to_string());
        }
        Ok::<_, Error>(out)
    })
    .and_then(|r| r);
    let batches = match result {
        Ok(v) => v,
        Err(e) if strict => raise(e),
        Err(e) => {
            failed(queued.len() as u64);
            warn_once(root, &e);
            return;
        }
    };
    count(|c| {
        c.batched.fetch_add(batches.iter().map(|b| b.2.labels.len() as u64).sum(), Relaxed);
        c.batches.fetch_add(1, Relaxed);
    });
    for (relid, target, batch) in batches {
        let rows = batch.labels.len();
        let outcome = match update_sql(relid, &target) {
            Some(sql) => update_as_owner(target.owner, &sql, batch),
            None => Err("the relation no longer exists".to_string()),
        };
        if let Err(message) = outcome {
            if strict {
                crate::errors::raise_plain(
                    PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION,
                    format!("txclass could not write the outputs of {}: {message}", rel_name(relid)),
                );
            }
            failed(rows as u64);
            pgrx::warning!(
                "txclass could not write the outputs of {rows} rows of {}: {message}; they keep NULL outputs (txclass.backfill() fills them later)",
                rel_name(relid)
            );
        }
    }
}

