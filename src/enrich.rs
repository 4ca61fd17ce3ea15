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
use crate::errors::raise;
use crate::session::{try_with_serving, Serving};
use crate::target::{resolve, Target};
use crate::{cache, intern};
use pgrx::heap_tuple::PgHeapTupleError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::AllocatedByRust;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
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
    /// Rows classified one at a time in the row trigger: a statement's first miss, and every miss
    /// of a table without a usable key.
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
    /// The relation the row is in (a partition, or the attached table itself), as resolved.
    target: Rc<Target>,
    relid: pg_sys::Oid,
    subxact: pg_sys::SubTransactionId,
    key: Vec<String>,
    descriptor: String,
}

thread_local! {
    static QUEUE: RefCell<Vec<Queued>> = const { RefCell::new(Vec::new()) };
    /// (relid, statement) pairs already warned about.
    static WARNED: RefCell<Option<(pg_sys::Oid, i64)>> = const { RefCell::new(None) };
    /// The command (local transaction, command id, attached table) whose first miss was
    /// classified in place: its later misses are queued for the statement's batch.
    static FIRST_MISS: Cell<Option<(u64, pg_sys::CommandId, pg_sys::Oid)>> = const { Cell::new(None) };
}

/// Whether a miss of the attached table `root` is the first of the running command (then it is
/// classified in place, and the command's later misses are queued). A single-row INSERT — the
/// OLTP pattern — so writes its row once, outputs included, instead of inserting it with NULL
/// outputs and updating it from the statement trigger (a second row version, its WAL, a
/// subtransaction and an UPDATE as the owner); a multi-row statement classifies one row alone
/// and batches the rest. Each statement of a PL/pgSQL loop is a command of its own.
fn first_miss_of_command(root: pg_sys::Oid) -> bool {
    let now = running_command(root);
    FIRST_MISS.with(|f| f.replace(Some(now)) != Some(now))
}

/// The running command, as [`first_miss_of_command`] tells commands apart.
fn running_command(root: pg_sys::Oid) -> (u64, pg_sys::CommandId, pg_sys::Oid) {
    // SAFETY: the running command's id, read in this backend inside a trigger
    (crate::registry::local_xid(), unsafe { pg_sys::GetCurrentCommandId(false) }, root)
}

/// At the end of a transaction (commit, abort or PREPARE; src/xact.rs): nothing queued survives.
pub fn at_end() {
    QUEUE.with(|q| q.borrow_mut().clear());
}

/// A subtransaction aborted: rows queued in it (or its children) were never written.
pub fn at_subtransaction_abort(subid: pg_sys::SubTransactionId) {
    QUEUE.with(|q| q.borrow_mut().retain(|e| e.subxact < subid));
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

/// BEFORE INSERT OR UPDATE OF <descriptor> FOR EACH ROW (installed by txclass.attach; on a
/// partitioned table, cloned onto every partition).
#[pg_trigger]
fn _enrich_row<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, PgHeapTupleError> {
    let td = trigger.trigger_data();
    let is_update = matches!(trigger.op(), Ok(PgTriggerOperation::Update));
    let Some(new) = trigger.new() else { return Ok(None) };
    let mut new = new.into_owned();
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
    let descriptor = unsafe { column_text(new_tuple, desc, &a.descriptor) };
    if is_update {
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
        let mut decided = try_with_serving(|s| answer(s, &n, batch)).and_then(|r| r);
        if let Ok(Outcome::Queue) = decided {
            if first_miss_of_command(a.root) {
                decided = try_with_serving(|s| answer(s, &n, false)).and_then(|r| r);
            }
        }
        if let Ok(Outcome::Queue) = decided {
            // the row's key; a row with a NULL in it cannot be found again: classified in place
            let key: Option<Vec<String>> = a.keys.iter().map(|(k, _)| unsafe { column_text(new_tuple, desc, k) }).collect();
            match key {
                Some(k) => queue_key = Some(k),
                None => decided = try_with_serving(|s| answer(s, &n, false)).and_then(|r| r),
            }
        }
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
        crate::xact::ensure_registered();
        // flush what is queued (rows already written) before queueing this row, which is
        // not written until the trigger returns
        if queue_full(a.root) {
            flush(a.root, a.strict);
            // the flush's UPDATE advanced the command id: the rows after it are still this
            // statement's, queued like the ones before
            FIRST_MISS.with(|f| f.set(Some(running_command(a.root))));
        }
        let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
        QUEUE.with(|q| q.borrow_mut().push(Queued { target: a.clone(), relid, subxact, key, descriptor: d }));
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

/// Rows a statement queues before the row trigger classifies and writes them itself: bounds
/// the memory of a huge COPY and lets later repeats hit the cache. (SQL run in a BEFORE ROW
/// trigger sees the rows the same statement wrote before.)
const FLUSH_ROWS: usize = 10_000;

/// Whether `root` has FLUSH_ROWS rows queued: the queue's length answers at once while it is
/// shorter (it holds other tables' rows only in nested statements), the count only beyond.
fn queue_full(root: pg_sys::Oid) -> bool {
    QUEUE.with(|q| {
        let q = q.borrow();
        q.len() >= FLUSH_ROWS && q.iter().filter(|e| e.target.root == root).count() >= FLUSH_ROWS
    })
}

/// Classifies the queued misses of the attached table `root` (all its partitions) in batches
/// and writes their outputs, one UPDATE per partition.
fn flush(root: pg_sys::Oid, strict: bool) {
    let queued: Vec<Queued> = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let (mine, rest): (Vec<_>, Vec<_>) = q.drain(..).partition(|e| e.target.root == root);
        *q = rest;
        mine
    });
    if queued.is_empty() {
        return;
    }
    let raw: Vec<Option<&str>> = queued.iter().map(|e| Some(e.descriptor.as_str())).collect();
    // per relation (partition): its rows' outputs
    let result = try_with_serving(|s| {
        let rules = s.rules.clone();
        let rules = (!rules.is_empty()).then_some(&*rules);
        let c = &mut s.classifier;
        let answers = cache::with_cache(|cache| c.answer_descriptors(&raw, rules, cache, &mut check_interrupts))?;
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

fn quote_ident(s: &str) -> String {
    let Ok(c) = CString::new(s) else { return format!("\"{}\"", s.replace('"', "\"\"")) };
    // SAFETY: quote_identifier returns its argument or a palloc'd copy; both live long enough.
    unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())).to_string_lossy().into_owned() }
}

/// The UPDATE that writes a batch into `relid` (named as it is called now: a table renamed or
/// moved to another schema keeps its enrichment): outputs $1..$5, the key's columns $6...
fn update_sql(relid: pg_sys::Oid, t: &Target) -> Option<String> {
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
struct Batch {
    labels: Vec<Option<String>>,
    categories: Vec<Option<String>>,
    confidences: Vec<f32>,
    models: Vec<String>,
    levels: Vec<String>,
    /// one vector per key column
    keys: Vec<Vec<String>>,
}

impl Batch {
    fn new(key_columns: usize) -> Batch {
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
            let mut args: Vec<pgrx::datum::DatumWithOid> = vec![
                b.labels.clone().into(),
                b.categories.clone().into(),
                b.confidences.clone().into(),
                b.models.clone().into(),
                b.levels.clone().into(),
            ];
            args.extend(b.keys.iter().map(|k| k.clone().into()));
            Spi::run_with_args(sql, &args)
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
