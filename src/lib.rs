//! txclass: the PostgreSQL glue around `txclass-core`. One module per concern:
//!
//! * serving — `serve` (the one way to answer: rules → cache → model → outputs), `session`
//!   (the per-backend classifier and rules), `classify` (the SQL classification functions),
//!   `cache` (the shared-memory result cache and its SQL), `intern` (label strings for
//!   set-returning functions), `confidence`, `parse`;
//! * inference workers — `queue` (the shared queue: layout, slot states, every transition),
//!   `worker` (the background worker process), `worker_engine` (a backend's engine that sends
//!   work to them), `worker_stats` (their monitoring SQL);
//! * the registry — `registry` (the active model, published to every backend through shared
//!   memory, prepared transactions included), `rules` (the decision table ahead of the model),
//!   `inspect` (validating a model directory), `model_path` (where model directories are),
//!   `identity` (model checksums verified once per server, by the files' stamps),
//!   `evaluate` (gold-set evaluation and A/B);
//! * the write path — `enrich` (the triggers), `target` (which attached table a trigger's
//!   relation belongs to), `pending` (the statement's queue of misses), `writeback` (the
//!   batch's outputs written as the owner), `enrich_counters`;
//! * analysis — `drift`, `recurring`;
//! * a Citus cluster — `cluster` (node role, shards resolved to their table; its SQL in
//!   sql/cluster.sql);
//! * the server — `settings` (every GUC), `shmem` (the shared-memory hooks each feature
//!   registers with, and the one lock guard), `xact` (transaction ends: one callback for every
//!   concern), `interrupt` (the one interrupt check), `catalog` (reads of txclass's tables at
//!   the latest snapshot), `errors` (core errors → ereport with an SQLSTATE per cause),
//!   `upgrade` (symbols that released SQL scripts still name).
#![deny(ffi_unwind_calls)]
// every unsafe block says why it holds (CI runs clippy with this lint as an error)
#![deny(clippy::undocumented_unsafe_blocks)]
// pgrx signatures of set-returning functions are long tuples by nature
#![allow(clippy::type_complexity)]

mod cache;
mod catalog;
mod classify;
mod cluster;
mod confidence;
mod drift;
mod enrich;
mod enrich_counters;
mod errors;
mod evaluate;
mod identity;
mod inspect;
mod intern;
mod labels;
mod interrupt;
mod model_path;
mod parse;
mod pending;
mod queue;
mod recurring;
mod registry;
mod rules;
mod serve;
mod session;
mod settings;
mod shmem;
mod target;
mod upgrade;
mod worker;
mod worker_engine;
mod worker_stats;
mod writeback;
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
        enrich_counters::enrichment_counters,
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
    requires = ["recurring_sql", classify::normalize_descriptor, confidence::confidence_level, labels::_serving_model_name]
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
    // each feature with shared memory registers it (only while preloading)
    cache::init();
    registry::init();
    enrich_counters::init();
    identity::init();
    queue::init();
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
