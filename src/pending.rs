//! The statement's queue of misses: rows the row trigger wrote with NULL outputs, waiting for
//! the statement's batch (src/enrich.rs). Per backend; nothing queued survives the end of its
//! transaction (commit, abort or PREPARE) or the abort of the subtransaction that queued it
//! (its hooks in src/xact.rs).
use crate::target::Target;
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Rows a statement queues before the row trigger classifies and writes them itself: bounds
/// the memory of a huge COPY and lets later repeats hit the cache. (SQL run in a BEFORE ROW
/// trigger sees the rows the same statement wrote before.)
const FLUSH_ROWS: usize = 10_000;

/// One queued row: where it is, how to find it again, and what to classify.
pub struct Queued {
    /// The relation the row is in (a partition, or the attached table itself), as resolved.
    pub target: Rc<Target>,
    pub relid: pg_sys::Oid,
    pub subxact: pg_sys::SubTransactionId,
    /// The row's key, as text, one value per key column.
    pub key: Vec<String>,
    pub descriptor: String,
}

thread_local! {
    static QUEUE: RefCell<Vec<Queued>> = const { RefCell::new(Vec::new()) };
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
pub fn first_miss_of_command(root: pg_sys::Oid) -> bool {
    let now = running_command(root);
    FIRST_MISS.with(|f| f.replace(Some(now)) != Some(now))
}

/// After a flush within a command (its UPDATE advanced the command id): the rows after it are
/// still this statement's, queued like the ones before.
pub fn continue_command(root: pg_sys::Oid) {
    FIRST_MISS.with(|f| f.set(Some(running_command(root))));
}

/// The running command, as [`first_miss_of_command`] tells commands apart.
fn running_command(root: pg_sys::Oid) -> (u64, pg_sys::CommandId, pg_sys::Oid) {
    // SAFETY: the running command's id, read in this backend inside a trigger
    (crate::registry::local_xid(), unsafe { pg_sys::GetCurrentCommandId(false) }, root)
}

/// What a transaction's end does to the queue (src/xact.rs).
static HOOKS: crate::xact::Hooks = crate::xact::Hooks {
    pre_prepare: crate::xact::nothing,
    commit: crate::xact::nothing,
    end: at_end,
    subtransaction_abort: at_subtransaction_abort,
};

/// Queues a row (its transaction-end callbacks are registered).
pub fn push(row: Queued) {
    crate::xact::ensure_registered(&HOOKS);
    QUEUE.with(|q| q.borrow_mut().push(row));
}

/// Whether `root` has FLUSH_ROWS rows queued: the queue's length answers at once while it is
/// shorter (it holds other tables' rows only in nested statements), the count only beyond.
pub fn full(root: pg_sys::Oid) -> bool {
    QUEUE.with(|q| {
        let q = q.borrow();
        q.len() >= FLUSH_ROWS && q.iter().filter(|e| e.target.root == root).count() >= FLUSH_ROWS
    })
}

/// Takes the queued rows of the attached table `root` (all its partitions) out of the queue.
pub fn take(root: pg_sys::Oid) -> Vec<Queued> {
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let (mine, rest): (Vec<_>, Vec<_>) = q.drain(..).partition(|e| e.target.root == root);
        *q = rest;
        mine
    })
}

/// At the end of a transaction (commit, abort or PREPARE): nothing queued survives.
fn at_end() {
    QUEUE.with(|q| q.borrow_mut().clear());
}

/// A subtransaction aborted: rows queued in it (or its children) were never written.
fn at_subtransaction_abort(subid: pg_sys::SubTransactionId) {
    QUEUE.with(|q| q.borrow_mut().retain(|e| e.subxact < subid));
}
