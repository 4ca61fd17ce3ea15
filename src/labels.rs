//! The labels people gave (`txclass.labels`) as this backend's [`LabelTable`], served at once.
//!
//! A label applies to the model it was labeled against (`labels.model`, stamped with the
//! serving model's name when it is written) and to every model registered as a retrain of it
//! (`models.retrain_of`, followed upwards); a label without a model applies to every model.
//! The table is read again whenever the registry generation moves: a statement trigger on
//! `txclass.labels` bumps it at commit, as one on `txclass.rules` does (src/rules.rs), so a
//! label is served from the next statement after its commit, by every backend, in backend and
//! worker mode and through the trigger. Labels answer after the rules and ahead of the result
//! cache and the model (which they never enter): a person's answer for that very text.
use crate::catalog;
use crate::session::Source;
use pgrx::prelude::*;
use std::ffi::CString;
use std::rc::Rc;
use txclass_core::labels::{LabelTable, Labeled};

/// The name labels are stamped with and matched by: the registered model's name, the bundled
/// default's, or a pinned directory's last component.
pub fn model_name(source: &Source, directory_name: &str) -> String {
    match source {
        Source::Registry(a) => a.name.clone(),
        Source::Default => crate::settings::DEFAULT_MODEL.to_string(),
        Source::Pinned(_) => directory_name.to_string(),
    }
}

/// Whether `name` can go into the lineage query as a literal (registry names, bundled names and
/// ordinary directory names can; a name with other characters matches only labels without a
/// model).
fn plain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether this database's txclass objects serve labels (0.6.0 on: `labels.model` exists). A
/// database not yet updated keeps its earlier behaviour on the new library: no labels served.
fn served_here() -> bool {
    let (rows, _) = catalog::read_latest(
        c"SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = pg_catalog.to_regclass('txclass.labels') \
          AND attname = 'model' AND NOT attisdropped",
        1,
    );
    rows.first().and_then(|r| r[0].as_deref()) == Some("1")
}

/// The labels that apply to the model named `model` (and its ancestors by `retrain_of`).
pub fn load(model: &str) -> Rc<LabelTable> {
    if !served_here() {
        return Rc::new(LabelTable::default());
    }
    let lineage = if plain(model) { format!("'{model}'") } else { "NULL".to_string() };
    let sql = format!(
        "WITH RECURSIVE lineage(name, depth) AS (
             SELECT {lineage}::text, 0
             UNION ALL
             SELECT m.retrain_of, l.depth + 1 FROM txclass.models m JOIN lineage l ON m.name = l.name
             WHERE m.retrain_of IS NOT NULL AND l.depth < 64)
         SELECT id, normalized, label, category FROM txclass.labels
         WHERE model IS NULL OR model IN (SELECT name FROM lineage WHERE name IS NOT NULL) ORDER BY id"
    );
    let sql = CString::new(sql).expect("no NUL in the query");
    let (rows, _) = catalog::read_latest(&sql, 4);
    let labels = rows
        .into_iter()
        .filter_map(|mut r| {
            Some(Labeled {
                id: r[0].as_deref()?.parse().ok()?,
                normalized: r[1].take()?,
                label: r[2].take()?,
                category: r[3].take(),
            })
        })
        .collect();
    Rc::new(LabelTable::new(labels))
}

/// The name a label written now is stamped with (`labels.model`): the model this session
/// serves, without loading it.
#[pg_extern(volatile, parallel_safe)]
fn _serving_model_name() -> String {
    crate::session::serving_model_name().unwrap_or_else(|e| crate::errors::raise(e))
}
