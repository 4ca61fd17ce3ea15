//! Batch plans that weigh padding against the cost of one more run.
//!
//! A batch runs at the cost of its longest row times its size, plus a fixed cost per run
//! (launching the graph's kernels). Padding short descriptors to the longest one in a batch
//! wastes work (measured: naive batching was slower than one row at a time), but cutting a
//! handful of rows of different lengths into one batch per length loses the batching itself —
//! which is what a shared worker sees when 16 backends each send one row. So rows are sorted by
//! token length and cut where the total cost, `RUN_COST_TOKENS + rows x longest` per batch, is
//! least (dynamic programming over the sorted lengths), with at most `max_batch` rows a batch.

/// The fixed cost of one run, in padded token cells: (per-row cost at batch 1 − at batch 64) ÷
/// the cost of a token, measured at about 16 cells for the bundled model and 24 for MiniLM-L6.
pub const RUN_COST_TOKENS: usize = 24;

/// Returns batches of row indices into `lengths`. Every index appears exactly once.
pub fn plan(lengths: &[usize], max_batch: usize) -> Vec<Vec<usize>> {
    let max_batch = max_batch.max(1);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let n = order.len();
    // best[i]: least cost of the first i sorted rows; cut[i]: where its last batch starts
    let mut best = vec![0usize; n + 1];
    let mut cut = vec![0usize; n + 1];
    for i in 1..=n {
        let longest = lengths[order[i - 1]].max(1);
        let mut b = usize::MAX;
        for j in i.saturating_sub(max_batch)..i {
            let c = best[j] + RUN_COST_TOKENS + (i - j) * longest;
            // on a tie, prefer the larger batch (fewer runs)
            if c < b || (c == b && j < cut[i]) {
                b = c;
                cut[i] = j;
            }
        }
        best[i] = b;
    }
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut i = n;
    while i > 0 {
        let j = cut[i];
        out.push(order[j..i].to_vec());
        i = j;
    }
    out.reverse();
    out
}

/// Padded cells over real cells for a plan (0.0 = no padding at all).
pub fn padding_overhead(lengths: &[usize], plan: &[Vec<usize>]) -> f64 {
    let real: usize = lengths.iter().sum();
    let padded: usize = plan.iter().map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap_or(0)).sum();
    if real == 0 {
        0.0
    } else {
        (padded - real) as f64 / real as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_once_and_batches_bounded() {
        let lengths: Vec<usize> = (0..1000).map(|i| 3 + (i * 7919) % 23).collect();
        let p = plan(&lengths, 32);
        let mut seen = vec![false; lengths.len()];
        for b in &p {
            assert!(!b.is_empty() && b.len() <= 32);
            for &i in b {
                assert!(!seen[i]);
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn bucketing_beats_arrival_order_padding() {
        let lengths: Vec<usize> = (0..4096).map(|i| 4 + (i * 31) % 20).collect();
        let naive: Vec<Vec<usize>> = (0..lengths.len()).collect::<Vec<_>>().chunks(64).map(|c| c.to_vec()).collect();
        let p = plan(&lengths, 64);
        assert!(padding_overhead(&lengths, &p) < 0.05);
        assert!(padding_overhead(&lengths, &naive) > 0.5);
    }

    #[test]
    fn few_rows_of_mixed_lengths_share_one_run() {
        // 16 backends, one row each: one batch, not one per length
        let lengths: Vec<usize> = (0..16).map(|i| 9 + i % 5).collect();
        assert_eq!(plan(&lengths, 64).len(), 1);
        // a long outlier is not padded into the short rows' batch
        let mut l = vec![8usize; 20];
        l.push(60);
        let p = plan(&l, 64);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(padding_overhead(&l, &p) < 0.01);
    }

    #[test]
    fn plan_is_never_worse_than_one_batch_per_length() {
        let lengths: Vec<usize> = (0..300).map(|i| 3 + (i * 7919) % 29).collect();
        let cost = |p: &[Vec<usize>]| -> usize {
            p.iter().map(|b| RUN_COST_TOKENS + b.len() * b.iter().map(|&i| lengths[i]).max().unwrap()).sum()
        };
        let mut per_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, &l) in lengths.iter().enumerate() {
            per_len.entry(l).or_default().push(i);
        }
        let naive: Vec<Vec<usize>> = per_len.into_values().flat_map(|v| v.chunks(64).map(|c| c.to_vec()).collect::<Vec<_>>()).collect();
        assert!(cost(&plan(&lengths, 64)) <= cost(&naive));
    }

    #[test]
    fn degenerate_inputs() {
        assert!(plan(&[], 8).is_empty());
        assert_eq!(plan(&[5], 0), vec![vec![0]]);
    }
}
