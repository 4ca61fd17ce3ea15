//! The name-evidence twin check: tests/evidence_vectors.jsonl is produced by the training code
//! (models/train/evidence.py: the names of a few brands, and whether each descriptor carries
//! its label's name); the Rust rule (core/src/evidence.rs) must agree on every vector, or the
//! levels the model card reports are not the levels txclass serves. The Python half re-derives
//! the same file in tests/python/test_parity.py.
use serde_json::Value;
use std::collections::HashMap;
use txclass_core::evidence::Evidence;

#[test]
fn rust_evidence_matches_the_shared_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/evidence_vectors.jsonl");
    let text = std::fs::read_to_string(path).expect("tests/evidence_vectors.jsonl");
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let head: Value = serde_json::from_str(lines.next().expect("names line")).expect("JSON");
    let names: HashMap<String, Vec<String>> = serde_json::from_value(head["names"].clone()).expect("names");
    let mut labels: Vec<String> = names.keys().cloned().collect();
    labels.push("Other Retail".into());
    labels.sort();
    let e = Evidence::from_map(&labels, &names).expect("valid names");
    let (mut n, mut held) = (0, 0);
    let mut failures = Vec::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).expect("valid JSON line");
        let raw = v["descriptor"].as_str().expect("descriptor");
        let normalized = txclass_core::normalize(raw);
        assert_eq!(normalized, v["normalized"].as_str().expect("normalized"), "{raw}: normalization differs");
        let label = labels.iter().position(|l| l == v["label"].as_str().expect("label")).expect("known label");
        let want = v["supported"].as_bool().expect("supported");
        if e.supports(label, &normalized) != want {
            failures.push(format!("{raw:?} as {}: rust {} != python {want}", labels[label], !want));
        }
        n += 1;
        held += !want as usize;
    }
    assert!(n >= 15 && held >= 5, "{n} vectors, {held} held: too few to check both answers");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
