//! Recurring payments glue: `txclass_core::recurring` over one account's charges at one
//! merchant, as SQL functions for sql/recurring.sql (the summaries, refresh and views).
use crate::errors::OrRaise;
use crate::session::with_model_config;
use pgrx::prelude::*;
use serde_json::json;
use txclass_core::recurring::{detect, status_on, Cadence, Charge};

/// The series in one account's charges at one merchant: `days` are days since 1970-01-01,
/// `amounts` the charges (refunds, zero and NULL ignored).
#[pg_extern(immutable, parallel_safe)]
fn _detect_series(
    days: Vec<Option<i32>>,
    amounts: Vec<Option<f64>>,
) -> TableIterator<
    'static,
    (
        name!(series, i32),
        name!(cadence, String),
        name!(regularity, f64),
        name!(charges, i32),
        name!(extras, i32),
        name!(amount, f64),
        name!(fixed_amount, bool),
        name!(price_changes, pgrx::JsonB),
        name!(first_day, i32),
        name!(last_day, i32),
        name!(next_expected, i32),
        name!(next_amount, f64),
        name!(anchor_day, i32),
    ),
> {
    let charges: Vec<Charge> = days
        .into_iter()
        .zip(amounts)
        .filter_map(|(d, a)| Some(Charge { day: d?, amount: a? }))
        .collect();
    let rows: Vec<_> = detect(&charges)
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let changes: Vec<_> = s.price_changes.iter().map(|c| json!({"day": c.day, "from": c.from, "to": c.to})).collect();
            (
                i as i32 + 1,
                s.cadence.name().to_string(),
                s.regularity,
                s.charges as i32,
                s.extras as i32,
                s.amount,
                s.fixed_amount,
                pgrx::JsonB(json!(changes)),
                s.first,
                s.last,
                s.next_expected,
                s.next_amount,
                s.anchor_day as i32,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// active / late / ended of a stored series on `today` (days since 1970-01-01).
#[pg_extern(immutable, strict, parallel_safe)]
fn _series_status(cadence: &str, next_expected: i32, anchor_day: i32, today: i32) -> Option<&'static str> {
    let c = Cadence::parse(cadence)?;
    Some(status_on(c, next_expected, anchor_day.clamp(0, 31) as u32, today).name())
}

/// The serving model's subscription labels (`config.json`, `txclass.subscription_labels`), or
/// NULL when the model does not say.
#[pg_extern(stable, parallel_safe)]
fn _subscription_labels() -> Option<Vec<String>> {
    with_model_config(|m| m.subscription_labels.clone()).or_raise()
}

/// The serving model's labels that are classes of many merchants ("Other Restaurant": no
/// names in `txclass.evidence`); refresh_recurring does not name a series by them. Empty for a
/// model without evidence, and where the model cannot be loaded (refresh_recurring reads only
/// the stored answers and must not fail for that). Neither reads more than `config.json` in a
/// backend that has not loaded the model.
#[pg_extern(stable, parallel_safe)]
fn _generic_labels() -> Vec<String> {
    with_model_config(|m| m.generic_labels()).unwrap_or_default()
}
