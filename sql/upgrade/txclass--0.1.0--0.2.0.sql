-- txclass 0.1.0 → 0.2.0
--
-- Run by ALTER EXTENSION txclass UPDATE. Keeps every row of the registry, the rollout history,
-- rules, attached tables, drift summaries and evaluations; changes only functions and views.
-- Objects of a database still at 0.1.0 keep working on the 0.2.0 library (src/upgrade.rs), so
-- the update can run whenever it suits, after the library is installed.

-- 0.2.0's library must be the one this backend runs: the first new C function says so
-- clearly instead of failing half-way through with "could not find function".
DO $guard$
BEGIN
    CREATE FUNCTION txclass.worker_info() RETURNS TABLE (
        "worker" INT,
        "pid" INT,
        "started_at" timestamp with time zone,
        "models_loaded" bigint,
        "requests" bigint,
        "rows" bigint,
        "runs" bigint,
        "onnx_batches" bigint,
        "mean_rows_per_run" double precision,
        "queue_wait_p50_ms" double precision,
        "queue_wait_p99_ms" double precision,
        "busy_share" double precision,
        "restarts" bigint,
        "backend_fallbacks" bigint,
        "queue_full_waits" bigint,
        "slots_busy" bigint
    )
    STRICT VOLATILE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'worker_info_wrapper';
EXCEPTION WHEN undefined_function THEN
    RAISE EXCEPTION 'txclass: this backend runs an older txclass library than 0.2.0 (%)', SQLERRM
        USING HINT = 'Install txclass 0.2.0, then restart PostgreSQL if txclass is in shared_preload_libraries '
                     '(the postmaster keeps the library it started with), or reconnect if it is not; '
                     'then run ALTER EXTENSION txclass UPDATE again. Nothing was changed.';
END
$guard$;

-- Shared inference workers (txclass.inference = worker): statistics and their reset.
CREATE FUNCTION txclass.worker_stats_reset() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_stats_reset_wrapper';
REVOKE ALL ON FUNCTION txclass.worker_stats_reset() FROM PUBLIC;
CREATE VIEW txclass.worker_stats AS SELECT * FROM txclass.worker_info();
COMMENT ON VIEW txclass.worker_stats IS 'Shared inference workers (txclass.inference = worker): one row per worker.';

-- Two functions change their result columns, which CREATE OR REPLACE cannot do: each is
-- dropped and created again, and the privileges a DBA gave it are put back.
SELECT pg_catalog.set_config('txclass_upgrade.acl_' || f, coalesce((SELECT p.proacl::text FROM pg_catalog.pg_proc p
           WHERE p.oid = pg_catalog.to_regprocedure(s)), ''), true)
FROM (VALUES ('model_info', 'txclass.model_info()'), ('enrichment_status', 'txclass.enrichment_status(regclass)')) v(f, s);

-- model_info(): new column `inference` (backend or worker); new symbol (0.1.0's stays loadable)
DROP FUNCTION txclass.model_info();
CREATE FUNCTION txclass.model_info() RETURNS TABLE (
    "model" TEXT,
    "directory" TEXT,
    "checksum" TEXT,
    "labels" INT,
    "execution_provider" TEXT,
    "max_length" INT,
    "batch_size" INT,
    "onnxruntime_library" TEXT,
    "load_ms" double precision,
    "source" TEXT,
    "rules" INT,
    "inference" TEXT
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'model_info_0_2_wrapper';

-- enrichment_status(table): new column `problems` (what DDL since attach broke, with the fix)
DROP FUNCTION txclass.enrichment_status(regclass);
CREATE FUNCTION txclass.enrichment_status(tbl regclass)
RETURNS TABLE (rows bigint, enriched bigint, without_outputs bigint, models jsonb, problems text[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m txclass.monitored;
    broken text[];
BEGIN
    m := txclass._monitored(tbl);
    SELECT array_agg(CASE WHEN a.attname IS NULL THEN format('column %I no longer exists', w.name)
                          ELSE format('column %I is %s, txclass writes %s', w.name, format_type(a.atttypid, a.atttypmod), w.type) END
                     ORDER BY w.ord)
    INTO broken
    FROM (VALUES (1, m.descriptor_column, NULL), (2, m.label_column, 'text'), (3, m.category_column, 'text'),
                 (4, m.confidence_column, 'real'), (5, m.model_column, 'text')) w(ord, name, type)
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attname = w.name AND a.attnum > 0 AND NOT a.attisdropped
    WHERE a.attname IS NULL OR (w.type IS NOT NULL AND format_type(a.atttypid, a.atttypmod) <> w.type);
    IF broken IS NOT NULL THEN
        RETURN QUERY EXECUTE format('SELECT count(*), NULL::bigint, NULL::bigint, NULL::jsonb, $1 FROM %s', tbl)
            USING broken || ARRAY['re-run txclass.attach() with the current column names, then txclass.backfill()'];
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT count(*), count(%1$I), count(*) FILTER (WHERE %1$I IS NULL AND %2$I IS NOT NULL), '
        '(SELECT coalesce(jsonb_object_agg(coalesce(x.m, ''(none)''), x.n), ''{}'') FROM (SELECT %3$I AS m, count(*) AS n FROM %4$s GROUP BY 1) x), '
        '''{}''::text[] FROM %4$s', m.label_column, m.descriptor_column, m.model_column, tbl);
END
$$;

DO $acl$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN SELECT * FROM (VALUES ('model_info', 'txclass.model_info()'),
                                   ('enrichment_status', 'txclass.enrichment_status(regclass)')) v(name, sig) LOOP
        CONTINUE WHEN pg_catalog.current_setting('txclass_upgrade.acl_' || f.name) = '';
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
        FOR g IN SELECT a.grantee, a.is_grantable
                 FROM pg_catalog.aclexplode(pg_catalog.current_setting('txclass_upgrade.acl_' || f.name)::aclitem[]) a LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', f.sig,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                           CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
END
$acl$;

-- Drift statuses that mean something: every comparison gets the probability of its difference
-- under sampling noise (G-test with rare classes pooled; proportions), a status needs that and
-- the effect size; low-volume buckets are 'n/a (low volume)'; category-level metrics; the
-- baseline records how many rows it was measured on, its own never-seen share (and its curve
-- over history), its category shares and whether its label shares are the model's predictions.
-- Rows are kept; baselines set before 0.2.0 lack the new fields until set again
-- (SELECT txclass.set_baseline(table)).
ALTER TABLE txclass.drift_counts ADD COLUMN category text;
ALTER TABLE txclass.drift_baseline ADD COLUMN rows bigint, ADD COLUMN new_share float8, ADD COLUMN new_share_curve jsonb,
    ADD COLUMN category_shares jsonb, ADD COLUMN label_shares_kind text;
ALTER TABLE txclass.monitored ALTER COLUMN thresholds SET DEFAULT '{"psi_warn": 0.1, "psi_alert": 0.25, "js_warn": 0.1, "js_alert": 0.2,
                                                "new_warn": 0.15, "new_alert": 0.3, "low_confidence": 0.5,
                                                "p_warn": 0.01, "p_alert": 0.001, "min_rows": 50}';
CREATE FUNCTION txclass._homogeneity(
	"labels" TEXT[],
	"counts" double precision[],
	"baseline_labels" TEXT[],
	"baseline_shares" double precision[],
	"baseline_rows" double precision
) RETURNS TABLE (
	"statistic" double precision,
	"df" INT,
	"p_value" double precision
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_homogeneity_wrapper';
CREATE FUNCTION txclass._histogram_p(
	"current" double precision[],
	"baseline" double precision[],
	"baseline_rows" double precision
) RETURNS double precision
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_histogram_p_wrapper';
CREATE FUNCTION txclass._share_exceeds(
	"k" double precision,
	"n" double precision,
	"p0" double precision,
	"m0" double precision
) RETURNS double precision
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_share_exceeds_wrapper';
CREATE FUNCTION txclass._gated_status(
	"effect" double precision,
	"p" double precision,
	"warn" double precision,
	"alert" double precision,
	"p_warn" double precision,
	"p_alert" double precision
) RETURNS TEXT
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_gated_status_wrapper';
CREATE FUNCTION txclass._curve_at(
	"curve" jsonb,
	"history" double precision
) RETURNS double precision
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_curve_at_wrapper';

ALTER FUNCTION txclass._compare_distribution(text[], double precision[], text[], double precision[], integer) ROWS 1;
ALTER FUNCTION txclass._homogeneity(text[], double precision[], text[], double precision[], double precision) ROWS 1;
CREATE OR REPLACE FUNCTION drift_status(VARIADIC statuses text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN 'alert' = ANY(statuses) THEN 'alert' WHEN 'warn' = ANY(statuses) THEN 'warn'
                WHEN 'ok' = ANY(statuses) THEN 'ok' WHEN 'n/a (low volume)' = ANY(statuses) THEN 'n/a (low volume)'
                ELSE 'n/a' END
$$;

CREATE FUNCTION _drift_defaults() RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"psi_warn": 0.1, "psi_alert": 0.25, "js_warn": 0.1, "js_alert": 0.2, "new_warn": 0.15, "new_alert": 0.3,
             "low_confidence": 0.5, "p_warn": 0.01, "p_alert": 0.001, "min_rows": 50}'::jsonb
$$;

CREATE OR REPLACE FUNCTION set_baseline(tbl regclass) RETURNS drift_baseline LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE b jsonb; r txclass.drift_baseline;
BEGIN
    PERFORM txclass._check_reader(tbl);
    b := txclass._model_baseline();
    INSERT INTO txclass.drift_baseline (relid, kind, source, label_shares, confidence_histogram, unk_share, mean_tokens,
                                        rows, new_share, new_share_curve, category_shares, label_shares_kind)
    VALUES (tbl, 'training', coalesce(b->>'model', '') || ': ' || coalesce(b->>'source', 'training set'), b->'label_shares',
            (SELECT array_agg(x::float8) FROM jsonb_array_elements_text(b->'confidence_histogram') x),
            (b->>'unk_token_share')::float8, (b->>'mean_tokens')::float8,
            (b->>'rows')::bigint, (b->>'new_descriptor_share')::float8, b->'new_descriptor_curve', b->'category_shares',
            b->>'label_shares_kind')
    ON CONFLICT (relid) DO UPDATE SET kind = EXCLUDED.kind, source = EXCLUDED.source, label_shares = EXCLUDED.label_shares,
        confidence_histogram = EXCLUDED.confidence_histogram, unk_share = EXCLUDED.unk_share,
        mean_tokens = EXCLUDED.mean_tokens, window_from = NULL, window_to = NULL, set_at = now(),
        rows = EXCLUDED.rows, new_share = EXCLUDED.new_share, new_share_curve = EXCLUDED.new_share_curve,
        category_shares = EXCLUDED.category_shares, label_shares_kind = EXCLUDED.label_shares_kind
    RETURNING * INTO r;
    RETURN r;
END
$$;

CREATE OR REPLACE FUNCTION set_baseline(tbl regclass, "from" timestamptz, "to" timestamptz) RETURNS drift_baseline
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r txclass.drift_baseline; total bigint; first_bucket timestamptz;
BEGIN
    PERFORM txclass._check_reader(tbl);
    PERFORM txclass.refresh_drift(tbl);
    SELECT min(c.bucket) INTO first_bucket FROM txclass.drift_counts c WHERE c.relid = tbl;
    SELECT sum(c.rows) INTO total FROM txclass.drift_counts c
    WHERE c.relid = tbl AND c.bucket >= set_baseline."from" AND c.bucket < set_baseline."to";
    IF coalesce(total, 0) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('no rows of %s fall in [%s, %s)', tbl, set_baseline."from", set_baseline."to");
    END IF;
    INSERT INTO txclass.drift_baseline (relid, kind, source, label_shares, confidence_histogram, unk_share, mean_tokens,
                                        window_from, window_to, rows, new_share, new_share_curve, category_shares,
                                        label_shares_kind)
    SELECT tbl, 'window', format('%s rows from %s to %s', total, set_baseline."from", set_baseline."to"),
           (SELECT jsonb_object_agg(l.label, l.n::float8 / total) FROM (
                SELECT c.label, sum(c.rows) n FROM txclass.drift_counts c
                WHERE c.relid = tbl AND c.bucket >= set_baseline."from" AND c.bucket < set_baseline."to"
                  AND c.label <> '(none)' GROUP BY c.label) l),
           txclass._hist_sum(array_agg(c.conf_hist)),
           sum(c.unk)::float8 / nullif(sum(c.tokens), 0), sum(c.tokens)::float8 / nullif(sum(c.rows), 0),
           set_baseline."from", set_baseline."to",
           sum(c.rows) FILTER (WHERE c.label <> '(none)'),
           -- the table's first bucket has nothing to be new against
           sum(c.new_rows) FILTER (WHERE c.bucket > first_bucket)::float8 / nullif(sum(c.rows) FILTER (WHERE c.bucket > first_bucket), 0),
           -- each window bucket's never-seen share at the table's history before it
           (SELECT jsonb_agg(jsonb_build_array(w.history, w.share) ORDER BY w.history) FROM (
                SELECT sum(sum(c2.rows)) OVER (ORDER BY c2.bucket) - sum(c2.rows) AS history,
                       sum(c2.new_rows)::float8 / nullif(sum(c2.rows), 0) AS share, c2.bucket
                FROM txclass.drift_counts c2 WHERE c2.relid = tbl AND c2.bucket < set_baseline."to" GROUP BY c2.bucket) w
            WHERE w.bucket >= set_baseline."from" AND w.bucket > first_bucket AND w.share IS NOT NULL),
           (SELECT CASE WHEN bool_and(l.category IS NOT NULL) THEN jsonb_object_agg(coalesce(l.category, ''), l.n::float8 / total) END
            FROM (SELECT c.category, sum(c.rows) n FROM txclass.drift_counts c
                WHERE c.relid = tbl AND c.bucket >= set_baseline."from" AND c.bucket < set_baseline."to"
                  AND c.label <> '(none)' GROUP BY 1) l),
           'predicted'
    FROM txclass.drift_counts c
    WHERE c.relid = tbl AND c.bucket >= set_baseline."from" AND c.bucket < set_baseline."to"
    ON CONFLICT (relid) DO UPDATE SET kind = EXCLUDED.kind, source = EXCLUDED.source, label_shares = EXCLUDED.label_shares,
        confidence_histogram = EXCLUDED.confidence_histogram, unk_share = EXCLUDED.unk_share,
        mean_tokens = EXCLUDED.mean_tokens, window_from = EXCLUDED.window_from, window_to = EXCLUDED.window_to, set_at = now(),
        rows = EXCLUDED.rows, new_share = EXCLUDED.new_share, new_share_curve = EXCLUDED.new_share_curve,
        category_shares = EXCLUDED.category_shares, label_shares_kind = EXCLUDED.label_shares_kind
    RETURNING * INTO r;
    RETURN r;
END
$$;

CREATE OR REPLACE FUNCTION refresh_drift(tbl regclass) RETURNS bigint LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE m txclass.monitored; key_type text; upto text; n bigint;
BEGIN
    m := txclass._check_reader(tbl);
    IF m.key_column IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no single-column primary key; drift summaries are folded in key order', tbl);
    END IF;
    -- one refresh per table at a time
    PERFORM pg_advisory_xact_lock('txclass.monitored'::regclass::oid::int, tbl::oid::int);
    SELECT watermark INTO m.watermark FROM txclass.monitored WHERE relid = tbl;
    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = m.key_column;
    IF NOT EXISTS (SELECT FROM txclass.drift_baseline WHERE relid = tbl) THEN
        PERFORM txclass.set_baseline(tbl);
    END IF;
    EXECUTE format('SELECT max(%I)::text FROM %s', m.key_column, tbl) INTO upto;
    IF upto IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format($q$
        WITH inc AS MATERIALIZED (
            SELECT date_trunc(%1$L, %2$I::timestamptz) AS b, coalesce(%3$I, '(none)') AS label, %4$I::float8 AS conf,
                   coalesce(%10$I, '(none)') AS category,
                   least(floor(%4$I * 10), 9)::int AS bin, txclass._input_stats(%5$I) AS s
            FROM %6$s WHERE ($1 IS NULL OR %7$I > $1::%8$s) AND %7$I <= $2::%8$s AND %2$I IS NOT NULL),
        fresh AS (
            INSERT INTO txclass.drift_seen (relid, h) SELECT DISTINCT %9$L::regclass, s[3] FROM inc WHERE s[3] <> 0
            ON CONFLICT DO NOTHING RETURNING h),
        -- a descriptor is new in the first bucket it appears in, if no earlier refresh saw it
        firsts AS (SELECT s[3] AS h, min(b) AS first_b FROM inc WHERE s[3] <> 0 GROUP BY s[3]),
        agg AS (
            SELECT inc.b, inc.label, count(*) AS rows, coalesce(sum(inc.conf), 0) AS conf_sum,
                   ARRAY[count(*) FILTER (WHERE bin = 0), count(*) FILTER (WHERE bin = 1), count(*) FILTER (WHERE bin = 2), count(*) FILTER (WHERE bin = 3), count(*) FILTER (WHERE bin = 4), count(*) FILTER (WHERE bin = 5), count(*) FILTER (WHERE bin = 6), count(*) FILTER (WHERE bin = 7), count(*) FILTER (WHERE bin = 8), count(*) FILTER (WHERE bin = 9)] AS conf_hist,
                   sum(inc.s[1]) AS tokens, sum(inc.s[2]) AS unk,
                   count(f.h) FILTER (WHERE fi.first_b = inc.b) AS new_rows, max(inc.category) AS category
            FROM inc LEFT JOIN fresh f ON f.h = inc.s[3] LEFT JOIN firsts fi ON fi.h = inc.s[3]
            GROUP BY inc.b, inc.label),
        ins AS (
            INSERT INTO txclass.drift_counts AS d (relid, bucket, label, rows, conf_sum, conf_hist, tokens, unk, new_rows, category)
            SELECT %9$L::regclass, b, label, rows, conf_sum, conf_hist, tokens, unk, new_rows, category FROM agg
            ON CONFLICT (relid, bucket, label) DO UPDATE SET rows = d.rows + EXCLUDED.rows,
                conf_sum = d.conf_sum + EXCLUDED.conf_sum,
                conf_hist = ARRAY(SELECT x + y FROM unnest(d.conf_hist, EXCLUDED.conf_hist) WITH ORDINALITY u(x, y, o) ORDER BY o),
                tokens = d.tokens + EXCLUDED.tokens, unk = d.unk + EXCLUDED.unk, new_rows = d.new_rows + EXCLUDED.new_rows,
                category = coalesce(EXCLUDED.category, d.category)
            RETURNING 1)
        SELECT (SELECT count(*) FROM inc) + 0 * (SELECT count(*) FROM ins)
        $q$, m.drift_unit, m.time_column, m.label_column, m.confidence_column, m.descriptor_column, tbl,
             m.key_column, key_type, tbl::oid::text, m.category_column)
    INTO n USING m.watermark, upto;
    UPDATE txclass.monitored SET watermark = upto WHERE relid = tbl;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION set_drift_thresholds(tbl regclass, thresholds jsonb) RETURNS jsonb LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r jsonb; k text;
BEGIN
    PERFORM txclass._check_owner(tbl, 'set its drift thresholds');
    FOR k IN SELECT jsonb_object_keys(thresholds) LOOP
        IF k NOT IN ('psi_warn', 'psi_alert', 'js_warn', 'js_alert', 'new_warn', 'new_alert', 'low_confidence',
                     'p_warn', 'p_alert', 'min_rows') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format('unknown drift threshold %L', k),
                HINT = 'thresholds: psi_warn, psi_alert, js_warn, js_alert, new_warn, new_alert, low_confidence (a multiple of 0.1), '
                       'p_warn, p_alert (probabilities in (0, 1)), min_rows (rows a bucket needs for a status)';
        END IF;
        IF k IN ('p_warn', 'p_alert') AND NOT (jsonb_typeof(thresholds->k) = 'number' AND (thresholds->>k)::float8 > 0
                                               AND (thresholds->>k)::float8 < 1) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('drift threshold %s must be a probability between 0 and 1, not %s', k, thresholds->k);
        END IF;
        IF k = 'min_rows' AND NOT (jsonb_typeof(thresholds->k) = 'number' AND (thresholds->>k)::float8 >= 0) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('drift threshold min_rows must be a number of rows >= 0, not %s', thresholds->k);
        END IF;
    END LOOP;
    UPDATE txclass.monitored SET thresholds = monitored.thresholds || set_drift_thresholds.thresholds WHERE relid = tbl
    RETURNING monitored.thresholds INTO r;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not monitored', tbl;
    END IF;
    RETURN r;
END
$$;

DROP VIEW txclass.drift_summary;
DROP FUNCTION txclass.drift(regclass, text);
CREATE FUNCTION drift(tbl regclass, unit text DEFAULT NULL)
RETURNS TABLE (bucket timestamptz, rows bigint, label_psi float8, label_js float8, top_movers jsonb,
               confidence_mean float8, low_confidence_share float8, confidence_psi float8,
               new_descriptor_share float8, unk_token_share float8, mean_tokens float8,
               label_psi_status text, label_js_status text, confidence_psi_status text, new_descriptor_status text,
               status text,
               label_p float8, category_psi float8, category_js float8, category_p float8, category_status text,
               confidence_p float8, baseline_new_descriptor_share float8, new_descriptor_p float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m txclass.monitored;
    bl txclass.drift_baseline;
    u text;
    th jsonb;
    base_labels text[];
    base_shares float8[];
    base_cats text[];
    base_cat_shares float8[];
    first_bucket timestamptz;
    low_bins int;
    p_warn float8;
    p_alert float8;
    min_rows float8;
BEGIN
    m := txclass._check_reader(tbl);
    u := coalesce(unit, m.drift_unit);
    IF u NOT IN ('hour', 'day', 'week', 'month', 'quarter', 'year') THEN
        RAISE EXCEPTION 'unit must be hour, day, week, month, quarter or year, not %', u;
    END IF;
    SELECT * INTO bl FROM txclass.drift_baseline b WHERE b.relid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no drift summaries yet', tbl),
            HINT = format('run SELECT txclass.refresh_drift(%L) (and schedule it)', tbl::text);
    END IF;
    th := txclass._drift_defaults() || m.thresholds;
    low_bins := round((th->>'low_confidence')::numeric * 10)::int;
    p_warn := (th->>'p_warn')::float8;
    p_alert := (th->>'p_alert')::float8;
    min_rows := (th->>'min_rows')::float8;
    SELECT array_agg(key ORDER BY key), array_agg(value::float8 ORDER BY key) INTO base_labels, base_shares
    FROM jsonb_each_text(bl.label_shares);
    SELECT array_agg(key ORDER BY key), array_agg(value::float8 ORDER BY key) INTO base_cats, base_cat_shares
    FROM jsonb_each_text(bl.category_shares);
    SELECT min(date_trunc(u, c.bucket)) INTO first_bucket FROM txclass.drift_counts c WHERE c.relid = tbl;
    RETURN QUERY
    WITH per_label AS (
        -- category NULL: summaries folded in before 0.2.0 (no category metrics for their buckets)
        SELECT date_trunc(u, c.bucket) AS b, c.label, max(c.category) AS category,
               sum(c.rows) AS n, sum(c.conf_sum) AS conf_sum,
               sum(c.tokens) AS tokens, sum(c.unk) AS unk, sum(c.new_rows) AS new_rows,
               txclass._hist_sum(array_agg(c.conf_hist)) AS hist
        FROM txclass.drift_counts c WHERE c.relid = tbl
        GROUP BY 1, 2),
    per_category AS (
        SELECT x.b, array_agg(x.category ORDER BY x.category) AS cats, array_agg(x.n ORDER BY x.category) AS cat_counts
        FROM (SELECT p.b, p.category, sum(p.n)::float8 AS n FROM per_label p WHERE p.label <> '(none)' GROUP BY 1, 2) x
        GROUP BY x.b HAVING bool_and(x.category IS NOT NULL)),
    per_bucket AS (
        SELECT p.b, sum(p.n)::bigint AS n, (sum(sum(p.n)) OVER (ORDER BY p.b) - sum(p.n))::float8 AS history,
               array_agg(p.label ORDER BY p.label) AS labels,
               array_agg(p.n::float8 ORDER BY p.label) FILTER (WHERE true) AS counts,
               sum(p.conf_sum) AS conf_sum, sum(p.tokens) AS tokens, sum(p.unk) AS unk, sum(p.new_rows) AS new_rows,
               txclass._hist_sum(array_agg(p.hist::bigint[])) AS hist
        FROM per_label p GROUP BY p.b),
    scored AS (
        SELECT pb.*, d.psi, d.js_distance, d.top_movers, g.p_value AS lp,
               -- a baseline without category shares (set before 0.2.0) has no category metrics
               CASE WHEN base_cats IS NOT NULL THEN cd.psi END AS cpsi, CASE WHEN base_cats IS NOT NULL THEN cd.js_distance END AS cjs,
               CASE WHEN base_cats IS NOT NULL THEN cg.p_value END AS cp,
               (SELECT sum(x) FROM unnest(pb.hist) x) AS classified,
               (SELECT sum(x) FROM unnest(pb.hist[1:low_bins]) x) AS low
        FROM per_bucket pb
        LEFT JOIN per_category pc ON pc.b = pb.b,
             -- rows without a label are not part of the predicted-label distribution
             LATERAL (SELECT ARRAY(SELECT l FROM unnest(pb.labels, pb.counts) z(l, c) WHERE l <> '(none)') AS ls,
                             ARRAY(SELECT c FROM unnest(pb.labels, pb.counts) z(l, c) WHERE l <> '(none)') AS cs) v,
             LATERAL txclass._compare_distribution(v.ls, v.cs, base_labels, base_shares, 5) d,
             LATERAL txclass._homogeneity(v.ls, v.cs, base_labels, base_shares, bl.rows::float8) g,
             LATERAL txclass._compare_distribution(coalesce(pc.cats, '{}'), coalesce(pc.cat_counts, '{}'),
                                                   coalesce(base_cats, '{}'), coalesce(base_cat_shares, '{}'), 0) cd,
             LATERAL txclass._homogeneity(coalesce(pc.cats, '{}'), coalesce(pc.cat_counts, '{}'),
                                          coalesce(base_cats, '{}'), coalesce(base_cat_shares, '{}'), bl.rows::float8) cg),
    measured AS (
        SELECT sc.*,
               CASE WHEN bl.confidence_histogram IS NOT NULL AND sc.classified > 0
                    THEN txclass._histogram_psi(sc.hist, bl.confidence_histogram) END AS conf_psi,
               CASE WHEN bl.confidence_histogram IS NOT NULL AND sc.classified > 0
                    THEN txclass._histogram_p(sc.hist, bl.confidence_histogram, bl.rows::float8) END AS conf_p,
               -- nothing to be new against: the first bucket, and the reference window itself
               CASE WHEN sc.b > first_bucket AND (bl.kind = 'training' OR sc.b >= bl.window_to)
                    THEN sc.new_rows::float8 / nullif(sc.n, 0) END AS new_share,
               sc.n < min_rows AS low_volume,
               coalesce(txclass._curve_at(bl.new_share_curve, sc.history), bl.new_share) AS base_new
        FROM scored sc),
    judged AS (
        SELECT ms.*,
               CASE WHEN ms.new_share IS NOT NULL AND ms.base_new IS NOT NULL
                    THEN txclass._share_exceeds(ms.new_rows::float8, ms.n::float8, ms.base_new, bl.rows::float8) END AS new_p,
               CASE WHEN ms.low_volume THEN 'n/a (low volume)'
                    ELSE txclass._gated_status(ms.psi, ms.lp, (th->>'psi_warn')::float8, (th->>'psi_alert')::float8, p_warn, p_alert) END AS s1,
               CASE WHEN ms.low_volume THEN 'n/a (low volume)'
                    ELSE txclass._gated_status(ms.js_distance, ms.lp, (th->>'js_warn')::float8, (th->>'js_alert')::float8, p_warn, p_alert) END AS s2,
               CASE WHEN ms.low_volume THEN 'n/a (low volume)'
                    ELSE txclass._gated_status(ms.conf_psi, ms.conf_p, (th->>'psi_warn')::float8, (th->>'psi_alert')::float8, p_warn, p_alert) END AS s3,
               CASE WHEN ms.low_volume THEN 'n/a (low volume)'
                    ELSE txclass._gated_status(ms.cpsi, ms.cp, (th->>'psi_warn')::float8, (th->>'psi_alert')::float8, p_warn, p_alert) END AS s5
        FROM measured ms),
    judged_new AS (
        SELECT j.*,
               CASE WHEN j.low_volume THEN 'n/a (low volume)'
                    -- the rise over the baseline's own never-seen share (over 0 for a baseline without one)
                    ELSE txclass._gated_status(j.new_share - coalesce(j.base_new, 0), j.new_p,
                                               (th->>'new_warn')::float8, (th->>'new_alert')::float8, p_warn, p_alert) END AS s4
        FROM judged j)
    SELECT q.b, q.n, q.psi, q.js_distance, q.top_movers,
           q.conf_sum / nullif(q.classified, 0),
           q.low / nullif(q.classified, 0),
           q.conf_psi,
           q.new_share,
           q.unk::float8 / nullif(q.tokens, 0),
           q.tokens::float8 / nullif(q.n, 0),
           q.s1, q.s2, q.s3, q.s4,
           txclass.drift_status(q.s1, q.s2, q.s3, q.s4, q.s5),
           q.lp, q.cpsi, q.cjs, q.cp, q.s5, q.conf_p, q.base_new, q.new_p
    FROM judged_new q
    ORDER BY 1;
END
$$;

CREATE VIEW drift_summary AS
SELECT m.relid AS "table", b.kind AS baseline, d.bucket, d.rows, round(d.label_psi::numeric, 4) AS label_psi,
       round(d.label_js::numeric, 4) AS label_js, round(d.confidence_mean::numeric, 4) AS confidence_mean,
       round(d.new_descriptor_share::numeric, 4) AS new_descriptor_share,
       d.label_psi_status, d.label_js_status, d.confidence_psi_status, d.new_descriptor_status,
       d.status, d.category_status
FROM txclass.monitored m
JOIN txclass.drift_baseline b ON b.relid = m.relid
CROSS JOIN LATERAL (SELECT * FROM txclass.drift(m.relid) x ORDER BY x.bucket DESC LIMIT 1) d
WHERE has_table_privilege(m.relid, 'SELECT');
GRANT SELECT ON drift_summary TO PUBLIC;

-- Processor and merchant parsing (the intermediary, merchant, store number and location)
CREATE FUNCTION txclass.parse_descriptor(
	"descriptor" TEXT
) RETURNS TABLE (
	"intermediary" TEXT,
	"merchant" TEXT,
	"store" TEXT,
	"city" TEXT,
	"region" TEXT,
	"merchant_key" TEXT
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'parse_descriptor_wrapper';
