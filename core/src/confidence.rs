//! Honest confidence: the model's calibration (temperature), confidence levels, and abstention.
//!
//! A trained model's `config.json` may carry, in its `txclass` block (written by
//! `models/train/calibrate.py`):
//! `"temperature": T` — the confidence is `softmax(logits / T)`, T fitted on held-out data;
//! `"confidence_levels": {"very_high": a, "high": b, "medium": c}` — the lowest confidence at
//! which held-out precision reached 0.98, 0.90 and 0.70 (1.01: never reached);
//! `"min_confidence": m` — the model's default for `txclass.min_confidence`: an answer below it is
//! no answer (label NULL, source `abstain`).
//! A model without them (a plain transformers export) has T = 1, the [`Levels::UNCALIBRATED`]
//! thresholds, and never abstains unless the user sets `txclass.min_confidence`.
//!
//! What is served by default ([`Policy`]): an answer is a label only when its confidence reaches
//! the floor *and* its level reaches `txclass.min_level` (default `high`, for a model whose levels
//! were fitted). An answer held at `medium` because the descriptor does not carry the brand's
//! name ([`crate::evidence`]) is therefore withheld by default: on the hand-labeled Oxford gold
//! set such answers are right 4 times in 51 at a calibrated 0.90–1.00, a confidence the
//! descriptor does not support. The model's levels promise precision only where they were fitted,
//! so a model without fitted levels (a plain export) is held to the floor alone.
//!
//! Levels and abstention are decided from the confidence at answer time, never stored in the
//! result cache: the cache holds the calibrated confidence of a model identity (its checksum
//! covers `config.json`, so a new temperature is a new identity), and a changed setting
//! changes the next answer, not what is cached.

/// How sure an answer is, by the model's held-out precision (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Low,
    Medium,
    High,
    VeryHigh,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::VeryHigh => "very_high",
            Level::High => "high",
            Level::Medium => "medium",
            Level::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "very_high" => Some(Level::VeryHigh),
            "high" => Some(Level::High),
            "medium" => Some(Level::Medium),
            "low" => Some(Level::Low),
            _ => None,
        }
    }
}

/// Lowest confidence of each level (nested: very_high ≥ high ≥ medium).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub very_high: f32,
    pub high: f32,
    pub medium: f32,
}

impl Levels {
    /// For a model that brings no thresholds of its own: conventional cuts on an uncalibrated
    /// softmax, which promise nothing (model_info() says `levels` are not the model's own).
    pub const UNCALIBRATED: Levels = Levels { very_high: 0.95, high: 0.80, medium: 0.50 };

    pub fn of(&self, confidence: f32) -> Level {
        if confidence >= self.very_high {
            Level::VeryHigh
        } else if confidence >= self.high {
            Level::High
        } else if confidence >= self.medium {
            Level::Medium
        } else {
            Level::Low
        }
    }

    /// Checks a model's thresholds: each in [0, 1.01] (1.01 = not reached), nested.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, v) in [("very_high", self.very_high), ("high", self.high), ("medium", self.medium)] {
            if !(0.0..=1.01).contains(&v) {
                return Err(format!("confidence_levels.{name} = {v} is outside 0..1.01"));
            }
        }
        if !(self.very_high >= self.high && self.high >= self.medium) {
            return Err(format!(
                "confidence_levels must be nested (very_high {} >= high {} >= medium {})",
                self.very_high, self.high, self.medium
            ));
        }
        Ok(())
    }
}

/// A model's calibration, from its `config.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Logits are divided by it before the softmax (1: uncalibrated).
    pub temperature: f32,
    pub levels: Levels,
    /// Whether `levels` are the model's own (fitted on held-out data) or [`Levels::UNCALIBRATED`].
    pub levels_fitted: bool,
    /// The model's default `txclass.min_confidence` (0: never abstain).
    pub min_confidence: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration { temperature: 1.0, levels: Levels::UNCALIBRATED, levels_fitted: false, min_confidence: 0.0 }
    }
}

impl Calibration {
    /// The floor in force: `setting` when it is set (≥ 0), else the model's default.
    pub fn floor(&self, setting: f64) -> f32 {
        if setting >= 0.0 {
            setting as f32
        } else {
            self.min_confidence
        }
    }
}

/// What a model answer must reach to be served as a label (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Below this confidence: no answer (`txclass.min_confidence`, else the model's own floor).
    pub floor: f32,
    /// Below this level: no answer (`txclass.min_level`; [`Level::Low`] for a model whose levels
    /// were not fitted, whose levels promise nothing).
    pub min_level: Level,
}

impl Policy {
    /// Every top-1 answer is served (`min_confidence = 0`, `min_level = low`).
    pub const RAW: Policy = Policy { floor: 0.0, min_level: Level::Low };
}

impl Calibration {
    /// The policy in force for this model: the settings `min_confidence` (< 0: the model's floor)
    /// and `min_level`, applied where the model's levels were fitted and never above the best
    /// level the model reaches: a model whose held-out precision never reached `high`'s (its
    /// threshold is 1.01, see `models/train/calibrate.py`) serves its `medium` answers, labeled
    /// so, rather than nothing.
    pub fn policy(&self, min_confidence: f64, min_level: Level) -> Policy {
        // the level of a confidence of 1: the best one whose threshold is reached at all
        let best = self.levels.of(1.0);
        let min_level = if self.levels_fitted { min_level.min(best) } else { Level::Low };
        Policy { floor: self.floor(min_confidence), min_level }
    }
}

/// What SQL shows of a model answer: its level, and whether it abstains under `policy`. `named`:
/// whether the descriptor carries the brand's name ([`crate::evidence`]); an answer without it
/// is held at `medium` at most.
pub fn judge(c: &Calibration, confidence: f32, policy: &Policy, named: bool) -> (Level, bool) {
    let level = c.levels.of(confidence);
    let level = if named { level } else { level.min(Level::Medium) };
    (level, confidence < policy.floor || level < policy.min_level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_nested_cuts() {
        let l = Levels { very_high: 0.9, high: 0.7, medium: 0.4 };
        assert_eq!(l.of(0.95), Level::VeryHigh);
        assert_eq!(l.of(0.9), Level::VeryHigh, "a threshold is the lowest confidence of its level");
        assert_eq!(l.of(0.89), Level::High);
        assert_eq!(l.of(0.4), Level::Medium);
        assert_eq!(l.of(0.39), Level::Low);
        assert!(l.validate().is_ok());
        assert!(Levels { very_high: 0.5, high: 0.7, medium: 0.4 }.validate().is_err());
        assert!(Levels { very_high: 1.2, high: 0.7, medium: 0.4 }.validate().is_err());
        // 1.01 = never reached: nothing is very_high
        let never = Levels { very_high: 1.01, high: 0.8, medium: 0.5 };
        assert!(never.validate().is_ok());
        assert_eq!(never.of(1.0), Level::High);
    }

    #[test]
    fn floor_prefers_the_setting() {
        let c = Calibration { min_confidence: 0.4, ..Default::default() };
        assert_eq!(c.floor(-1.0), 0.4);
        assert_eq!(c.floor(0.0), 0.0);
        assert_eq!(c.floor(0.7), 0.7);
        let floor_only = |m: f64| Policy { floor: c.floor(m), min_level: Level::Low };
        assert_eq!(judge(&c, 0.3, &floor_only(-1.0), true), (Level::Low, true));
        assert_eq!(judge(&c, 0.3, &floor_only(0.0), true), (Level::Low, false));
        assert_eq!(judge(&c, 0.999, &Policy::RAW, false), (Level::Medium, false), "no name: held at medium");
        assert_eq!(judge(&c, 0.999, &Policy::RAW, true).0, Level::VeryHigh);
        assert_eq!(judge(&c, 0.3, &floor_only(-1.0), false), (Level::Low, true), "never raised");
    }

    #[test]
    fn the_level_floor_withholds_what_the_evidence_does_not_support() {
        // the bundled model's shape: high == medium == the floor
        let c = Calibration {
            levels: Levels { very_high: 0.99, high: 0.88, medium: 0.88 },
            levels_fitted: true,
            min_confidence: 0.88,
            ..Default::default()
        };
        let default = c.policy(-1.0, Level::High);
        assert_eq!(judge(&c, 0.999, &default, true), (Level::VeryHigh, false), "named, sure: served");
        assert_eq!(judge(&c, 0.9, &default, true), (Level::High, false));
        assert_eq!(judge(&c, 0.999, &default, false), (Level::Medium, true), "no name: withheld by default");
        assert_eq!(judge(&c, 0.5, &default, true), (Level::Low, true), "below the floor");
        // asking for less: medium answers come back, and with the floor at 0 every top-1
        assert_eq!(judge(&c, 0.999, &c.policy(-1.0, Level::Medium), false), (Level::Medium, false));
        assert_eq!(judge(&c, 0.5, &c.policy(0.0, Level::Low), true), (Level::Low, false), "raw top-1");
        assert_eq!(judge(&c, 0.95, &c.policy(-1.0, Level::VeryHigh), true), (Level::High, true), "stricter");
        // levels that were not fitted promise nothing: the level floor does not apply
        // a model that never reached high's precision on held-out data is held to what it reaches
        let weak = Calibration { levels: Levels { very_high: 1.01, high: 1.01, medium: 0.6 }, levels_fitted: true, min_confidence: 0.6, ..Default::default() };
        assert_eq!(weak.policy(-1.0, Level::High).min_level, Level::Medium);
        assert_eq!(judge(&weak, 0.7, &weak.policy(-1.0, Level::High), true), (Level::Medium, false));
        let none = Calibration { levels: Levels { very_high: 1.01, high: 1.01, medium: 1.01 }, levels_fitted: true, ..Default::default() };
        assert_eq!(none.policy(-1.0, Level::High), Policy::RAW, "every answer low: served, labeled low");
        let plain = Calibration::default();
        assert_eq!(plain.policy(-1.0, Level::High), Policy::RAW);
        assert_eq!(judge(&plain, 0.3, &plain.policy(-1.0, Level::High), true), (Level::Low, false));
    }

    #[test]
    fn names_round_trip() {
        for l in [Level::Low, Level::Medium, Level::High, Level::VeryHigh] {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::parse("certain"), None);
    }
}
