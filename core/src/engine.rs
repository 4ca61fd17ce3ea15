//! What runs the network: token ids in, logits (or top-1) out.
//!
//! [`OrtEngine`] is an ONNX Runtime session in this process. The pgrx layer adds a second
//! engine that hands the ids to a shared inference worker; a [`crate::Classifier`] does not
//! care which one it holds (tokenizing, caching and answering stay in the caller's process).
use crate::batching;
use crate::prediction::{top_1, ExecutionProvider, Options, Prediction};
use crate::error::{Error, Result};
use crate::model::ModelDir;
use crate::runtime;
use ort::ep::ExecutionProvider as _;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, ValueType};
use std::borrow::Cow;
use std::path::PathBuf;

/// Runs a sequence-classification network over token ids.
pub trait Engine {
    /// Logits of every sequence, flat: row `i` is `out[i * n_labels..(i + 1) * n_labels]`.
    /// `batch_size` bounds the rows of one run where the engine batches itself.
    /// `between_batches` is the caller's interrupt check.
    fn logits(&mut self, ids: &[&[u32]], batch_size: usize, between_batches: &mut dyn FnMut()) -> Result<Vec<f32>>;
    /// The most probable label of every sequence (see [`top_1`]).
    fn top1(&mut self, ids: &[&[u32]], batch_size: usize, between_batches: &mut dyn FnMut()) -> Result<Vec<Prediction>>;
    /// The execution provider that runs the network.
    fn provider(&self) -> ExecutionProvider;
    /// Who runs it, for model_info(): "backend", "worker", ...
    fn mode(&self) -> String;
    /// Whether whoever runs the network already checks it: a shared inference worker runs a
    /// model only after loading and validating it itself, and checks every request's label
    /// count. Then [`crate::Classifier`] skips its smoke inference at load (a round trip and an
    /// inference on every new connection).
    fn checked_by_runner(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum InputKind {
    Ids,
    Mask,
    TypeIds,
}

/// An ONNX Runtime session for one model, with the graph's inputs and output checked against
/// the model's `config.json`.
pub struct OrtEngine {
    session: Session,
    /// Which of input_ids / attention_mask / token_type_ids the graph takes, in graph order.
    inputs: Vec<InputKind>,
    output_index: usize,
    n_labels: usize,
    pad_id: i64,
    model_path: PathBuf,
    provider: ExecutionProvider,
    /// The model's calibration temperature: top-1 confidence is softmax(logits / T).
    temperature: f32,
}

impl OrtEngine {
    /// Loads ONNX Runtime (first time in this process only) and creates a session for
    /// `model`; `pad_id` pads shorter rows of a batch. Returns warnings for the caller
    /// (e.g. CUDA asked for but unavailable: the session runs on the CPU).
    pub fn load(model: &ModelDir, opts: &Options, pad_id: i64) -> Result<(OrtEngine, Vec<String>)> {
        let mut warnings = Vec::new();
        let (env, _) = runtime::environment(&opts.onnxruntime_library)?;
        let model_path = model.model_path();
        let onnx_err = |e: ort::Error| {
            Error::config(
                format!("cannot load ONNX model {}: {e}", model_path.display()),
                "the file must be an ONNX graph exported from the model (e.g. optimum-cli export onnx, or torch.onnx.export); re-export it",
            )
        };
        let mut builder = Session::builder(&env)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
            .and_then(|b| Ok(b.with_intra_threads(opts.intra_op_threads.max(1))?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
            .map_err(|e| Error::runtime(format!("cannot configure an ONNX Runtime session: {e}"), None))?;
        let mut provider = ExecutionProvider::Cpu;
        if opts.provider == ExecutionProvider::Cuda {
            match ort::ep::CUDA::is_available() {
                Ok(true) => {
                    let ep = ort::ep::CUDA::default().build().error_on_failure();
                    match builder.with_execution_providers([ep]) {
                        Ok(b) => {
                            builder = b;
                            provider = ExecutionProvider::Cuda;
                        }
                        Err(e) => {
                            warnings.push(format!(
                                "txclass.execution_provider = 'cuda' but the CUDA execution provider failed to start ({e}); using CPU"
                            ));
                            builder = e.recover();
                        }
                    }
                }
                Ok(false) => warnings.push(
                    "txclass.execution_provider = 'cuda' but the loaded ONNX Runtime library has no CUDA execution provider \
                     (install the onnxruntime-gpu build with CUDA and cuDNN and point txclass.onnxruntime_library at it); using CPU"
                        .to_string(),
                ),
                Err(e) => warnings.push(format!(
                    "txclass.execution_provider = 'cuda' but ONNX Runtime cannot list its providers ({e}); using CPU"
                )),
            }
        }
        let session = builder.commit_from_file(&model_path).map_err(onnx_err)?;

        // ---- inputs: the BERT-family triple, int64 ------------------------------------------
        let mut inputs = Vec::new();
        for outlet in session.inputs() {
            let kind = match outlet.name() {
                "input_ids" => InputKind::Ids,
                "attention_mask" => InputKind::Mask,
                "token_type_ids" => InputKind::TypeIds,
                other => {
                    return Err(Error::config(
                        format!(
                            "model {} has an input \"{other}\"; txclass feeds only input_ids, attention_mask and token_type_ids",
                            model_path.display()
                        ),
                        "export a sequence-classification model whose inputs are input_ids [, attention_mask, token_type_ids]",
                    ))
                }
            };
            if outlet.dtype().tensor_type() != Some(TensorElementType::Int64) {
                return Err(Error::config(
                    format!("model {} input \"{}\" is {:?}, expected int64", model_path.display(), outlet.name(), outlet.dtype()),
                    "export with int64 token inputs (the transformers / optimum default)",
                ));
            }
            inputs.push(kind);
        }
        if !inputs.contains(&InputKind::Ids) {
            return Err(Error::config(
                format!("model {} has no input_ids input", model_path.display()),
                "export a sequence-classification model whose inputs are input_ids [, attention_mask, token_type_ids]",
            ));
        }
        // ---- output: logits [batch, n_labels] -----------------------------------------------
        let outs = session.outputs();
        let output_index = outs.iter().position(|o| o.name() == "logits").unwrap_or(0);
        let n_labels = model.labels.len();
        let out = outs.get(output_index).ok_or_else(|| {
            Error::config(format!("model {} has no outputs", model_path.display()), "re-export the model")
        })?;
        match out.dtype() {
            ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } if shape.len() == 2 => {
                let width = shape[1];
                if width >= 0 && width as usize != n_labels {
                    return Err(model.width_mismatch(width as usize));
                }
            }
            other => {
                return Err(Error::config(
                    format!(
                        "model {} output \"{}\" is {other:?}; expected float32 logits of shape [batch, {n_labels}]",
                        model_path.display(),
                        out.name()
                    ),
                    "export the sequence-classification head's logits",
                ))
            }
        }
        let temperature = model.calibration.temperature;
        let mut e = OrtEngine { session, inputs, output_index, n_labels, pad_id, model_path, provider, temperature };
        // a dynamic output width is only known by running
        let (width, _) = e.run_raw(&[&[pad_id as u32, pad_id as u32]])?;
        if width != n_labels {
            return Err(model.width_mismatch(width));
        }
        // the graph as parsed and optimized is freed now: give its pages back
        crate::memory::release_freed();
        Ok((e, warnings))
    }

    /// Labels per row of the output.
    pub fn n_labels(&self) -> usize {
        self.n_labels
    }

    /// One ONNX run over `batch` (rows padded to the longest): flat logits in row order.
    pub fn run_batch(&mut self, batch: &[&[u32]]) -> Result<Vec<f32>> {
        let b = batch.len();
        let n_labels = self.n_labels;
        let (width, data) = self.run_raw(batch)?;
        if width != n_labels || data.len() != b * n_labels {
            return Err(Error::config(
                format!(
                    "model {} returned logits of width {width} for {b} rows, but config.json lists {n_labels} labels",
                    self.model_path.display()
                ),
                "config.json's id2label must describe the model's output; re-export both together",
            ));
        }
        Ok(data)
    }

    /// One ONNX run: (output width, flat logits).
    fn run_raw(&mut self, batch: &[&[u32]]) -> Result<(usize, Vec<f32>)> {
        let b = batch.len();
        let l = batch.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
        let mut input_ids = vec![self.pad_id; b * l];
        let mut mask = vec![0i64; b * l];
        for (r, ids) in batch.iter().enumerate() {
            for (c, &t) in ids.iter().enumerate() {
                input_ids[r * l + c] = t as i64;
                mask[r * l + c] = 1;
            }
        }
        let shape = [b as i64, l as i64];
        let model_path = &self.model_path;
        let rt = |e: ort::Error| Error::runtime(format!("ONNX Runtime failed on model {}: {e}", model_path.display()), None);
        let mut feed: Vec<(Cow<'static, str>, SessionInputValue<'static>)> = Vec::with_capacity(3);
        for kind in &self.inputs {
            let (name, data) = match kind {
                InputKind::Ids => ("input_ids", input_ids.clone()),
                InputKind::Mask => ("attention_mask", mask.clone()),
                InputKind::TypeIds => ("token_type_ids", vec![0i64; b * l]),
            };
            let t = Tensor::from_array((shape, data)).map_err(rt)?;
            feed.push((Cow::Borrowed(name), t.into()));
        }
        let outputs = self.session.run(feed).map_err(rt)?;
        let (oshape, data) = outputs[self.output_index].try_extract_tensor::<f32>().map_err(|e| {
            Error::runtime(format!("model {} output is not float32 logits: {e}", model_path.display()), None)
        })?;
        if oshape.len() != 2 || oshape[0] as usize != b {
            return Err(Error::config(
                format!("model {} returned logits of shape {:?} for {b} rows", model_path.display(), &oshape[..]),
                "export the sequence-classification head's logits, shape [batch, labels]",
            ));
        }
        Ok((oshape[1] as usize, data.to_vec()))
    }

    /// Runs `ids` in length-bucketed batches of at most `batch_size` rows, calling
    /// `visit(row index, logits)` for every row.
    pub fn for_each(
        &mut self,
        ids: &[&[u32]],
        batch_size: usize,
        between_batches: &mut dyn FnMut(),
        visit: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<()> {
        let lengths: Vec<usize> = ids.iter().map(|x| x.len()).collect();
        let n = self.n_labels;
        for batch in batching::plan(&lengths, batch_size) {
            between_batches();
            let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i]).collect();
            let out = self.run_batch(&rows)?;
            for (k, &i) in batch.iter().enumerate() {
                visit(i, &out[k * n..(k + 1) * n]);
            }
        }
        Ok(())
    }
}

impl OrtEngine {
    /// The temperature its top-1 confidences are computed at (the model's calibration).
    pub fn temperature(&self) -> f32 {
        self.temperature
    }
}

impl Engine for OrtEngine {
    fn logits(&mut self, ids: &[&[u32]], batch_size: usize, between_batches: &mut dyn FnMut()) -> Result<Vec<f32>> {
        let n = self.n_labels;
        let mut out = vec![0f32; ids.len() * n];
        self.for_each(ids, batch_size, between_batches, &mut |i, l| out[i * n..(i + 1) * n].copy_from_slice(l))?;
        Ok(out)
    }

    fn top1(&mut self, ids: &[&[u32]], batch_size: usize, between_batches: &mut dyn FnMut()) -> Result<Vec<Prediction>> {
        let mut out = vec![Prediction { label: 0, confidence: 0.0 }; ids.len()];
        let t = self.temperature;
        self.for_each(ids, batch_size, between_batches, &mut |i, l| out[i] = top_1(l, t))?;
        Ok(out)
    }

    fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    fn mode(&self) -> String {
        "backend".to_string()
    }
}
