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

/// What SQL shows of a model answer: its level, and whether it abstains under `floor`.
pub fn judge(c: &Calibration, confidence: f32, floor: f32) -> (Level, bool) {
    (c.levels.of(confidence), confidence < floor)
}

/// [`judge`] for an answer with its name evidence ([`crate::evidence`]): one whose descriptor
/// does not carry the brand's name is held at `medium` at most.
pub fn judge_named(c: &Calibration, confidence: f32, floor: f32, named: bool) -> (Level, bool) {
    let (level, abstain) = judge(c, confidence, floor);
    (if named { level } else { level.min(Level::Medium) }, abstain)
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
        assert_eq!(judge(&c, 0.3, c.floor(-1.0)), (Level::Low, true));
        assert_eq!(judge(&c, 0.3, c.floor(0.0)), (Level::Low, false));
        assert_eq!(judge_named(&c, 0.999, 0.0, false).0, Level::Medium, "no name: held at medium");
        assert_eq!(judge_named(&c, 0.999, 0.0, true).0, Level::VeryHigh);
        assert_eq!(judge_named(&c, 0.3, c.floor(-1.0), false), (Level::Low, true), "never raised");
    }

    #[test]
    fn names_round_trip() {
        for l in [Level::Low, Level::Medium, Level::High, Level::VeryHigh] {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::parse("certain"), None);
    }
}
