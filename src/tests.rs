//! `#[pg_test]`s: the glue inside a real server (run by `cargo pgrx test`).
//! Error messages and privilege checks are in the pg_regress tier (tests/pg_regress).
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one_text(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).expect("query failed")
    }

    #[pg_test]
    fn normalize_matches_the_core() {
        let s = "SQ *BLUE BOTTLE COF 8473 OAKLAND CA";
        assert_eq!(one_text(&format!("SELECT txclass.normalize_descriptor('{s}')")), Some(txclass_core::normalize(s)));
    }

    #[pg_test]
    fn classifies_known_brands() {
        for (d, want) in [
            ("SQ *BLUE BOTTLE COF 8473 OAKLAND CA", "Blue Bottle Coffee"),
            ("STARBUCKS STORE 01234 SEATTLE WA", "Starbucks"),
            ("AMZN MKTP US*2K3L4M5N6", "Amazon"),
            ("SHELL OIL 57444 HOUSTON TX", "Shell"),
            ("NETFLIX.COM 866-579-7172 CA", "Netflix"),
        ] {
            assert_eq!(one_text(&format!("SELECT txclass.classify_transaction('{d}')")).as_deref(), Some(want), "{d}");
        }
    }

    #[pg_test]
    fn null_and_empty_give_null() {
        assert_eq!(one_text("SELECT txclass.classify_transaction(NULL)"), None);
        assert_eq!(one_text("SELECT txclass.classify_transaction('')"), None);
        assert_eq!(one_text("SELECT txclass.classify_transaction('   ')"), None);
        assert_eq!(one_text("SELECT txclass.classify_transaction('.-/ ,;')"), None);
    }

    #[pg_test]
    fn detail_carries_category_confidence_and_model() {
        let (label, category, conf) = Spi::get_three::<String, String, f32>(
            "SELECT label, category, confidence FROM txclass.classify_transaction_detail('UBER *TRIP HELP.UBER.COM')",
        )
        .expect("query failed");
        let model = one_text("SELECT (txclass.classify_transaction_detail('UBER *TRIP HELP.UBER.COM')).model");
        assert_eq!(label.as_deref(), Some("Uber"));
        assert_eq!(category.as_deref(), Some("Rideshare & Taxi"));
        let conf = conf.expect("confidence");
        assert!(conf > 0.5 && conf <= 1.0, "confidence {conf}");
        assert!(model.expect("model").starts_with("txclass-merchants-v3@"));
    }

    #[pg_test]
    fn batch_keeps_order_nulls_and_agrees_with_scalar() {
        let n = Spi::get_one::<i64>(
            "WITH d(a) AS (SELECT ARRAY['STARBUCKS 123', NULL, '', 'WALMART SUPERCENTER 55', 'TESCO STORES 6292']::text[])
             SELECT count(*) FROM d, txclass.classify_batch(d.a) b
             WHERE (b.ordinality IN (2, 3)) = (b.label IS NULL)",
        )
        .expect("query failed");
        assert_eq!(n, Some(5));
        let disagreements = Spi::get_one::<i64>(
            "WITH d AS (SELECT array_agg(x ORDER BY i) a FROM unnest(ARRAY['SQ *BLUE BOTTLE COF 8473','PAYPAL *NETFLIX','KROGER #445 DALLAS TX',
                         'HOME DEPOT 4411','TST* JOES DINER','CHECKCARD 0412 SHELL OIL','LYFT *RIDE SAT 8PM','TESCO STORES 6292']) WITH ORDINALITY u(x, i))
             SELECT count(*) FROM d, txclass.classify_batch(d.a) b
             WHERE b.label IS DISTINCT FROM txclass.classify_transaction(d.a[b.ordinality])",
        )
        .expect("query failed");
        assert_eq!(disagreements, Some(0));
    }

    #[pg_test]
    fn batch_size_setting_does_not_change_results() {
        let q = "SELECT string_agg(label, '|' ORDER BY ordinality) FROM txclass.classify_batch(
                   ARRAY(SELECT 'STORE ' || g || CASE WHEN g % 3 = 0 THEN ' WALMART' WHEN g % 3 = 1 THEN ' TARGET T-1' ELSE ' UBER TRIP' END
                         FROM generate_series(1, 100) g))";
        Spi::run("SET txclass.batch_size = 1").expect("set");
        let a = one_text(q);
        Spi::run("SET txclass.batch_size = 7").expect("set");
        let b = one_text(q);
        Spi::run("RESET txclass.batch_size").expect("reset");
        assert!(a.is_some());
        assert_eq!(a, b);
    }

    #[pg_test]
    fn topk_is_sorted_and_bounded() {
        let (n, sorted, total) = Spi::get_three::<i64, bool, f64>(
            "SELECT count(*), bool_and(ok), sum(confidence)::float8 FROM (
                SELECT confidence, confidence <= lag(confidence, 1, 2.0::real) OVER (ORDER BY rank) AS ok
                FROM txclass.classify_topk('COSTCO WHSE #1234', 7)) t",
        )
        .expect("query failed");
        assert_eq!(n, Some(7));
        assert_eq!(sorted, Some(true));
        assert!(total.expect("sum") <= 1.0 + 1e-5);
        let first = one_text("SELECT label FROM txclass.classify_topk('COSTCO WHSE #1234') WHERE rank = 1");
        assert_eq!(first, one_text("SELECT txclass.classify_transaction('COSTCO WHSE #1234')"));
    }

    #[pg_test]
    fn hostile_strings_are_fine() {
        let n = Spi::get_one::<i64>(
            // every string gets an answer: a label, or an abstention (which withholds the label)
            "SELECT count((txclass.classify_transaction_detail(s)).source) FROM (VALUES (repeat('AMAZON MKTPLACE ', 6400)),
                (E'SHELL\\x01\\x02\\tOIL\\n'), ('☕ STARBUCKS 🎉'), ('ÜBER café ∑∞')) v(s)",
        )
        .expect("query failed");
        assert_eq!(n, Some(4));
    }

    #[pg_test]
    fn logits_width_equals_labels() {
        let (w, n) = Spi::get_two::<i32, i64>(
            "SELECT array_length(txclass.logits('WALMART'), 1), (SELECT count(*) FROM txclass.labels())",
        )
        .expect("query failed");
        assert_eq!(w.map(|w| w as i64), n);
    }

    #[pg_test]
    fn model_info_reports_the_loaded_model() {
        let (labels, provider) = Spi::get_two::<i32, String>("SELECT labels, execution_provider FROM txclass.model_info()")
            .expect("query failed");
        assert!(labels.expect("labels") > 100);
        assert_eq!(provider.as_deref(), Some("cpu"));
    }
}
