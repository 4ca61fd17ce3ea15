//! The distributions the drift tests need: χ² and normal tail probabilities, through the
//! regularized incomplete gamma function (series / continued fraction, Numerical Recipes §6.2),
//! and a small seeded random source for the tests that check the drift statuses' false-alarm
//! rate by simulation.

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection: Γ(x) Γ(1 − x) = π / sin(πx)
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a), for a > 0.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    let lead = -x + a * x.ln() - ln_gamma(a);
    if x < a + 1.0 {
        // series for P(a, x)
        let (mut ap, mut sum, mut del) = (a, 1.0 / a, 1.0 / a);
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * lead.exp()).clamp(0.0, 1.0)
    } else {
        // Lentz's continued fraction for Q(a, x)
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (lead.exp() * h).clamp(0.0, 1.0)
    }
}

/// P(X ≥ x) for X ~ χ² with `df` degrees of freedom (1 when df = 0: nothing to test).
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    if df <= 0.0 || x.is_nan() {
        return 1.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

/// P(Z ≥ z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    // erfc(t) = Q(1/2, t²) for t ≥ 0
    let half = 0.5 * gamma_q(0.5, z * z / 2.0);
    if z >= 0.0 {
        half
    } else {
        1.0 - half
    }
}

/// A small, seeded pseudo-random source (SplitMix64): reproducible simulations in tests and
/// benchmarks without another dependency. Not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0; the modulo's bias is negligible for the small n of tests).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `n` draws from the categorical distribution `shares` (any non-negative weights): counts.
    pub fn multinomial(&mut self, shares: &[f64], n: usize) -> Vec<f64> {
        let total: f64 = shares.iter().sum();
        let mut cum = Vec::with_capacity(shares.len());
        let mut acc = 0.0;
        for s in shares {
            acc += s / total;
            cum.push(acc);
        }
        let mut counts = vec![0.0; shares.len()];
        for _ in 0..n {
            let u = self.uniform();
            let i = cum.partition_point(|&c| c <= u).min(shares.len() - 1);
            counts[i] += 1.0;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        for (n, f) in [(1.0, 1.0f64), (5.0, 24.0), (11.0, 3_628_800.0)] {
            assert!((ln_gamma(n) - f.ln()).abs() < 1e-10, "{n}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-10);
    }

    #[test]
    fn chi2_tail_matches_tables() {
        // the 5% critical values of the χ² table
        for (x, df) in [(3.841_459, 1.0), (18.307_038, 10.0), (124.342_113, 100.0), (67.504_807, 50.0), (233.994_3, 200.0)] {
            let p = chi2_sf(x, df);
            assert!((p - 0.05).abs() < 2e-4, "df {df}: {p}");
        }
        assert!((chi2_sf(6.634_897, 1.0) - 0.01).abs() < 1e-5);
        assert_eq!(chi2_sf(0.0, 5.0), 1.0);
        assert_eq!(chi2_sf(f64::INFINITY, 5.0), 0.0);
        assert_eq!(chi2_sf(3.0, 0.0), 1.0);
    }

    #[test]
    fn normal_tail_matches_tables() {
        assert!((normal_sf(1.644_854) - 0.05).abs() < 1e-6);
        assert!((normal_sf(2.326_348) - 0.01).abs() < 1e-6);
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-12);
        assert!((normal_sf(-1.644_854) - 0.95).abs() < 1e-6);
    }

    #[test]
    fn multinomial_is_seeded_and_sums_to_n() {
        let mut a = SplitMix::new(7);
        let mut b = SplitMix::new(7);
        let ca = a.multinomial(&[0.5, 0.3, 0.2], 1000);
        assert_eq!(ca, b.multinomial(&[0.5, 0.3, 0.2], 1000));
        assert_eq!(ca.iter().sum::<f64>(), 1000.0);
        assert!((ca[0] / 1000.0 - 0.5).abs() < 0.06, "{ca:?}");
    }
}
