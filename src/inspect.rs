//! Validating a model directory before the registry records or activates it.
use crate::catalog;
use crate::errors::OrRaise;
use pgrx::prelude::*;
use std::path::PathBuf;
use txclass_core::{normalize, Error};

/// Descriptors of a smoke inference: every model must give each a finite distribution.
const SMOKE: [&str; 4] = ["SQ *BLUE BOTTLE COF 8473 OAKLAND CA", "AMZN MKTP US*2K3L4M5N6", "TESCO STORES 6292", "x"];

/// Resolves `directory` (a bundled model name or an absolute path) the way the registry
/// stores it: canonical, symlinks resolved. With `check_privileges`, an absolute path needs a
/// superuser or a member of pg_read_server_files (as COPY FROM a file does).
fn resolve(directory: &str, check_privileges: bool) -> PathBuf {
    let v = directory.trim();
    let p = crate::model_path::resolve(v)
        .map_err(|m| {
            Error::input_with_hint(
                format!("model directory '{v}': {m}"),
                "give a bundled model name (a directory under SHAREDIR/txclass/models) or an absolute path",
            )
        })
        .or_raise();
    if check_privileges && !crate::model_path::is_model_name(v) {
        let who = catalog::caller();
        if !catalog::is_superuser(who) && !catalog::has_privs_of(who, "pg_read_server_files") {
            crate::errors::raise_code(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied to register a model from the path {v}"),
                "Registering from an arbitrary server path needs superuser or membership in pg_read_server_files; \
                 bundled models (a bare name under SHAREDIR/txclass/models) need only txclass_model_admin."
            );
        }
    }
    match std::fs::canonicalize(&p) {
        Ok(c) => c,
        Err(e) => Error::unreadable(
            format!("model directory {} is not readable: {e}", p.display()),
            "the directory must exist on the database server and be readable by the server's OS user",
        )
        .raise(),
    }
}

trait Raise {
    fn raise(self) -> !;
}
impl Raise for Error {
    fn raise(self) -> ! {
        crate::errors::raise(self)
    }
}

/// Opens, validates and smoke-tests a model directory: the files, their checksum, the ONNX
/// inputs and outputs against config.json, and an inference on a few descriptors. Used by
/// register_model and activate_model (which run as the extension owner).
#[pg_extern(volatile, parallel_unsafe)]
fn _inspect_model(
    directory: &str,
    check_privileges: bool,
) -> TableIterator<
    'static,
    (name!(directory, String), name!(checksum, String), name!(num_labels, i32), name!(labels, Vec<String>)),
> {
    let dir = resolve(directory, check_privileges);
    let loaded = crate::session::load_dir(&dir).or_raise();
    let mut c = loaded.classifier;
    let texts: Vec<String> = SMOKE.iter().map(|d| normalize(d)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let preds = c.classify(&refs, &mut || {
        crate::interrupt::check();
    }).or_raise();
    for (d, p) in SMOKE.iter().zip(&preds) {
        if !(p.confidence.is_finite() && p.confidence > 0.0 && p.confidence <= 1.0 + 1e-4) || p.label >= c.model.labels.len() {
            Error::config(
                format!(
                    "model {}: the smoke inference on {d:?} gave label {} with confidence {} (expected a label below {} and a probability)",
                    dir.display(),
                    p.label,
                    p.confidence,
                    c.model.labels.len()
                ),
                "the graph's output must be the logits of a sequence classifier (one per label in config.json)",
            )
            .raise();
        }
    }
    TableIterator::once((
        dir.display().to_string(),
        c.model.checksum.clone(),
        c.model.labels.len() as i32,
        c.model.labels.clone(),
    ))
}
