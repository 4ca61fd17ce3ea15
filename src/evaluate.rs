//! Gold-standard evaluation and A/B comparison of registered models, in SQL.
//!
//! Both run the caller's query with the caller's privileges (SECURITY INVOKER), load the named
//! models next to this backend's serving session (which they do not disturb), and go through
//! the result cache (keyed by model, so models never see each other's answers). Rules are not
//! applied: these measure models.
use crate::errors::OrRaise;
use crate::registry::Active;
use crate::session::{self, Source};
use pgrx::prelude::*;
use serde_json::json;
use txclass_core::metrics;
use txclass_core::labels::LabelTable;
use txclass_core::{confidence, Calibration, Classifier, Level};


/// A registered model, loaded for this call (checksum verified).
fn registered(name: &str) -> Classifier {
    let found = Spi::connect(|client| {
        let t = client.select(
            "SELECT name, directory, checksum FROM txclass.models WHERE name = $1",
            None,
            &[name.into()],
        )?;
        let mut rows = Vec::new();
        for row in t {
            rows.push((row.get::<String>(1)?, row.get::<String>(2)?, row.get::<String>(3)?));
        }
        Ok::<_, pgrx::spi::Error>(rows)
    })
    .unwrap_or_else(|e| error!("txclass: cannot read txclass.models: {e}"));
    match found.into_iter().next() {
        Some((Some(n), Some(directory), Some(checksum))) => {
            session::load(&Source::Registry(Active { name: n, directory, checksum, deployment: 0 }))
        }
        _ => crate::errors::raise_code(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("model '{name}' is not registered"),
            "registered models: SELECT name FROM txclass.models; register one with txclass.register_model(name, directory)",
        ),
    }
}

/// Wraps the caller's query so that its first `n` columns come back as text.
fn wrap(query: &str, cols: &[&str]) -> String {
    let q = query.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let select: Vec<String> = cols.iter().map(|c| format!("g.{c}::text")).collect();
    format!("SELECT {} FROM ({q}\n) AS g({})", select.join(", "), cols.join(", "))
}

/// Runs the caller's query; each row's first `ncols` columns as text.
fn read_rows(query: &str, cols: &[&str]) -> Vec<Vec<Option<String>>> {
    let sql = wrap(query, cols);
    Spi::connect(|client| {
        let table = client.select(sql.as_str(), None, &[])?;
        let mut out = Vec::with_capacity(table.len());
        for (i, row) in table.enumerate() {
            if i % 4096 == 4095 {
                crate::interrupt::check();
            }
            let mut r = Vec::with_capacity(cols.len());
            for c in 1..=cols.len() {
                r.push(row.get::<String>(c)?);
            }
            out.push(r);
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| {
        crate::errors::raise_code(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("txclass: the query failed: {e}"),
            "the query must be a SELECT whose first columns are the descriptor (and, for evaluate, the expected label)",
        )
    })
}

/// Label, confidence and name evidence ([`txclass_core::evidence`]) of each descriptor (None:
/// nothing to classify), from the model alone (no rules), or with `labels` answering first (a
/// label answers with confidence 1 and counts as named).
fn predict(c: &mut Classifier, descriptors: &[Option<String>], labels: Option<&LabelTable>) -> Vec<Option<(String, f32, bool)>> {
    predict_counting(c, descriptors, labels).0
}

/// [`predict`], and how many descriptors a label answered.
fn predict_counting(
    c: &mut Classifier,
    descriptors: &[Option<String>],
    labels: Option<&LabelTable>,
) -> (Vec<Option<(String, f32, bool)>>, usize) {
    let raw: Vec<Option<&str>> = descriptors.iter().map(|d| d.as_deref()).collect();
    let answers = crate::serve::model_answers(c, &raw, labels).or_raise();
    let labeled = answers.iter().filter(|a| matches!(a, Some(txclass_core::Answer::Label(_)))).count();
    let predicted = answers
        .into_iter()
        .map(|a| match a {
            Some(txclass_core::Answer::Model(p, named)) => Some((c.label(&p).to_string(), p.confidence, named)),
            Some(txclass_core::Answer::Label(i)) => labels.map(|l| (l.get(i).label.clone(), 1.0, true)),
            _ => None,
        })
        .collect();
    (predicted, labeled)
}

/// Evaluates a registered model on a gold query (first column: descriptor, second: the expected
/// label): accuracy, macro-F1 and per-class precision / recall / F1 / support, as JSON. With
/// `store` (the default) the result is kept in txclass.models.metrics under the gold set's
/// fingerprint, which `activate_model(..., require_better => true)` compares. With `labels`,
/// the labels people gave that apply to the model (txclass.labels: labeled against it or a model
/// it retrains) answer their texts first, as they are served; without (the default) the model
/// alone is measured. The symbol is new in 0.6.0 (0.5.0's, without `labels`, is in upgrade.rs).
#[pg_extern(name = "evaluate", volatile, parallel_unsafe)]
fn evaluate_0_6(
    model: &str,
    gold_query: &str,
    gold_set: default!(Option<&str>, "NULL"),
    store: default!(bool, true),
    labels: default!(bool, false),
) -> pgrx::JsonB {
    evaluate_with(model, gold_query, gold_set, store, labels)
}

/// [`evaluate_0_6`], for it and for the symbol of earlier releases.
pub(crate) fn evaluate_with(model: &str, gold_query: &str, gold_set: Option<&str>, store: bool, with_labels: bool) -> pgrx::JsonB {
    if store {
        let allowed = Spi::get_one::<bool>(
            "SELECT has_function_privilege('txclass._record_evaluation(text, jsonb)', 'EXECUTE')",
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if !allowed {
            crate::errors::raise_code(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "permission denied to store an evaluation in txclass.models",
                "pass store => false to evaluate without storing, or ask for membership in txclass_model_admin"
            );
        }
    }
    let mut c = registered(model);
    let rows = read_rows(gold_query, &["descriptor", "expected"]);
    let (gold, skipped): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r[1].is_some());
    let descriptors: Vec<Option<String>> = gold.iter().map(|r| r[0].clone()).collect();
    let labels = with_labels.then(|| crate::labels::load(model));
    let (predicted, labeled) = predict_counting(&mut c, &descriptors, labels.as_deref());
    let labels_answered = with_labels.then_some(labeled);
    let expected: Vec<&str> = gold.iter().map(|r| r[1].as_deref().unwrap_or_default()).collect();
    let e = metrics::evaluate(expected.iter().copied().zip(predicted.iter().map(|p| p.as_ref().map(|(l, _, _)| l.as_str()))));
    let fingerprint =
        metrics::gold_fingerprint(descriptors.iter().zip(&expected).map(|(d, l)| (d.as_deref().unwrap_or_default(), *l)));
    let per_class: Vec<serde_json::Value> = e
        .per_class
        .iter()
        .map(|k| {
            json!({"label": k.label, "precision": k.precision, "recall": k.recall, "f1": k.f1,
                   "support": k.support, "predicted": k.predicted})
        })
        .collect();
    let levels = level_report(&c.model.calibration, &expected, &predicted);
    let evaluated_at = Spi::get_one::<String>("SELECT clock_timestamp()::text").ok().flatten();
    let result = json!({
        "model": model,
        "identity": c.model.identity(),
        "gold_set": gold_set.unwrap_or(&fingerprint),
        "gold_fingerprint": fingerprint,
        "gold_query": gold_query,
        "rows": e.rows,
        "skipped_null_labels": skipped.len(),
        "correct": e.correct,
        "accuracy": e.accuracy,
        "macro_f1": e.macro_f1,
        "classes": e.per_class.len(),
        "per_class": per_class,
        "levels": levels,
        "labels": with_labels,
        "labels_answered": labels_answered,
        "evaluated_at": evaluated_at,
    });
    if store {
        Spi::run_with_args(
            "SELECT txclass._record_evaluation($1, $2)",
            &[model.into(), pgrx::JsonB(result.clone()).into()],
        )
        .unwrap_or_else(|e| error!("txclass: storing the evaluation failed: {e}"));
    }
    pgrx::JsonB(result)
}

/// Precision per confidence level, and what the serving policy in force would give
/// (txclass.min_confidence and txclass.min_level): the share of rows answered with a label
/// (coverage), the precision of those answers, and their calibration (expected calibration
/// error and a 10-bin reliability table: does a served confidence of 0.95 mean right 95% of the
/// time?). `raw_calibration` is the same over every top-1 answer, served or not. Accuracy above
/// counts every row (an abstention is never right).
fn level_report(cal: &Calibration, expected: &[&str], predicted: &[Option<(String, f32, bool)>]) -> serde_json::Value {
    let policy = crate::settings::policy(cal);
    let mut per: Vec<(Level, usize, usize)> = [Level::VeryHigh, Level::High, Level::Medium, Level::Low].map(|l| (l, 0, 0)).to_vec();
    let mut served: Vec<(f32, bool)> = Vec::new();
    let mut raw: Vec<(f32, bool)> = Vec::new();
    for (e, p) in expected.iter().zip(predicted) {
        let Some((label, conf, named)) = p else { continue };
        let ok = label == e;
        let (level, abstain) = confidence::judge(cal, *conf, &policy, *named);
        if let Some(x) = per.iter_mut().find(|x| x.0 == level) {
            x.1 += 1;
            x.2 += ok as usize;
        }
        raw.push((*conf, ok));
        if !abstain {
            served.push((*conf, ok));
        }
    }
    let answered = served.len();
    let answered_ok = served.iter().filter(|a| a.1).count();
    let rate = |k: usize, n: usize| if n == 0 { serde_json::Value::Null } else { json!(k as f64 / n as f64) };
    let calibration = |a: &[(f32, bool)]| {
        let (ece, bins) = metrics::calibration(a, 10);
        json!({"ece": ece, "reliability": bins.iter().filter(|b| b.rows > 0).map(|b| json!({
            "low": b.low, "high": b.high, "rows": b.rows, "mean_confidence": b.mean_confidence, "accuracy": b.accuracy}))
            .collect::<Vec<_>>()})
    };
    json!({
        "thresholds": {"very_high": cal.levels.very_high, "high": cal.levels.high, "medium": cal.levels.medium,
                       "fitted": cal.levels_fitted},
        "per_level": per.iter().map(|(l, n, k)| json!({"level": l.as_str(), "rows": n, "correct": k, "precision": rate(*k, *n)}))
            .collect::<Vec<_>>(),
        "min_confidence": policy.floor,
        "min_level": policy.min_level.as_str(),
        "answered": answered,
        "answered_correct": answered_ok,
        "coverage": rate(answered, expected.len()),
        "precision_answered": rate(answered_ok, answered),
        "calibration": calibration(&served),
        "raw_calibration": calibration(&raw),
    })
}

/// A/B: runs two registered models over the descriptors of a query (first column) and returns
/// one row per descriptor with both answers. `agree` is false where the labels differ; see
/// txclass.compare_summary for the agreement rate and the disagreements.
#[pg_extern(volatile, parallel_unsafe)]
fn compare_models(
    model_a: &str,
    model_b: &str,
    query: &str,
) -> TableIterator<
    'static,
    (
        name!(descriptor, Option<String>),
        name!(label_a, Option<String>),
        name!(confidence_a, Option<f32>),
        name!(label_b, Option<String>),
        name!(confidence_b, Option<f32>),
        name!(agree, bool),
    ),
> {
    let rows = read_rows(query, &["descriptor"]);
    let descriptors: Vec<Option<String>> = rows.into_iter().map(|mut r| r[0].take()).collect();
    let a = predict(&mut registered(model_a), &descriptors, None);
    let b = predict(&mut registered(model_b), &descriptors, None);
    let out: Vec<_> = descriptors
        .into_iter()
        .zip(a.into_iter().zip(b))
        .map(|(d, (a, b))| {
            let agree = a.as_ref().map(|x| &x.0) == b.as_ref().map(|x| &x.0);
            let (la, ca) = a.map(|(l, c, _)| (Some(l), Some(c))).unwrap_or((None, None));
            let (lb, cb) = b.map(|(l, c, _)| (Some(l), Some(c))).unwrap_or((None, None));
            (d, la, ca, lb, cb, agree)
        })
        .collect();
    TableIterator::new(out)
}
