//! The ONNX Runtime library, loaded with `ort`'s `load-dynamic` from an explicit path, once per
//! process and only when first needed (never before a fork: the postmaster must not hold it).
use crate::error::{Error, Result};
use ort::environment::Environment;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Loaded {
    path: PathBuf,
    env: Environment,
}

static RUNTIME: Mutex<Option<Loaded>> = Mutex::new(None);

/// The ONNX Runtime version this build targets (the PyPI wheel `onnxruntime==1.31.1`).
pub const ORT_VERSION: &str = "1.31.1";

/// Loads the library at `path` (first call only) and returns the process's environment.
/// A failed load is not remembered, so fixing the path and calling again works.
/// Once loaded, later calls with another path get the library already loaded.
pub fn environment(path: &Path) -> Result<(Environment, PathBuf)> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = guard.as_ref() {
        return Ok((l.env.clone(), l.path.clone()));
    }
    if !path.is_file() {
        return Err(Error::runtime(
            format!("ONNX Runtime library {} does not exist", path.display()),
            Some(format!(
                "install libonnxruntime.so {ORT_VERSION} (from the PyPI wheel onnxruntime=={ORT_VERSION}, see scripts/setup.sh) \
                 and point txclass.onnxruntime_library at it"
            )),
        ));
    }
    let builder = ort::init_from(path).map_err(|e| {
        Error::runtime(
            format!("cannot load ONNX Runtime library {}: {e}", path.display()),
            Some(format!("txclass needs ONNX Runtime {ORT_VERSION} or newer (libonnxruntime.so from the PyPI wheel)")),
        )
    })?;
    let env = builder
        .with_name("txclass")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::runtime(format!("cannot create the ONNX Runtime environment: {e}"), None))?;
    *guard = Some(Loaded { path: path.to_path_buf(), env: env.clone() });
    Ok((env, path.to_path_buf()))
}

/// The path of the loaded library, if any.
pub fn loaded_path() -> Option<PathBuf> {
    RUNTIME.lock().ok().and_then(|g| g.as_ref().map(|l| l.path.clone()))
}
