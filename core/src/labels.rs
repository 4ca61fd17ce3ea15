//! Labels people gave, served at once: an exact-match table from the normalized descriptor to
//! the label (and category) a labeler gave it.
//!
//! `txclass.add_labels` writes `txclass.labels`; the pgrx layer loads the rows that apply to the
//! serving model (labeled against it or a model it retrains) into a [`LabelTable`], and every
//! path consults it after the rules and before the result cache and the model, so a label is
//! served from the next statement on: no rule, no retrain, no administrator. The table answers
//! only the very text that was labeled (after normalization), which is what a label says.
use std::collections::HashMap;

/// One label as served.
#[derive(Debug, Clone, PartialEq)]
pub struct Labeled {
    /// `txclass.labels.id`.
    pub id: i64,
    pub normalized: String,
    pub label: String,
    pub category: Option<String>,
}

/// Normalized descriptor → label; one entry per text (the table's `normalized` is unique).
#[derive(Debug, Default)]
pub struct LabelTable {
    index: HashMap<String, usize>,
    entries: Vec<Labeled>,
}

impl LabelTable {
    /// From rows; a text given twice keeps the row with the highest id (the later label).
    pub fn new(rows: Vec<Labeled>) -> LabelTable {
        let mut t = LabelTable::default();
        for r in rows {
            match t.index.get(&r.normalized) {
                Some(&i) if t.entries[i].id >= r.id => {}
                Some(&i) => t.entries[i] = r,
                None => {
                    t.index.insert(r.normalized.clone(), t.entries.len());
                    t.entries.push(r);
                }
            }
        }
        t
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry for a normalized, non-empty text, if a label was given for it.
    pub fn find_index(&self, normalized: &str) -> Option<usize> {
        self.index.get(normalized).copied()
    }

    pub fn get(&self, i: usize) -> &Labeled {
        &self.entries[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: i64, n: &str, label: &str) -> Labeled {
        Labeled { id, normalized: n.into(), label: label.into(), category: None }
    }

    #[test]
    fn exact_normalized_text_only() {
        let t = LabelTable::new(vec![l(1, "eyre & elliston ltd", "Eyre & Elliston"), l(2, "hotjar", "Hotjar")]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.find_index("hotjar").map(|i| t.get(i).label.as_str()), Some("Hotjar"));
        assert_eq!(t.find_index("hotjar ltd"), None, "a label answers its own text, not a longer one");
        assert_eq!(t.find_index("eyre & elliston"), None);
        assert!(LabelTable::default().is_empty());
    }

    #[test]
    fn the_later_label_wins() {
        let t = LabelTable::new(vec![l(5, "x", "new"), l(3, "x", "old"), l(4, "x", "middle")]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(t.find_index("x").unwrap()).label, "new");
    }
}
