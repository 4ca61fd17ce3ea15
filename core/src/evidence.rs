//! Name evidence: a brand answer is only as sure as the descriptor is about the brand's name.
//!
//! A model trained on descriptors learns which words go with which brand, and a shared word
//! reads as the brand: `SMITH & LOW LTD` → WHSmith, `BOOKER LIMITED` → Booking.com, `GO
//! OUTDOORS` → In-N-Out, confident all. A model's `config.json` may list, in its `txclass`
//! block, the names each brand is printed as (`"evidence": {"WHSmith": ["whsmith", "whsmith"],
//! ...}`, written by `models/train/evidence.py` from the trainer's descriptor stems: normalized,
//! then letters, digits and `#` only). An answer whose label has names, none of them in the
//! descriptor, is held at `medium` at most: its label and confidence stay what the model said
//! (the calibrated probability), its level no longer promises `high` precision. Labels without
//! names (the long-tail *Other …* classes, and every label of a model without the block) are
//! not held.
//!
//! A name is in the descriptor when, with both reduced to letters, digits and `#` (the
//! normalizer's mark for a run of digits: `O2` is `o#`, `7-ELEVEN` is `#eleven`), the descriptor
//! contains it; a name of 3 characters or fewer must be a whole word of the descriptor (`BP`,
//! `EE`, `O2`, `M&S`: `O/NEILLS` does not name O2); and a name cut short at the descriptor's end by the 22-character field
//! truncation counts from its first [`MIN_PREFIX`] characters (`STARBUC`).

/// The shortest start of a name that counts when the descriptor ends with it (truncation).
pub const MIN_PREFIX: usize = 5;

/// The names of each label (by label index); an empty list: the label is not held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    names: Vec<Vec<String>>,
}

/// Whether a byte counts in a name: ASCII letters and digits, and `#` (a run of digits, normalized).
fn kept(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'#'
}

/// Letters, digits and `#` of `text`, lower-cased (ASCII).
pub fn squash(text: &str) -> String {
    text.bytes().filter(kept).map(|b| b.to_ascii_lowercase() as char).collect()
}

impl Evidence {
    /// From `config.json`'s `txclass.evidence` (label → names), for a model with `labels`.
    pub fn from_map(labels: &[String], map: &std::collections::HashMap<String, Vec<String>>) -> Result<Evidence, String> {
        let mut names = vec![Vec::new(); labels.len()];
        // every new connection opens its model: one pass over the labels, not one per name list
        let index: std::collections::HashMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
        for (label, list) in map {
            let Some(&i) = index.get(label.as_str()) else {
                return Err(format!("evidence names label {label:?}, which id2label does not have"));
            };
            for n in list {
                if n.is_empty() || squash(n) != *n {
                    return Err(format!(
                        "evidence for {label:?} has the name {n:?}; names are lower-case letters, digits and # only"
                    ));
                }
            }
            names[i] = list.clone();
        }
        Ok(Evidence { names })
    }

    /// Whether the model brought names for any label.
    pub fn is_empty(&self) -> bool {
        self.names.iter().all(Vec::is_empty)
    }

    /// Whether the model brought names for `label` (a brand); a label without names in a model
    /// that has them is a class of many merchants ("Other Restaurant").
    pub fn has_names(&self, label: usize) -> bool {
        self.names.get(label).is_some_and(|n| !n.is_empty())
    }

    /// Labels with names.
    pub fn labels_with_names(&self) -> usize {
        self.names.iter().filter(|n| !n.is_empty()).count()
    }

    /// Whether the normalized descriptor `text` carries a name of `label` (true for a label
    /// without names). Runs on every model answer, cache hits included: no allocation for a
    /// descriptor of up to 128 letters and digits.
    pub fn supports(&self, label: usize, text: &str) -> bool {
        let Some(names) = self.names.get(label).filter(|n| !n.is_empty()) else { return true };
        let mut buf = [0u8; 128];
        let mut len = 0;
        let mut long = None;
        for b in text.bytes().filter(kept) {
            if len == buf.len() {
                long = Some(squash(text));
                break;
            }
            buf[len] = b.to_ascii_lowercase();
            len += 1;
        }
        let all: &[u8] = long.as_deref().map(str::as_bytes).unwrap_or(&buf[..len]);
        names.iter().any(|n| {
            let n = n.as_bytes();
            if n.len() <= 3 {
                return text.split_whitespace().any(|w| squashed_eq(w, n));
            }
            all.windows(n.len()).any(|w| w == n) || (MIN_PREFIX..n.len()).any(|m| all.ends_with(&n[..m]))
        })
    }
}

/// Whether `word` reduced to its letters, digits and `#`, lower-cased, is `name`.
fn squashed_eq(word: &str, name: &[u8]) -> bool {
    let mut it = word.bytes().filter(kept).map(|b| b.to_ascii_lowercase());
    name.iter().all(|&c| it.next() == Some(c)) && it.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn evidence() -> Evidence {
        let labels: Vec<String> = ["WHSmith", "BP", "Starbucks", "Other Retail", "M&S"].iter().map(|s| s.to_string()).collect();
        let map: HashMap<String, Vec<String>> = [
            ("WHSmith", vec!["whsmith"]),
            ("BP", vec!["bp"]),
            ("Starbucks", vec!["starbucks"]),
            ("M&S", vec!["ms", "marksspencer"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        Evidence::from_map(&labels, &map).unwrap()
    }

    #[test]
    fn a_shared_word_is_not_the_name() {
        let e = evidence();
        assert!(e.supports(0, "wh smith oxford"), "spacing does not matter");
        assert!(!e.supports(0, "smith & low ltd"), "a shared word is not the brand's name");
        assert!(e.supports(2, "starbucks store seattle"));
        assert!(e.supports(2, "sq starbuc"), "cut short at the end by truncation");
        assert!(!e.supports(2, "starb oxford"), "a start shorter than MIN_PREFIX, not at the end");
        assert!(!e.supports(2, "sq star"), "a start shorter than MIN_PREFIX");
    }

    #[test]
    fn short_names_are_whole_words() {
        let e = evidence();
        assert!(e.supports(1, "bp connect oxford"));
        assert!(!e.supports(1, "bpm studios"), "a short name inside another word is not it");
        assert!(e.supports(4, "m&s simply food"), "& joins a short name's letters");
        assert!(!e.supports(4, "m p m s"), "letters spread over words are not the name");
        assert!(e.supports(4, "marks & spencer"));
        assert!(!e.supports(4, "msx"), "a longer word is not the short name");
    }

    #[test]
    fn a_digit_is_part_of_the_name() {
        let labels: Vec<String> = ["O2", "7-Eleven"].iter().map(|s| s.to_string()).collect();
        let map: HashMap<String, Vec<String>> =
            [("O2".to_string(), vec!["o#".to_string()]), ("7-Eleven".to_string(), vec!["#eleven".to_string()])].into_iter().collect();
        let e = Evidence::from_map(&labels, &map).unwrap();
        assert!(e.supports(0, "o# uk"), "O2 normalizes to o#");
        assert!(!e.supports(0, "o neills"), "an O without its digit is not O2");
        assert!(e.supports(1, "# eleven #"));
        assert!(!e.supports(1, "eleven oaks"), "ELEVEN without its number is not 7-Eleven");
    }

    #[test]
    fn long_descriptors_are_read_whole() {
        let e = evidence();
        let long = format!("{} whsmith", "x".repeat(300));
        assert!(e.supports(0, &long), "a name past the first 128 letters still counts");
        assert!(!e.supports(0, &"smith ".repeat(60)));
    }

    #[test]
    fn labels_without_names_are_not_held() {
        let e = evidence();
        assert!(e.supports(3, "anything at all"), "Other Retail has no names");
        assert!(Evidence::default().supports(0, "x"), "a model without evidence holds nothing");
        assert!(Evidence::default().is_empty());
        assert_eq!(e.labels_with_names(), 4);
        assert!(e.has_names(0) && !e.has_names(3), "WHSmith is a brand, Other Retail is not");
        assert!(!e.has_names(99) && !Evidence::default().has_names(0));
    }

    #[test]
    fn bad_entries_are_refused() {
        let labels = vec!["A".to_string()];
        let m = |k: &str, v: &str| -> HashMap<String, Vec<String>> { [(k.to_string(), vec![v.to_string()])].into_iter().collect() };
        assert!(Evidence::from_map(&labels, &m("B", "b")).unwrap_err().contains("id2label does not have"));
        assert!(Evidence::from_map(&labels, &m("A", "Has Caps")).unwrap_err().contains("lower-case letters, digits and #"));
        assert!(Evidence::from_map(&labels, &m("A", "")).is_err());
    }
}
