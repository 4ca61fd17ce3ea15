//! Standalone benchmark: the same txclass-core code the extension runs (same model, tokenizer,
//! batch size, threads, max_length), outside PostgreSQL. bench/run.sh puts its figures beside
//! the SQL ones from the same run.
//!
//!   txclass-bench MODEL_DIR ORT_LIB DESCRIPTORS_FILE [batch_size] [threads] [max_length] [repeats]
//!
//! Prints one JSON object per measurement.
use std::path::PathBuf;
use std::time::Instant;
use txclass_core::{normalize, Classifier, ExecutionProvider, Options};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: {} MODEL_DIR ORT_LIB DESCRIPTORS_FILE [batch_size] [threads] [max_length] [repeats]", args[0]);
        std::process::exit(2);
    }
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let opts = Options {
        onnxruntime_library: PathBuf::from(&args[2]),
        provider: ExecutionProvider::Cpu,
        intra_op_threads: arg(5, 1),
        max_length: arg(6, 64),
        batch_size: arg(4, 64),
    };
    let repeats = arg(7, 3);
    let text = std::fs::read_to_string(&args[3]).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", args[3]);
        std::process::exit(2)
    });
    let rss0 = rss_kb();
    let t = Instant::now();
    let mut c = match Classifier::load(std::path::Path::new(&args[1]), &opts) {
        Ok(l) => l.classifier,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("{{\"name\":\"load\",\"ms\":{load_ms:.1},\"rss_before_kb\":{rss0},\"rss_after_kb\":{}}}", rss_kb());

    // the same per-row work as SQL: normalize, skip empties, classify
    let rows: Vec<&str> = text.lines().collect();
    let best = |f: &mut dyn FnMut() -> usize| -> (usize, f64) {
        let mut best = f64::INFINITY;
        let mut n = 0;
        for _ in 0..repeats {
            let t = Instant::now();
            n = f();
            best = best.min(t.elapsed().as_secs_f64());
        }
        (n, best)
    };
    let raw: Vec<Option<&str>> = rows.iter().map(|r| Some(*r)).collect();
    let (n, secs) = best(&mut || {
        // exactly what classify_batch() runs
        c.classify_descriptors(&raw, None, &mut || {}).map(|p| p.iter().flatten().count()).unwrap_or(0)
    });
    println!("{{\"name\":\"batch\",\"rows\":{},\"classified\":{n},\"seconds\":{secs:.4},\"rows_per_s\":{:.1}}}", rows.len(), rows.len() as f64 / secs);
    let (n1, secs1) = best(&mut || {
        let mut k = 0;
        for r in &rows {
            let nrm = normalize(r);
            if nrm.is_empty() {
                continue;
            }
            k += c.classify(&[nrm.as_str()], &mut || {}).map(|p| p.len()).unwrap_or(0);
        }
        k
    });
    println!("{{\"name\":\"batch1\",\"rows\":{},\"classified\":{n1},\"seconds\":{secs1:.4},\"rows_per_s\":{:.1}}}", rows.len(), rows.len() as f64 / secs1);
    println!("{{\"name\":\"rss\",\"kb\":{}}}", rss_kb());
}
