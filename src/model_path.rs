//! Where model directories are: a bundled model's name resolved under
//! `SHAREDIR/txclass/models`, an absolute path checked, `txclass.model` resolved, and the
//! server's own directories.
use crate::settings;
use pgrx::pg_sys;
use std::ffi::CStr;
use std::path::PathBuf;

/// Why a `txclass.model` value was refused.
pub struct BadModelSetting(pub String);

/// The directory `txclass.model` pins, or None when it is empty (the registry decides).
pub fn pinned() -> Result<Option<PathBuf>, BadModelSetting> {
    let v = settings::model();
    let v = v.as_str();
    if v.is_empty() {
        return Ok(None);
    }
    resolve(v).map(Some).map_err(|m| BadModelSetting(format!("txclass.model = '{v}': {m}")))
}

/// True for a bundled model name: letters, digits, '.', '-', '_', not starting with '.'.
pub fn is_model_name(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) && !v.starts_with('.')
}

/// A bare name is looked up under SHAREDIR/txclass/models; anything else must be an absolute
/// path without `..`.
pub fn resolve(v: &str) -> Result<PathBuf, String> {
    if is_model_name(v) {
        return Ok(bundled_model_dir(v));
    }
    let p = PathBuf::from(v);
    if !p.is_absolute() {
        return Err("neither a bundled model name nor an absolute path".into());
    }
    if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err("the path contains '..'".into());
    }
    Ok(p)
}

/// The directory of the bundled model `name`.
pub fn bundled_model_dir(name: &str) -> PathBuf {
    share_dir().join("txclass").join("models").join(name)
}

/// The server's share directory (SHAREDIR).
pub fn share_dir() -> PathBuf {
    let mut buf = vec![0 as std::ffi::c_char; pg_sys::MAXPGPATH as usize];
    // SAFETY: my_exec_path is set at start; get_share_path writes at most MAXPGPATH bytes,
    // NUL-terminated, into buf.
    unsafe {
        pg_sys::get_share_path(std::ptr::addr_of!(pg_sys::my_exec_path).cast(), buf.as_mut_ptr());
        PathBuf::from(CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned())
    }
}

/// Where parsed tokenizers are kept for this server's processes: `$PGDATA/txclass_cache/tokenizers`
/// (files named by model checksum; see txclass_core::tokenizer). None when there is no data
/// directory (never in a server process).
pub fn tokenizer_cache_dir() -> Option<PathBuf> {
    // SAFETY: DataDir is set at start (NULL or a NUL-terminated path) and never freed.
    let data = unsafe {
        if pg_sys::DataDir.is_null() {
            return None;
        }
        CStr::from_ptr(pg_sys::DataDir).to_string_lossy().into_owned()
    };
    Some(PathBuf::from(data).join("txclass_cache").join("tokenizers"))
}
