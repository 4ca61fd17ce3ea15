//! Drift math: how far a bucket's distribution moved from a baseline.
//!
//! * PSI (population stability index): Σ (p − q) · ln(p / q) over categories.
//! * Jensen–Shannon distance: √JSD with base-2 logarithms, so it lies in [0, 1].
//!
//! Empty categories are smoothed: every category of either side gets `EPSILON` added before
//! both sides are renormalised, so a class that appears (or vanishes) gives a large but finite
//! score instead of infinity. Categories are matched by name; the union of both sides counts.
//!
//! Those are effect sizes. Under no change at all they are not zero: for k classes, PSI is about
//! (k − 1)(1/n + 1/m) from sampling alone (0.126 with 372 classes, 3,000 rows and a large
//! baseline), so fixed thresholds alert on noise. [`homogeneity`] asks the other question — is
//! the difference unlikely under sampling? — with a G-test of the bucket's counts against the
//! baseline's, and [`gated_status`] raises `warn`/`alert` only when both the effect and the
//! improbability are large.
use crate::stats::{chi2_sf, normal_sf};
use std::collections::BTreeMap;

/// Added to every category's share before renormalising.
pub const EPSILON: f64 = 1e-4;

/// Both sides' amounts (negatives as 0) per category, over the union of their categories.
fn union<'a>(current: &'a [(String, f64)], baseline: &'a [(String, f64)]) -> BTreeMap<&'a str, (f64, f64)> {
    let mut m: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (k, v) in current {
        m.entry(k).or_default().0 += v.max(0.0);
    }
    for (k, v) in baseline {
        m.entry(k).or_default().1 += v.max(0.0);
    }
    m
}

/// Both distributions over the union of their categories, smoothed and normalised.
fn aligned(current: &[(String, f64)], baseline: &[(String, f64)]) -> Vec<(String, f64, f64)> {
    let m = union(current, baseline);
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
    compare(&bins(current), &bins(baseline), 0).psi
}

/// [`homogeneity`] of two histograms over the same bins (the baseline measured on
/// `baseline_rows` rows, or exact).
pub fn histogram_homogeneity(current: &[f64], baseline: &[f64], baseline_rows: Option<f64>) -> Option<Test> {
    homogeneity(&bins(current), &bins(baseline), baseline_rows)
}

/// A histogram's bins as named categories.
fn bins(v: &[f64]) -> Vec<(String, f64)> {
    v.iter().enumerate().map(|(i, x)| (format!("{i:03}"), *x)).collect()
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

/// Categories whose expected count in the bucket is below this are pooled into one bin: the
/// usual condition for the χ² approximation of the G statistic to hold.
pub const MIN_EXPECTED: f64 = 5.0;

/// A homogeneity test's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// G = 2 Σ O ln(O / E) over the pooled bins.
    pub statistic: f64,
    /// Pooled bins − 1.
    pub df: usize,
    /// P(χ²_df ≥ G): how likely a difference at least this large is from sampling alone.
    pub p_value: f64,
}

/// G-test of homogeneity of a bucket's counts per category against the baseline's.
///
/// `baseline` holds shares or counts; with `baseline_rows` the baseline is a sample of that
/// many rows (two-sample test: both sides' noise counts), without it the shares are taken as
/// exact (goodness of fit). Categories expected fewer than [`MIN_EXPECTED`] times in the bucket
/// are pooled, smallest first, until the pool reaches it. A category the baseline never had
/// with rows in the bucket makes a one-sided exact baseline impossible: p = 0.
/// None when the bucket is empty.
pub fn homogeneity(current: &[(String, f64)], baseline: &[(String, f64)], baseline_rows: Option<f64>) -> Option<Test> {
    let m = union(current, baseline);
    let n: f64 = m.values().map(|v| v.0).sum();
    let qsum: f64 = m.values().map(|v| v.1).sum();
    if n <= 0.0 {
        return None;
    }
    if qsum <= 0.0 {
        return Some(Test { statistic: f64::INFINITY, df: m.len().saturating_sub(1), p_value: 0.0 });
    }
    let big_m = baseline_rows.filter(|r| *r > 0.0);
    // (bucket count, baseline count or share, expected bucket count)
    let mut cells: Vec<(f64, f64, f64)> = m
        .values()
        .map(|&(c, q)| {
            let share = q / qsum;
            match big_m {
                Some(mm) => {
                    let b = share * mm;
                    (c, b, n * (c + b) / (n + mm))
                }
                None => (c, share, n * share),
            }
        })
        .collect();
    cells.sort_by(|x, y| x.2.total_cmp(&y.2));
    // pool from the smallest expected count up until the pool holds MIN_EXPECTED
    let mut pool = (0.0, 0.0, 0.0);
    let mut first_kept = 0;
    while first_kept < cells.len() && (cells[first_kept].2 < MIN_EXPECTED || (pool.2 > 0.0 && pool.2 < MIN_EXPECTED)) {
        let c = cells[first_kept];
        pool = (pool.0 + c.0, pool.1 + c.1, pool.2 + c.2);
        first_kept += 1;
    }
    let mut bins: Vec<(f64, f64, f64)> = cells[first_kept..].to_vec();
    if pool.0 > 0.0 || pool.2 > 0.0 {
        bins.push(pool);
    }
    if bins.len() < 2 {
        return Some(Test { statistic: 0.0, df: 0, p_value: 1.0 });
    }
    let xlnx = |o: f64, e: f64| if o > 0.0 { o * (o / e).ln() } else { 0.0 };
    let statistic = match big_m {
        Some(mm) => {
            2.0 * bins
                .iter()
                .map(|&(c, b, ec)| {
                    let eb = ec * mm / n; // the baseline's expected count in this bin
                    xlnx(c, ec) + xlnx(b, eb)
                })
                .sum::<f64>()
        }
        None => {
            if bins.iter().any(|&(c, _, e)| c > 0.0 && e <= 0.0) {
                f64::INFINITY
            } else {
                2.0 * bins.iter().map(|&(c, _, e)| xlnx(c, e)).sum::<f64>()
            }
        }
    };
    let statistic = statistic.max(0.0);
    let df = bins.len() - 1;
    Some(Test { statistic, df, p_value: chi2_sf(statistic, df as f64) })
}

/// One-sided test that a bucket's share `k / n` is above the baseline's `p0` (measured on
/// `m0` rows, or exact without): the pooled two-proportion z-test (one-proportion without m0).
/// Returns P(Z ≥ z); None for an empty bucket.
pub fn share_exceeds(k: f64, n: f64, p0: f64, m0: Option<f64>) -> Option<f64> {
    if n <= 0.0 {
        return None;
    }
    let p = k / n;
    let p0 = p0.clamp(0.0, 1.0);
    let se = match m0.filter(|m| *m > 0.0) {
        Some(m) => {
            let pooled = (k + p0 * m) / (n + m);
            (pooled * (1.0 - pooled) * (1.0 / n + 1.0 / m)).sqrt()
        }
        None => (p0 * (1.0 - p0) / n).sqrt(),
    };
    if se <= 0.0 {
        return Some(if p > p0 { 0.0 } else { 1.0 });
    }
    Some(normal_sf((p - p0) / se))
}

/// A baseline's never-seen share after `history` rows: log-linear interpolation between the
/// curve's points `(history rows, share)`, flat beyond its ends. None for an empty curve.
pub fn curve_at(points: &[(f64, f64)], history: f64) -> Option<f64> {
    let mut pts: Vec<(f64, f64)> = points.iter().copied().filter(|(h, s)| h.is_finite() && s.is_finite()).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (first, last) = (*pts.first()?, *pts.last()?);
    if history <= first.0 {
        return Some(first.1);
    }
    if history >= last.0 {
        return Some(last.1);
    }
    let i = pts.partition_point(|p| p.0 <= history);
    let (a, b) = (pts[i - 1], pts[i]);
    let (la, lb, lx) = (a.0.max(1.0).ln(), b.0.max(1.0).ln(), history.max(1.0).ln());
    let t = if lb > la { (lx - la) / (lb - la) } else { 0.0 };
    Some(a.1 + t * (b.1 - a.1))
}

/// The per-table meaning of the thresholds: `warn` when the effect is at least `warn` and a
/// difference that large has probability below `p_warn` under sampling noise; `alert` when the
/// effect is at least `alert` and the probability below `p_alert`; else `ok`. `n/a` without an
/// effect. Without a test (`p` None) the effect alone decides.
pub fn gated_status(effect: Option<f64>, p: Option<f64>, warn: f64, alert: f64, p_warn: f64, p_alert: f64) -> &'static str {
    let Some(e) = effect else { return "n/a" };
    let p = p.unwrap_or(0.0);
    if e >= alert && p < p_alert {
        "alert"
    } else if e >= warn && p < p_warn {
        "warn"
    } else {
        "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SplitMix;

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

    /// Zipf-like shares over k classes: a few big labels and a long tail, like a merchant model's.
    fn zipf(k: usize) -> Vec<(String, f64)> {
        (0..k).map(|i| (format!("class{i:04}"), 1.0 / (i as f64 + 1.0))).collect()
    }

    fn named(v: &[f64], k: usize) -> Vec<(String, f64)> {
        (0..k).map(|i| (format!("class{i:04}"), v[i])).collect()
    }

    #[test]
    fn homogeneity_of_a_sample_with_its_own_distribution_is_likely() {
        let base = d(&[("a", 0.5), ("b", 0.3), ("c", 0.2)]);
        let t = homogeneity(&d(&[("a", 500.0), ("b", 300.0), ("c", 200.0)]), &base, None).unwrap();
        assert!(t.statistic.abs() < 1e-9 && t.p_value > 0.999 && t.df == 2, "{t:?}");
        let shifted = homogeneity(&d(&[("a", 300.0), ("b", 300.0), ("c", 400.0)]), &base, Some(10_000.0)).unwrap();
        assert!(shifted.p_value < 1e-10, "{shifted:?}");
        assert!(homogeneity(&[], &base, None).is_none());
    }

    #[test]
    fn rare_classes_are_pooled_so_three_rows_test_nothing() {
        let t = homogeneity(&d(&[("class0001", 1.0), ("class0300", 2.0)]), &zipf(372), Some(20_000.0)).unwrap();
        // 3 rows: no category is expected 5 times; one pool, nothing to test
        assert_eq!(t.df, 0);
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn a_class_the_exact_baseline_never_had_is_impossible() {
        let t = homogeneity(&d(&[("a", 10.0), ("new", 40.0)]), &d(&[("a", 1.0)]), None).unwrap();
        assert_eq!(t.p_value, 0.0);
    }

    /// The point of the test: under no change, a `warn` (p < 0.01) is raised for about 1% of
    /// buckets, whatever the volume and the number of classes — where PSI > 0.1 alone fires for
    /// most buckets of 3,000 rows over 372 classes.
    #[test]
    fn false_alarm_rate_under_no_change_is_what_p_warn_says() {
        let mut rng = SplitMix::new(20261201);
        for (k, n) in [(372, 100), (372, 1_000), (372, 3_000), (372, 10_000), (20, 100), (20, 10_000)] {
            let shares: Vec<f64> = zipf(k).iter().map(|x| x.1).collect();
            let baseline_counts = rng.multinomial(&shares, 20_000);
            let base = named(&baseline_counts, k);
            let (mut warned, mut psi_over) = (0, 0);
            let runs = 400;
            for _ in 0..runs {
                let cur = named(&rng.multinomial(&shares, n), k);
                let t = homogeneity(&cur, &base, Some(20_000.0)).unwrap();
                let psi = compare(&cur, &base, 0).psi;
                if gated_status(Some(psi.max(0.1)), Some(t.p_value), 0.1, 0.25, 0.01, 0.001) != "ok" {
                    warned += 1;
                }
                if psi >= 0.1 {
                    psi_over += 1;
                }
            }
            let rate = warned as f64 / runs as f64;
            assert!(rate <= 0.03, "k {k}, n {n}: {warned}/{runs} false alarms");
            if k == 372 && n == 3_000 {
                assert!(psi_over > runs / 2, "PSI alone: {psi_over}/{runs} over 0.1");
            }
        }
    }

    #[test]
    fn a_bucket_concentrated_on_twenty_labels_alerts() {
        let mut rng = SplitMix::new(5);
        let shares: Vec<f64> = zipf(372).iter().map(|x| x.1).collect();
        let base = named(&rng.multinomial(&shares, 20_000), 372);
        let mut few = vec![0.0; 372];
        for (i, s) in few.iter_mut().enumerate().skip(100).take(20) {
            *s = shares[i];
        }
        let cur = named(&rng.multinomial(&few, 3_000), 372);
        let t = homogeneity(&cur, &base, Some(20_000.0)).unwrap();
        let psi = compare(&cur, &base, 0).psi;
        assert_eq!(gated_status(Some(psi), Some(t.p_value), 0.1, 0.25, 0.01, 0.001), "alert", "psi {psi}, {t:?}");
    }

    #[test]
    fn share_tests() {
        // 0.89 new against a baseline of 0.88 over 3,000 rows: not unlikely; 0.90 is (z ≈ 3.1)
        assert!(share_exceeds(2_670.0, 3_000.0, 0.88, Some(20_000.0)).unwrap() > 0.01);
        assert!(share_exceeds(2_700.0, 3_000.0, 0.88, Some(20_000.0)).unwrap() < 0.002);
        // 0.5 against 0.1: very unlikely
        assert!(share_exceeds(500.0, 1_000.0, 0.1, None).unwrap() < 1e-9);
        // below the baseline is never "exceeds"
        assert!(share_exceeds(10.0, 1_000.0, 0.1, None).unwrap() > 0.99);
        assert!(share_exceeds(0.0, 0.0, 0.1, None).is_none());
    }

    #[test]
    fn never_seen_curve() {
        let c = [(1000.0, 0.97), (10000.0, 0.85), (100000.0, 0.74)];
        assert_eq!(curve_at(&c, 10.0), Some(0.97));
        assert_eq!(curve_at(&c, 1e9), Some(0.74));
        assert!((curve_at(&c, 10000.0).unwrap() - 0.85).abs() < 1e-12);
        // halfway in log space between 1,000 and 10,000
        assert!((curve_at(&c, 10f64.powf(3.5)).unwrap() - 0.91).abs() < 1e-9);
        assert_eq!(curve_at(&[], 5.0), None);
    }

    #[test]
    fn gated_statuses() {
        assert_eq!(gated_status(Some(0.5), Some(0.2), 0.1, 0.25, 0.01, 0.001), "ok"); // large but likely noise
        assert_eq!(gated_status(Some(0.05), Some(0.0), 0.1, 0.25, 0.01, 0.001), "ok"); // real but small
        assert_eq!(gated_status(Some(0.15), Some(0.005), 0.1, 0.25, 0.01, 0.001), "warn");
        assert_eq!(gated_status(Some(0.3), Some(0.005), 0.1, 0.25, 0.01, 0.001), "warn");
        assert_eq!(gated_status(Some(0.3), Some(0.0001), 0.1, 0.25, 0.01, 0.001), "alert");
        assert_eq!(gated_status(None, Some(0.0), 0.1, 0.25, 0.01, 0.001), "n/a");
    }
}
