//! Every txclass GUC, in one place. The `txclass.` prefix is reserved.
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::PostgresGucEnum;
use std::ffi::{CStr, CString};
use std::path::PathBuf;

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Provider {
    #[name = c"cpu"]
    Cpu,
    #[name = c"cuda"]
    Cuda,
}

/// `txclass.min_level`: the lowest confidence level served as a label.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum MinLevel {
    #[name = c"low"]
    Low,
    #[name = c"medium"]
    Medium,
    #[name = c"high"]
    High,
    #[name = c"very_high"]
    VeryHigh,
}

/// Who runs the network: each backend (its own ONNX Runtime session) or the shared workers;
/// `auto` (the default): the workers where the server started them, else the backend.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Inference {
    #[name = c"auto"]
    Auto,
    #[name = c"backend"]
    Backend,
    #[name = c"worker"]
    Worker,
}

/// Pins a model for the session: a bundled model name or an absolute model directory. Empty
/// (the default): the database's active registered model, else the bundled default model.
/// Superuser only.
static MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
/// Served when the database has no active registered model and txclass.model is empty.
pub const DEFAULT_MODEL: &str = "txclass-merchants-v3";
/// Path of libonnxruntime.so; `$libdir` expands to the package library directory. Superuser only.
static ONNXRUNTIME_LIBRARY: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"$libdir/txclass/libonnxruntime.so.1.31.1"));
static EXECUTION_PROVIDER: GucSetting<Provider> = GucSetting::<Provider>::new(Provider::Cpu);
static INTRA_OP_THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);
static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64);
static MAX_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(64);
/// Entries of the shared result cache (40 bytes each), fixed at server start.
static CACHE_ENTRIES: GucSetting<i32> = GucSetting::<i32>::new(100_000);
static CACHE: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Most elements of one classify_batch array: the backend holds ~200 bytes per element while it
/// works, and a Rust allocation failure would abort the backend (a crash restarts every backend),
/// so an oversized batch is refused up front with an ERROR. Superuser only.
static MAX_BATCH: GucSetting<i32> = GucSetting::<i32>::new(5_000_000);

/// Answers of the model below this confidence are no answer (label NULL, source `abstain`);
/// -1 (the default): the model's own floor (`config.json` `txclass.min_confidence`, else 0).
static MIN_CONFIDENCE: GucSetting<f64> = GucSetting::<f64>::new(-1.0);
/// Answers of the model below this level are no answer; applies to models with fitted levels.
static MIN_LEVEL: GucSetting<MinLevel> = GucSetting::<MinLevel>::new(MinLevel::High);

/// `auto` (the default), `backend` or `worker`. Superuser only.
static INFERENCE: GucSetting<Inference> = GucSetting::<Inference>::new(Inference::Auto);
/// Inference worker processes started at server start (preloaded only); -1 (the default): sized
/// from the cores ([`workers`]).
static WORKERS: GucSetting<i32> = GucSetting::<i32>::new(-1);
/// Intra-op threads of each worker's sessions; 0: the machine's cores divided by txclass.workers.
static WORKER_THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
/// Most tokens (real, not padded) one worker run takes from the queue.
static WORKER_BATCH_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(8192);
/// Models (sessions) each worker keeps loaded; the least recently used goes first.
static WORKER_MODELS: GucSetting<i32> = GucSetting::<i32>::new(2);
/// Longest a backend waits for a worker's answer, in milliseconds.
static WORKER_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// When no worker answers: classify in the backend with one WARNING (on) or raise an ERROR (off).
static WORKER_FALLBACK: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Most inference worker processes (the bound of `txclass.workers`).
pub const MAX_WORKERS: usize = 16;
/// Request slots of the shared queue (each about 100 kB of shared memory), fixed at server start.
static WORKER_QUEUE_SLOTS: GucSetting<i32> = GucSetting::<i32>::new(64);

pub fn init() {
    define_worker_settings();
    GucRegistry::define_string_guc(
        c"txclass.model",
        c"Pins the model txclass uses, overriding the registry: a bundled model name or an absolute directory path.",
        c"Empty (the default): the database's active model (txclass.activate_model), or the bundled txclass-merchants-v3 \
          when none was activated. Otherwise a directory in the Hugging Face / Optimum layout (model.onnx, tokenizer.json, \
          config.json with id2label); a bare name (letters, digits, '.', '-', '_') is a model under SHAREDIR/txclass/models/.",
        &MODEL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"txclass.onnxruntime_library",
        c"Path of the ONNX Runtime shared library (libonnxruntime.so); $libdir expands to the package library directory.",
        c"Loaded once per backend, at the first classification. Changing it affects new backends only.",
        &ONNXRUNTIME_LIBRARY,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"txclass.execution_provider",
        c"ONNX Runtime execution provider: cpu or cuda.",
        c"cuda needs an ONNX Runtime build with the CUDA provider; when it is unavailable txclass warns once and uses the CPU.",
        &EXECUTION_PROVIDER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.intra_op_threads",
        c"Threads each backend's ONNX Runtime session may use inside one operator.",
        c"Keep at 1 when many backends classify at once: backends x threads must not oversubscribe the CPUs.",
        &INTRA_OP_THREADS,
        1,
        64,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"txclass.min_confidence",
        c"Model answers below this confidence are abstentions: label NULL, source 'abstain' (confidence and level still given).",
        c"-1 (the default): the model's own floor, txclass.min_confidence in its config.json (the trainer sets it to the \
          medium level's threshold), or 0 (never abstain) for a model without one. 0: always answer. Rules always answer.",
        &MIN_CONFIDENCE,
        -1.0,
        1.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"txclass.min_level",
        c"Model answers below this confidence level are abstentions: label NULL, source 'abstain' (confidence and level still given).",
        c"high (the default): a label is served at high or very_high only; an answer whose descriptor does not carry the \
          brand's name is held at medium, so it is withheld. Applies to models whose levels were fitted on held-out data \
          (txclass.confidence_info().levels_fitted); others are held to txclass.min_confidence alone. \
          low together with txclass.min_confidence = 0: every top-1 answer.",
        &MIN_LEVEL,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.batch_size",
        c"Most descriptors in one ONNX Runtime call; bounds the memory a batch call uses.",
        c"Rows are grouped by token length before batching, so batches carry little padding.",
        &BATCH_SIZE,
        1,
        4096,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.max_batch",
        c"Most elements of one classify_batch array; larger arrays are refused with an ERROR.",
        c"The backend holds about 200 bytes per element while it works (5,000,000 elements: about 1 GB). \
          Split bigger inputs (classify a table with a LATERAL join over chunks, or txclass.backfill).",
        &MAX_BATCH,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.max_length",
        c"Most tokens per descriptor (special tokens included); longer descriptors are truncated.",
        c"Capped at the model's max_position_embeddings.",
        &MAX_LENGTH,
        8,
        512,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Sized at server start when preloaded (the shared cache); a postmaster setting cannot be
    // created after start-up, so when loaded later it only sizes the per-backend caches.
    let preloaded = crate::shmem::preloading();
    GucRegistry::define_int_guc(
        c"txclass.cache_entries",
        c"Entries in the result cache (40 bytes each); fixed at server start.",
        c"With shared_preload_libraries = 'txclass' one cache in shared memory serves every backend; \
          otherwise each backend keeps its own cache of this size. 0 disables caching.",
        &CACHE_ENTRIES,
        0,
        50_000_000,
        if preloaded { GucContext::Postmaster } else { GucContext::Sighup },
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"txclass.cache",
        c"Whether classifications look up and fill the result cache.",
        c"Off runs every descriptor through the model (for benchmarks and checks).",
        &CACHE,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: called once from _PG_init after the settings are defined; the prefix is static.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"txclass".as_ptr()) };
}

fn define_worker_settings() {
    // a postmaster setting cannot be created after start-up (loaded without preload, there
    // are no workers and no queue anyway)
    let at_start = || if crate::shmem::preloading() { GucContext::Postmaster } else { GucContext::Sighup };
    GucRegistry::define_enum_guc(
        c"txclass.inference",
        c"Who runs the model: the shared inference workers where the server started them (auto, the default), each backend in its own ONNX Runtime session (backend), or the workers (worker).",
        c"The workers need shared_preload_libraries = 'txclass' and txclass.workers != 0: one copy of the model per worker instead of \
          one per connection, and misses from all backends batched together. Without them auto uses backend silently; worker says so once and uses backend.",
        &INFERENCE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.workers",
        c"Inference worker processes started with the server (shared_preload_libraries only); -1 (the default): one per core, at most 8 (one with txclass.execution_provider = cuda).",
        c"Each loads the models it is asked for; workers x txclass.worker_threads should not exceed the cores. 0: no workers (backend mode).",
        &WORKERS,
        -1,
        MAX_WORKERS as i32,
        at_start(),
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.worker_threads",
        c"ONNX Runtime intra-op threads of each inference worker's sessions; 0: the machine's cores divided by txclass.workers.",
        c"Applies to sessions a worker loads after the change (reload the configuration, then the next model switch or worker restart).",
        &WORKER_THREADS,
        0,
        256,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.worker_batch_tokens",
        c"Most tokens an inference worker takes from the queue for one run (all backends' requests together).",
        c"Rows are then grouped by token length into batches of at most txclass.batch_size rows. Larger values batch more under load; \
          a lone request never waits for others.",
        &WORKER_BATCH_TOKENS,
        64,
        1_000_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.worker_models",
        c"Models each inference worker keeps loaded; the least recently used is dropped first.",
        c"Two lets a model switch or an A/B comparison run without reloading.",
        &WORKER_MODELS,
        1,
        64,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.worker_timeout",
        c"Longest a backend waits for an inference worker, in milliseconds.",
        c"Past it the backend stops waiting (its requests are reclaimed) and follows txclass.worker_fallback.",
        &WORKER_TIMEOUT,
        10,
        3_600_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"txclass.worker_fallback",
        c"When no inference worker answers: classify in the backend with one WARNING (on) or raise an ERROR (off).",
        c"The enrichment trigger keeps its rule either way: a failure never loses or rejects the row.",
        &WORKER_FALLBACK,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"txclass.worker_queue_slots",
        c"Request slots of the inference workers' shared queue (about 100 kB of shared memory each); fixed at server start.",
        c"A full queue makes backends wait for a free slot (back-pressure), never fail.",
        &WORKER_QUEUE_SLOTS,
        4,
        4096,
        at_start(),
        GucFlags::default(),
    );
}

/// A string setting's current value, borrowed without copying (valid until it changes).
fn raw(s: &GucSetting<Option<CString>>) -> &'static CStr {
    // SAFETY: the GUC's variable holds NULL or a NUL-terminated string that the GUC machinery
    // keeps until the setting changes; callers copy it (Fingerprint) or compare it at once.
    unsafe {
        let p = *s.as_ptr();
        if p.is_null() {
            c""
        } else {
            CStr::from_ptr(p)
        }
    }
}

/// The settings a loaded classifier depends on, as set (not resolved). Comparing it with the
/// current settings costs no allocation: the per-row path does it on every call.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    model: CString,
    library: CString,
    provider: Provider,
    threads: i32,
    max_length: i32,
    inference: Inference,
}

impl Fingerprint {
    pub fn now() -> Self {
        Fingerprint {
            model: raw(&MODEL).to_owned(),
            library: raw(&ONNXRUNTIME_LIBRARY).to_owned(),
            provider: EXECUTION_PROVIDER.get(),
            threads: INTRA_OP_THREADS.get(),
            max_length: MAX_LENGTH.get(),
            inference: INFERENCE.get(),
        }
    }
    pub fn is_current(&self) -> bool {
        self.threads == INTRA_OP_THREADS.get()
            && self.inference == INFERENCE.get()
            && self.max_length == MAX_LENGTH.get()
            && self.provider == EXECUTION_PROVIDER.get()
            && self.model.as_c_str() == raw(&MODEL)
            && self.library.as_c_str() == raw(&ONNXRUNTIME_LIBRARY)
    }
}

fn string_setting(s: &GucSetting<Option<CString>>) -> String {
    s.get().map(|c| c.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `txclass.model` as set (trimmed; empty: the registry decides). Resolved by
/// `model_path::pinned` (src/model_path.rs).
pub fn model() -> String {
    string_setting(&MODEL).trim().to_string()
}

pub fn onnxruntime_library() -> PathBuf {
    let v = string_setting(&ONNXRUNTIME_LIBRARY);
    match v.strip_prefix("$libdir") {
        Some(rest) => PathBuf::from(format!("{}{rest}", pkglib_dir())),
        None => PathBuf::from(v),
    }
}

/// The package library directory (`$libdir`).
pub fn pkglib_dir() -> String {
    // SAFETY: pkglib_path is a NUL-terminated MAXPGPATH buffer the server fills at start.
    unsafe { CStr::from_ptr(std::ptr::addr_of!(pg_sys::pkglib_path).cast()) }.to_string_lossy().into_owned()
}

/// Intra-op threads of a worker's sessions (txclass.worker_threads, 0 = cores / workers).
pub fn worker_threads() -> usize {
    match WORKER_THREADS.get() {
        t if t > 0 => t as usize,
        _ => (cores() / workers().max(1)).max(1),
    }
}

pub fn options() -> txclass_core::Options {
    txclass_core::Options {
        onnxruntime_library: onnxruntime_library(),
        provider: match EXECUTION_PROVIDER.get() {
            Provider::Cpu => txclass_core::ExecutionProvider::Cpu,
            Provider::Cuda => txclass_core::ExecutionProvider::Cuda,
        },
        intra_op_threads: INTRA_OP_THREADS.get().max(1) as usize,
        max_length: MAX_LENGTH.get().max(8) as usize,
        batch_size: BATCH_SIZE.get().max(1) as usize,
    }
}

// ---- typed accessors: the only way other modules read the settings -------------------------

/// `txclass.min_confidence` as set: ≥ 0, or -1 for the model's own floor
/// ([`txclass_core::Calibration::floor`] decides).
pub fn min_confidence() -> f64 {
    MIN_CONFIDENCE.get()
}
/// `txclass.min_level`, the lowest level served as a label.
pub fn min_level() -> txclass_core::Level {
    match MIN_LEVEL.get() {
        MinLevel::Low => txclass_core::Level::Low,
        MinLevel::Medium => txclass_core::Level::Medium,
        MinLevel::High => txclass_core::Level::High,
        MinLevel::VeryHigh => txclass_core::Level::VeryHigh,
    }
}
/// The serving policy for a model with calibration `c` under the settings in force.
pub fn policy(c: &txclass_core::Calibration) -> txclass_core::Policy {
    c.policy(MIN_CONFIDENCE.get(), min_level())
}
/// Rows per ONNX run (txclass.batch_size).
pub fn batch_size() -> usize {
    BATCH_SIZE.get().max(1) as usize
}
/// Whether classifications use the result cache (txclass.cache).
pub fn cache_enabled() -> bool {
    CACHE.get()
}
/// Result-cache entries (txclass.cache_entries).
pub fn cache_entries() -> usize {
    CACHE_ENTRIES.get().max(0) as usize
}
/// Most elements of one classify_batch array (txclass.max_batch).
pub fn max_batch() -> usize {
    MAX_BATCH.get().max(1) as usize
}
/// Who runs the network (txclass.inference): `Auto` is for the caller to resolve (the workers
/// where they run, else the backend).
pub fn inference() -> Inference {
    INFERENCE.get()
}
/// The cores this server may use.
fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
/// Workers `txclass.workers = -1` starts: one single-threaded worker per core (the layout
/// BENCHMARKS "worker" measured best on 2 cores), at most 8; more cores give each worker threads.
pub const AUTO_MAX_WORKERS: usize = 8;
/// The number of workers, fixed when the postmaster first asks (while it loads the library);
/// backends inherit it.
static WORKERS_AT_START: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
/// Inference worker processes (txclass.workers), at most [`MAX_WORKERS`]; -1: one per core, at
/// most [`AUTO_MAX_WORKERS`], or one when postgresql.conf sets `txclass.execution_provider =
/// 'cuda'` (one CUDA context and one model copy on the GPU; more GPUs: set the number).
/// Fixed at server start, like the setting.
pub fn workers() -> usize {
    *WORKERS_AT_START.get_or_init(|| match WORKERS.get() {
        w if w < 0 && EXECUTION_PROVIDER.get() == Provider::Cuda => 1,
        w if w < 0 => cores().min(AUTO_MAX_WORKERS),
        w => (w as usize).min(MAX_WORKERS),
    })
}
/// Tokens one worker run takes (txclass.worker_batch_tokens).
pub fn worker_batch_tokens() -> u64 {
    WORKER_BATCH_TOKENS.get().max(1) as u64
}
/// Sessions a worker keeps (txclass.worker_models).
pub fn worker_models() -> usize {
    WORKER_MODELS.get().max(1) as usize
}
/// Longest wait for a worker without progress (txclass.worker_timeout).
pub fn worker_timeout() -> std::time::Duration {
    std::time::Duration::from_millis(WORKER_TIMEOUT.get().max(1) as u64)
}
/// Whether a backend classifies itself when no worker answers (txclass.worker_fallback).
pub fn worker_fallback() -> bool {
    WORKER_FALLBACK.get()
}
/// Slots of the workers' queue (txclass.worker_queue_slots).
pub fn worker_queue_slots() -> usize {
    WORKER_QUEUE_SLOTS.get().max(4) as usize
}
