//! The SQL functions. All classify functions are STABLE (they depend on the active model) and
//! PARALLEL SAFE (each worker loads its own session).
use crate::errors::OrRaise;
use crate::{intern, serve};
use crate::settings;
use crate::session::{last_load_ms, with_classifier, with_serving, Serving};
use pgrx::prelude::*;
use pgrx::heap_tuple::PgHeapTuple;
use pgrx::{composite_type, AllocatedByRust, IntoDatum};
use txclass_core::{normalize, Answer};


/// The normalized form of a descriptor, as the cache and the model see it (rules txclass-v1).
#[pg_extern(immutable, strict, parallel_safe)]
fn normalize_descriptor(descriptor: &str) -> String {
    normalize(descriptor)
}

/// One descriptor: normalized, then served (src/serve.rs). None when it normalizes to nothing.
/// Results equal the batch path's (same normalization, decision and cache, and the model's
/// logits do not depend on the batch).
fn answer_one(s: &mut Serving, descriptor: &str) -> Option<Answer> {
    let n = normalize(descriptor);
    if n.is_empty() {
        return None;
    }
    Some(serve::answer_one(s, &n).or_raise())
}

/// The predicted label (or the label of the rule that matched). NULL for NULL input, for
/// descriptors that normalize to nothing (empty, whitespace, punctuation only), and when the
/// model abstains (its confidence is below txclass.min_confidence).
#[pg_extern(stable, strict, parallel_safe)]
fn classify_transaction(descriptor: &str) -> Option<&'static str> {
    with_serving(|s| {
        let a = answer_one(s, descriptor)?;
        serve::outputs(s, a).label
    })
}

/// Label, category, confidence, the identity of the model in force, and who answered: the
/// model, or a rule (then `rule_id` names it and confidence is 1).
#[pg_extern(stable, strict, parallel_safe, requires = ["types"])]
fn classify_transaction_detail(descriptor: &str) -> Option<composite_type!('static, "classification")> {
    let (o, model) = with_serving(|s| {
        let a = answer_one(s, descriptor)?;
        Some((serve::outputs(s, a), s.classifier.model.identity()))
    })?;
    let mut t = PgHeapTuple::new_composite_type("txclass.classification").unwrap_or_else(|e| {
        crate::errors::raise_code(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("type txclass.classification is missing ({e})"),
            "reinstall the extension: DROP EXTENSION txclass; CREATE EXTENSION txclass",
        )
    });
    set_field(&mut t, "label", o.label);
    set_field(&mut t, "category", o.category);
    set_field(&mut t, "confidence", o.confidence);
    set_field(&mut t, "model", model);
    set_field(&mut t, "source", o.source);
    set_field(&mut t, "rule_id", o.rule_id);
    // 0.3.0 added `level`; a database not yet updated (ALTER EXTENSION txclass UPDATE) has the
    // 0.2.0 type without it, and gets the rest
    if t.get_attribute_by_name("level").is_some() {
        set_field(&mut t, "level", o.level);
    }
    Some(t)
}

fn set_field<T: IntoDatum>(t: &mut PgHeapTuple<'static, AllocatedByRust>, name: &str, v: T) {
    if let Err(e) = t.set_by_name(name, v) {
        error!("cannot build a txclass.classification value ({name}: {e}); reinstall the extension")
    }
}

/// The model's `k` most probable labels, most probable first (rules are not consulted). No rows
/// for descriptors that normalize to nothing.
#[pg_extern(stable, strict, parallel_safe)]
fn classify_topk(
    descriptor: &str,
    k: default!(i32, 5),
) -> TableIterator<'static, (name!(rank, i32), name!(label, String), name!(category, Option<String>), name!(confidence, f32))> {
    if k < 1 {
        crate::errors::raise_plain(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("k must be at least 1, got {k}"));
    }
    let n = normalize(descriptor);
    if n.is_empty() {
        return TableIterator::new(Vec::new());
    }
    let rows = with_classifier(|c| {
        c.topk(&[n.as_str()], k as usize, &mut crate::interrupt::check)
            .or_raise()
            .remove(0)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i as i32 + 1, c.label(&p).to_string(), c.category(&p).map(str::to_string), p.confidence))
            .collect::<Vec<_>>()
    });
    TableIterator::new(rows)
}

/// Classifies an array in batches of at most `txclass.batch_size`, rows grouped by token
/// length; rules answer first, as in classify_transaction. One row per element, in order
/// (`ordinality` is 1-based); NULL elements and descriptors that normalize to nothing give rows
/// of NULLs. `model` is the identity of the model in force for the whole call; `level` the
/// answer's confidence level, `source` model, rule or abstain (label NULL: the confidence is below
/// txclass.min_confidence). The symbol is new in 0.3.0 (0.2.0's, without level and source, is in
/// upgrade.rs).
#[pg_extern(name = "classify_batch", stable, strict, parallel_safe)]
fn classify_batch_0_3(
    descriptors: Array<&str>,
) -> TableIterator<
    'static,
    (
        name!(ordinality, i64),
        name!(label, Option<&'static str>),
        name!(category, Option<&'static str>),
        name!(confidence, Option<f32>),
        name!(model, Option<&'static str>),
        name!(level, Option<&'static str>),
        name!(source, Option<&'static str>),
    ),
> {
    TableIterator::new(batch_rows(descriptors))
}

/// One classify_batch row: ordinality, label, category, confidence, model, level, source.
pub(crate) type BatchRow = (
    i64,
    Option<&'static str>,
    Option<&'static str>,
    Option<f32>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// The rows of classify_batch (this version's and 0.2.0's symbol, in upgrade.rs).
pub(crate) fn batch_rows(descriptors: Array<&str>) -> Vec<BatchRow> {
    let limit = settings::max_batch();
    if descriptors.len() > limit {
        crate::errors::raise_code(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("classify_batch got {} descriptors; txclass.max_batch allows {limit}", descriptors.len()),
            "split the array into smaller ones (or classify the table's rows with txclass.backfill); \
             a superuser may raise txclass.max_batch (about 200 bytes of backend memory per element)",
        );
    }
    let raw: Vec<Option<&str>> = descriptors.iter().collect();
    with_serving(|s| {
        let answers = serve::answer_all(s, &raw).or_raise();
        let names = intern::names(&s.classifier);
        let model = intern::text(&s.classifier.model.identity());
        answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| match a {
                None => (i as i64 + 1, None, None, None, None, None, None),
                Some(a) => {
                    let o = serve::outputs_with(s, &names, a);
                    (i as i64 + 1, o.label, o.category, Some(o.confidence), Some(model), Some(o.level), Some(o.source))
                }
            })
            .collect::<Vec<_>>()
    })
}

/// Raw logits for a descriptor, in label order (see txclass.labels()). NULL when the
/// descriptor normalizes to nothing. For calibration, debugging and parity checks.
#[pg_extern(stable, strict, parallel_safe)]
fn logits(descriptor: &str) -> Option<Vec<f32>> {
    let n = normalize(descriptor);
    if n.is_empty() {
        return None;
    }
    Some(with_classifier(|c| c.logits(&[n.as_str()], &mut crate::interrupt::check).or_raise().remove(0)))
}

/// The active model's labels and categories, in output order (0-based id).
#[pg_extern(stable, parallel_safe)]
fn labels() -> TableIterator<'static, (name!(id, i32), name!(label, String), name!(category, Option<String>))> {
    let rows = with_classifier(|c| {
        c.model
            .labels
            .iter()
            .zip(c.model.categories.iter())
            .enumerate()
            .map(|(i, (l, cat))| (i as i32, l.clone(), cat.clone()))
            .collect::<Vec<_>>()
    });
    TableIterator::new(rows)
}

/// One row of `model_info()`: the model this backend serves, loading it if needed.
pub(crate) struct ModelInfo {
    pub model: String,
    pub directory: String,
    pub checksum: String,
    pub labels: i32,
    pub execution_provider: String,
    pub max_length: i32,
    pub batch_size: i32,
    pub onnxruntime_library: Option<String>,
    pub load_ms: Option<f64>,
    pub source: String,
    pub rules: i32,
    pub inference: String,
}

pub(crate) fn model_info_row() -> ModelInfo {
    let (source, rules) = with_serving(|s| (s.source.describe().to_string(), s.rules.len() as i32));
    let mut info = with_classifier(|c| ModelInfo {
        model: c.model.identity(),
        directory: c.model.path.display().to_string(),
        checksum: c.model.checksum.clone(),
        labels: c.model.labels.len() as i32,
        execution_provider: c.engine().provider().name().to_string(),
        max_length: c.max_length as i32,
        batch_size: c.batch_size as i32,
        onnxruntime_library: txclass_core::runtime::loaded_path().map(|p| p.display().to_string()),
        load_ms: None,
        source,
        rules,
        inference: c.engine().mode(),
    });
    // after with_classifier: last_load_ms borrows the same per-backend state
    info.load_ms = last_load_ms();
    info
}

/// The model this backend serves, loading it if needed: what, from where, and how.
/// (0.2.0 added `inference`; the symbol is new so 0.1.0's definition keeps its own, in
/// `upgrade.rs`.)
#[pg_extern(name = "model_info", stable, parallel_safe)]
fn model_info_0_2() -> TableIterator<
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
        name!(inference, String),
    ),
> {
    let m = model_info_row();
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
        m.inference,
    ))
}
