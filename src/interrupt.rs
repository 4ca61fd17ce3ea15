//! The one interrupt check every long loop calls (between batches, every few thousand rows):
//! a pending cancel, `statement_timeout` or terminate is raised here as PostgreSQL raises it.
//! The core takes it as its `between_batches` callback, so it never blocks a cancel for longer
//! than one batch.

/// Raises a pending cancel or termination of this backend (an ERROR or FATAL); returns otherwise.
pub fn check() {
    pgrx::pg_sys::check_for_interrupts!();
}
