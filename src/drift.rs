//! Drift monitoring glue: per-row input statistics for the summaries, the comparison math of
//! `txclass_core::drift` as SQL functions, and the serving model's training baseline.
//! The summaries, baselines and views themselves are SQL (sql/drift.sql).
use crate::errors::OrRaise;
use crate::session::with_serving;
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use txclass_core::{drift, normalize, Error};

thread_local! {
    /// (model cache id, descriptor hash) -> (tokens, [UNK] tokens): descriptors repeat, so a
    /// refresh tokenizes each distinct one once per backend. Bounded: cleared when full.
    static TOKEN_STATS: RefCell<HashMap<(u64, u64), (u32, u32)>> = RefCell::new(HashMap::new());
}
const TOKEN_STATS_MAX: usize = 1 << 20;

/// [word-piece tokens, of which [UNK], 64-bit hash of the normalized descriptor] for one
/// descriptor, under the serving model's tokenizer. A descriptor that normalizes to nothing
/// gives [0, 0, 0].
#[pg_extern(stable, strict, parallel_safe)]
fn _input_stats(descriptor: &str) -> Vec<i64> {
    let n = normalize(descriptor);
    if n.is_empty() {
        return vec![0, 0, 0];
    }
    let h = txclass_core::cache::key(0, &n).text[0];
    let (tokens, unk) = with_serving(|s| {
        let key = (s.classifier.cache_model_id(), h);
        if let Some(v) = TOKEN_STATS.with(|m| m.borrow().get(&key).copied()) {
            return Ok(v);
        }
        let (t, u) = s.classifier.token_stats(&n)?;
        let v = (t as u32, u as u32);
        TOKEN_STATS.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() >= TOKEN_STATS_MAX {
                m.clear();
            }
            m.insert(key, v);
        });
        Ok::<_, Error>(v)
    })
    .or_raise();
    let h = h as i64;
    vec![tokens as i64, unk as i64, if h == 0 { 1 } else { h }]
}

/// SQL arrays of labels and counts (or shares) as named categories; a NULL label is `(none)`.
fn pairs(labels: Vec<Option<String>>, counts: Vec<Option<f64>>) -> Vec<(String, f64)> {
    labels.into_iter().zip(counts).map(|(l, c)| (l.unwrap_or_else(|| "(none)".into()), c.unwrap_or(0.0))).collect()
}

/// SQL array of histogram bins, NULL as 0.
fn values(v: Vec<Option<f64>>) -> Vec<f64> {
    v.into_iter().map(|x| x.unwrap_or(0.0)).collect()
}

/// PSI and Jensen–Shannon distance of a bucket's label counts against baseline shares, and the
/// `top` labels whose share moved most (JSON: label, share, baseline_share).
#[pg_extern(immutable, parallel_safe)]
fn _compare_distribution(
    labels: Vec<Option<String>>,
    counts: Vec<Option<f64>>,
    baseline_labels: Vec<Option<String>>,
    baseline_shares: Vec<Option<f64>>,
    top: default!(i32, 5),
) -> TableIterator<'static, (name!(psi, f64), name!(js_distance, f64), name!(top_movers, pgrx::JsonB))> {
    let c = drift::compare(&pairs(labels, counts), &pairs(baseline_labels, baseline_shares), top.max(0) as usize);
    let movers: Vec<Value> = c
        .movers
        .iter()
        .map(|m| json!({"label": m.label, "share": m.share, "baseline_share": m.baseline_share}))
        .collect();
    TableIterator::once((c.psi, c.js_distance, pgrx::JsonB(Value::Array(movers))))
}

/// PSI between two histograms over the same bins.
#[pg_extern(immutable, strict, parallel_safe)]
fn _histogram_psi(current: Vec<Option<f64>>, baseline: Vec<Option<f64>>) -> Option<f64> {
    if current.len() != baseline.len() || current.is_empty() {
        return None;
    }
    Some(drift::histogram_psi(&values(current), &values(baseline)))
}

/// G-test of a bucket's counts per label (or category) against the baseline's shares, as a
/// sample of `baseline_rows` rows (NULL: exact shares): statistic, degrees of freedom after
/// pooling rare categories, and the probability of a difference this large under sampling.
#[pg_extern(immutable, parallel_safe)]
fn _homogeneity(
    labels: Vec<Option<String>>,
    counts: Vec<Option<f64>>,
    baseline_labels: Vec<Option<String>>,
    baseline_shares: Vec<Option<f64>>,
    baseline_rows: Option<f64>,
) -> TableIterator<'static, (name!(statistic, Option<f64>), name!(df, Option<i32>), name!(p_value, Option<f64>))> {
    let t = drift::homogeneity(&pairs(labels, counts), &pairs(baseline_labels, baseline_shares), baseline_rows);
    TableIterator::once(match t {
        Some(t) => (Some(t.statistic), Some(t.df as i32), Some(t.p_value)),
        None => (None, None, None),
    })
}

/// The same test for two histograms over the same bins (the confidence histogram): p-value.
#[pg_extern(immutable, parallel_safe)]
fn _histogram_p(current: Option<Vec<Option<f64>>>, baseline: Option<Vec<Option<f64>>>, baseline_rows: Option<f64>) -> Option<f64> {
    let (current, baseline) = (current?, baseline?);
    if current.len() != baseline.len() || current.is_empty() {
        return None;
    }
    drift::histogram_homogeneity(&values(current), &values(baseline), baseline_rows).map(|t| t.p_value)
}

/// P(a share at least k/n | the baseline's share p0 measured on m0 rows, or exact).
#[pg_extern(immutable, parallel_safe)]
fn _share_exceeds(k: Option<f64>, n: Option<f64>, p0: Option<f64>, m0: Option<f64>) -> Option<f64> {
    drift::share_exceeds(k?, n?, p0?, m0)
}

/// A baseline's never-seen share after `history` rows of the table, from its curve
/// `[[history rows, share], ...]` (log-linear between points).
#[pg_extern(immutable, parallel_safe)]
fn _curve_at(curve: Option<pgrx::JsonB>, history: Option<f64>) -> Option<f64> {
    let points: Vec<(f64, f64)> = curve?
        .0
        .as_array()?
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
        .collect();
    drift::curve_at(&points, history?)
}

/// ok / warn / alert for an effect gated by its p-value (n/a without an effect).
#[pg_extern(immutable, parallel_safe)]
fn _gated_status(effect: Option<f64>, p: Option<f64>, warn: f64, alert: f64, p_warn: f64, p_alert: f64) -> &'static str {
    drift::gated_status(effect, p, warn, alert, p_warn, p_alert)
}

/// ok / warn / alert (n/a for NULL).
#[pg_extern(immutable, parallel_safe)]
fn _status(score: Option<f64>, warn: f64, alert: f64) -> &'static str {
    drift::status(score, warn, alert)
}

/// The training baseline the serving model ships: `drift_baseline.json` (label shares,
/// confidence histogram, [UNK] share, mean tokens) or at least `label_frequencies.json`.
#[pg_extern(stable, parallel_unsafe)]
fn _model_baseline() -> pgrx::JsonB {
    let (dir, identity) = with_serving(|s| (s.classifier.model.path.clone(), s.classifier.model.identity()));
    let read = |name: &str| -> Option<Value> {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    };
    // category shares from the label shares and the model's own label -> category map, for a
    // baseline file that does not carry them
    let categories = |shares: &Value| -> Value {
        let map: HashMap<String, String> = with_serving(|s| {
            let m = &s.classifier.model;
            m.labels.iter().cloned().zip(m.categories.iter().map(|c| c.clone().unwrap_or_else(|| "(none)".into()))).collect()
        });
        let mut out: HashMap<String, f64> = HashMap::new();
        if let Some(obj) = shares.as_object() {
            for (label, share) in obj {
                let c = map.get(label).cloned().unwrap_or_else(|| "(none)".into());
                *out.entry(c).or_default() += share.as_f64().unwrap_or(0.0);
            }
        }
        json!(out)
    };
    if let Some(mut v) = read("drift_baseline.json") {
        v["model"] = json!(identity);
        if v.get("category_shares").is_none() {
            v["category_shares"] = categories(&v["label_shares"]);
        }
        return pgrx::JsonB(v);
    }
    match read("label_frequencies.json") {
        Some(freq) => pgrx::JsonB(json!({"model": identity, "category_shares": categories(&freq), "label_shares": freq,
                                         "label_shares_kind": "true",
                                         "source": "label_frequencies.json (the training set's true label shares)"})),
        None => crate::errors::raise(Error::config(
            format!("model {identity} ({}) ships no training distribution (drift_baseline.json or label_frequencies.json)", dir.display()),
            "set a reference window instead: SELECT txclass.set_baseline(table, from, to)",
        )),
    }
}
