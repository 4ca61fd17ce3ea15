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

-- Recurring payments and subscriptions: attach gains account_column and amount_column (a
-- re-attach keeps what it does not name), per-account charges and series, refresh_recurring,
-- refresh_all, recurring, subscriptions, upcoming, price_changes
ALTER TABLE txclass.monitored ADD COLUMN account_column name, ADD COLUMN amount_column name,
    ADD COLUMN recurring_watermark text;
DROP FUNCTION txclass.attach(regclass, name, name, name, name, name, text, name, text);
CREATE FUNCTION attach(tbl regclass, descriptor_column name,
                       label_column name DEFAULT 'txclass_label',
                       category_column name DEFAULT 'txclass_category',
                       confidence_column name DEFAULT 'txclass_confidence',
                       model_column name DEFAULT 'txclass_model',
                       on_error text DEFAULT 'null',
                       time_column name DEFAULT NULL,
                       drift_unit text DEFAULT NULL,
                       account_column name DEFAULT NULL,
                       amount_column name DEFAULT NULL)
RETURNS monitored LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    caller text := txclass._caller();
    col record;
    want record;
    key_col name;
    key_type text;
    update_sql text;
    m txclass.monitored;
BEGIN
    PERFORM txclass._check_owner(tbl, 'attach it');
    IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl;
    END IF;
    IF on_error NOT IN ('null', 'error') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('on_error must be ''null'' (write the row with NULL outputs) or ''error'' (fail the statement), not %L', on_error);
    END IF;
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type INTO col
    FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = descriptor_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_column',
            MESSAGE = format('column %I of %s does not exist', descriptor_column, tbl);
    END IF;
    IF col.type NOT IN ('text') AND col.type NOT LIKE 'character varying%' THEN
        RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
            MESSAGE = format('descriptor column %I of %s is %s; it must be text or varchar', descriptor_column, tbl, col.type);
    END IF;
    -- output columns: added when missing, checked when present
    FOR want IN SELECT * FROM (VALUES (label_column, 'text'), (category_column, 'text'),
                                      (confidence_column, 'real'), (model_column, 'text')) v(name, type) LOOP
        SELECT format_type(a.atttypid, a.atttypmod) AS type INTO col
        FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = want.name AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', tbl, want.name, want.type);
        ELSIF col.type <> want.type THEN
            RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
                MESSAGE = format('column %I of %s is %s but txclass writes %s into it', want.name, tbl, col.type, want.type),
                HINT = 'name other output columns in txclass.attach(..., label_column => ...), or change the column type';
        END IF;
    END LOOP;
    -- a re-attach keeps the time column, drift unit, account and amount columns it does not name
    SELECT coalesce(attach.time_column, o.time_column), coalesce(attach.drift_unit, o.drift_unit, 'day'),
           coalesce(attach.account_column, o.account_column), coalesce(attach.amount_column, o.amount_column)
    INTO time_column, drift_unit, account_column, amount_column
    FROM (SELECT 1) x LEFT JOIN txclass.monitored o ON o.relid = tbl;
    -- the time the drift views bucket by: the caller's column, or txclass_at (insert time)
    IF time_column IS NULL THEN
        time_column := 'txclass_at';
        IF NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = 'txclass_at' AND NOT a.attisdropped) THEN
            EXECUTE format('ALTER TABLE %s ADD COLUMN txclass_at timestamptz DEFAULT now()', tbl);
        END IF;
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod) AS type INTO col
    FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = time_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND OR col.type NOT IN ('timestamp with time zone', 'timestamp without time zone', 'date') THEN
        RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
            MESSAGE = format('time column %I of %s must exist and be timestamptz, timestamp or date', time_column, tbl);
    END IF;
    IF drift_unit NOT IN ('hour', 'day', 'week', 'month') THEN
        RAISE EXCEPTION 'drift_unit must be hour, day, week or month, not %', drift_unit;
    END IF;
    IF account_column IS NOT NULL AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = tbl
            AND a.attname = account_column AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_column', MESSAGE = format('column %I of %s does not exist', account_column, tbl);
    END IF;
    IF amount_column IS NOT NULL THEN
        SELECT format_type(a.atttypid, a.atttypmod) AS type INTO col
        FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = amount_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND OR (col.type NOT IN ('real', 'double precision', 'integer', 'bigint', 'smallint', 'money')
                         AND col.type NOT LIKE 'numeric%') THEN
            RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
                MESSAGE = format('amount column %I of %s must exist and be numeric, real, double precision or an integer', amount_column, tbl);
        END IF;
    END IF;
    -- a single-column primary key lets misses be classified per statement in batches
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) INTO key_col, key_type
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = tbl AND i.indisprimary AND i.indnatts = 1;
    IF key_col IS NULL THEN
        RAISE NOTICE '% has no single-column primary key: cache misses are classified one row at a time, and txclass.backfill needs a key', tbl;
    END IF;
    PERFORM txclass._drop_enrich_triggers(tbl);
    IF key_col IS NOT NULL THEN
        update_sql := format('UPDATE %s AS t SET %I = u.l, %I = u.c, %I = u.f, %I = u.m '
                             'FROM unnest($1::text[], $2::text[], $3::text[], $4::real[], $5::text[]) AS u(k, l, c, f, m) '
                             'WHERE t.%I = u.k::%s',
                             tbl, label_column, category_column, confidence_column, model_column, key_col, key_type);
    END IF;
    EXECUTE format('CREATE TRIGGER txclass_enrich BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION txclass._enrich_row(%L, %L, %L, %L, %L, %L, %L, %L)',
                   descriptor_column, tbl, descriptor_column, label_column, category_column,
                   confidence_column, model_column, on_error, coalesce(key_col, ''), coalesce(update_sql, ''));
    IF key_col IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER txclass_enrich_batch AFTER INSERT OR UPDATE OF %I ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION txclass._enrich_statement(%L, %L)',
                       descriptor_column, tbl, on_error, update_sql);
    END IF;
    INSERT INTO txclass.monitored (relid, descriptor_column, label_column, category_column, confidence_column,
                                   model_column, key_column, on_error, attached_by, time_column, drift_unit,
                                   account_column, amount_column)
    VALUES (tbl, descriptor_column, label_column, category_column, confidence_column,
            model_column, key_col, on_error, caller, time_column, drift_unit, account_column, amount_column)
    ON CONFLICT (relid) DO UPDATE SET descriptor_column = EXCLUDED.descriptor_column, label_column = EXCLUDED.label_column,
        category_column = EXCLUDED.category_column, confidence_column = EXCLUDED.confidence_column,
        model_column = EXCLUDED.model_column, key_column = EXCLUDED.key_column, on_error = EXCLUDED.on_error,
        attached_by = EXCLUDED.attached_by, attached_at = now(), time_column = EXCLUDED.time_column,
        drift_unit = EXCLUDED.drift_unit, account_column = EXCLUDED.account_column, amount_column = EXCLUDED.amount_column
    RETURNING * INTO m;
    RETURN m;
END
$$;

REVOKE ALL ON FUNCTION attach(regclass, name, name, name, name, name, text, name, text, name, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION attach(regclass, name, name, name, name, name, text, name, text, name, name) TO PUBLIC;
CREATE FUNCTION txclass._detect_series(
	"days" INT[],
	"amounts" double precision[]
) RETURNS TABLE (
	"series" INT,
	"cadence" TEXT,
	"regularity" double precision,
	"charges" INT,
	"extras" INT,
	"amount" double precision,
	"fixed_amount" bool,
	"price_changes" jsonb,
	"first_day" INT,
	"last_day" INT,
	"next_expected" INT,
	"next_amount" double precision,
	"anchor_day" INT
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_detect_series_wrapper';
CREATE FUNCTION txclass._series_status(
	"cadence" TEXT,
	"next_expected" INT,
	"anchor_day" INT,
	"today" INT
) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_series_status_wrapper';
CREATE FUNCTION txclass._subscription_labels() RETURNS TEXT[]
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_subscription_labels_wrapper';

-- Recurring payments and subscriptions (see core/src/recurring.rs for the detection).
--
-- A table attached with account_column and amount_column (and its time_column) is summarized
-- by txclass.refresh_recurring(table): rows added since its last run (by primary key; late
-- rows included) are folded into per-account, per-merchant charges (day, amount, count); the
-- series of every account and merchant that got new charges are detected again. The merchant
-- is the model's label where the model is confident (>= 0.9), else the descriptor's merchant
-- key (txclass.parse_descriptor), so long-tail merchants recur too, and a service billed through
-- PayPal and directly is one merchant. The views read only the summaries.

CREATE TABLE recurring_charges (
    relid    regclass NOT NULL,
    account  text NOT NULL,
    merchant text NOT NULL,
    day      date NOT NULL,
    amount   float8 NOT NULL,
    n        integer NOT NULL,
    label    text,
    category text,
    PRIMARY KEY (relid, account, merchant, day, amount)
);
COMMENT ON TABLE recurring_charges IS 'txclass recurring payments: charges per monitored table, account, merchant, day and amount';

CREATE TABLE recurring_series (
    relid         regclass NOT NULL,
    account       text NOT NULL,
    merchant      text NOT NULL,
    series        integer NOT NULL,
    label         text,
    category      text,
    cadence       text NOT NULL,
    regularity    float8 NOT NULL,
    charges       integer NOT NULL,
    extras        integer NOT NULL,
    amount        float8 NOT NULL,
    fixed_amount  boolean NOT NULL,
    price_changes jsonb NOT NULL,
    first_charge  date NOT NULL,
    last_charge   date NOT NULL,
    next_expected date NOT NULL,
    next_amount   float8 NOT NULL,
    anchor_day    integer NOT NULL,
    PRIMARY KEY (relid, account, merchant, series)
);
COMMENT ON TABLE recurring_series IS 'txclass recurring payments: the series detected per monitored table, account and merchant';
CREATE INDEX recurring_series_next ON recurring_series (relid, next_expected);

SELECT pg_catalog.pg_extension_config_dump('txclass.recurring_charges', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.recurring_series', '');

-- a role sees the charges and series of tables it may SELECT
ALTER TABLE recurring_charges ENABLE ROW LEVEL SECURITY;
ALTER TABLE recurring_series ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers ON recurring_charges FOR SELECT USING (has_table_privilege(relid, 'SELECT'));
CREATE POLICY readers ON recurring_series FOR SELECT USING (has_table_privilege(relid, 'SELECT'));
GRANT SELECT ON recurring_charges, recurring_series TO PUBLIC;

-- Folds rows added since the last refresh into the charges and detects the touched series
-- again; returns how many rows it read.
CREATE FUNCTION refresh_recurring(tbl regclass) RETURNS bigint LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE m txclass.monitored; key_type text; upto text; n bigint; accounts text[]; merchants text[];
BEGIN
    m := txclass._check_reader(tbl);
    IF m.account_column IS NULL OR m.amount_column IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no account and amount columns for recurring payments', tbl),
            HINT = format('re-attach it naming them: SELECT txclass.attach(%L, %L, account_column => ..., amount_column => ...)',
                          tbl::text, m.descriptor_column);
    END IF;
    IF m.key_column IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no single-column primary key; recurring charges are folded in key order', tbl);
    END IF;
    PERFORM pg_advisory_xact_lock('txclass.recurring_charges'::regclass::oid::int, tbl::oid::int);
    SELECT recurring_watermark INTO m.recurring_watermark FROM txclass.monitored WHERE relid = tbl;
    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = m.key_column;
    EXECUTE format('SELECT max(%I)::text FROM %s', m.key_column, tbl) INTO upto;
    IF upto IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format($q$
        WITH inc AS MATERIALIZED (
            SELECT %1$I::text AS account,
                   CASE WHEN %2$I IS NOT NULL AND %3$I >= 0.9 THEN %2$I
                        ELSE (SELECT p.merchant_key FROM txclass.parse_descriptor(%4$I) p) END AS merchant,
                   %5$I::date AS day, %6$I::float8 AS amount,
                   -- the label and category name the series only where they named the merchant
                   CASE WHEN %2$I IS NOT NULL AND %3$I >= 0.9 THEN %2$I END AS label,
                   CASE WHEN %2$I IS NOT NULL AND %3$I >= 0.9 THEN %7$I END AS category
            FROM %8$s WHERE ($1 IS NULL OR %9$I > $1::%10$s) AND %9$I <= $2::%10$s
              AND %1$I IS NOT NULL AND %5$I IS NOT NULL AND %6$I > 0),
        agg AS (
            SELECT account, merchant, day, amount, count(*)::int AS n, max(label) AS label, max(category) AS category
            FROM inc WHERE merchant IS NOT NULL AND merchant <> '' GROUP BY 1, 2, 3, 4),
        ins AS (
            INSERT INTO txclass.recurring_charges AS r (relid, account, merchant, day, amount, n, label, category)
            SELECT %11$L::regclass, account, merchant, day, amount, n, label, category FROM agg
            ON CONFLICT (relid, account, merchant, day, amount) DO UPDATE SET n = r.n + EXCLUDED.n,
                label = coalesce(EXCLUDED.label, r.label), category = coalesce(EXCLUDED.category, r.category)
            RETURNING account, merchant),
        touched AS (SELECT DISTINCT account, merchant FROM ins)
        SELECT (SELECT count(*) FROM inc), (SELECT array_agg(account ORDER BY account, merchant) FROM touched),
               (SELECT array_agg(merchant ORDER BY account, merchant) FROM touched)
        $q$, m.account_column, m.label_column, m.confidence_column, m.descriptor_column, m.time_column, m.amount_column,
             m.category_column, tbl, m.key_column, key_type, tbl::oid::text)
    INTO n, accounts, merchants USING m.recurring_watermark, upto;
    DELETE FROM txclass.recurring_series s USING unnest(accounts, merchants) t(account, merchant)
    WHERE s.relid = tbl AND s.account = t.account AND s.merchant = t.merchant;
    INSERT INTO txclass.recurring_series
    SELECT tbl, t.account, t.merchant, d.series, c.label, c.category, d.cadence, d.regularity, d.charges, d.extras,
           d.amount, d.fixed_amount, d.price_changes, '1970-01-01'::date + d.first_day, '1970-01-01'::date + d.last_day,
           '1970-01-01'::date + d.next_expected, d.next_amount, d.anchor_day
    FROM unnest(accounts, merchants) t(account, merchant),
         LATERAL (SELECT array_agg(r.day - '1970-01-01'::date ORDER BY r.day) AS days, array_agg(r.amount ORDER BY r.day) AS amounts,
                         max(r.label) AS label, max(r.category) AS category
                  FROM txclass.recurring_charges r, generate_series(1, r.n)
                  WHERE r.relid = tbl AND r.account = t.account AND r.merchant = t.merchant) c,
         LATERAL txclass._detect_series(c.days, c.amounts) d;
    UPDATE txclass.monitored SET recurring_watermark = upto WHERE relid = tbl;
    RETURN n;
END
$$;

-- Everything attached, for one pg_cron job: drift summaries (tables with a key) and recurring
-- payments (tables with account and amount columns).
CREATE FUNCTION refresh_all() RETURNS TABLE (tbl regclass, drift_rows bigint, recurring_rows bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE r txclass.monitored;
BEGIN
    FOR r IN SELECT * FROM txclass.monitored WHERE key_column IS NOT NULL AND has_table_privilege(relid, 'SELECT')
             ORDER BY relid::text LOOP
        tbl := r.relid;
        drift_rows := txclass.refresh_drift(r.relid);
        recurring_rows := CASE WHEN r.account_column IS NOT NULL AND r.amount_column IS NOT NULL
                               THEN txclass.refresh_recurring(r.relid) END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Every series of a table: cadence, regularity, amounts, price changes, first and last charge,
-- the next expected date and amount, and its status on as_of.
CREATE FUNCTION recurring(tbl regclass, as_of date DEFAULT current_date, for_account text DEFAULT NULL)
RETURNS TABLE (account text, merchant text, label text, category text, cadence text, regularity float8, charges integer,
               amount float8, fixed_amount boolean, price_changes jsonb, first_charge date, last_charge date,
               next_expected date, next_amount float8, status text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM txclass._check_reader(tbl);
    RETURN QUERY
    SELECT s.account, s.merchant, s.label, s.category, s.cadence, s.regularity, s.charges, s.amount, s.fixed_amount,
           (SELECT coalesce(jsonb_agg(jsonb_build_object('since', '1970-01-01'::date + (c->>'day')::int,
                                                         'from', (c->>'from')::float8, 'to', (c->>'to')::float8)
                                      ORDER BY (c->>'day')::int), '[]')
            FROM jsonb_array_elements(s.price_changes) c),
           s.first_charge, s.last_charge, s.next_expected, s.next_amount,
           txclass._series_status(s.cadence, s.next_expected - '1970-01-01'::date, s.anchor_day, as_of - '1970-01-01'::date)
    FROM txclass.recurring_series s WHERE s.relid = tbl AND (for_account IS NULL OR s.account = for_account)
    ORDER BY s.account, s.merchant, s.series;
END
$$;

-- Series whose merchant is a subscription service: the model's subscription labels
-- (config.json, txclass.subscription_labels) or, for a model without them, its categories of
-- services people subscribe to.
CREATE FUNCTION subscriptions(tbl regclass, as_of date DEFAULT current_date, for_account text DEFAULT NULL)
RETURNS TABLE (account text, merchant text, label text, category text, cadence text, amount float8, fixed_amount boolean,
               price_changes jsonb, first_charge date, last_charge date, next_expected date, next_amount float8, status text)
LANGUAGE plpgsql STABLE AS $$
DECLARE subs text[] := txclass._subscription_labels();
BEGIN
    RETURN QUERY
    SELECT r.account, r.merchant, r.label, r.category, r.cadence, r.amount, r.fixed_amount, r.price_changes,
           r.first_charge, r.last_charge, r.next_expected, r.next_amount, r.status
    FROM txclass.recurring(tbl, as_of, for_account) r
    WHERE CASE WHEN subs IS NOT NULL THEN r.label = ANY (subs)
               ELSE r.category IN ('Streaming & Digital Media', 'Software & Cloud', 'Telecom', 'Insurance', 'Fitness',
                                   'Utilities') END;
END
$$;

-- Expected charges in the next `days` days, per account.
CREATE FUNCTION upcoming(tbl regclass, days integer DEFAULT 30, as_of date DEFAULT current_date, for_account text DEFAULT NULL)
RETURNS TABLE (account text, merchant text, label text, expected date, amount float8, cadence text, status text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM txclass._check_reader(tbl);
    RETURN QUERY
    SELECT r.account, r.merchant, r.label, r.next_expected, r.next_amount, r.cadence, r.status
    FROM txclass.recurring(tbl, as_of, for_account) r
    WHERE r.status <> 'ended' AND r.next_expected >= as_of AND r.next_expected < as_of + days
    ORDER BY r.account, r.next_expected, r.merchant;
END
$$;

-- Price changes of every series: when, from what, to what.
CREATE FUNCTION price_changes(tbl regclass)
RETURNS TABLE (account text, merchant text, label text, since date, old_amount float8, new_amount float8)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM txclass._check_reader(tbl);
    RETURN QUERY
    SELECT s.account, s.merchant, s.label, '1970-01-01'::date + (c->>'day')::int, (c->>'from')::float8, (c->>'to')::float8
    FROM txclass.recurring_series s, jsonb_array_elements(s.price_changes) c
    WHERE s.relid = tbl
    ORDER BY 1, 2, 4;
END
$$;

REVOKE ALL ON FUNCTION refresh_recurring(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION refresh_recurring(regclass) TO PUBLIC;

-- detach removes the table's summaries (a later attach reads the table again from its first row)
CREATE OR REPLACE FUNCTION detach(tbl regclass) RETURNS boolean LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM txclass._check_owner(tbl, 'detach it');
    PERFORM txclass._drop_enrich_triggers(tbl);
    DELETE FROM txclass.monitored WHERE relid = tbl;
    IF FOUND THEN
        -- the summaries go with it: a later attach reads the table from its first row again, and
        -- would count every row twice into summaries that stayed
        DELETE FROM txclass.drift_counts WHERE relid = tbl;
        DELETE FROM txclass.drift_seen WHERE relid = tbl;
        DELETE FROM txclass.drift_baseline WHERE relid = tbl;
        DELETE FROM txclass.recurring_charges WHERE relid = tbl;
        DELETE FROM txclass.recurring_series WHERE relid = tbl;
        RETURN true;
    END IF;
    RETURN false;
END
$$;
