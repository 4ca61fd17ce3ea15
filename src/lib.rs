//! txclass: the PostgreSQL glue around `txclass-core`.
//!
//! One module per concern: `settings` (GUCs), `session` (the per-backend classifier),
//! `cache` (the shared-memory result cache and its SQL),
//! `errors` (core errors → ereport), `intern` (label strings for set-returning functions),
//! `classify` (the SQL functions).
#![deny(ffi_unwind_calls)]

mod cache;
mod classify;
mod errors;
mod intern;
mod session;
mod settings;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/types.sql", name = "types", bootstrap);
pgrx::extension_sql_file!("../sql/grants.sql", name = "grants", finalize);

/// Runs in the postmaster (shared_preload_libraries) or in a backend at first use.
/// Settings and the shared-memory hooks only: ONNX Runtime is loaded lazily in each backend
/// (it does not survive fork).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::init();
    cache::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'txclass'"]
    }
}
