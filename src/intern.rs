//! Label and category strings as `&'static str`, so set-returning functions can hand Postgres
//! borrowed text instead of allocating a `String` per row. Each distinct string is leaked once
//! per backend. What is interned: the labels and categories of the models a backend has served,
//! the labels and categories of the rules that answered (`txclass.rules`, written by people),
//! and model identities — so the pool grows with the models and rules a backend has seen, not
//! with the rows it classified. A backend that serves many rule sets over its life keeps every
//! label they ever answered with.
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use txclass_core::Classifier;

thread_local! {
    static POOL: RefCell<HashSet<&'static str>> = RefCell::new(HashSet::new());
    /// (model cache id, names) of the last model interned
    static LAST: RefCell<Option<(u64, Rc<Names>)>> = const { RefCell::new(None) };
}

pub struct Names {
    pub labels: Vec<&'static str>,
    pub categories: Vec<Option<&'static str>>,
}

/// `s` as a `&'static str`, leaked once per distinct string per backend.
pub fn text(s: &str) -> &'static str {
    intern(s)
}

fn intern(s: &str) -> &'static str {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if let Some(&hit) = p.get(s) {
            return hit;
        }
        let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
        p.insert(leaked);
        leaked
    })
}

/// The classifier's labels and categories, interned (cached per model).
pub fn names(c: &Classifier) -> Rc<Names> {
    LAST.with(|last| {
        if let Some((id, names)) = last.borrow().as_ref() {
            if *id == c.cache_model_id() {
                return names.clone();
            }
        }
        let names = Rc::new(Names {
            labels: c.model.labels.iter().map(|l| intern(l)).collect(),
            categories: c.model.categories.iter().map(|x| x.as_deref().map(intern)).collect(),
        });
        *last.borrow_mut() = Some((c.cache_model_id(), names.clone()));
        names
    })
}
