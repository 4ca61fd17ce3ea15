-- Drift views: a stable stream stays ok; a new merchant family with shifted shares alerts on
-- the label distribution, confidence and never-seen descriptors.
SET search_path = public, txclass;
CREATE TABLE stream (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, descriptor text);
SELECT time_column, drift_unit FROM attach('stream', 'descriptor', time_column => 'ts');
-- days 1-3: the same mix (40% Starbucks, 30% Tesco, 20% Uber, 10% Shell), 1,000 rows a day
INSERT INTO stream (ts, descriptor)
SELECT '2026-01-01'::timestamptz + (d - 1) * interval '1 day' + g * interval '1 second',
       CASE WHEN g % 10 < 4 THEN 'STARBUCKS STORE ' || g WHEN g % 10 < 7 THEN 'TESCO STORES ' || g
            WHEN g % 10 < 9 THEN 'UBER *TRIP ' || g ELSE 'SHELL OIL ' || g END
FROM generate_series(1, 3) d, generate_series(1, 1000) g;
-- day 4: Tesco doubles, a merchant family the stream never had (streaming services), and
-- unknown local merchants the model is unsure of
INSERT INTO stream (ts, descriptor)
SELECT '2026-01-04'::timestamptz + g * interval '1 second',
       CASE WHEN g % 10 < 1 THEN 'STARBUCKS STORE ' || g WHEN g % 10 < 6 THEN 'TESCO STORES ' || g
            WHEN g % 10 < 8 THEN (ARRAY['NETFLIX.COM', 'SPOTIFY USA', 'HULU 877-8244858'])[1 + g % 3]
            ELSE 'QZX ' || translate(md5(g::text), '0123456789', 'ghijklmnop') END
FROM generate_series(1, 1000) g;
SELECT refresh_drift('stream') AS rows_read;
SELECT refresh_drift('stream') AS nothing_new;
-- the reference: days 1-2
SELECT kind, source FROM set_baseline('stream', '2026-01-01', '2026-01-03');
-- (PSI to one decimal: day 4's made-up words are near ties between classes, which CPUs with
-- other vector units may break the other way)
SELECT bucket::date, rows, round(label_psi::numeric, 1) AS psi, round(label_js::numeric, 3) AS js,
       round(new_descriptor_share::numeric, 3) AS new, label_psi_status, label_js_status,
       confidence_psi_status, new_descriptor_status, status
FROM drift('stream') ORDER BY bucket;
-- what moved on day 4
SELECT m->>'label' AS label, round((m->>'share')::numeric, 3) AS share, round((m->>'baseline_share')::numeric, 3) AS baseline_share
FROM drift('stream') d, jsonb_array_elements(d.top_movers) m WHERE d.bucket = '2026-01-04' ORDER BY 2 DESC;
SELECT round(confidence_mean::numeric, 2) < 0.9 AS less_confident, low_confidence_share > 0.1 AS many_unsure
FROM drift('stream') WHERE bucket = '2026-01-04';
-- a coarser view: one bucket for the week
SELECT bucket::date, rows, status FROM drift('stream', 'week');
-- incremental: late rows for day 2 join their bucket
INSERT INTO stream (ts, descriptor) SELECT '2026-01-02 12:00', 'STARBUCKS STORE 9' FROM generate_series(1, 10);
SELECT refresh_drift('stream') AS late_rows;
SELECT rows FROM drift('stream') WHERE bucket = '2026-01-02';
-- thresholds are per table
SELECT set_drift_thresholds('stream', '{"psi_warn": 5, "psi_alert": 50}') ->> 'psi_warn' AS psi_warn;
SELECT label_psi_status FROM drift('stream') WHERE bucket = '2026-01-04';
SELECT set_drift_thresholds('stream', '{"psi_warn": 0.1, "psi_alert": 0.25}') ->> 'psi_warn' AS psi_warn;
SELECT set_drift_thresholds('stream', '{"nope": 1}');
SELECT set_drift_thresholds('stream', '{"p_warn": 2}');
SELECT set_drift_thresholds('stream', '{"min_rows": -1}');
-- each status needs the effect and its improbability under sampling: p-values per bucket
SELECT bucket::date, label_p < 0.001 AS label_unlikely, category_p < 0.001 AS category_unlikely, category_status
FROM drift('stream') ORDER BY bucket;
-- below min_rows a bucket has no status
SELECT set_drift_thresholds('stream', '{"min_rows": 5000}') ->> 'min_rows' AS min_rows;
SELECT bucket::date, label_psi_status, status FROM drift('stream') ORDER BY bucket;
SELECT set_drift_thresholds('stream', '{"min_rows": 50}') ->> 'min_rows' AS min_rows;
-- the at-a-glance view
SELECT "table", baseline, bucket::date, rows, status FROM drift_summary WHERE "table" = 'stream'::regclass;
-- the training baseline: the model's label shares and held-out confidence
SELECT kind, source LIKE 'v1@%' AS from_model, jsonb_typeof(label_shares) AS shares,
       array_length(confidence_histogram, 1) AS bins, label_shares_kind, rows, round(new_share::numeric, 2) AS new_share,
       jsonb_array_length(new_share_curve) AS curve_points, jsonb_typeof(category_shares) AS categories
FROM set_baseline('stream');
SELECT bucket::date, label_psi_status, confidence_psi_status FROM drift('stream') ORDER BY bucket;
-- refusals
SELECT * FROM drift('pg_class');
CREATE TABLE unmonitored (id int PRIMARY KEY, d text);
SELECT refresh_drift('unmonitored');
SELECT set_baseline('stream', '2030-01-01', '2030-02-01');
SELECT * FROM drift('stream', 'fortnight');
