//! Its own test binary (own process): the ONNX Runtime library is loaded once per process.
use std::path::{Path, PathBuf};
use txclass_core::{Classifier, ErrorKind, ExecutionProvider, Options};

#[test]
fn bad_library_path_is_an_error_and_is_not_remembered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let good = std::env::var_os("TXCLASS_ONNXRUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("build/onnxruntime/libonnxruntime.so.1.31.1"));
    let model = root.join("models/txclass-merchants-v1");
    let mut o = Options {
        onnxruntime_library: PathBuf::from("/nonexistent/libonnxruntime.so"),
        provider: ExecutionProvider::Cpu,
        intra_op_threads: 1,
        max_length: 64,
        batch_size: 8,
    };
    let e = Classifier::load(&model, &o).err().expect("a missing library must fail");
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert!(e.message.contains("/nonexistent/libonnxruntime.so"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("txclass.onnxruntime_library"), "{e}");

    // a file that is not a shared library
    o.onnxruntime_library = model.join("config.json");
    let e = Classifier::load(&model, &o).err().expect("a non-library must fail");
    assert!(e.message.contains("cannot load ONNX Runtime library"), "{e}");

    // fixing the path works in the same process
    o.onnxruntime_library = good;
    assert!(Classifier::load(&model, &o).is_ok());
}
