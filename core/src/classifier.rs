//! Tokenize → ONNX session → softmax → top-k, in length-bucketed batches.
//!
//! One `Classifier` per process (per Postgres backend). It tokenizes and answers; its
//! [`Engine`] runs the network (an ONNX Runtime session here, or a shared worker).
use crate::cache::{self, ResultCache};
use crate::error::{Error, Result};
use crate::model::ModelDir;
use crate::normalize::normalize;
use crate::labels::LabelTable;
use crate::rules::RuleSet;
use crate::engine::{Engine, OrtEngine};
use std::collections::HashMap;
use crate::tokenizer::Tokenizer;
pub use crate::prediction::{softmax, top_1, top_k, ExecutionProvider, Options, Prediction};

/// Rows of preparation (normalization, tokenization) between two calls of the caller's check.
pub const CHECK_EVERY: usize = 4096;

/// Who answered for a descriptor: the model (through the cache or not), a rule (an index into
/// the [`RuleSet`] consulted), or a label a person gave the text (an index into the
/// [`LabelTable`] consulted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// The model's prediction, and whether the descriptor carries the predicted brand's name
    /// ([`crate::evidence`]; true for labels without names).
    Model(Prediction, bool),
    Rule(usize),
    Label(usize),
}

/// What answers before the cache and the model: the rules (first), then the labels people gave.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ahead<'a> {
    pub rules: Option<&'a RuleSet>,
    pub labels: Option<&'a LabelTable>,
}

impl<'a> Ahead<'a> {
    /// Nothing ahead of the model (evaluation, comparison: they measure models).
    pub const NONE: Ahead<'static> = Ahead { rules: None, labels: None };

    /// Rules and labels, each left out when empty.
    pub fn of(rules: &'a RuleSet, labels: &'a LabelTable) -> Ahead<'a> {
        Ahead { rules: (!rules.is_empty()).then_some(rules), labels: (!labels.is_empty()).then_some(labels) }
    }

    fn find(&self, text: &str) -> Option<Answer> {
        if let Some(i) = self.rules.and_then(|r| r.find_index(text)) {
            return Some(Answer::Rule(i));
        }
        self.labels.and_then(|l| l.find_index(text)).map(Answer::Label)
    }
}

/// What [`Classifier::decide`] found before the model: an answer, or a miss for the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Known(Answer),
    Miss(Option<cache::Key>),
}

pub struct Classifier {
    pub model: ModelDir,
    tokenizer: Tokenizer,
    /// What runs the network: an ONNX Runtime session in this process, or a shared inference
    /// worker (the pgrx layer's engine). The rest of the classifier does not care which.
    engine: Box<dyn Engine>,
    pub max_length: usize,
    pub batch_size: usize,
    /// Identity in result-cache keys (content checksum + max_length), fixed at load.
    cache_model_id: u64,
}

/// What loading produced besides the classifier: warnings for the caller to surface.
pub struct Loaded {
    pub classifier: Classifier,
    pub warnings: Vec<String>,
}

/// Builds the engine for a model once the classifier has opened its directory and tokenizer:
/// `(model, pad id)` → the engine and any warnings for the caller.
pub type MakeEngine<'a> = &'a mut dyn FnMut(&ModelDir, i64) -> Result<(Box<dyn Engine>, Vec<String>)>;

/// The engine that runs `model` in this process: its own ONNX Runtime session (what
/// [`Classifier::load`] uses; a [`MakeEngine`] for the others), with the session's warnings.
pub fn session_engine(model: &ModelDir, opts: &Options, pad_id: i64) -> Result<(Box<dyn Engine>, Vec<String>)> {
    let (e, w) = OrtEngine::load(model, opts, pad_id)?;
    Ok((Box::new(e), w))
}

impl Classifier {
    /// Opens and validates `dir`, loads ONNX Runtime (first time only), creates the session,
    /// checks inputs and outputs against `config.json`, and runs a smoke inference.
    pub fn load(dir: &std::path::Path, opts: &Options) -> Result<Loaded> {
        Self::load_with(dir, opts, &mut |m, pad| session_engine(m, opts, pad))
    }

    /// [`Self::load`] with the engine `make` builds (the model directory is opened and its
    /// tokenizer loaded here; the engine runs the network). The smoke inference runs through it.
    pub fn load_with(dir: &std::path::Path, opts: &Options, make: MakeEngine<'_>) -> Result<Loaded> {
        Self::load_model(ModelDir::open(dir)?, opts, make)
    }

    /// [`Self::load_with`] for a model directory the caller opened (with its checksum known,
    /// see [`ModelDir::open_known`]).
    pub fn load_model(model: ModelDir, opts: &Options, make: MakeEngine<'_>) -> Result<Loaded> {
        let mut warnings = Vec::new();
        let mut max_length = opts.max_length.max(3);
        if let Some(p) = model.max_positions {
            if max_length > p {
                warnings.push(format!(
                    "txclass.max_length = {max_length} exceeds the model's max_position_embeddings = {p} ({}); using {p}",
                    model.config_path().display()
                ));
                max_length = p;
            }
        }
        // parsed once per cache directory (see tokenizer.rs), named by the model's checksum,
        // which covers tokenizer.json
        let cache = crate::tokenizer::cache_dir()
            .filter(|_| !model.checksum.is_empty())
            .map(|d| d.join(format!("{}.tokenizer", model.checksum)));
        let tokenizer = Tokenizer::load(&model.tokenizer_path(), max_length, cache.as_deref())?;
        let pad_id = tokenizer.token_to_id("[PAD]").map(|x| x as i64).unwrap_or(0);
        let (engine, w) = make(&model, pad_id)?;
        warnings.extend(w);
        let mut c = Classifier {
            model,
            tokenizer,
            engine,
            max_length,
            batch_size: opts.batch_size.max(1),
            cache_model_id: 0,
        };
        c.cache_model_id = cache::model_id(&c.model.checksum, c.max_length);
        // Smoke inference through the engine (which checked the output width against the
        // labels), unless its runner checks the model itself (a shared worker)
        if !c.engine.checked_by_runner() {
            c.classify(&["txclass smoke test"], &mut || {})?;
        }
        // what parsing the tokenizer and building the session freed stays out of this process
        crate::memory::release_freed();
        Ok(Loaded { classifier: c, warnings })
    }

    /// The engine that runs the network.
    pub fn engine(&self) -> &dyn Engine {
        &*self.engine
    }

    /// Token ids for one normalized descriptor (special tokens included, truncated).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true)
    }

    /// Input statistics of one normalized descriptor, for drift monitoring: (word-piece tokens,
    /// of which unknown to the vocabulary), special tokens excluded, truncated like the model input.
    pub fn token_stats(&self, text: &str) -> Result<(usize, usize)> {
        let ids = self.tokenizer.encode(text, false)?;
        let unk = self.tokenizer.token_to_id("[UNK]");
        Ok((ids.len(), unk.map(|u| ids.iter().filter(|&&i| i == u).count()).unwrap_or(0)))
    }

    /// Runs the model over `texts` (normalized), calling `visit(rows, logits)` once per distinct
    /// text with every row that holds it, in an unspecified order. Identical texts are computed
    /// (and post-processed by `visit`) once; rows are bucketed by token length.
    /// `between_batches` runs before every ONNX call and every [`CHECK_EVERY`] rows of
    /// tokenization: the caller's interrupt check.
    pub fn for_each_logits(
        &mut self,
        texts: &[&str],
        between_batches: &mut dyn FnMut(),
        visit: &mut dyn FnMut(&[usize], &[f32]),
    ) -> Result<()> {
        let (ids, rows_of) = self.encode_distinct(texts, between_batches)?;
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let n_labels = self.model.labels.len();
        let flat = self.engine.logits(&refs, self.batch_size, between_batches)?;
        for (u, rows) in rows_of.iter().enumerate() {
            visit(rows, &flat[u * n_labels..(u + 1) * n_labels]);
        }
        Ok(())
    }

    /// Distinct texts and their token ids, with the rows holding each (see for_each_logits).
    fn encode_distinct<'t>(
        &self,
        texts: &[&'t str],
        between_batches: &mut dyn FnMut(),
    ) -> Result<(Vec<Vec<u32>>, Vec<Vec<usize>>)> {
        let mut uniq: HashMap<&str, usize> = HashMap::with_capacity(texts.len());
        let mut rows_of: Vec<Vec<usize>> = Vec::new();
        let mut ids: Vec<Vec<u32>> = Vec::new();
        for (row, t) in texts.iter().enumerate() {
            if row % CHECK_EVERY == CHECK_EVERY - 1 {
                between_batches();
            }
            let u = match uniq.get(t) {
                Some(&u) => u,
                None => {
                    ids.push(self.encode(t)?);
                    rows_of.push(Vec::new());
                    uniq.insert(t, ids.len() - 1);
                    ids.len() - 1
                }
            };
            rows_of[u].push(row);
        }
        Ok((ids, rows_of))
    }

    /// Raw logits for each normalized text, in input order.
    pub fn logits(&mut self, texts: &[&str], between_batches: &mut dyn FnMut()) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); texts.len()];
        self.for_each_logits(texts, between_batches, &mut |rows, l| {
            for &r in rows {
                out[r] = l.to_vec();
            }
        })?;
        Ok(out)
    }

    /// Top-`k` predictions per normalized text, most probable first.
    pub fn topk(&mut self, texts: &[&str], k: usize, between_batches: &mut dyn FnMut()) -> Result<Vec<Vec<Prediction>>> {
        if k == 0 {
            return Err(Error::input("k must be at least 1"));
        }
        let mut out = vec![Vec::new(); texts.len()];
        let temperature = self.model.calibration.temperature;
        self.for_each_logits(texts, between_batches, &mut |rows, l| {
            let top = top_k(&softmax(l, temperature), k);
            for &r in rows {
                out[r] = top.clone();
            }
        })?;
        Ok(out)
    }

    /// The most probable label per normalized text (the engine computes top-1, so a shared
    /// worker sends back two numbers per text, not every logit).
    pub fn classify(&mut self, texts: &[&str], between_batches: &mut dyn FnMut()) -> Result<Vec<Prediction>> {
        let (ids, rows_of) = self.encode_distinct(texts, between_batches)?;
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let preds = self.engine.top1(&refs, self.batch_size, between_batches)?;
        let mut out = vec![Prediction { label: 0, confidence: 0.0 }; texts.len()];
        for (rows, p) in rows_of.iter().zip(preds) {
            for &r in rows {
                out[r] = p;
            }
        }
        Ok(out)
    }

    /// The model's identity in result-cache keys: its content and `max_length`.
    pub fn cache_model_id(&self) -> u64 {
        self.cache_model_id
    }

    /// A cached prediction for `key`, if the cache has one that fits this model.
    fn cached(&self, cache: &dyn ResultCache, key: &cache::Key) -> Option<Prediction> {
        cache.get(key).filter(|p| p.label < self.model.labels.len())
    }

    /// The one decision for a normalized, non-empty text before the model runs: a rule that
    /// matches (it answers with confidence 1), else a label given for the text, else this
    /// model's cached prediction, else a miss (with its cache key when a cache is in force).
    /// Every path — scalar, batch, trigger, backfill — decides through here.
    pub fn decide(&self, text: &str, ahead: Ahead<'_>, cache: Option<&dyn ResultCache>) -> Decision {
        if let Some(a) = ahead.find(text) {
            return Decision::Known(a);
        }
        match cache {
            Some(c) => {
                let key = cache::key(self.cache_model_id, text);
                match self.cached(c, &key) {
                    Some(p) => Decision::Known(self.model_answer(p, text)),
                    None => Decision::Miss(Some(key)),
                }
            }
            None => Decision::Miss(None),
        }
    }

    /// One normalized, non-empty text: [`Self::decide`], then the model on a miss (cached after).
    /// The per-row path, kept apart from [`Self::answer_descriptors`] (the batch path) because it
    /// runs once per row: without the batch path's maps and vectors a cache hit costs about what
    /// `md5()` of the descriptor does (BENCHMARKS.md). Same decision, same keys, same results.
    pub fn answer_one(
        &mut self,
        normalized: &str,
        ahead: Ahead<'_>,
        cache: Option<&dyn ResultCache>,
        between_batches: &mut dyn FnMut(),
    ) -> Result<Answer> {
        match self.decide(normalized, ahead, cache) {
            Decision::Known(a) => Ok(a),
            Decision::Miss(key) => self.answer_miss(normalized, key, cache, between_batches),
        }
    }

    /// The model's answer for a text [`Self::decide`] found no answer for (`key`: its cache
    /// key, which the prediction then fills), without looking the cache up again.
    pub fn answer_miss(
        &mut self,
        normalized: &str,
        key: Option<cache::Key>,
        cache: Option<&dyn ResultCache>,
        between_batches: &mut dyn FnMut(),
    ) -> Result<Answer> {
        let p = self.classify(&[normalized], between_batches)?[0];
        if let (Some(c), Some(k)) = (cache, &key) {
            c.put(k, p);
        }
        Ok(self.model_answer(p, normalized))
    }

    /// A prediction for the normalized `text` as an answer, with its name evidence.
    pub fn model_answer(&self, p: Prediction, text: &str) -> Answer {
        Answer::Model(p, self.model.evidence.supports(p.label, text))
    }

    /// Raw descriptors → predictions: normalizes each distinct raw string once, looks each
    /// distinct normalized text up in `cache`, classifies only the misses (in length-bucketed
    /// batches) and stores them, and returns `None` for `None` input and for descriptors that
    /// normalize to nothing. `classify_batch` runs this, and so does the standalone benchmark.
    pub fn classify_descriptors(
        &mut self,
        raw: &[Option<&str>],
        cache: Option<&dyn ResultCache>,
        between_batches: &mut dyn FnMut(),
    ) -> Result<Vec<Option<Prediction>>> {
        Ok(self
            .answer_descriptors(raw, Ahead::NONE, cache, between_batches)?
            .into_iter()
            .map(|a| match a {
                Some(Answer::Model(p, _)) => Some(p),
                _ => None,
            })
            .collect())
    }

    /// [`Self::classify_descriptors`] with the rules and labels `ahead` consulted first: a
    /// distinct normalized text they answer never reaches the cache or the model.
    pub fn answer_descriptors(
        &mut self,
        raw: &[Option<&str>],
        ahead: Ahead<'_>,
        cache: Option<&dyn ResultCache>,
        between_batches: &mut dyn FnMut(),
    ) -> Result<Vec<Option<Answer>>> {
        // each distinct raw string is normalized once; each distinct normalized text is looked
        // up and classified once
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        let mut normalized: Vec<String> = Vec::new();
        // slot[i]: index into `normalized` of row i's text, None when there is nothing to classify
        let slot: Vec<Option<usize>> = raw
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if i % CHECK_EVERY == CHECK_EVERY - 1 {
                    between_batches();
                }
                r.map(|s| {
                    *seen.entry(s).or_insert_with(|| {
                        let n = normalize(s);
                        *index_of.entry(n).or_insert_with_key(|n| {
                            normalized.push(n.clone());
                            normalized.len() - 1
                        })
                    })
                })
                .filter(|&k| !normalized[k].is_empty())
            })
            .collect();
        let texts: Vec<&str> = normalized.iter().map(String::as_str).collect();
        let mut by_text: Vec<Option<Answer>> = vec![None; texts.len()];
        // misses: (index into texts, cache key)
        let mut wanted: Vec<(usize, Option<cache::Key>)> = Vec::new();
        for (k, t) in texts.iter().enumerate() {
            if t.is_empty() {
                continue;
            }
            match self.decide(t, ahead, cache) {
                Decision::Known(a) => by_text[k] = Some(a),
                Decision::Miss(key) => wanted.push((k, key)),
            }
        }
        let todo: Vec<&str> = wanted.iter().map(|&(k, _)| texts[k]).collect();
        let preds = self.classify(&todo, between_batches)?;
        for (&(k, key), p) in wanted.iter().zip(preds) {
            by_text[k] = Some(self.model_answer(p, texts[k]));
            if let (Some(c), Some(key)) = (cache, key) {
                c.put(&key, p);
            }
        }
        Ok(slot.into_iter().map(|s| s.and_then(|k| by_text[k])).collect())
    }

    pub fn label(&self, p: &Prediction) -> &str {
        &self.model.labels[p.label]
    }
    pub fn category(&self, p: &Prediction) -> Option<&str> {
        self.model.categories[p.label].as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_is_stable() {
        let p = softmax(&[1000.0, 1001.0, 999.0], 1.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0] && p[0] > p[2]);
        // a temperature above 1 flattens, below 1 sharpens; the order stays
        let hot = softmax(&[1000.0, 1001.0, 999.0], 2.0);
        let cold = softmax(&[1000.0, 1001.0, 999.0], 0.5);
        assert!(hot[1] < p[1] && p[1] < cold[1], "{hot:?} {p:?} {cold:?}");
        assert!(hot[1] > hot[0] && cold[1] > cold[0]);
        // logits 1000, 1001, 999 at T = 2: exp(-0.5), 1, exp(-1) over their sum
        assert!((hot[1] - 1.0 / (1.0 + (-0.5f32).exp() + (-1.0f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn top_1_agrees_with_softmax_top_k() {
        for logits in [vec![0.5f32, 2.0, -1.0, 2.0], vec![-3.0, -2.5, -10.0], vec![7.0], vec![1e3, 1e3 + 1.0, 0.0]] {
            for t in [1.0f32, 0.37, 2.5] {
                let a = top_1(&logits, t);
                let b = top_k(&softmax(&logits, t), 1)[0];
                assert_eq!(a.label, b.label, "{logits:?} at {t}");
                assert!((a.confidence - b.confidence).abs() < 1e-6, "{logits:?} at {t}");
            }
        }
    }

    #[test]
    fn top_k_orders_and_bounds() {
        let p = [0.1, 0.5, 0.05, 0.3, 0.05];
        let t = top_k(&p, 3);
        assert_eq!(t.iter().map(|x| x.label).collect::<Vec<_>>(), vec![1, 3, 0]);
        assert_eq!(top_k(&p, 10).len(), 5);
        assert_eq!(top_k(&p, 1)[0].label, 1);
        // ties: lower index first
        assert_eq!(top_k(&[0.25, 0.25, 0.25, 0.25], 2).iter().map(|x| x.label).collect::<Vec<_>>(), vec![0, 1]);
    }
}
