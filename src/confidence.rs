//! Confidence levels and abstention in SQL (the rules are in txclass_core::confidence).
use crate::session::with_classifier;
use crate::settings;
use pgrx::prelude::*;

/// The level of `confidence` under the active model's thresholds: very_high, high, medium or low.
#[pg_extern(stable, strict, parallel_safe)]
fn confidence_level(confidence: f32) -> &'static str {
    with_classifier(|c| c.model.calibration.levels.of(confidence).as_str())
}

/// What the confidence of the model in force means: its temperature, its level thresholds (and
/// whether they were fitted on held-out data or are txclass's uncalibrated defaults), its own
/// abstention floor and the floor in force (txclass.min_confidence, else the model's).
#[pg_extern(stable, parallel_safe)]
fn confidence_info() -> TableIterator<
    'static,
    (
        name!(model, String),
        name!(temperature, f32),
        name!(very_high, f32),
        name!(high, f32),
        name!(medium, f32),
        name!(levels_fitted, bool),
        name!(model_min_confidence, f32),
        name!(min_confidence, f32),
    ),
> {
    let row = with_classifier(|c| {
        let k = c.model.calibration;
        (
            c.model.identity(),
            k.temperature,
            k.levels.very_high,
            k.levels.high,
            k.levels.medium,
            k.levels_fitted,
            k.min_confidence,
            k.floor(settings::min_confidence()),
        )
    });
    TableIterator::once(row)
}
