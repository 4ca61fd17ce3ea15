//! The per-backend classifier: created at the first classification in each backend (never in
//! the postmaster — ONNX Runtime sessions do not survive fork), kept while the settings and the
//! registry's choice stay the same, rebuilt when they change. A failed load is not remembered:
//! once the model is fixed, the next call in the same backend loads it.
//!
//! Which model: `txclass.model` when set (a pin, superuser only), else the database's active
//! registered model (src/registry.rs), else the bundled default. The rules are reloaded with
//! the same change token.
use crate::errors::OrRaise;
use crate::{labels, registry, rules, settings};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use txclass_core::labels::LabelTable;
use txclass_core::rules::RuleSet;
use txclass_core::{Classifier, Error, ModelDir};

/// Where the served model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `txclass.model` pins this directory.
    Pinned(PathBuf),
    /// The registry's active model.
    Registry(registry::Active),
    /// Nothing activated: the bundled default.
    Default,
}

impl Source {
    pub fn describe(&self) -> &'static str {
        match self {
            Source::Pinned(_) => "txclass.model",
            Source::Registry(_) => "registry",
            Source::Default => "default",
        }
    }
}

/// What a classification runs with: the model, and the rules and labels ahead of it.
pub struct Serving {
    pub classifier: Classifier,
    pub rules: Rc<RuleSet>,
    /// The labels people gave that apply to this model (src/labels.rs).
    pub labels: Rc<LabelTable>,
    pub source: Source,
}

impl Serving {
    /// What answers before the cache and the model.
    pub fn ahead(&self) -> txclass_core::Ahead<'_> {
        txclass_core::Ahead::of(&self.rules, &self.labels)
    }

    /// The name labels are stamped with and matched by (src/labels.rs).
    pub fn model_name(&self) -> String {
        labels::model_name(&self.source, &self.classifier.model.name)
    }
}

/// The name of the model this session serves (for labels), without loading it.
pub fn serving_model_name() -> Result<String, Error> {
    let (source, _) = wanted()?;
    let dir = directory(&source);
    let last = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(labels::model_name(&source, &last))
}

struct Current {
    settings: settings::Fingerprint,
    token: u64,
    serving: Serving,
    load_ms: f64,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Load time of the current classifier, in milliseconds.
pub fn last_load_ms() -> Option<f64> {
    CURRENT.with(|c| c.borrow().as_ref().map(|c| c.load_ms))
}

fn wanted() -> Result<(Source, u64), Error> {
    match crate::model_path::pinned() {
        Ok(Some(p)) => Ok((Source::Pinned(p), registry::token())),
        Ok(None) => Ok(match registry::active() {
            (Some(a), token) => (Source::Registry(a), token),
            (None, token) => (Source::Default, token),
        }),
        Err(crate::model_path::BadModelSetting(msg)) => Err(Error::setting(
            msg,
            "set txclass.model to a bundled model name (e.g. txclass-merchants-v3) or an absolute directory path, \
             or RESET txclass.model to serve the registry's active model",
        )),
    }
}

/// Loads the model `source` names, checking a registered model's files against its checksum.
pub fn load(source: &Source) -> Classifier {
    try_load(source).or_raise()
}

/// The model directory `source` names.
fn directory(source: &Source) -> PathBuf {
    match source {
        Source::Pinned(p) => p.clone(),
        Source::Registry(a) => PathBuf::from(&a.directory),
        Source::Default => crate::model_path::bundled_model_dir(settings::DEFAULT_MODEL),
    }
}

fn try_load(source: &Source) -> Result<Classifier, Error> {
    let loaded = load_dir(&directory(source))?;
    for w in &loaded.warnings {
        pgrx::warning!("{w}");
    }
    let mut c = loaded.classifier;
    if let Source::Registry(a) = source {
        check_registered(&c, a)?;
        c.model.name = a.name.clone();
    }
    Ok(c)
}

/// Opens the model at `dir` with the engine `txclass.inference` asks for: a session in this
/// backend, or the shared inference workers (then this backend never loads ONNX Runtime or the
/// weights; it keeps the tokenizer and the labels).
///
/// The model's checksum comes from src/identity.rs when a process of this server already hashed
/// these very files, and the tokenizer from its cache file under `$PGDATA/txclass_cache` when a
/// process already parsed it: then only `config.json` and that file are read here.
pub fn load_dir(dir: &std::path::Path) -> Result<txclass_core::classifier::Loaded, Error> {
    let opts = settings::options();
    if txclass_core::tokenizer::cache_dir().is_none() {
        txclass_core::tokenizer::set_cache_dir(crate::model_path::tokenizer_cache_dir());
    }
    let model = crate::identity::open(dir)?;
    let workers = match settings::inference() {
        settings::Inference::Backend => false,
        settings::Inference::Auto => crate::worker_engine::available(),
        settings::Inference::Worker => crate::worker_engine::available() || {
            crate::worker_engine::notice_unavailable();
            false
        },
    };
    if workers {
        return Classifier::load_model(model, &opts, &mut |m, pad| crate::worker_engine::engine(m, &opts, pad));
    }
    Classifier::load_model(model, &opts, &mut |m, pad| txclass_core::classifier::session_engine(m, &opts, pad))
}

/// A registered model's files must still be the ones registered.
pub fn check_registered(c: &Classifier, a: &registry::Active) -> Result<(), Error> {
    if c.model.checksum != a.checksum {
        return Err(Error::changed(
            format!(
                "model '{}': the files in {} changed since it was registered (checksum now {}…, registered {}…)",
                a.name,
                a.directory,
                &c.model.checksum[..12],
                &a.checksum[..a.checksum.len().min(12)]
            ),
            "registered models are immutable: restore the original files, or register the new files under a new name \
             and activate that (txclass.rollback_model() returns to the previous model now)",
        ));
    }
    Ok(())
}

/// Runs `f` with this backend's model and rules, loading them first if needed (or again, when
/// the settings or the registry changed since). A model that cannot be loaded is an ERROR.
pub fn with_serving<R>(f: impl FnOnce(&mut Serving) -> R) -> R {
    try_with_serving(f).or_raise()
}

/// [`with_serving`], with a model that cannot be loaded returned as an error (for the write
/// path, which must keep the row).
pub fn try_with_serving<R>(f: impl FnOnce(&mut Serving) -> R) -> Result<R, Error> {
    CURRENT.with(|cell| {
        let fresh = cell
            .borrow()
            .as_ref()
            .map(|c| registry::is_current(c.token) && c.settings.is_current())
            .unwrap_or(false);
        if !fresh {
            let fingerprint = settings::Fingerprint::now();
            let (source, token) = wanted()?;
            let keep = {
                let mut guard = cell.borrow_mut();
                match guard.as_mut() {
                    Some(c) if c.settings == fingerprint && c.serving.source == source => {
                        // same model: only the rules and the labels may have changed
                        c.serving.rules = rules::load();
                        c.serving.labels = labels::load(&c.serving.model_name());
                        c.token = token;
                        true
                    }
                    _ => false,
                }
            };
            if !keep {
                // drop the old session first: never hold two models' memory at once
                *cell.borrow_mut() = None;
                let t = std::time::Instant::now();
                let classifier = try_load(&source)?;
                let load_ms = t.elapsed().as_secs_f64() * 1e3;
                let rules = rules::load();
                let labels = labels::load(&labels::model_name(&source, &classifier.model.name));
                *cell.borrow_mut() = Some(Current {
                    settings: fingerprint,
                    token,
                    serving: Serving { classifier, rules, labels, source },
                    load_ms,
                });
            }
        }
        let mut guard = cell.borrow_mut();
        let current = guard.as_mut().expect("classifier was just loaded");
        current.serving.classifier.batch_size = settings::batch_size();
        Ok(f(&mut current.serving))
    })
}

/// Runs `f` with what the serving model's `config.json` says (labels, categories, evidence,
/// subscription labels) without loading the model: this backend's classifier when it is loaded
/// and current, else the config of the directory the settings and the registry name. For SQL
/// that reads the model's metadata and classifies nothing (`refresh_recurring`,
/// `subscriptions`): in backend mode a load would cost a whole ONNX Runtime session.
pub fn with_model_config<R>(f: impl FnOnce(&ModelDir) -> R) -> Result<R, Error> {
    let (source, _) = wanted()?;
    let loaded = CURRENT.with(|cell| {
        let guard = cell.borrow();
        guard
            .as_ref()
            .filter(|c| c.serving.source == source && registry::is_current(c.token) && c.settings.is_current())
            .map(|c| c.serving.classifier.model.clone())
    });
    match loaded {
        Some(model) => Ok(f(&model)),
        None => Ok(f(&ModelDir::read_config(&directory(&source))?)),
    }
}

/// Runs `f` with this backend's model (rules aside).
pub fn with_classifier<R>(f: impl FnOnce(&mut Classifier) -> R) -> R {
    with_serving(|s| f(&mut s.classifier))
}
