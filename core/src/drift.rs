//! Drift math: how far a bucket's distribution moved from a baseline.
//!
//! * PSI (population stability index): Σ (p − q) · ln(p / q) over categories.
//! * Jensen–Shannon distance: √JSD with base-2 logarithms, so it lies in [0, 1].
//!
//! Empty categories are smoothed: every category of either side gets `EPSILON` added before
//! both sides are renormalised, so a class that appears (or vanishes) gives a large but finite
//! score instead of infinity. Categories are matched by name; the union of both sides counts.
use std::collections::BTreeMap;

/// Added to every category's share before renormalising.
pub const EPSILON: f64 = 1e-4;

/// Both distributions over the union of their categories, smoothed and normalised.
fn aligned(current: &[(String, f64)], baseline: &[(String, f64)]) -> Vec<(String, f64, f64)> {
    let mut m: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (k, v) in current {
        m.entry(k).or_default().0 += v.max(0.0);
    }
    for (k, v) in baseline {
        m.entry(k).or_default().1 += v.max(0.0);
    }
    let (sp, sq) = m.values().fold((0.0, 0.0), |(a, b), (p, q)| (a + p, b + q));
    let n = m.len() as f64;
    let norm = |x: f64, s: f64| if s > 0.0 { (x / s + EPSILON) / (1.0 + n * EPSILON) } else { 1.0 / n };
    m.into_iter().map(|(k, (p, q))| (k.to_string(), norm(p, sp), norm(q, sq))).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mover {
    pub label: String,
    /// Share in the bucket (unsmoothed).
    pub share: f64,
    /// Share in the baseline (unsmoothed).
    pub baseline_share: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub psi: f64,
    pub js_distance: f64,
    /// The categories whose share changed most, largest absolute change first.
    pub movers: Vec<Mover>,
}

/// Compares `current` (counts or shares per category) with `baseline` (counts or shares).
pub fn compare(current: &[(String, f64)], baseline: &[(String, f64)], top: usize) -> Comparison {
    let a = aligned(current, baseline);
    if a.is_empty() {
        return Comparison { psi: 0.0, js_distance: 0.0, movers: Vec::new() };
    }
    let psi = a.iter().map(|(_, p, q)| (p - q) * (p / q).ln()).sum();
    let kl = |x: f64, y: f64| if x > 0.0 { x * (x / y).log2() } else { 0.0 };
    let jsd: f64 = a.iter().map(|(_, p, q)| {
        let m = (p + q) / 2.0;
        0.5 * kl(*p, m) + 0.5 * kl(*q, m)
    })
    .sum();
    // movers on raw shares
    let total = |v: &[(String, f64)]| v.iter().map(|(_, x)| x.max(0.0)).sum::<f64>();
    let (tc, tb) = (total(current), total(baseline));
    let share = |v: &[(String, f64)], t: f64, k: &str| {
        if t > 0.0 {
            v.iter().filter(|(l, _)| l == k).map(|(_, x)| x.max(0.0)).sum::<f64>() / t
        } else {
            0.0
        }
    };
    let mut movers: Vec<Mover> = a
        .iter()
        .map(|(k, _, _)| Mover { label: k.clone(), share: share(current, tc, k), baseline_share: share(baseline, tb, k) })
        .collect();
    movers.sort_by(|x, y| {
        (y.share - y.baseline_share).abs().total_cmp(&(x.share - x.baseline_share).abs()).then(x.label.cmp(&y.label))
    });
    movers.truncate(top);
    Comparison { psi, js_distance: jsd.max(0.0).sqrt().min(1.0), movers }
}

/// PSI between two histograms over the same bins.
pub fn histogram_psi(current: &[f64], baseline: &[f64]) -> f64 {
    let named = |v: &[f64]| v.iter().enumerate().map(|(i, x)| (format!("{i:03}"), *x)).collect::<Vec<_>>();
    compare(&named(current), &named(baseline), 0).psi
}

/// Bin of a confidence in a `bins`-bin histogram over [0, 1].
pub fn confidence_bin(confidence: f64, bins: usize) -> usize {
    ((confidence.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1)
}

/// ok / warn / alert for a score and its thresholds.
pub fn status(score: Option<f64>, warn: f64, alert: f64) -> &'static str {
    match score {
        None => "n/a",
        Some(s) if s >= alert => "alert",
        Some(s) if s >= warn => "warn",
        Some(_) => "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: &[(&str, f64)]) -> Vec<(String, f64)> {
        v.iter().map(|(k, x)| (k.to_string(), *x)).collect()
    }

    #[test]
    fn identical_distributions_score_zero() {
        let a = d(&[("a", 10.0), ("b", 30.0)]);
        let c = compare(&a, &d(&[("a", 0.25), ("b", 0.75)]), 5);
        assert!(c.psi.abs() < 1e-12 && c.js_distance.abs() < 1e-6, "{c:?}");
    }

    #[test]
    fn psi_matches_the_textbook_formula() {
        // p = (0.5, 0.5), q = (0.25, 0.75): PSI = 0.25 ln 2 + (-0.25) ln(2/3)
        let c = compare(&d(&[("a", 1.0), ("b", 1.0)]), &d(&[("a", 1.0), ("b", 3.0)]), 5);
        let want = 0.25 * 2f64.ln() - 0.25 * (2.0f64 / 3.0).ln();
        assert!((c.psi - want).abs() < 1e-3, "{} vs {want}", c.psi);
        assert_eq!(c.movers[0].label, "a");
        assert!((c.movers[0].share - 0.5).abs() < 1e-12 && (c.movers[0].baseline_share - 0.25).abs() < 1e-12);
    }

    #[test]
    fn a_new_class_is_finite_and_large_and_js_is_bounded() {
        let c = compare(&d(&[("new", 100.0)]), &d(&[("old", 100.0)]), 5);
        assert!(c.psi.is_finite() && c.psi > 5.0, "{}", c.psi);
        assert!(c.js_distance > 0.99 && c.js_distance <= 1.0, "{}", c.js_distance);
    }

    #[test]
    fn small_shift_warns_large_shift_alerts() {
        let base = d(&[("a", 0.5), ("b", 0.3), ("c", 0.2)]);
        let small = compare(&d(&[("a", 0.48), ("b", 0.31), ("c", 0.21)]), &base, 3);
        let large = compare(&d(&[("a", 0.1), ("b", 0.3), ("c", 0.6)]), &base, 3);
        assert_eq!(status(Some(small.psi), 0.1, 0.25), "ok");
        assert_eq!(status(Some(large.psi), 0.1, 0.25), "alert");
        assert_eq!(status(None, 0.1, 0.25), "n/a");
    }

    #[test]
    fn histogram_bins() {
        assert_eq!(confidence_bin(1.0, 10), 9);
        assert_eq!(confidence_bin(0.0, 10), 0);
        assert_eq!(confidence_bin(0.55, 10), 5);
        assert!(histogram_psi(&[1.0, 1.0], &[1.0, 1.0]).abs() < 1e-12);
    }
}
