//! The vocabulary every part of inference shares: what runs it (`ExecutionProvider`,
//! `Options`), what it answers (`Prediction`) and how logits become answers (`softmax`,
//! `top_1`, `top_k`). It depends on nothing else in the crate, so the cache, the engine and
//! the classifier import it without importing each other.
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionProvider {
    Cpu,
    Cuda,
}

impl ExecutionProvider {
    /// As `txclass.execution_provider` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub onnxruntime_library: PathBuf,
    pub provider: ExecutionProvider,
    pub intra_op_threads: usize,
    /// Token budget per descriptor, special tokens included.
    pub max_length: usize,
    /// Most rows in one ONNX run (bounds memory).
    pub batch_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub label: usize,
    pub confidence: f32,
}

/// Numerically stable softmax of `logits / temperature` (the model's calibration; 1 = none).
pub fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| ((x - max) / temperature).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The most probable label straight from logits: argmax, and its softmax probability at
/// `temperature`, `1 / Σ exp((l_i - l_max) / T)`. Ties go to the lower label index, as in [`top_k`].
pub fn top_1(logits: &[f32], temperature: f32) -> Prediction {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    let max = logits[best];
    let sum: f32 = logits.iter().map(|&x| ((x - max) / temperature).exp()).sum();
    Prediction { label: best, confidence: 1.0 / sum }
}

/// The `k` largest probabilities, descending; ties go to the lower label index.
pub fn top_k(probs: &[f32], k: usize) -> Vec<Prediction> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    let k = k.min(probs.len());
    let cmp = |a: &usize, b: &usize| probs[*b].total_cmp(&probs[*a]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k.saturating_sub(1), cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.into_iter().map(|i| Prediction { label: i, confidence: probs[i] }).collect()
}
