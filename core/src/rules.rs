//! Rules ahead of the model: the decision table for hot fixes and the long tail.
//!
//! A rule is a regular expression over the *normalized* descriptor (what
//! `txclass.normalize_descriptor` returns) with the label it assigns. All patterns are compiled
//! into one [`regex::RegexSet`], so a descriptor is matched against every rule in one pass, in
//! time linear in its length whatever the patterns (no backtracking: a user's pattern cannot
//! stall a backend). When several rules match, the highest priority wins, then the lowest id.
use crate::error::{Error, Result};
use regex::{RegexSet, RegexSetBuilder};

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub pattern: String,
    pub label: String,
    pub category: Option<String>,
    pub priority: i32,
}

/// Compiled size limit per pattern set (the regex crate's default is 10 MiB per regex).
const SIZE_LIMIT: usize = 64 << 20;

/// Checks one pattern the way [`RuleSet::new`] compiles it; the error names the problem.
pub fn check_pattern(pattern: &str) -> Result<()> {
    RegexSetBuilder::new([pattern]).size_limit(SIZE_LIMIT).build().map(|_| ()).map_err(|e| {
        Error::input(format!("rule pattern {pattern:?} is not a valid regular expression: {e}")).with_hint(
            "patterns use Rust regex syntax (https://docs.rs/regex) and match the normalized descriptor \
             (see txclass.normalize_descriptor); e.g. '^tesco stores #' or '\\bamazon\\b'",
        )
    })
}

#[derive(Debug)]
pub struct RuleSet {
    set: RegexSet,
    /// In the set's order: sorted by priority (high first), then id (low first).
    rules: Vec<Rule>,
}

impl RuleSet {
    pub fn new(mut rules: Vec<Rule>) -> Result<RuleSet> {
        rules.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        for r in &rules {
            check_pattern(&r.pattern).map_err(|e| Error { message: format!("rule {}: {}", r.id, e.message), ..e })?;
        }
        let set = RegexSetBuilder::new(rules.iter().map(|r| r.pattern.as_str()))
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| {
                Error::input(format!("the rules do not compile together: {e}")).with_hint("disable or simplify some rules")
            })?;
        Ok(RuleSet { set, rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The winning rule for a normalized descriptor, if any matches.
    pub fn find(&self, normalized: &str) -> Option<&Rule> {
        self.find_index(normalized).map(|i| &self.rules[i])
    }

    /// Like [`Self::find`], as an index for [`Self::get`].
    pub fn find_index(&self, normalized: &str) -> Option<usize> {
        if self.rules.is_empty() {
            return None;
        }
        // matches come back in index order, and the index order is the priority order
        self.set.matches(normalized).iter().next()
    }

    pub fn get(&self, index: usize) -> &Rule {
        &self.rules[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: i64, pattern: &str, label: &str, priority: i32) -> Rule {
        Rule { id, pattern: pattern.into(), label: label.into(), category: None, priority }
    }

    #[test]
    fn priority_then_id_decides() {
        let s = RuleSet::new(vec![
            rule(1, "tesco", "Tesco", 100),
            rule(2, "^tesco stores", "Tesco Stores", 200),
            rule(3, "tesco", "Tesco again", 100),
        ])
        .unwrap();
        assert_eq!(s.find("tesco stores # oxford").unwrap().id, 2);
        assert_eq!(s.find("sq * tesco express").unwrap().id, 1);
        assert!(s.find("sainsburys").is_none());
    }

    #[test]
    fn bad_pattern_names_rule_and_error() {
        let e = RuleSet::new(vec![rule(7, "amazon(", "Amazon", 1)]).unwrap_err();
        assert!(e.message.contains("rule 7") && e.message.contains("amazon("), "{}", e.message);
        assert!(check_pattern("[a-").is_err());
        assert!(check_pattern("^amazon\\b").is_ok());
    }

    #[test]
    fn empty_set_matches_nothing() {
        let s = RuleSet::new(vec![]).unwrap();
        assert!(s.is_empty());
        assert!(s.find("anything").is_none());
    }

    #[test]
    fn huge_repetition_is_refused_not_run() {
        // a pattern whose compiled form exceeds the limit is an error, never a stall
        assert!(check_pattern("((a{1000}){1000}){100}").is_err());
    }
}
