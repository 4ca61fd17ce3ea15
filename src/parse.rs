//! `parse_descriptor(text)`: the payment intermediary, merchant, store number and trailing
//! location of a card descriptor (`txclass_core::parse`; the Python twin is
//! models/train/parse.py, both checked against tests/parse_vectors.jsonl).
use pgrx::prelude::*;

/// `SELECT * FROM txclass.parse_descriptor('SQ *BLUE BOTTLE COF 8473 OAKLAND CA')`:
/// Square | BLUE BOTTLE COF | 8473 | OAKLAND | CA | blue bottle cof. `merchant_key` matches
/// across intermediaries (`PAYPAL *NETFLIX` and `NETFLIX.COM` are both `netflix`).
#[pg_extern(immutable, strict, parallel_safe)]
fn parse_descriptor(
    descriptor: &str,
) -> TableIterator<
    'static,
    (
        name!(intermediary, Option<String>),
        name!(merchant, String),
        name!(store, Option<String>),
        name!(city, Option<String>),
        name!(region, Option<String>),
        name!(merchant_key, String),
    ),
> {
    let p = txclass_core::parse::parse(descriptor);
    let key = p.merchant_key();
    TableIterator::once((p.intermediary, p.merchant, p.store, p.city, p.region, key))
}
