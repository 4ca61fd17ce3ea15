//! What one model's tokenizer costs a process (every backend holds one, in both inference modes:
//! backends tokenize): the `tokenizers` crate's own `Tokenizer`, then txclass's
//! (`txclass_core::tokenizer`, a WordPiece vocabulary in compact form), each loaded from
//! `tokenizer.json` on its own, with freed memory given back before each reading of RssAnon (Linux).
//!     cargo run --release -p txclass-core --example tokenizer_memory -- models/txclass-merchants-v3/tokenizer.json
use std::path::Path;
use std::process::ExitCode;

fn rss_anon_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// RssAnon growth while `load` holds what it loaded, in MB.
fn growth<T>(load: impl FnOnce() -> Result<T, String>) -> Result<Option<f64>, String> {
    txclass_core::memory::release_freed();
    let before = rss_anon_kb();
    let held = load()?;
    txclass_core::memory::release_freed();
    let after = rss_anon_kb();
    drop(held);
    Ok(before.zip(after).map(|(b, a)| a.saturating_sub(b) as f64 / 1024.0))
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: tokenizer_memory <model dir>/tokenizer.json");
        return ExitCode::from(2);
    };
    tokenizers::utils::parallelism::set_parallelism(false);
    let vocab = match tokenizers::Tokenizer::from_file(&path) {
        Ok(t) => t.get_vocab_size(true),
        Err(e) => {
            eprintln!("cannot load {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let theirs = growth(|| tokenizers::Tokenizer::from_file(&path).map_err(|e| e.to_string()));
    let ours = growth(|| txclass_core::tokenizer::Tokenizer::from_file(Path::new(&path), 64).map_err(|e| e.to_string()));
    match (theirs, ours) {
        (Ok(Some(t)), Ok(Some(o))) => {
            println!("{path}: {vocab} tokens; RssAnon +{t:.1} MB (tokenizers crate), +{o:.1} MB (txclass)")
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot load {path}: {e}");
            return ExitCode::FAILURE;
        }
        _ => println!("{path}: {vocab} tokens (no /proc/self/status here: memory not measured)"),
    }
    ExitCode::SUCCESS
}
