//! Symbols that released SQL still names.
//!
//! A database keeps the objects of the version it was created or last updated with until
//! `ALTER EXTENSION txclass UPDATE` runs, while the server loads the newest library. Every
//! `AS 'MODULE_PATHNAME', '<symbol>'` of every script in `sql/install/` and `sql/upgrade/`
//! must therefore stay in this library with the signature that script declares. When a
//! function's SQL signature changes, the new definition takes a new symbol and the old one
//! moves here, `sql = false` (no SQL of its own in the current install script). The upgrade
//! tier checks every named symbol against the built library.

use pgrx::prelude::*;

/// 0.1.0's `txclass.model_info()`: the 0.2.0 columns less `inference`.
#[pg_extern(sql = false, stable, parallel_safe)]
fn model_info() -> TableIterator<
    'static,
    (
        name!(model, String),
        name!(directory, String),
        name!(checksum, String),
        name!(labels, i32),
        name!(execution_provider, String),
        name!(max_length, i32),
        name!(batch_size, i32),
        name!(onnxruntime_library, Option<String>),
        name!(load_ms, Option<f64>),
        name!(source, String),
        name!(rules, i32),
    ),
> {
    let m = crate::classify::model_info_row();
    TableIterator::once((
        m.model,
        m.directory,
        m.checksum,
        m.labels,
        m.execution_provider,
        m.max_length,
        m.batch_size,
        m.onnxruntime_library,
        m.load_ms,
        m.source,
        m.rules,
    ))
}

/// 0.1.0's and 0.2.0's `txclass.classify_batch(text[])`: the 0.3.0 columns less `level` and
/// `source` (an abstention shows as a NULL label with its confidence).
#[pg_extern(sql = false, stable, strict, parallel_safe)]
fn classify_batch(
    descriptors: Array<&str>,
) -> TableIterator<
    'static,
    (
        name!(ordinality, i64),
        name!(label, Option<&'static str>),
        name!(category, Option<&'static str>),
        name!(confidence, Option<f32>),
        name!(model, Option<&'static str>),
    ),
> {
    let rows = crate::classify::batch_rows(descriptors);
    TableIterator::new(rows.into_iter().map(|(i, l, c, f, m, _, _)| (i, l, c, f, m)))
}

/// 0.1.0–0.5.0's `txclass.evaluate(model, gold_query, gold_set, store)`: the model alone (0.6.0
/// added `labels`).
#[pg_extern(sql = false, volatile, parallel_unsafe)]
fn evaluate(model: &str, gold_query: &str, gold_set: Option<&str>, store: bool) -> pgrx::JsonB {
    crate::evaluate::evaluate_with(model, gold_query, gold_set, store, false)
}
