//! Enrichment in the write path: the triggers `txclass.attach()` installs.
//!
//! * `_enrich_row` — BEFORE INSERT OR UPDATE OF <descriptor>, per row. Rules and the result
//!   cache answer in place (about the cost of `md5()` per row). A miss is not sent to the model
//!   one row at a time: the row is written with NULL outputs and its key is queued for the
//!   statement. Tables without a single-column primary key classify misses in place instead.
//! * `_enrich_statement` — AFTER INSERT OR UPDATE OF <descriptor>, per statement: classifies
//!   the queued misses of the statement in length-bucketed batches (one model call per batch,
//!   not per row), fills the cache, and writes the outputs with one UPDATE ... FROM unnest(...),
//!   run as the table's owner (like a foreign-key check) inside a subtransaction.
//!
//! A classification that fails (no model, a broken model) never loses the row: the row keeps
//! NULL outputs, the failure is counted (`txclass.enrichment_stats`) and reported with one
//! WARNING per statement. With `on_error => 'error'` the statement fails instead.
use crate::errors::raise;
use crate::session::{try_with_serving, Serving};
use crate::{cache, intern};
use pgrx::heap_tuple::PgHeapTupleError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::AllocatedByRust;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use txclass_core::classifier::Decision;
use txclass_core::{normalize, Answer, Error};

fn check_interrupts() {
    pg_sys::check_for_interrupts!();
}

// ---- counters (shared memory when preloaded, else this backend's) ---------------------------

#[repr(C)]
#[derive(Default)]
pub struct Counters {
    /// Rows given outputs in place by the row trigger (a rule or a cache hit).
    in_place: AtomicU64,
    /// Rows classified one at a time in the row trigger (tables without a usable key).
    row_by_row: AtomicU64,
    /// Rows queued by the row trigger and classified in the statement's batch.
    batched: AtomicU64,
    /// Statement batches run.
    batches: AtomicU64,
    /// Rows left with NULL outputs because classification or the output update failed.
    failed: AtomicU64,
    last_failure_at: AtomicI64,
}

static mut SHARED: *mut Counters = std::ptr::null_mut();
thread_local! {
    static LOCAL: Counters = Counters::default();
}

pub fn shmem_size() -> usize {
    std::mem::size_of::<Counters>()
}

/// From the shmem startup hook (AddinShmemInitLock held).
pub unsafe fn shmem_startup() {
    unsafe {
        let mut found = false;
        let p = pg_sys::ShmemInitStruct(c"txclass enrichment counters".as_ptr(), shmem_size(), &mut found) as *mut Counters;
        if !found {
            std::ptr::write_bytes(p as *mut u8, 0, shmem_size());
        }
        SHARED = p;
    }
}

fn count(mut f: impl FnMut(&Counters)) {
    unsafe {
        if let Some(c) = SHARED.as_ref() {
            return f(c);
        }
    }
    LOCAL.with(f);
}

fn failed(n: u64) {
    count(|c| {
        c.failed.fetch_add(n, Relaxed);
        c.last_failure_at.store(unsafe { pg_sys::GetCurrentTimestamp() }, Relaxed);
    });
}

/// The enrichment counters since server start (all tables; this backend's alone when txclass
/// is not preloaded). Read through the view txclass.enrichment_stats.
#[pg_extern(volatile, parallel_safe)]
fn enrichment_counters() -> TableIterator<
    'static,
    (
        name!(shared, bool),
        name!(in_place, i64),
        name!(row_by_row, i64),
        name!(batched, i64),
        name!(batches, i64),
        name!(failed, i64),
        name!(last_failure_at, Option<pgrx::datum::TimestampWithTimeZone>),
    ),
> {
    let shared = unsafe { !SHARED.is_null() };
    let mut row = None;
    count(|c| {
        let at = c.last_failure_at.load(Relaxed);
        row = Some((
            shared,
            c.in_place.load(Relaxed) as i64,
            c.row_by_row.load(Relaxed) as i64,
            c.batched.load(Relaxed) as i64,
            c.batches.load(Relaxed) as i64,
            c.failed.load(Relaxed) as i64,
            (at != 0).then(|| pgrx::datum::TimestampWithTimeZone::try_from(at).ok()).flatten(),
        ))
    });
    TableIterator::once(row.expect("counters read"))
}

// ---- the statement's queue of misses ----------------------------------------------------------

struct Queued {
    relid: pg_sys::Oid,
    subxact: pg_sys::SubTransactionId,
    key: String,
    descriptor: String,
}

thread_local! {
    static QUEUE: RefCell<Vec<Queued>> = const { RefCell::new(Vec::new()) };
    /// (relid, statement) pairs already warned about.
    static WARNED: RefCell<Option<(pg_sys::Oid, i64)>> = const { RefCell::new(None) };
}

static mut CALLBACKS_REGISTERED: bool = false;

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    if matches!(event, pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT)
    {
        QUEUE.with(|q| q.borrow_mut().clear());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    // rows queued in an aborted subtransaction (or its children) were never written
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        QUEUE.with(|q| q.borrow_mut().retain(|e| e.subxact < my_subid));
    }
}

fn register_callbacks() {
    unsafe {
        if !CALLBACKS_REGISTERED {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
            CALLBACKS_REGISTERED = true;
        }
    }
}

// ---- trigger arguments ----------------------------------------------------------------------

struct RowArgs {
    descriptor: String,
    label: String,
    category: String,
    confidence: String,
    model: String,
    /// The level column (0.3.0; a trigger attached by 0.2.0 has 8 arguments and none).
    level: Option<String>,
    strict: bool,
    /// The single-column primary key, when misses are batched per statement.
    key: Option<String>,
    /// The UPDATE that writes queued outputs (see sql/enrich.sql).
    update_sql: String,
}

fn row_args(trigger: &PgTrigger) -> RowArgs {
    let a = trigger.extra_args().unwrap_or_default();
    if a.len() != 8 && a.len() != 9 {
        crate::errors::raise_code(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            format!("txclass._enrich_row expects 8 or 9 trigger arguments, got {}", a.len()),
            "re-run txclass.attach() on the table",
        );
    }
    RowArgs {
        descriptor: a[0].clone(),
        label: a[1].clone(),
        category: a[2].clone(),
        confidence: a[3].clone(),
        model: a[4].clone(),
        strict: a[5] == "error",
        key: (!a[6].is_empty()).then(|| a[6].clone()),
        update_sql: a[7].clone(),
        level: a.get(8).filter(|l| !l.is_empty()).cloned(),
    }
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

/// The columns the trigger names that the table no longer has (renamed or dropped since
/// txclass.attach), or whose output type no longer fits.
fn missing_columns(desc: pg_sys::TupleDesc, a: &RowArgs) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut named: Vec<&str> = vec![&a.descriptor, &a.label, &a.category, &a.confidence, &a.model];
    if let Some(k) = &a.key {
        named.push(k);
    }
    if let Some(l) = &a.level {
        named.push(l);
    }
    for c in named {
        if attnum(desc, c).is_none() {
            out.push(format!("column \"{c}\" no longer exists"));
        }
    }
    out
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

fn answer(s: &mut Serving, n: &str, batch_misses: bool) -> Result<Outcome, Error> {
    let (c, rules) = (&mut s.classifier, &s.rules);
    let rules = (!rules.is_empty()).then_some(&**rules);
    let a = match cache::with_cache(|cache| c.decide(n, rules, cache)) {
        Decision::Known(a) => {
            count(|c| {
                c.in_place.fetch_add(1, Relaxed);
            });
            a
        }
        Decision::Miss(_) if batch_misses => return Ok(Outcome::Queue),
        Decision::Miss(_) => {
            let a = cache::with_cache(|cache| c.answer_one(n, rules, cache, &mut check_interrupts))?;
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
    let o = crate::classify::outputs(s, &intern::names(&s.classifier), a);
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
fn set_outputs(t: &mut PgHeapTuple<'_, AllocatedByRust>, a: &RowArgs, o: &Outcome) -> Result<(), String> {
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
        "re-run txclass.attach() with the current column names (or txclass.detach())",
    );
    warn_once_with(relid, &e, "re-run txclass.attach() with the current column names (or txclass.detach()), then txclass.backfill()");
}

fn warn_once(relid: pg_sys::Oid, e: &Error) {
    warn_once_with(relid, e, "txclass.backfill() fills them later; see txclass.enrichment_stats");
}

fn warn_once_with(relid: pg_sys::Oid, e: &Error, fix: &str) {
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

fn rel_name(relid: pg_sys::Oid) -> String {
    unsafe {
        let n = pg_sys::get_rel_name(relid);
        if n.is_null() {
            format!("relation {}", relid.to_u32())
        } else {
            CStr::from_ptr(n).to_string_lossy().into_owned()
        }
    }
}

/// BEFORE INSERT OR UPDATE OF <descriptor> FOR EACH ROW (installed by txclass.attach).
#[pg_trigger]
fn _enrich_row<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, PgHeapTupleError> {
    let a = row_args(trigger);
    let td = trigger.trigger_data();
    let is_update = matches!(trigger.op(), Ok(PgTriggerOperation::Update));
    let Some(new) = trigger.new() else { return Ok(None) };
    let mut new = new.into_owned();
    let (relid, desc, new_tuple) = unsafe {
        let rel = td.tg_relation;
        ((*rel).rd_id, (*rel).rd_att, if is_update { td.tg_newtuple } else { td.tg_trigtuple })
    };
    let missing = missing_columns(desc, &a);
    if !missing.is_empty() {
        warn_ddl(relid, &missing);
        return Ok(Some(new));
    }
    let descriptor = unsafe { column_text(new_tuple, desc, &a.descriptor) };
    if is_update {
        let old = unsafe { column_text(td.tg_trigtuple, desc, &a.descriptor) };
        if old == descriptor {
            return Ok(Some(new)); // the descriptor did not change: keep the outputs
        }
    }
    let n = descriptor.as_deref().map(normalize).unwrap_or_default();
    let outcome = if n.is_empty() {
        Outcome::Nothing
    } else {
        match try_with_serving(|s| answer(s, &n, a.key.is_some() && !replica_apply())).and_then(|r| r) {
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
    if let (Outcome::Queue, Some(key)) = (&outcome, &a.key) {
        let key_text = unsafe { column_text(new_tuple, desc, key) };
        if let (Some(k), Some(d)) = (key_text, descriptor) {
            register_callbacks();
            // flush what is queued (rows already written) before queueing this row, which is
            // not written until the trigger returns
            if queued_for(relid) >= FLUSH_ROWS {
                let owner = unsafe { (*(*td.tg_relation).rd_rel).relowner };
                flush(relid, owner, a.strict, &a.update_sql);
            }
            let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
            QUEUE.with(|q| q.borrow_mut().push(Queued { relid, subxact, key: k, descriptor: d }));
        }
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

/// AFTER INSERT OR UPDATE OF <descriptor> FOR EACH STATEMENT (installed by txclass.attach for
/// tables with a single-column primary key): classifies the statement's queued misses in
/// batches and writes their outputs.
#[pg_trigger]
fn _enrich_statement<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, PgHeapTupleError> {
    let args = trigger.extra_args().unwrap_or_default();
    if args.len() != 2 {
        crate::errors::raise_code(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            format!("txclass._enrich_statement expects 2 trigger arguments, got {}", args.len()),
            "re-run txclass.attach() on the table",
        );
    }
    let rel = trigger.trigger_data().tg_relation;
    let (relid, owner) = unsafe { ((*rel).rd_id, (*(*rel).rd_rel).relowner) };
    flush(relid, owner, args[0] == "error", &args[1]);
    Ok(None)
}

/// Rows a statement queues before the row trigger classifies and writes them itself: bounds
/// the memory of a huge COPY and lets later repeats hit the cache. (SQL run in a BEFORE ROW
/// trigger sees the rows the same statement wrote before.)
const FLUSH_ROWS: usize = 10_000;

fn queued_for(relid: pg_sys::Oid) -> usize {
    QUEUE.with(|q| q.borrow().iter().filter(|e| e.relid == relid).count())
}

/// Classifies the queued misses of `relid` in batches and writes their outputs.
fn flush(relid: pg_sys::Oid, owner: pg_sys::Oid, strict: bool, update_sql: &str) {
    let queued: Vec<Queued> = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let (mine, rest): (Vec<_>, Vec<_>) = q.drain(..).partition(|e| e.relid == relid);
        *q = rest;
        mine
    });
    if queued.is_empty() {
        return;
    }
    let raw: Vec<Option<&str>> = queued.iter().map(|e| Some(e.descriptor.as_str())).collect();
    let result = try_with_serving(|s| {
        let rules = s.rules.clone();
        let rules = (!rules.is_empty()).then_some(&*rules);
        let c = &mut s.classifier;
        let answers = cache::with_cache(|cache| c.answer_descriptors(&raw, rules, cache, &mut check_interrupts))?;
        let mut out = Batch::default();
        for (e, a) in queued.iter().zip(answers) {
            let Some(a) = a else { continue };
            let Outcome::Known { label, category, confidence, model, level } = known(s, a) else { continue };
            out.keys.push(e.key.clone());
            out.labels.push(label.map(str::to_string));
            out.categories.push(category.map(str::to_string));
            out.confidences.push(confidence);
            out.models.push(model.to_string());
            out.levels.push(level.to_string());
        }
        Ok::<_, Error>(out)
    })
    .and_then(|r| r);
    let batch = match result {
        Ok(v) => v,
        Err(e) if strict => raise(e),
        Err(e) => {
            failed(queued.len() as u64);
            warn_once(relid, &e);
            return;
        }
    };
    count(|c| {
        c.batched.fetch_add(batch.keys.len() as u64, Relaxed);
        c.batches.fetch_add(1, Relaxed);
    });
    let update_sql = current_table_name(relid, update_sql);
    if let Err(message) = update_as_owner(owner, &update_sql, batch) {
        if strict {
            crate::errors::raise_plain(
                PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION,
                format!("txclass could not write the outputs of {}: {message}", rel_name(relid)),
            );
        }
        failed(queued.len() as u64);
        pgrx::warning!(
            "txclass could not write the outputs of {} rows of {}: {message}; they keep NULL outputs (txclass.backfill() fills them later)",
            queued.len(),
            rel_name(relid)
        );
    }
}

/// `sql` (`UPDATE <table> AS t SET ...`, written by attach) with the table named as it is now:
/// a table renamed or moved to another schema after attach keeps its enrichment.
fn current_table_name(relid: pg_sys::Oid, sql: &str) -> String {
    let (Some(rest), Some(at)) = (sql.strip_prefix("UPDATE "), sql.find(" AS t SET ")) else { return sql.to_string() };
    let _ = rest;
    // SAFETY: catalog look-ups by OID; NULL when the relation is gone (then sql is kept).
    let name = unsafe {
        let rel = pg_sys::get_rel_name(relid);
        let ns = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        if rel.is_null() || ns.is_null() {
            return sql.to_string();
        }
        CStr::from_ptr(pg_sys::quote_qualified_identifier(ns, rel)).to_string_lossy().into_owned()
    };
    format!("UPDATE {name}{}", &sql[at..])
}

/// The outputs of a statement's batch, by column: the parameters $1..$6 of the UPDATE attach
/// wrote (a 0.2.0 trigger's UPDATE has no level column and ignores $6).
#[derive(Default)]
struct Batch {
    keys: Vec<String>,
    labels: Vec<Option<String>>,
    categories: Vec<Option<String>>,
    confidences: Vec<f32>,
    models: Vec<String>,
    levels: Vec<String>,
}

/// Runs the outputs UPDATE as the table's owner (the owner attached the table; the inserting
/// role need not have UPDATE on it), in a subtransaction so that a failure leaves the rows as
/// written instead of failing the statement.
fn update_as_owner(
    owner: pg_sys::Oid,
    sql: &str,
    b: Batch,
) -> Result<(), String> {
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let resowner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let (mut saved_user, mut saved_sec) = (pg_sys::InvalidOid, 0);
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_sec);
        pg_sys::SetUserIdAndSecContext(owner, saved_sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        let outcome = PgTryBuilder::new(|| {
            Spi::run_with_args(
                sql,
                &[
                    b.keys.clone().into(),
                    b.labels.clone().into(),
                    b.categories.clone().into(),
                    b.confidences.clone().into(),
                    b.models.clone().into(),
                    b.levels.clone().into(),
                ],
            )
            .map_err(|e| e.to_string())
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
