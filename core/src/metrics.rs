//! Gold-standard evaluation: accuracy, macro-F1 and per-class precision / recall / support.
//!
//! Definitions follow scikit-learn's `classification_report` (so the figures in a model card
//! written by the training scripts and those of `txclass.evaluate` can be compared digit for
//! digit): the classes are the union of expected and predicted labels; a class never predicted
//! has precision 0, one never expected has recall 0 (`zero_division=0`); macro-F1 is the
//! unweighted mean of the per-class F1 over that union.
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Rows whose expected label is this class.
    pub support: u64,
    /// Rows predicted as this class.
    pub predicted: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub rows: u64,
    pub correct: u64,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Sorted by label.
    pub per_class: Vec<ClassMetrics>,
}

/// `pairs`: (expected, predicted); a predicted `None` (nothing to classify) counts as wrong and
/// as no class.
pub fn evaluate<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Evaluation {
    #[derive(Default)]
    struct Counts {
        tp: u64,
        support: u64,
        predicted: u64,
    }
    let mut by: BTreeMap<&str, Counts> = BTreeMap::new();
    let (mut rows, mut correct) = (0u64, 0u64);
    for (expected, predicted) in pairs {
        rows += 1;
        by.entry(expected).or_default().support += 1;
        if let Some(p) = predicted {
            by.entry(p).or_default().predicted += 1;
            if p == expected {
                correct += 1;
                by.entry(p).or_default().tp += 1;
            }
        }
    }
    let per_class: Vec<ClassMetrics> = by
        .into_iter()
        .map(|(label, c)| {
            let precision = if c.predicted > 0 { c.tp as f64 / c.predicted as f64 } else { 0.0 };
            let recall = if c.support > 0 { c.tp as f64 / c.support as f64 } else { 0.0 };
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            ClassMetrics { label: label.to_string(), precision, recall, f1, support: c.support, predicted: c.predicted }
        })
        .collect();
    let macro_f1 =
        if per_class.is_empty() { 0.0 } else { per_class.iter().map(|c| c.f1).sum::<f64>() / per_class.len() as f64 };
    Evaluation {
        rows,
        correct,
        accuracy: if rows > 0 { correct as f64 / rows as f64 } else { 0.0 },
        macro_f1,
        per_class,
    }
}

/// Identity of a gold set: SHA-256 over its (descriptor, expected label) rows in sorted order,
/// so the same rows give the same identity whatever order the query returns them in. Two
/// evaluations are comparable only when their gold sets have the same identity.
pub fn gold_fingerprint<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut rows: Vec<(&str, &str)> = rows.into_iter().collect();
    rows.sort_unstable();
    let mut h = Sha256::new();
    for (d, l) in rows {
        h.update((d.len() as u64).to_le_bytes());
        h.update(d.as_bytes());
        h.update((l.len() as u64).to_le_bytes());
        h.update(l.as_bytes());
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// One equal-width confidence bin of a reliability table.
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    pub low: f64,
    pub high: f64,
    pub rows: u64,
    /// Mean confidence and share right of the rows in the bin (None when it is empty).
    pub mean_confidence: Option<f64>,
    pub accuracy: Option<f64>,
}

/// Reliability table over `bins` equal-width confidence bins (the last one closed: confidence 1
/// is in it) and the expected calibration error, the row-weighted mean |accuracy − confidence|
/// over the bins (0 for no rows). The same definition as `models/train/calibrate.py`'s
/// `reliability`, so a card's figures and `evaluate`'s compare.
pub fn calibration(answers: &[(f32, bool)], bins: usize) -> (f64, Vec<Bin>) {
    let bins = bins.max(1);
    let mut sum = vec![(0u64, 0f64, 0u64); bins];
    for &(c, ok) in answers {
        let c = f64::from(c);
        // the bin of calibrate.py: lo <= c < hi, the last bin also takes c == 1 (and above)
        let k = ((c * bins as f64).floor().max(0.0) as usize).min(bins - 1);
        sum[k].0 += 1;
        sum[k].1 += c;
        sum[k].2 += ok as u64;
    }
    let total = answers.len() as f64;
    let mut ece = 0.0;
    let table = sum
        .iter()
        .enumerate()
        .map(|(k, &(n, c, ok))| {
            let (mc, acc) = if n == 0 { (None, None) } else { (Some(c / n as f64), Some(ok as f64 / n as f64)) };
            if let (Some(m), Some(a)) = (mc, acc) {
                ece += n as f64 / total * (a - m).abs();
            }
            Bin { low: k as f64 / bins as f64, high: (k + 1) as f64 / bins as f64, rows: n, mean_confidence: mc, accuracy: acc }
        })
        .collect();
    (ece, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_error_by_hand() {
        // bin 0.9-1.0: 0.95, 0.95, 1.0 (right, right, wrong): mean 0.9667, accuracy 0.6667;
        // bin 0.5-0.6: 0.5 (right): mean 0.5, accuracy 1
        let a = [(0.95, true), (0.95, true), (1.0, false), (0.5, true)];
        let (ece, t) = calibration(&a, 10);
        let want = 3.0 / 4.0 * ((0.95 + 0.95 + 1.0) / 3.0 - 2.0 / 3.0) + 1.0 / 4.0 * 0.5;
        assert!((ece - want).abs() < 1e-6, "{ece} vs {want}");
        assert_eq!(t.len(), 10);
        assert_eq!((t[9].rows, t[5].rows, t[0].rows), (3, 1, 0), "1.0 is in the last bin, 0.5 in the sixth");
        assert_eq!(t[0].accuracy, None);
        assert!((t[9].accuracy.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(calibration(&[], 10).0, 0.0);
        // perfectly calibrated in its bin
        let (e, _) = calibration(&[(0.75, true), (0.75, true), (0.75, true), (0.75, false)], 10);
        assert!(e.abs() < 1e-12);
    }

    #[test]
    fn matches_sklearn_on_a_small_case() {
        // y_true = [a a b b c], y_pred = [a b b b d]
        // sklearn: accuracy 0.6; labels a,b,c,d; P = 1, 2/3, 0, 0; R = 0.5, 1, 0, 0;
        // F1 = 2/3, 0.8, 0, 0 -> macro 0.366666...
        let e = evaluate([("a", Some("a")), ("a", Some("b")), ("b", Some("b")), ("b", Some("b")), ("c", Some("d"))]);
        assert_eq!(e.rows, 5);
        assert!((e.accuracy - 0.6).abs() < 1e-12);
        assert!((e.macro_f1 - (2.0 / 3.0 + 0.8) / 4.0).abs() < 1e-12, "{}", e.macro_f1);
        let labels: Vec<&str> = e.per_class.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["a", "b", "c", "d"]);
        let b = &e.per_class[1];
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12 && b.recall == 1.0 && b.support == 2 && b.predicted == 3);
        let d = &e.per_class[3];
        assert_eq!((d.support, d.predicted, d.f1), (0, 1, 0.0));
    }

    #[test]
    fn no_prediction_counts_as_wrong() {
        let e = evaluate([("a", None), ("a", Some("a"))]);
        assert_eq!((e.rows, e.correct), (2, 1));
        assert_eq!(e.per_class.len(), 1);
        assert_eq!(e.per_class[0].recall, 0.5);
        assert_eq!(e.per_class[0].precision, 1.0);
    }

    #[test]
    fn empty_gold_set() {
        let e = evaluate(std::iter::empty());
        assert_eq!((e.rows, e.accuracy, e.macro_f1), (0, 0.0, 0.0));
    }

    #[test]
    fn fingerprint_ignores_order_but_not_content() {
        let a = gold_fingerprint([("x", "1"), ("y", "2")]);
        assert_eq!(a, gold_fingerprint([("y", "2"), ("x", "1")]));
        assert_ne!(a, gold_fingerprint([("x", "1"), ("y", "3")]));
        // field boundaries count: ("ab","c") is not ("a","bc")
        assert_ne!(gold_fingerprint([("ab", "c")]), gold_fingerprint([("a", "bc")]));
        assert_eq!(a.len(), 16);
    }
}
