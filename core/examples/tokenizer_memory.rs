//! What one model's tokenizer costs a process (every backend holds one, in both inference modes:
//! backends tokenize). Loads `tokenizer.json` like the classifier does, gives freed memory back,
//! and prints the growth of RssAnon (Linux).
//!     cargo run --release -p txclass-core --example tokenizer_memory -- models/txclass-merchants-v3/tokenizer.json
use std::process::ExitCode;

fn rss_anon_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: tokenizer_memory <model dir>/tokenizer.json");
        return ExitCode::from(2);
    };
    tokenizers::utils::parallelism::set_parallelism(false);
    txclass_core::memory::release_freed();
    let before = rss_anon_kb();
    let tokenizer = match tokenizers::Tokenizer::from_file(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot load {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    txclass_core::memory::release_freed();
    let after = rss_anon_kb();
    let vocab = tokenizer.get_vocab_size(true);
    match (before, after) {
        (Some(b), Some(a)) => println!("{path}: {vocab} tokens, RssAnon +{:.1} MB", a.saturating_sub(b) as f64 / 1024.0),
        _ => println!("{path}: {vocab} tokens (no /proc/self/status here: memory not measured)"),
    }
    ExitCode::SUCCESS
}
