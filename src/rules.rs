//! The rules table (`txclass.rules`) as this backend's compiled [`RuleSet`].
//!
//! Rules answer ahead of the cache and the model, so a rule change never meets a stale cache
//! entry: the cache only ever holds model answers, keyed by model. A statement trigger on the
//! table bumps the registry generation at commit (src/registry.rs); each backend reloads its
//! rules at its next call after that.
use crate::catalog;
use crate::errors::OrRaise;
use pgrx::prelude::*;
use std::rc::Rc;
use txclass_core::rules::{check_pattern, Rule, RuleSet};

const RULES_SQL: &std::ffi::CStr =
    c"SELECT id, pattern, label, category, priority FROM txclass.rules WHERE enabled ORDER BY id";

/// The enabled rules as they are committed now.
pub fn load() -> Rc<RuleSet> {
    let (rows, _) = catalog::read_latest(RULES_SQL, 5);
    let rules = rows
        .into_iter()
        .map(|mut r| Rule {
            id: r[0].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
            pattern: r[1].take().unwrap_or_default(),
            label: r[2].take().unwrap_or_default(),
            category: r[3].take(),
            priority: r[4].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
        })
        .collect();
    Rc::new(RuleSet::new(rules).or_raise())
}

/// CHECK constraint of txclass.rules.pattern: true, or an ERROR that says what is wrong.
#[pg_extern(immutable, strict, parallel_safe)]
fn _valid_pattern(pattern: &str) -> bool {
    check_pattern(pattern).or_raise();
    true
}
