//! A model directory in the Hugging Face / Optimum export layout:
//! `model.onnx`, `tokenizer.json`, `config.json` (with `id2label`).
//!
//! `config.json` may carry a `txclass` block written by txclass's own training code:
//! `{"normalization": "txclass-v1", "max_length": 32, "label2category": {label: category}}`.
//! A model exported from transformers without it loads unchanged (categories are then NULL).
use crate::confidence::{Calibration, Levels};
use crate::error::{Error, Result};
use crate::evidence::Evidence;
use crate::normalize;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const CONFIG_FILE: &str = "config.json";

const LAYOUT_HINT: &str = "a model directory holds model.onnx, tokenizer.json and config.json (with id2label), \
     as written by transformers' save_pretrained plus an ONNX export (e.g. optimum-cli export onnx)";

#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
    /// Directory name, for display.
    pub name: String,
    /// Labels in output order (`id2label[0..n]`).
    pub labels: Vec<String>,
    /// Category of each label, where the config provides one.
    pub categories: Vec<Option<String>>,
    /// Hex SHA-256 over the three files (names, lengths, contents): the model's identity.
    pub checksum: String,
    /// `max_position_embeddings`, when the config says.
    pub max_positions: Option<usize>,
    /// `txclass.max_length`, the sequence length the model was trained with, when known.
    pub trained_max_length: Option<usize>,
    /// `txclass.subscription_labels`: the labels that are subscription services (streaming,
    /// software, telecom, ...), when the model says; `txclass.subscriptions()` reads it.
    pub subscription_labels: Option<Vec<String>>,
    /// Temperature, confidence levels and default abstention floor (`txclass.temperature`,
    /// `txclass.confidence_levels`, `txclass.min_confidence`; see [`crate::confidence`]).
    pub calibration: Calibration,
    /// The names each brand is printed as (`txclass.evidence`; see [`crate::evidence`]).
    pub evidence: Evidence,
}

#[derive(Deserialize)]
struct RawLevels {
    very_high: f32,
    high: f32,
    medium: f32,
}

#[derive(Deserialize)]
struct RawConfig {
    id2label: Option<BTreeMap<String, String>>,
    max_position_embeddings: Option<usize>,
    txclass: Option<TxclassBlock>,
}

#[derive(Deserialize)]
struct TxclassBlock {
    normalization: Option<String>,
    max_length: Option<usize>,
    label2category: Option<HashMap<String, String>>,
    subscription_labels: Option<Vec<String>>,
    temperature: Option<f32>,
    confidence_levels: Option<RawLevels>,
    min_confidence: Option<f32>,
    evidence: Option<HashMap<String, Vec<String>>>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::unreadable(format!("cannot read model file {}: {e}", path.display()), LAYOUT_HINT)
    })
}

/// Adds `name`, the length and the contents of the file at `p` to `hasher` (the same bytes as
/// hashing the whole file at once), reading 1 MB at a time.
fn hash_file(hasher: &mut Sha256, name: &str, p: &Path) -> Result<()> {
    use std::io::Read;
    let err = |e: std::io::Error| Error::unreadable(format!("cannot read model file {}: {e}", p.display()), LAYOUT_HINT);
    let mut f = std::fs::File::open(p).map_err(err)?;
    let len = f.metadata().map_err(err)?.len();
    hasher.update(name.as_bytes());
    hasher.update(len.to_le_bytes());
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        seen += n as u64;
    }
    if seen != len {
        return Err(Error::changed(
            format!("model file {} changed while it was read ({len} bytes, then {seen})", p.display()),
            "replace model files atomically (write a new directory, then register it)",
        ));
    }
    Ok(())
}

/// One model file as the file system describes it, without reading it: device, inode, size,
/// and modification and status-change times (ns). A write, a truncation, a rename over it or a
/// `touch` changes the status-change time, which no user can set back, so an equal stamp means
/// the same bytes as when the stamp was taken (the rule make and git's index rely on).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// The stamps of a model directory's three files: config.json, tokenizer.json, model.onnx.
pub type DirStamp = [FileStamp; 3];

impl ModelDir {
    /// Reads and validates `config.json`, checks that the other files exist, and computes the
    /// model's checksum. Does not load ONNX Runtime (see [`crate::Classifier::load`]).
    pub fn open(path: &Path) -> Result<ModelDir> {
        let config_bytes = Self::read_config_bytes(path)?;
        let mut hasher = Sha256::new();
        hasher.update(CONFIG_FILE.as_bytes());
        hasher.update((config_bytes.len() as u64).to_le_bytes());
        hasher.update(&config_bytes);
        // the tokenizer and the weights are hashed as they stream by: a backend that only needs
        // the labels and the tokenizer (worker mode) never holds the weights in memory
        for file in [TOKENIZER_FILE, MODEL_FILE] {
            hash_file(&mut hasher, file, &path.join(file))?;
        }
        let checksum: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Self::from_config(path, &config_bytes, checksum)
    }

    /// The stamps of `path`'s three files (see [`FileStamp`]); an error when one is missing.
    pub fn stamp(path: &Path) -> Result<DirStamp> {
        use std::os::unix::fs::MetadataExt;
        let one = |file: &str| -> Result<FileStamp> {
            let p = path.join(file);
            let m = std::fs::metadata(&p)
                .map_err(|e| Error::unreadable(format!("cannot read model file {}: {e}", p.display()), LAYOUT_HINT))?;
            Ok(FileStamp {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime_ns: m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
                ctime_ns: m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
            })
        };
        Ok([one(CONFIG_FILE)?, one(TOKENIZER_FILE)?, one(MODEL_FILE)?])
    }

    /// [`Self::open`] for files whose checksum is already known — computed by [`Self::open`]
    /// over files with the same [`DirStamp`] they have now: reads and validates `config.json`
    /// and nothing else (not the tokenizer, not the weights).
    pub fn open_known(path: &Path, checksum: String) -> Result<ModelDir> {
        let config_bytes = Self::read_config_bytes(path)?;
        Self::from_config(path, &config_bytes, checksum)
    }

    /// What `config.json` says — labels, categories, calibration, evidence, subscription
    /// labels — validated as [`Self::open`] does, without reading the tokenizer or the weights:
    /// for callers that need the model's metadata and not the model (`refresh_recurring`). The
    /// checksum is empty: never serve or cache by a directory opened this way.
    pub fn read_config(path: &Path) -> Result<ModelDir> {
        let config_bytes = Self::read_config_bytes(path)?;
        Self::from_config(path, &config_bytes, String::new())
    }

    fn read_config_bytes(path: &Path) -> Result<Vec<u8>> {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::unreadable(format!("model directory {} is not readable: {e}", path.display()), LAYOUT_HINT)
        })?;
        if !meta.is_dir() {
            return Err(Error::unreadable(format!("model path {} is not a directory", path.display()), LAYOUT_HINT));
        }
        read(&path.join(CONFIG_FILE))
    }

    fn from_config(path: &Path, config_bytes: &[u8], checksum: String) -> Result<ModelDir> {
        let config_path = path.join(CONFIG_FILE);
        let raw: RawConfig = serde_json::from_slice(config_bytes).map_err(|e| {
            Error::config(
                format!("{} is not valid JSON: {e}", config_path.display()),
                "re-export the model, or fix the file; it must be a JSON object with id2label",
            )
        })?;
        let id2label = raw.id2label.ok_or_else(|| {
            Error::config(
                format!("{} has no id2label", config_path.display()),
                "a sequence-classification model's config.json maps every output index to its label: \
                 \"id2label\": {\"0\": \"...\", ...}",
            )
        })?;
        let labels = labels_in_order(&id2label).map_err(|detail| {
            Error::config(
                format!("{}: id2label {detail}", config_path.display()),
                "id2label must map each of 0, 1, ..., n-1 to a label exactly once",
            )
        })?;
        let mut trained_max_length = None;
        let mut subscription_labels = None;
        let mut calibration = Calibration::default();
        let mut evidence = Evidence::default();
        let mut categories = vec![None; labels.len()];
        if let Some(block) = raw.txclass {
            if let Some(norm) = block.normalization {
                if norm != normalize::VERSION {
                    return Err(Error::config(
                        format!(
                            "{} says the model was trained on normalization \"{norm}\" but this txclass implements \"{}\"",
                            config_path.display(),
                            normalize::VERSION
                        ),
                        "retrain the model with this version's models/train/normalize.py, or install the txclass version it was trained for",
                    ));
                }
            }
            trained_max_length = block.max_length;
            subscription_labels = block.subscription_labels;
            let bad = |detail: String| {
                Error::config(
                    format!("{}: txclass.{detail}", config_path.display()),
                    "these entries are written by models/train/calibrate.py: temperature > 0, \
                     confidence_levels {\"very_high\": a, \"high\": b, \"medium\": c} with 1.01 >= a >= b >= c >= 0, \
                     min_confidence in 0..1.01; re-run the trainer or remove them",
                )
            };
            if let Some(t) = block.temperature {
                if !(t.is_finite() && t > 0.0) {
                    return Err(bad(format!("temperature = {t} is not a positive number")));
                }
                calibration.temperature = t;
            }
            if let Some(l) = block.confidence_levels {
                let levels = Levels { very_high: l.very_high, high: l.high, medium: l.medium };
                levels.validate().map_err(bad)?;
                calibration.levels = levels;
                calibration.levels_fitted = true;
            }
            if let Some(m) = block.min_confidence {
                if !(0.0..=1.01).contains(&m) {
                    return Err(bad(format!("min_confidence = {m} is outside 0..1.01")));
                }
                calibration.min_confidence = m;
            }
            if let Some(map) = &block.evidence {
                evidence = Evidence::from_map(&labels, map).map_err(|detail| {
                    Error::config(
                        format!("{}: txclass.{detail}", config_path.display()),
                        "txclass.evidence is written by models/train/evidence.py (label → the names the brand is printed as); re-run it or remove the entry",
                    )
                })?;
            }
            if let Some(map) = block.label2category {
                for (i, l) in labels.iter().enumerate() {
                    categories[i] = map.get(l).cloned();
                }
            }
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(ModelDir {
            path: path.to_path_buf(),
            name,
            labels,
            categories,
            checksum,
            max_positions: raw.max_position_embeddings,
            trained_max_length,
            subscription_labels,
            calibration,
            evidence,
        })
    }

    pub fn model_path(&self) -> PathBuf {
        self.path.join(MODEL_FILE)
    }
    pub fn tokenizer_path(&self) -> PathBuf {
        self.path.join(TOKENIZER_FILE)
    }
    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }
    /// The error for an ONNX file whose output width is not the number of labels config.json
    /// lists (the outage of a grown class count, caught at load).
    pub fn width_mismatch(&self, width: usize) -> Error {
        Error::config(
            format!(
                "model {} has {width} outputs but {} lists {} labels",
                self.model_path().display(),
                self.config_path().display(),
                self.labels.len()
            ),
            "the ONNX file and config.json come from different exports; export them together (save_pretrained + ONNX export of the same checkpoint)",
        )
    }
    /// Short identity shown to users: `name@first-12-hex-of-checksum`.
    pub fn identity(&self) -> String {
        format!("{}@{}", self.name, &self.checksum[..self.checksum.len().min(12)])
    }

    /// Labels that are classes of many merchants ("Other Restaurant"): those without names in a
    /// model that brought names for its brands (`txclass.evidence`); none for a model without.
    /// Such a label does not name a recurring series: two restaurants are two series.
    pub fn generic_labels(&self) -> Vec<String> {
        if self.evidence.is_empty() {
            return Vec::new();
        }
        (0..self.labels.len()).filter(|&i| !self.evidence.has_names(i)).map(|i| self.labels[i].clone()).collect()
    }
}

fn labels_in_order(id2label: &BTreeMap<String, String>) -> std::result::Result<Vec<String>, String> {
    if id2label.is_empty() {
        return Err("is empty".into());
    }
    let n = id2label.len();
    let mut labels: Vec<Option<String>> = vec![None; n];
    for (k, v) in id2label {
        let i: usize = k.trim().parse().map_err(|_| format!("has key \"{k}\", which is not an integer"))?;
        if i >= n {
            return Err(format!("has {n} entries but key {i}; keys must be 0..{}", n - 1));
        }
        if labels[i].is_some() {
            return Err(format!("lists index {i} twice"));
        }
        labels[i] = Some(v.clone());
    }
    Ok(labels.into_iter().map(|l| l.unwrap_or_default()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("txclass-model-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn write_dir(tag: &str, config: &str) -> PathBuf {
        let d = tmpdir(tag);
        std::fs::write(d.join(CONFIG_FILE), config).unwrap();
        std::fs::write(d.join(TOKENIZER_FILE), "{}").unwrap();
        std::fs::write(d.join(MODEL_FILE), b"not onnx").unwrap();
        d
    }

    #[test]
    fn missing_directory_names_the_path() {
        let e = ModelDir::open(Path::new("/nonexistent/txclass-model")).unwrap_err();
        assert!(e.message.contains("/nonexistent/txclass-model"), "{e}");
        assert!(e.hint.is_some());
    }

    #[test]
    fn missing_file_names_the_file() {
        let d = write_dir("missing", r#"{"id2label": {"0": "a"}}"#);
        std::fs::remove_file(d.join(TOKENIZER_FILE)).unwrap();
        let e = ModelDir::open(&d).unwrap_err();
        assert!(e.message.contains("tokenizer.json"), "{e}");
    }

    #[test]
    fn malformed_config_is_refused() {
        let d = write_dir("malformed", r#"{"id2label": {"0": "a""#);
        let e = ModelDir::open(&d).unwrap_err();
        assert!(e.message.contains("config.json is not valid JSON"), "{e}");
        let d = write_dir("nolabels", r#"{"hidden_size": 3}"#);
        assert!(ModelDir::open(&d).unwrap_err().message.contains("no id2label"));
        let d = write_dir("gap", r#"{"id2label": {"0": "a", "2": "c"}}"#);
        assert!(ModelDir::open(&d).unwrap_err().message.contains("keys must be 0..1"));
        let d = write_dir("nonint", r#"{"id2label": {"x": "a"}}"#);
        assert!(ModelDir::open(&d).unwrap_err().message.contains("not an integer"));
    }

    #[test]
    fn other_normalization_is_refused() {
        let d = write_dir("norm", r#"{"id2label": {"0": "a"}, "txclass": {"normalization": "txclass-v0"}}"#);
        let e = ModelDir::open(&d).unwrap_err();
        assert!(e.message.contains("txclass-v0"), "{e}");
    }

    #[test]
    fn labels_categories_and_checksum() {
        let d = write_dir(
            "ok",
            r#"{"id2label": {"1": "b", "0": "a", "10": "k", "2": "c", "3": "d", "4": "e", "5": "f", "6": "g", "7": "h", "8": "i", "9": "j"},
                "txclass": {"label2category": {"a": "A", "k": "K"}}}"#,
        );
        let m = ModelDir::open(&d).unwrap();
        assert_eq!(m.labels[0], "a");
        assert_eq!(m.labels[10], "k"); // numeric, not lexicographic, order
        assert_eq!(m.categories[0].as_deref(), Some("A"));
        assert_eq!(m.categories[1], None);
        let before = m.checksum.clone();
        std::fs::write(d.join(MODEL_FILE), b"not onnx either").unwrap();
        assert_ne!(ModelDir::open(&d).unwrap().checksum, before, "content change must change identity");
        assert_eq!(m.calibration, Calibration::default(), "no txclass calibration: T = 1, never abstain");
    }

    #[test]
    fn calibration_is_read_and_checked() {
        let d = write_dir(
            "cal",
            r#"{"id2label": {"0": "a"}, "txclass": {"temperature": 0.5,
                "confidence_levels": {"very_high": 0.9, "high": 0.7, "medium": 0.4}, "min_confidence": 0.4}}"#,
        );
        let c = ModelDir::open(&d).unwrap().calibration;
        assert_eq!(c.temperature, 0.5);
        assert!(c.levels_fitted);
        assert_eq!(c.levels.high, 0.7);
        assert_eq!(c.min_confidence, 0.4);
        for (tag, block) in [
            ("t0", r#""temperature": 0"#),
            ("tneg", r#""temperature": -2"#),
            ("unnested", r#""confidence_levels": {"very_high": 0.5, "high": 0.7, "medium": 0.4}"#),
            ("floor", r#""min_confidence": 3"#),
        ] {
            let d = write_dir(tag, &format!(r#"{{"id2label": {{"0": "a"}}, "txclass": {{{block}}}}}"#));
            let e = ModelDir::open(&d).unwrap_err();
            assert!(e.message.contains("txclass."), "{tag}: {e}");
            assert!(e.hint.as_deref().unwrap_or("").contains("calibrate.py"), "{tag}: {e}");
        }
    }

    #[test]
    fn evidence_is_read_and_checked() {
        let d = write_dir("ev", r#"{"id2label": {"0": "Tesco", "1": "Other Retail"}, "txclass": {"evidence": {"Tesco": ["tesco"]}}}"#);
        let d_ok = d.clone();
        let e = ModelDir::open(&d).unwrap().evidence;
        assert!(!e.supports(0, "smith & low ltd") && e.supports(0, "tesco stores #"));
        assert!(e.supports(1, "anything"), "a label without names is not held");
        let d = write_dir("ev-bad", r#"{"id2label": {"0": "Tesco"}, "txclass": {"evidence": {"Asda": ["asda"]}}}"#);
        let err = ModelDir::open(&d).unwrap_err();
        assert!(err.message.contains("evidence names label \"Asda\""), "{err}");
        assert!(err.hint.as_deref().unwrap_or("").contains("evidence.py"), "{err}");
        assert_eq!(ModelDir::open(&d_ok).unwrap().generic_labels(), vec!["Other Retail".to_string()]);
        let none = ModelDir::open(&write_dir("ev-none", r#"{"id2label": {"0": "a"}}"#)).unwrap();
        assert!(none.evidence.is_empty() && none.generic_labels().is_empty(), "without evidence every label may name");
    }

    #[test]
    fn read_config_needs_only_config_json_and_checks_it_the_same() {
        let cfg = r#"{"id2label": {"0": "Tesco", "1": "Other Retail"}, "txclass": {"evidence": {"Tesco": ["tesco"]},
                      "label2category": {"Tesco": "Groceries"}, "subscription_labels": ["Tesco"]}}"#;
        let full = ModelDir::open(&write_dir("cfg-full", cfg)).unwrap();
        let d = write_dir("cfg-only", cfg);
        std::fs::remove_file(d.join(MODEL_FILE)).unwrap();
        std::fs::remove_file(d.join(TOKENIZER_FILE)).unwrap();
        assert!(ModelDir::open(&d).is_err(), "open needs the weights");
        let meta = ModelDir::read_config(&d).unwrap();
        assert_eq!(meta.labels, full.labels);
        assert_eq!(meta.categories, full.categories);
        assert_eq!(meta.generic_labels(), vec!["Other Retail".to_string()]);
        assert_eq!(meta.subscription_labels, full.subscription_labels);
        assert!(meta.checksum.is_empty() && meta.identity().ends_with('@'), "{}", meta.identity());
        // the same validation as open
        let bad = write_dir("cfg-bad", r#"{"id2label": {"0": "Tesco"}, "txclass": {"evidence": {"Asda": ["asda"]}}}"#);
        assert!(ModelDir::read_config(&bad).unwrap_err().message.contains("evidence names label \"Asda\""));
        assert!(ModelDir::read_config(Path::new("/nonexistent/txclass-model")).is_err());
    }
}
