//! One descriptor through everything txclass does to it before inference — normalize, tokenize,
//! cache key, cache store and look-up — with the invariants each step promises checked.
//!
//! This is the body of the `cargo fuzz` target (`core/fuzz`, libFuzzer, nightly) and of a seeded
//! run in `cargo test` (stable), so both exercise the same code. A broken invariant panics: that
//! is what a fuzzer reports.
use std::path::Path;

use crate::tokenizer::Tokenizer;

use crate::cache::{self, Entry};
use crate::prediction::Prediction;
use crate::error::Result;
use crate::normalize::{normalize, MAX_CHARS};

pub struct Pipeline {
    tokenizer: Tokenizer,
    vocab: usize,
    max_length: usize,
    entries: Vec<Entry>,
}

impl Pipeline {
    /// `tokenizer_json`: a model directory's `tokenizer.json`; inputs are truncated to
    /// `max_length` word pieces as the extension does.
    pub fn new(tokenizer_json: &Path, max_length: usize) -> Result<Pipeline> {
        let tokenizer = Tokenizer::from_file(tokenizer_json, max_length)?;
        let vocab = tokenizer.vocab_size();
        let mut entries = Vec::new();
        entries.resize_with(64, Entry::default);
        Ok(Pipeline { tokenizer, vocab, max_length, entries })
    }

    /// Bytes as a SQL_ASCII database may hold them: decoded lossily, as the extension's callers
    /// see valid UTF-8 only.
    pub fn check(&mut self, input: &[u8]) {
        let text = String::from_utf8_lossy(input);
        let n = normalize(&text);

        assert!(n.chars().count() <= MAX_CHARS, "normalized text longer than {MAX_CHARS} chars: {n:?}");
        assert_eq!(normalize(&n), n, "normalize is not idempotent on {text:?}");
        assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "), "spacing not collapsed: {n:?}");
        assert!(!n.chars().any(char::is_control), "control character survived: {n:?}");

        let ids = self.tokenizer.encode(n.as_str(), true).unwrap_or_else(|e| panic!("tokenizer failed on {n:?}: {e}"));
        assert!(ids.len() <= self.max_length, "{} word pieces > max_length {}", ids.len(), self.max_length);
        assert!(ids.len() >= 2, "no [CLS]/[SEP] for {n:?}");
        assert!(ids.iter().all(|&i| (i as usize) < self.vocab), "token id outside the vocabulary for {n:?}");

        let model = cache::model_id("fuzz", self.max_length);
        let k = cache::key(model, &n);
        assert_eq!(k, cache::key(model, &n), "cache key not deterministic");
        let other = cache::key(cache::model_id("fuzz-2", self.max_length), &n);
        assert_ne!(k, other, "two models share a cache key");
        let p = Prediction { label: ids.len(), confidence: 0.5 };
        assert!(cache::put(&mut self.entries, &k, p).is_some());
        assert_eq!(cache::get(&self.entries, &k), Some(p), "stored entry not found");
        assert_eq!(cache::get(&self.entries, &other), None, "another model's key hit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic, so a failure reproduces; no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn input(r: &mut Rng) -> Vec<u8> {
        let len = match r.below(10) {
            0 => r.below(20_000) as usize,
            _ => r.below(80) as usize,
        };
        match r.below(4) {
            // raw bytes: invalid UTF-8 as a SQL_ASCII database stores it
            0 => (0..len).map(|_| r.next() as u8).collect(),
            // scalar values from every plane, controls and surrogate-adjacent ranges included
            1 => (0..len).filter_map(|_| char::from_u32(r.below(0x11_0000) as u32)).collect::<String>().into_bytes(),
            // descriptor-like: processor prefixes, digits, punctuation
            2 => {
                const PARTS: [&str; 12] =
                    ["SQ *", "TST* ", "PAYPAL *", "AMZN Mktp ", "#", "1234", " ", ".", "'", "&", "CA", "z9uj3aep92"];
                (0..len / 4 + 1).map(|_| PARTS[r.below(PARTS.len() as u64) as usize]).collect::<String>().into_bytes()
            }
            // mixed: ASCII with combining marks, zero-width and bidi characters
            _ => {
                const ODD: [char; 8] = ['\u{0301}', '\u{200b}', '\u{202e}', '\u{feff}', 'İ', 'ß', 'ﬃ', '\u{1f600}'];
                (0..len)
                    .map(|_| if r.below(3) == 0 { ODD[r.below(8) as usize] } else { (b' ' + r.below(95) as u8) as char })
                    .collect::<String>()
                    .into_bytes()
            }
        }
    }

    #[test]
    fn seeded_pipeline_run() {
        let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/txclass-merchants-v1/tokenizer.json");
        let mut p = Pipeline::new(&tok, 32).expect("bundled tokenizer");
        let mut r = Rng(0x7478_636c_6173_7321);
        for _ in 0..3_000 {
            p.check(&input(&mut r));
        }
        for edge in [&b""[..], b" ", b"\xff\xfe", b"\xe2\x82", "İİİ".as_bytes(), &[b'#'; 5000]] {
            p.check(edge);
        }
        // found by cargo fuzz: the 256-character cut ending in a '.' kept between two letters
        p.check(format!("{}.bc", "a".repeat(255)).as_bytes());
        p.check(include_bytes!("../fuzz/regressions/cut-after-dot"));
    }
}
