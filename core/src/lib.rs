//! txclass-core: everything txclass does that needs no PostgreSQL.
//!
//! * [`normalize`] — descriptor → normalized text (the model contract, versioned).
//! * [`model`] — reading and validating a Hugging Face / Optimum model directory.
//! * [`runtime`] — loading the ONNX Runtime shared library once per process.
//! * [`batching`] — length-bucketed batch plans (padding is what makes naive batching slow).
//! * [`tokenizer`] — `tokenizer.json` → word-piece ids (a WordPiece vocabulary in compact form).
//! * [`prediction`] — what inference answers and runs with (`Prediction`, `Options`, top-1/top-k).
//! * [`classifier`] — tokenize, run the engine, answer (rules, cache, model).
//! * [`engine`] — what runs the network: an ONNX Runtime session ([`engine::OrtEngine`]).
//! * [`cache`] — the result-cache table (keys, probing, usage-decay eviction).
//! * [`rules`] — the decision table that answers ahead of the model.
//! * [`metrics`] — gold-standard evaluation (accuracy, macro-F1, per class).
//! * [`drift`] — PSI, Jensen–Shannon distance, top movers; sampling-aware tests (G-test with
//!   pooling, proportions) and the statuses they gate.
//! * [`stats`] — χ² and normal tails (incomplete gamma), a seeded random source for simulations.
//! * [`recurring`] — recurring payments: cadence, regularity, amounts and price changes, next
//!   date and status of the series in one account's charges at one merchant.
//! * [`memory`] — giving the memory a model load freed back to the OS.
//! * [`fuzz`] — the pre-inference pipeline with its invariants checked (the fuzz target's body).
//!
//! The pgrx extension (`src/`) and the standalone benchmark (`bench/`) both call this crate, so
//! they run the same inference code.
#![deny(ffi_unwind_calls)]

pub mod batching;
pub mod cache;
pub mod classifier;
pub mod confidence;
pub mod drift;
pub mod engine;
pub mod evidence;
pub mod error;
pub mod fuzz;
pub mod labels;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod parse;
pub mod prediction;
pub mod recurring;
pub mod rules;
pub mod runtime;
pub mod stats;
pub mod tokenizer;

pub use classifier::{Ahead, Answer, Classifier};
pub use prediction::{ExecutionProvider, Options, Prediction};
pub use confidence::{Calibration, Level, Levels, Policy};
pub use engine::{Engine, OrtEngine};
pub use error::{Error, ErrorKind, Result};
pub use model::ModelDir;
pub use normalize::normalize;
