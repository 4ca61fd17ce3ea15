//! Core tests against the real bundled model and the real ONNX Runtime library
//! (build/onnxruntime, fetched by scripts/setup.sh; or $TXCLASS_ONNXRUNTIME).
use std::path::{Path, PathBuf};
use txclass_core::{normalize, Classifier, ErrorKind, ExecutionProvider, Level, Options};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bundled() -> PathBuf {
    root().join("models/txclass-merchants-v1")
}

fn opts() -> Options {
    let lib = std::env::var_os("TXCLASS_ONNXRUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("build/onnxruntime/libonnxruntime.so.1.31.1"));
    assert!(lib.is_file(), "ONNX Runtime library {} missing: run scripts/setup.sh", lib.display());
    Options { onnxruntime_library: lib, provider: ExecutionProvider::Cpu, intra_op_threads: 1, max_length: 64, batch_size: 16 }
}

fn load(dir: &Path) -> Classifier {
    Classifier::load(dir, &opts()).map_err(|e| e.to_string()).expect("bundled model loads").classifier
}

/// A copy of the bundled model in a fresh temp dir, for corrupting.
fn copy_of_bundled(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("txclass-core-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for f in ["model.onnx", "tokenizer.json", "config.json"] {
        std::fs::copy(bundled().join(f), d.join(f)).unwrap();
    }
    d
}

fn labels(c: &mut Classifier, raw: &[&str]) -> Vec<String> {
    let norm: Vec<String> = raw.iter().map(|r| normalize(r)).collect();
    let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
    let preds = c.classify(&refs, &mut || {}).expect("classify");
    preds.iter().map(|p| c.label(p).to_string()).collect()
}

#[test]
fn bundled_model_recognises_brands_it_was_never_shown_with_these_numbers() {
    let mut c = load(&bundled());
    let cases = [
        ("SQ *BLUE BOTTLE COF 8473 OAKLAND CA", "Blue Bottle Coffee"),
        ("STARBUCKS STORE 01234 SEATTLE WA", "Starbucks"),
        ("AMZN MKTP US*2K3L4M5N6", "Amazon"),
        ("SHELL OIL 57444 HOUSTON TX", "Shell"),
        ("UBER *TRIP HELP.UBER.COM", "Uber"),
        ("TESCO STORES 6292", "Tesco"),
        ("NETFLIX.COM 866-579-7172 CA", "Netflix"),
    ];
    let raw: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let got = labels(&mut c, &raw);
    for ((d, want), got) in cases.iter().zip(got) {
        assert_eq!(&got, want, "{d}");
    }
}

#[test]
fn batched_logits_equal_one_at_a_time() {
    let mut c = load(&bundled());
    let raw = [
        "WALMART SUPERCENTER #5512 DALLAS TX", "TST* JOES DINER", "PAYPAL *NETFLIX", "HOME DEPOT 4411 ATLANTA GA",
        "LYFT *RIDE", "COSTCO WHSE #1234", "CHECKCARD 0412 KROGER FUEL", "X", "SPOTIFY P0A1B2C3D4 STOCKHOLM",
    ];
    let norm: Vec<String> = raw.iter().map(|r| normalize(r)).collect();
    let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
    let batched = c.logits(&refs, &mut || {}).unwrap();
    for (i, t) in refs.iter().enumerate() {
        let single = c.logits(&[t], &mut || {}).unwrap().remove(0);
        let diff = single.iter().zip(&batched[i]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "{t}: batched vs single differ by {diff}");
    }
}

#[test]
fn duplicates_are_computed_once_but_returned_for_every_row() {
    let mut c = load(&bundled());
    let refs = ["walmart", "target", "walmart", "walmart", "target"];
    let mut calls = 0;
    let preds = c.classify(&refs, &mut || calls += 1).unwrap();
    assert_eq!(preds.len(), 5);
    assert_eq!(preds[0], preds[2]);
    assert_eq!(preds[1], preds[4]);
    assert_eq!(calls, 1, "two distinct texts of similar length fit one batch");
}

#[test]
fn between_batches_runs_once_per_batch() {
    let mut c = load(&bundled());
    c.batch_size = 4;
    let texts: Vec<String> = (0..40).map(|i| format!("store {i} walmart")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut calls = 0;
    c.classify(&refs, &mut || calls += 1).unwrap();
    assert!(calls >= 10, "40 distinct rows at batch_size 4 need >= 10 batches, saw {calls}");
}

#[test]
fn class_count_mismatch_is_refused_with_both_numbers() {
    let d = copy_of_bundled("mismatch");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
    let n = cfg["id2label"].as_object().unwrap().len();
    let mut cfg = cfg;
    cfg["id2label"][n.to_string()] = serde_json::Value::String("Brand New Class".into());
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let e = Classifier::load(&d, &opts()).err().expect("must be refused");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains(&format!("has {n} outputs but")), "{e}");
    assert!(e.message.contains(&format!("lists {} labels", n + 1)), "{e}");
}

#[test]
fn corrupt_onnx_and_tokenizer_name_the_file() {
    let d = copy_of_bundled("corrupt");
    let bytes = std::fs::read(d.join("model.onnx")).unwrap();
    std::fs::write(d.join("model.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    let e = Classifier::load(&d, &opts()).err().expect("truncated model.onnx must be refused");
    assert!(e.message.contains("model.onnx"), "{e}");
    assert!(e.hint.is_some());

    let d = copy_of_bundled("badtok");
    std::fs::write(d.join("tokenizer.json"), "{\"version\": ").unwrap();
    let e = Classifier::load(&d, &opts()).err().expect("broken tokenizer.json must be refused");
    assert!(e.message.contains("tokenizer.json"), "{e}");
}

#[test]
fn cuda_request_on_a_cpu_build_warns_and_uses_cpu() {
    let mut o = opts();
    o.provider = ExecutionProvider::Cuda;
    let loaded = Classifier::load(&bundled(), &o).map_err(|e| e.to_string()).unwrap();
    assert_eq!(loaded.classifier.engine().provider(), ExecutionProvider::Cpu);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("using CPU"));
}

#[test]
fn max_length_is_capped_at_the_models_positions_and_long_input_truncates() {
    let mut o = opts();
    o.max_length = 500;
    let loaded = Classifier::load(&bundled(), &o).map_err(|e| e.to_string()).unwrap();
    assert!(loaded.warnings.iter().any(|w| w.contains("max_position_embeddings")), "{:?}", loaded.warnings);
    let mut c = loaded.classifier;
    let long = normalize(&"q x ".repeat(5000)); // 128 one-letter tokens after normalization
    let ids = c.encode(&long).unwrap();
    assert_eq!(ids.len(), c.max_length);
    assert_eq!(c.classify(&[long.as_str()], &mut || {}).unwrap().len(), 1);
}

#[test]
fn classify_descriptors_handles_nulls_empties_and_repeats() {
    let mut c = load(&bundled());
    let raw = [Some("STARBUCKS 12"), None, Some(""), Some("  ...  "), Some("STARBUCKS 12"), Some("STARBUCKS 99"), Some("TESCO STORES 6292")];
    let got = c.classify_descriptors(&raw, None, &mut || {}).unwrap();
    assert_eq!(got.len(), raw.len());
    assert!(got[1].is_none() && got[2].is_none() && got[3].is_none());
    assert_eq!(got[0], got[4]);
    assert_eq!(got[0], got[5], "store numbers normalize away");
    assert_eq!(c.label(&got[0].unwrap()), "Starbucks");
    assert_eq!(c.label(&got[6].unwrap()), "Tesco");
    // the same as classifying the normalized text directly
    let direct = c.classify(&[normalize("TESCO STORES 6292").as_str()], &mut || {}).unwrap()[0];
    assert_eq!(got[6], Some(direct));
}

#[test]
fn long_preparation_calls_the_check_regularly() {
    // a Postgres backend turns the check into CHECK_FOR_INTERRUPTS: cancel must not wait for
    // 100k rows of normalization and tokenization
    let mut c = load(&bundled());
    c.batch_size = 4096;
    let texts: Vec<String> = (0..20_000).map(|i| format!("merchant {}", i % 5)).collect();
    let raw: Vec<Option<&str>> = texts.iter().map(|t| Some(t.as_str())).collect();
    let mut calls = 0;
    c.classify_descriptors(&raw, None, &mut || calls += 1).unwrap();
    assert!(calls >= 20_000 / txclass_core::classifier::CHECK_EVERY, "only {calls} checks over 20k rows");
}

#[test]
fn cached_results_equal_uncached_and_only_misses_reach_the_model() {
    use txclass_core::cache::LocalCache;
    let mut c = load(&bundled());
    // 1200 descriptors that stay distinct after normalization (letters, not digits, vary)
    let letters = |mut i: usize| {
        let mut w = String::new();
        for _ in 0..3 {
            w.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
        }
        w
    };
    let brands = ["walmart", "tesco", "uber trip", "shell oil", "netflix.com", "joes diner"];
    let texts: Vec<String> = (0..1200).map(|i| format!("{} store {}", brands[i % 6], letters(i))).collect();
    let raw: Vec<Option<&str>> = texts.iter().map(|t| Some(t.as_str())).collect();
    let uncached = c.classify_descriptors(&raw, None, &mut || {}).unwrap();
    let cache = LocalCache::new(10_000);
    let first = c.classify_descriptors(&raw, Some(&cache), &mut || {}).unwrap();
    let s1 = cache.stats();
    let second = c.classify_descriptors(&raw, Some(&cache), &mut || {}).unwrap();
    let s2 = cache.stats();
    assert_eq!(first, uncached);
    assert_eq!(second, uncached, "results served from the cache equal computed ones");
    assert_eq!(s1.hits, 0);
    assert!(s1.misses >= 1000, "{s1:?}");
    assert_eq!(s2.hits - s1.hits, s1.misses, "second pass is all hits");
    let mut calls = 0;
    c.classify_descriptors(&raw, Some(&cache), &mut || calls += 1).unwrap();
    assert_eq!(calls, 0, "all hits: no ONNX batch ran");
}

#[test]
fn rules_and_labels_answer_before_the_cache_and_the_model() {
    use txclass_core::cache::{LocalCache, ResultCache};
    use txclass_core::rules::{Rule, RuleSet};
    use txclass_core::labels::{LabelTable, Labeled};
    use txclass_core::{Ahead, Answer};
    let mut c = load(&bundled());
    let rules = RuleSet::new(vec![Rule {
        id: 9,
        pattern: "^tesco stores".into(),
        label: "Tesco (rule)".into(),
        category: None,
        priority: 1,
    }])
    .unwrap();
    let cache = LocalCache::new(64);
    let raw = [Some("TESCO STORES 6292"), Some("STARBUCKS STORE 1"), None, Some("TESCO STORES 1111"), Some("tesco express 1")];
    let no_labels = LabelTable::default();
    let got = c.answer_descriptors(&raw, Ahead::of(&rules, &no_labels), Some(&cache as &dyn ResultCache), &mut || {}).unwrap();
    assert_eq!(got[0], Some(Answer::Rule(0)));
    assert_eq!(got[3], Some(Answer::Rule(0)), "same normalized text, same rule");
    assert_eq!(got[2], None);
    let Some(Answer::Model(p, _)) = got[1] else { panic!("the model answers what no rule matches: {:?}", got[1]) };
    assert_eq!(c.label(&p), "Starbucks");
    let Some(Answer::Model(p, _)) = got[4] else { panic!("'^tesco stores' must not match 'tesco express'") };
    assert_eq!(c.label(&p), "Tesco");
    // only the two model answers went into the cache
    assert_eq!(cache.stats().inserts, 2);
    // without rules the same rows are model answers
    let plain = c.classify_descriptors(&raw, None, &mut || {}).unwrap();
    assert!(plain[0].is_some() && plain[3].is_some());
    // a label given for a text answers it (after the rules, before the cache and the model):
    // the cached model answer for 'starbucks store #' is not used, a rule still wins
    let labels = LabelTable::new(vec![
        Labeled { id: 1, normalized: normalize("STARBUCKS STORE 1"), label: "Starbucks Reserve".into(), category: None },
        Labeled { id: 2, normalized: normalize("TESCO STORES 6292"), label: "Tesco (label)".into(), category: None },
    ]);
    let got = c.answer_descriptors(&raw, Ahead::of(&rules, &labels), Some(&cache as &dyn ResultCache), &mut || {}).unwrap();
    assert_eq!(got[1], Some(Answer::Label(0)), "the label answers its text, not the cached model answer");
    assert_eq!(got[0], Some(Answer::Rule(0)), "a rule answers ahead of a label");
    assert!(matches!(got[4], Some(Answer::Model(..))), "other texts: the model");
    let one = c.answer_one(&normalize("STARBUCKS STORE 1"), Ahead::of(&rules, &labels), Some(&cache as &dyn ResultCache), &mut || {});
    assert_eq!(one.unwrap(), Answer::Label(0), "the per-row path decides the same");
}

/// The successor model (0.4.0's default) carries its calibration, and every path applies it:
/// the top-1 confidence is softmax(logits / T), not softmax(logits); businesses that are no
/// brand fall under its floor, the brands it knows stay well above it.
#[test]
fn calibrated_successor_applies_its_temperature_and_abstains_on_unknown_businesses() {
    let mut c = load(&root().join("models/txclass-merchants-v3"));
    let cal = c.model.calibration;
    assert!(cal.levels_fitted && cal.temperature > 0.0 && (cal.temperature - 1.0).abs() > 1e-3, "{cal:?}");
    assert!(cal.min_confidence > 0.0, "the bundled successor abstains below a floor: {cal:?}");
    let texts = ["netflix.com 866-579-7172 ca", "eyre & elliston ltd", "oxfordshire county council"];
    let logits = c.logits(&texts, &mut || {}).unwrap();
    let preds = c.classify(&texts, &mut || {}).unwrap();
    for ((t, l), p) in texts.iter().zip(&logits).zip(&preds) {
        let at_t = txclass_core::classifier::top_1(l, cal.temperature);
        let raw = txclass_core::classifier::top_1(l, 1.0);
        assert_eq!(p.label, at_t.label, "{t}");
        assert!((p.confidence - at_t.confidence).abs() < 1e-6, "{t}: {} vs {}", p.confidence, at_t.confidence);
        assert!((p.confidence - raw.confidence).abs() > 1e-6 || raw.confidence > 0.9999, "{t}: the temperature changed nothing");
        let topk = c.topk(&[t], 1, &mut || {}).unwrap().remove(0).remove(0);
        assert!((topk.confidence - p.confidence).abs() < 1e-6, "{t}: topk and classify disagree");
    }
    assert!(preds[0].confidence >= cal.min_confidence, "a known brand is answered: {:?}", preds[0]);
    assert!(preds[1].confidence < cal.min_confidence && preds[2].confidence < cal.min_confidence, "{preds:?}");
}

#[test]
fn the_bundled_successor_holds_a_brand_without_its_name_at_medium() {
    use txclass_core::Answer;
    let mut c = load(&root().join("models/txclass-merchants-v3"));
    assert!(c.model.evidence.labels_with_names() > 300, "v3 carries its brands' names");
    let raw = [Some("SMITH & LOW LTD"), Some("WHSMITH OXFORD STN")];
    let got = c.answer_descriptors(&raw, txclass_core::Ahead::NONE, None, &mut || {}).unwrap();
    let (Some(Answer::Model(held, named_held)), Some(Answer::Model(kept, named_kept))) = (got[0], got[1]) else {
        panic!("model answers: {got:?}")
    };
    assert_eq!(c.label(&held), "WHSmith", "the shared word reads as the brand");
    assert_eq!(c.label(&kept), "WHSmith");
    assert!(!named_held && named_kept, "only the descriptor with the name carries evidence");
    let cal = c.model.calibration;
    let default = cal.policy(-1.0, Level::High);
    let (level, withheld) = txclass_core::confidence::judge(&cal, held.confidence, &default, named_held);
    assert!(cal.levels.of(held.confidence) > level, "confident, but held: {} at {level:?}", held.confidence);
    assert!(withheld, "held for want of the name: not served by default");
    let (level, withheld) = txclass_core::confidence::judge(&cal, kept.confidence, &default, named_kept);
    assert!(level >= Level::High && !withheld, "the named answer is served: {} at {level:?}", kept.confidence);
    // the per-row path decides the same
    let one = c.answer_one("smith & low ltd", txclass_core::Ahead::NONE, None, &mut || {}).unwrap();
    assert_eq!(one, Answer::Model(held, false));
}

/// A released bundled model's files never change: its checksum is its identity in the registry,
/// and a database that registered the bundled directory would refuse to serve it after a package
/// update ("the files ... changed since it was registered"). A new model gets a new name.
#[test]
fn released_bundled_models_keep_the_checksum_they_shipped_with() {
    for (name, released, version) in [
        ("txclass-merchants-v1", "b79c03c0957423b1eac14a308cd379ea3573bb7e71123cbe518636911d48666f", "0.1.0"),
        ("txclass-merchants-v2", "d678b8d6df5c2738296ec0b3e0563e07e0ba900b4cbf1db953f4a94956761250", "0.3.0"),
    ] {
        let m = txclass_core::model::ModelDir::open(&root().join("models").join(name)).expect("opens");
        assert_eq!(m.checksum, released, "{name} changed since {version} shipped it: give the new files a new model name");
    }
}
