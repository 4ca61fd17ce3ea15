//! txclass: the PostgreSQL glue around `txclass-core`.
//!
//! One module per concern: `settings` (GUCs), `session` (the per-backend classifier and rules),
//! `shmem` (the shared-memory hooks every module's state goes through), `worker` (the shared
//! inference workers and the engine that sends them work), `cache` (the shared-memory result cache and its SQL), `registry` (the active model, published
//! to every backend through shared memory), `rules` (the decision table ahead of the model),
//! `inspect` (validating a model directory), `evaluate` (gold-set evaluation and A/B),
//! `enrich` (the write-path triggers), `target` (which attached table a trigger's relation belongs to), `xact` (transaction ends: one callback for every concern), `cluster` (a Citus cluster: node role, the registry forwarded to the workers, shards resolved to their table), `drift` (drift statistics and math for sql/drift.sql), `catalog` (reads of txclass's tables at the latest snapshot), `errors` (core errors →
//! ereport), `intern` (label strings for set-returning functions), `classify` (the SQL
//! classification functions), `parse` (processor and merchant parsing), `recurring` (recurring-series detection for sql/recurring.sql), `upgrade` (symbols that released SQL scripts still name).
#![deny(ffi_unwind_calls)]
// pgrx signatures of set-returning functions are long tuples by nature
#![allow(clippy::type_complexity)]

mod cache;
mod catalog;
mod classify;
mod cluster;
mod confidence;
mod drift;
mod enrich;
mod errors;
mod evaluate;
mod inspect;
mod intern;
mod parse;
mod recurring;
mod registry;
mod rules;
mod session;
mod settings;
mod shmem;
mod target;
mod upgrade;
mod worker;
mod xact;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/types.sql", name = "types", bootstrap);
pgrx::extension_sql_file!(
    "../sql/registry.sql",
    name = "registry",
    requires = [
        "types",
        rules::_valid_pattern,
        registry::_publish_at_commit,
        registry::_bump_at_commit,
        registry::_caller,
        inspect::_inspect_model,
        evaluate::compare_models,
    ]
);
pgrx::extension_sql_file!(
    "../sql/enrich.sql",
    name = "enrich",
    requires = [
        "registry",
        enrich::_enrich_row,
        enrich::_enrich_statement,
        target::_attached_changed,
        enrich::enrichment_counters,
        classify::classify_batch_0_3
    ]
);
pgrx::extension_sql_file!(
    "../sql/drift.sql",
    name = "drift_sql",
    requires = [
        "enrich",
        drift::_input_stats,
        drift::_compare_distribution,
        drift::_histogram_psi,
        drift::_status,
        drift::_homogeneity,
        drift::_histogram_p,
        drift::_share_exceeds,
        drift::_gated_status,
        drift::_curve_at,
        drift::_model_baseline
    ]
);
pgrx::extension_sql_file!(
    "../sql/recurring.sql",
    name = "recurring_sql",
    requires = [
        "drift_sql",
        parse::parse_descriptor,
        recurring::_detect_series,
        recurring::_series_status,
        recurring::_subscription_labels,
        recurring::_generic_labels
    ]
);
pgrx::extension_sql_file!(
    "../sql/labels.sql",
    name = "labels_sql",
    requires = ["recurring_sql", classify::normalize_descriptor, confidence::confidence_level]
);
pgrx::extension_sql_file!(
    "../sql/cluster.sql",
    name = "cluster_sql",
    requires = ["labels_sql", "cache_sql", "worker_stats", cluster::_in_extension_script, cluster::_cluster_internal, target::_attached_changed, inspect::_inspect_model]
);
pgrx::extension_sql_file!("../sql/grants.sql", name = "grants", finalize);

/// Runs in the postmaster (shared_preload_libraries) or in a backend at first use.
/// Settings and the shared-memory hooks only: ONNX Runtime is loaded lazily in each backend
/// (it does not survive fork).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::init();
    shmem::init();
    worker::init();
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
