//! The per-backend classifier: created at the first classification in each backend (never in
//! the postmaster — ONNX Runtime sessions do not survive fork), kept while the settings that
//! shaped it stay the same, rebuilt when they change. A failed load is not remembered: once the
//! model is fixed, the next call in the same backend loads it.
use crate::errors::OrRaise;
use crate::settings;
use std::cell::RefCell;
use txclass_core::{Classifier, Error};

struct Current {
    settings: settings::Fingerprint,
    classifier: Classifier,
    load_ms: f64,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Load time of the current classifier, in milliseconds.
pub fn last_load_ms() -> Option<f64> {
    CURRENT.with(|c| c.borrow().as_ref().map(|c| c.load_ms))
}

/// Runs `f` with this backend's classifier, loading it first if needed (or again, when the
/// settings it was loaded with have changed).
pub fn with_classifier<R>(f: impl FnOnce(&mut Classifier) -> R) -> R {
    CURRENT.with(|cell| {
        let stale = cell.borrow().as_ref().map(|c| !c.settings.is_current()).unwrap_or(true);
        if stale {
            // drop the old session first: never hold two models' memory at once
            *cell.borrow_mut() = None;
            let fingerprint = settings::Fingerprint::now();
            let model_dir = match settings::model_dir() {
                Ok(p) => p,
                Err(settings::BadModelSetting(msg)) => crate::errors::raise(Error::config(
                    msg,
                    "set txclass.model to a bundled model name (e.g. txclass-merchants-v1) or an absolute directory path",
                )),
            };
            let t = std::time::Instant::now();
            let loaded = Classifier::load(&model_dir, &settings::options()).or_raise();
            for w in &loaded.warnings {
                pgrx::warning!("{w}");
            }
            *cell.borrow_mut() = Some(Current {
                settings: fingerprint,
                classifier: loaded.classifier,
                load_ms: t.elapsed().as_secs_f64() * 1e3,
            });
        }
        let mut guard = cell.borrow_mut();
        let current = guard.as_mut().expect("classifier was just loaded");
        current.classifier.batch_size = settings::BATCH_SIZE.get().max(1) as usize;
        f(&mut current.classifier)
    })
}
