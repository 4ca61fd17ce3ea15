//! The normalization twin check: tests/normalize_vectors.jsonl is produced by the training
//! code's Python normalizer (models/train/normalize.py); the Rust normalizer must agree on
//! every vector, or training and serving see different text.
use serde_json::Value;

#[test]
fn rust_normalizer_matches_the_shared_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/normalize_vectors.jsonl");
    let text = std::fs::read_to_string(path).expect("tests/normalize_vectors.jsonl");
    let mut n = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("valid JSON line");
        let raw = v["raw"].as_str().expect("raw");
        let want = v["normalized"].as_str().expect("normalized");
        let got = txclass_core::normalize(raw);
        if txclass_core::normalize(&got) != got {
            failures.push(format!("{raw:?}: normalizing {got:?} again changes it"));
        }
        if got != want {
            failures.push(format!("{raw:?}: rust {got:?} != python {want:?}"));
        }
        n += 1;
    }
    assert!(n >= 60, "only {n} vectors");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
