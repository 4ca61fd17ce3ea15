-- Gold-standard evaluation, require_better, A/B comparison.
SET search_path = public, txclass;
CREATE TABLE gold (descriptor text, merchant text);
INSERT INTO gold VALUES
    ('STARBUCKS STORE 01234 SEATTLE WA', 'Starbucks'),
    ('STARBUCKS 5521 PORTLAND OR', 'Starbucks'),
    ('SQ *BLUE BOTTLE COF 8473 OAKLAND CA', 'Blue Bottle Coffee'),
    ('TESCO STORES 6292', 'Tesco'),
    ('UBER *TRIP HELP.UBER.COM', 'Uber'),
    ('SHELL OIL 57444 HOUSTON TX', 'Shell'),
    ('AMZN MKTP US*2K3L4M5N6', 'Amazon'),
    ('NETFLIX.COM 866-579-7172 CA', 'Netflix'),
    ('', 'Amazon'),               -- normalizes to nothing: counts as wrong
    ('ANYTHING', NULL);           -- no expected label: skipped
-- the active model is v1 (registry.sql left it so)
SELECT name FROM active_model;
SELECT e->>'rows' AS rows, e->>'skipped_null_labels' AS skipped, e->>'correct' AS correct,
       round((e->>'accuracy')::numeric, 4) AS accuracy, round((e->>'macro_f1')::numeric, 4) AS macro_f1,
       e->>'classes' AS classes, e->>'identity' LIKE 'v1@%' AS identity
FROM evaluate('v1', 'SELECT descriptor, merchant FROM gold') e;
-- recomputed here from the classifications: accuracy must agree
SELECT round(avg((classify_transaction(descriptor) IS NOT DISTINCT FROM merchant)::int)::numeric, 4) AS accuracy_by_hand
FROM gold WHERE merchant IS NOT NULL;
-- relabelled calls Starbucks something else: lower on the same gold set (any row order)
SELECT round((e->>'macro_f1')::numeric, 4) AS macro_f1
FROM evaluate('relabelled', 'SELECT descriptor, merchant FROM gold ORDER BY random();', gold_set => 'handmade') e;
SELECT model, gold_set, rows, round(accuracy::numeric, 4) AS accuracy, round(macro_f1::numeric, 4) AS macro_f1
FROM evaluations ORDER BY model;
SELECT count(DISTINCT gold_fingerprint) AS gold_sets FROM evaluations;
SELECT label, round("precision"::numeric, 3) AS p, round(recall::numeric, 3) AS r, support, predicted
FROM evaluation_classes('relabelled') WHERE label LIKE 'Starbucks%' OR label = 'Amazon' ORDER BY label;
-- require_better refuses the worse model, and a model never evaluated on a common set
SELECT * FROM activate_model('relabelled', require_better => true);
SELECT * FROM activate_model('wide', require_better => true);
SELECT name FROM active_model;
-- the 5,000-class model scores what v1 does: allowed (not lower)
SELECT e->>'macro_f1' = (SELECT e2->>'macro_f1' FROM evaluate('v1', 'SELECT descriptor, merchant FROM gold', store => false) e2) AS same_as_v1
FROM evaluate('wide', 'SELECT descriptor, merchant FROM gold') e;
SELECT model, action FROM activate_model('wide', require_better => true, gold_set => 'no such set');
SELECT model, action FROM activate_model('wide', require_better => true,
    gold_set => (SELECT gold_fingerprint FROM evaluations WHERE model = 'relabelled'));
SELECT name FROM active_model;
SELECT model, action FROM rollback_model();
SELECT name FROM active_model;
-- gold queries: errors say what is wrong
SELECT evaluate('v1', 'SELECT descriptor FROM gold');
SELECT evaluate('v1', 'SELECT nope FROM gold');
SELECT evaluate('nope', 'SELECT descriptor, merchant FROM gold');
-- A/B: v1 against relabelled disagrees exactly on the Starbucks rows
SELECT rows, agreements, round(agreement_rate::numeric, 4) AS agreement_rate, jsonb_array_length(disagreements) AS shown
FROM compare_summary('v1', 'relabelled', 'SELECT descriptor FROM gold');
SELECT descriptor, label_a, label_b, confidence_a = confidence_b AS same_confidence
FROM compare_models('v1', 'relabelled', 'SELECT descriptor FROM gold') WHERE NOT agree ORDER BY descriptor;
SELECT count(*) FILTER (WHERE agree) AS agree, count(*) AS rows
FROM compare_models('v1', 'wide', 'SELECT descriptor FROM gold');
