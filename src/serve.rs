//! The one way txclass answers a descriptor: rules, then the labels people gave, then the result
//! cache, then the model, then the outputs SQL shows. Every SQL function that classifies, the write-path trigger and the
//! statement flush, and gold-set evaluation (which skips the rules: it measures models) call
//! these functions; none of them talks to the cache or the rules itself.
use crate::session::Serving;
use crate::{cache, intern, settings};
use txclass_core::classifier::Decision;
use txclass_core::{confidence, Ahead, Answer, Classifier, Error, Level};

/// Rules, labels and cache only, no model: an answer, or a miss (the trigger queues misses for
/// its statement's batch). `normalized` is non-empty.
pub fn decide(s: &mut Serving, normalized: &str) -> Decision {
    cache::with_cache(|cache| s.classifier.decide(normalized, s.ahead(), cache))
}

/// Rules, labels, cache, and the model on a miss (which fills the cache), for one normalized,
/// non-empty descriptor.
pub fn answer_one(s: &mut Serving, normalized: &str) -> Result<Answer, Error> {
    let (rules, labels) = (s.rules.clone(), s.labels.clone());
    cache::with_cache(|cache| {
        s.classifier.answer_one(normalized, Ahead::of(&rules, &labels), cache, &mut crate::interrupt::check)
    })
}

/// The model for a descriptor [`decide`] found no answer for (`key` from its `Decision::Miss`),
/// filling the cache, without a second lookup.
pub fn answer_miss(s: &mut Serving, normalized: &str, key: Option<txclass_core::cache::Key>) -> Result<Answer, Error> {
    cache::with_cache(|cache| s.classifier.answer_miss(normalized, key, cache, &mut crate::interrupt::check))
}

/// Rules, cache, and the model in length-bucketed batches for the misses, for raw descriptors
/// (normalized here; repeats classified once). None for NULL and for what normalizes to nothing.
pub fn answer_all(s: &mut Serving, raw: &[Option<&str>]) -> Result<Vec<Option<Answer>>, Error> {
    let (rules, labels) = (s.rules.clone(), s.labels.clone());
    cache::with_cache(|cache| {
        s.classifier.answer_descriptors(raw, Ahead::of(&rules, &labels), cache, &mut crate::interrupt::check)
    })
}

/// [`answer_all`] for descriptors that already missed rules and cache ([`decide`] said
/// `Miss`, e.g. the rows a statement queued): the model's answers fill the cache, which is not
/// looked up (or counted) a second time.
pub fn answer_misses(s: &mut Serving, raw: &[Option<&str>]) -> Result<Vec<Option<Answer>>, Error> {
    cache::with_cache(|cache| {
        let fill = cache.map(txclass_core::cache::FillOnly);
        s.classifier.answer_descriptors(raw, Ahead::NONE, fill.as_ref().map(|f| f as &dyn txclass_core::cache::ResultCache), &mut crate::interrupt::check)
    })
}

/// [`answer_all`] without rules, for a model loaded outside serving (evaluation, comparison);
/// `labels`: the labels that apply to it, when the caller wants them answered too.
pub fn model_answers(
    c: &mut Classifier,
    raw: &[Option<&str>],
    labels: Option<&txclass_core::labels::LabelTable>,
) -> Result<Vec<Option<Answer>>, Error> {
    let ahead = Ahead { rules: None, labels: labels.filter(|l| !l.is_empty()) };
    cache::with_cache(|cache| c.answer_descriptors(raw, ahead, cache, &mut crate::interrupt::check))
}

/// What SQL shows for an answer: label and category (interned; NULL when the model abstains),
/// confidence (1 for a rule), level, who answered, and the rule that did.
pub struct Outputs {
    pub label: Option<&'static str>,
    pub category: Option<&'static str>,
    pub confidence: f32,
    pub level: &'static str,
    /// `model`, `rule`, `label` (a person's label for the text, txclass.labels) or `abstain` (a
    /// model answer below txclass.min_confidence or txclass.min_level).
    pub source: &'static str,
    pub rule_id: Option<i64>,
}

/// Label and category of an answer, as interned strings. A rule without a category takes the
/// model's category for its label, when the model has that label.
fn label_and_category(s: &Serving, names: &intern::Names, a: Answer) -> (&'static str, Option<&'static str>) {
    match a {
        Answer::Model(p, _) => (names.labels[p.label], names.categories[p.label]),
        Answer::Rule(i) => {
            let r = s.rules.get(i);
            let category = match &r.category {
                Some(c) => Some(intern::text(c)),
                None => s.classifier.model.labels.iter().position(|l| *l == r.label).and_then(|k| names.categories[k]),
            };
            (intern::text(&r.label), category)
        }
        Answer::Label(i) => {
            let l = s.labels.get(i);
            let category = match &l.category {
                Some(c) => Some(intern::text(c)),
                None => s.classifier.model.labels.iter().position(|m| *m == l.label).and_then(|k| names.categories[k]),
            };
            (intern::text(&l.label), category)
        }
    }
}

/// The outputs of an answer: the one conversion every function and the trigger use (the
/// abstention floor, the confidence level, the rule's precedence).
pub fn outputs(s: &Serving, a: Answer) -> Outputs {
    outputs_with(s, &intern::names(&s.classifier), a)
}

/// [`outputs`] with the model's interned names looked up once (for many answers).
pub fn outputs_with(s: &Serving, names: &intern::Names, a: Answer) -> Outputs {
    let (label, category) = label_and_category(s, names, a);
    match a {
        Answer::Model(p, named) => {
            let cal = &s.classifier.model.calibration;
            let (level, abstain) = confidence::judge(cal, p.confidence, &settings::policy(cal), named);
            if abstain {
                return Outputs { label: None, category: None, confidence: p.confidence, level: level.as_str(), source: "abstain", rule_id: None };
            }
            Outputs { label: Some(label), category, confidence: p.confidence, level: level.as_str(), source: "model", rule_id: None }
        }
        // a rule is a person's decision: always an answer, at the top level
        Answer::Rule(i) => Outputs {
            label: Some(label),
            category,
            confidence: 1.0,
            level: Level::VeryHigh.as_str(),
            source: "rule",
            rule_id: Some(s.rules.get(i).id),
        },
        // a label is a person's answer for this very text: served as given, at the top level
        Answer::Label(_) => Outputs {
            label: Some(label),
            category,
            confidence: 1.0,
            level: Level::VeryHigh.as_str(),
            source: "label",
            rule_id: None,
        },
    }
}
