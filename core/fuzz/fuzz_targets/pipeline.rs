//! normalize → tokenize (bundled tokenizer, truncation 32) → cache key → store → look-up, with
//! the invariants of `txclass_core::fuzz::Pipeline::check`. Any byte string is a valid input.
#![no_main]
use std::path::Path;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use once_cell::sync::Lazy;
use txclass_core::fuzz::Pipeline;

static PIPELINE: Lazy<Mutex<Pipeline>> = Lazy::new(|| {
    let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/txclass-merchants-v1/tokenizer.json");
    Mutex::new(Pipeline::new(&tok, 32).expect("the bundled tokenizer.json loads"))
});

fuzz_target!(|data: &[u8]| {
    PIPELINE.lock().expect("not poisoned").check(data);
});
