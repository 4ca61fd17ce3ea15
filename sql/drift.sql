-- Drift monitoring for analysts (see src/drift.rs for the math, README "Drift").
--
-- Summaries: txclass.refresh_drift(table) folds rows added since its last run (by primary
-- key) into per-bucket, per-label counts: rows, confidence sum and 10-bin histogram, word-piece
-- tokens and [UNK] tokens, rows whose normalized descriptor was never seen before in the
-- table, and the label's category.
--
-- Statuses (drift()): every comparison reports an effect size (PSI, JS distance, the rise of
-- the never-seen share) and the probability of a difference that large from sampling alone,
-- given the bucket's rows, the baseline's rows and the number of classes (a G-test with rare
-- classes pooled; a one-sided proportion test for never-seen descriptors). A status is warn or
-- alert only when both are large: effect >= the table's *_warn / *_alert threshold and p below
-- p_warn / p_alert. Buckets with fewer than min_rows rows are 'n/a (low volume)'. The views read only the summaries, so they answer in milliseconds however large the
-- table; schedule the refresh (pg_cron: SELECT cron.schedule('*/10 * * * *', $$SELECT txclass.refresh_drift_all()$$)).

CREATE TABLE drift_counts (
    relid      regclass NOT NULL,
    bucket     timestamptz NOT NULL,
    label      text NOT NULL,
    rows       bigint NOT NULL,
    conf_sum   float8 NOT NULL DEFAULT 0,
    conf_hist  bigint[] NOT NULL,
    tokens     bigint NOT NULL DEFAULT 0,
    unk        bigint NOT NULL DEFAULT 0,
    new_rows   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (relid, bucket, label),
    category   text
);
COMMENT ON TABLE drift_counts IS 'txclass drift summaries: per monitored table, bucket (drift_unit of txclass.monitored) and predicted label';

CREATE TABLE drift_seen (
    relid regclass NOT NULL,
    h     bigint NOT NULL,
    PRIMARY KEY (relid, h)
);
COMMENT ON TABLE drift_seen IS 'txclass drift: hashes of the normalized descriptors seen so far per table (for the share of never-seen descriptors)';

CREATE TABLE drift_baseline (
    relid                regclass PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('training', 'window')),
    source               text NOT NULL,
    label_shares         jsonb NOT NULL,
    confidence_histogram float8[],
    unk_share            float8,
    mean_tokens          float8,
    window_from          timestamptz,
    window_to            timestamptz,
    set_at               timestamptz NOT NULL DEFAULT now(),
    -- how many rows the baseline was measured on (NULL: its shares are taken as exact)
    rows                 bigint,
    -- share of its rows whose descriptor was new (a held-out row not among the training rows;
    -- in a window, a row whose descriptor the table had not seen before its bucket), and that
    -- share after h rows of history: [[h, share], ...] (a bucket is judged at its table's history)
    new_share            float8,
    new_share_curve      jsonb,
    category_shares      jsonb,
    -- 'predicted': the model's outputs (like for like with a monitored table); 'true': the
    -- training set's labels (a model under-predicts rare classes: not like for like)
    label_shares_kind    text
);
COMMENT ON TABLE drift_baseline IS 'txclass drift: what each monitored table is compared with (the model''s training distribution, or a reference window)';

SELECT pg_catalog.pg_extension_config_dump('txclass.drift_counts', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.drift_seen', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.drift_baseline', '');

-- Summaries reveal a table's label mix: a role sees the rows of tables it may SELECT.
ALTER TABLE drift_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE drift_baseline ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers ON drift_counts FOR SELECT USING (has_table_privilege(relid, 'SELECT'));
CREATE POLICY readers ON drift_baseline FOR SELECT USING (has_table_privilege(relid, 'SELECT'));
GRANT SELECT ON drift_counts, drift_baseline TO PUBLIC;

CREATE FUNCTION _check_reader(tbl regclass) RETURNS txclass.monitored LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE m txclass.monitored := txclass._monitored(tbl);
BEGIN
    IF NOT has_table_privilege(txclass._caller(), tbl, 'SELECT') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = format('permission denied for table %s', tbl);
    END IF;
    RETURN m;
END
$$;

-- The model's training distribution as the baseline (the default).
CREATE FUNCTION set_baseline(tbl regclass) RETURNS drift_baseline LANGUAGE plpgsql VOLATILE
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

-- A reference window the analyst chooses: [from, to) of the table's time column.
CREATE FUNCTION set_baseline(tbl regclass, "from" timestamptz, "to" timestamptz) RETURNS drift_baseline
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

-- The comparison functions return one row: say so, or the planner multiplies its estimates by
-- 1,000 per call and plans (and JIT-compiles) drift() as if it read billions of rows.
ALTER FUNCTION _compare_distribution(text[], double precision[], text[], double precision[], integer) ROWS 1;
ALTER FUNCTION _homogeneity(text[], double precision[], text[], double precision[], double precision) ROWS 1;

-- Element-wise sum of 10-bin histograms.
CREATE FUNCTION _hist_sum(hists bigint[]) RETURNS float8[] LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(s ORDER BY i) FROM (
        SELECT i, sum(hists[k][i])::float8 AS s
        FROM generate_subscripts(hists, 1) k, generate_series(1, 10) i GROUP BY i) x
$$;

-- Folds rows added since the last refresh into the summaries; returns how many rows it read.
CREATE FUNCTION refresh_drift(tbl regclass) RETURNS bigint LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE m txclass.monitored; upto text; n bigint;
BEGIN
    m := txclass._check_reader(tbl);
    IF m.key_columns IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no primary key or unique key; drift summaries are folded in key order', tbl),
            HINT = 'add one (e.g. ALTER TABLE ... ADD PRIMARY KEY (...)): txclass takes it up at once';
    END IF;
    -- one refresh per table at a time
    PERFORM pg_advisory_xact_lock('txclass.monitored'::regclass::oid::int, tbl::oid::int);
    SELECT watermark INTO m.watermark FROM txclass.monitored WHERE relid = tbl;
        IF NOT EXISTS (SELECT FROM txclass.drift_baseline WHERE relid = tbl) THEN
        PERFORM txclass.set_baseline(tbl);
    END IF;
    -- the newest key (a composite key's as a JSON array): the refresh reads up to it
    upto := txclass._key_last(tbl, m.key_columns);
    IF upto IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format($q$
        WITH inc AS MATERIALIZED (
            SELECT date_trunc(%1$L, %2$I::timestamptz) AS b, coalesce(%3$I, '(none)') AS label, %4$I::float8 AS conf,
                   coalesce(%10$I, '(none)') AS category,
                   least(floor(%4$I * 10), 9)::int AS bin, txclass._input_stats(%5$I) AS s
            FROM %6$s WHERE ($1 IS NULL OR (%7$s) > %8$s) AND (%7$s) <= %11$s AND %2$I IS NOT NULL),
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
             txclass._key_list(m.key_columns), txclass._key_position(tbl, m.key_columns, '$1'), tbl::oid::text, m.category_column,
             txclass._key_position(tbl, m.key_columns, '$2'))
    INTO n USING m.watermark, upto;
    UPDATE txclass.monitored SET watermark = upto WHERE relid = tbl;
    RETURN n;
END
$$;

-- Every monitored table with a key (for one pg_cron job).
CREATE FUNCTION refresh_drift_all() RETURNS TABLE (tbl regclass, rows bigint) LANGUAGE plpgsql VOLATILE AS $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT relid FROM txclass.monitored WHERE key_columns IS NOT NULL ORDER BY relid::text LOOP
        tbl := t;
        rows := txclass.refresh_drift(t);
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE FUNCTION set_drift_thresholds(tbl regclass, thresholds jsonb) RETURNS jsonb LANGUAGE plpgsql VOLATILE
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

-- The overall status is the worst of the metrics' statuses.
CREATE FUNCTION drift_status(VARIADIC statuses text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN 'alert' = ANY(statuses) THEN 'alert' WHEN 'warn' = ANY(statuses) THEN 'warn'
                WHEN 'ok' = ANY(statuses) THEN 'ok' WHEN 'n/a (low volume)' = ANY(statuses) THEN 'n/a (low volume)'
                ELSE 'n/a' END
$$;

-- Thresholds a monitored table gets for keys its thresholds do not set (keys added after it
-- was attached included). Effect sizes: psi_*, js_* (labels and categories), new_* (rise of
-- the never-seen share over the baseline's). Probabilities under sampling noise: p_*.
CREATE FUNCTION _drift_defaults() RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"psi_warn": 0.1, "psi_alert": 0.25, "js_warn": 0.1, "js_alert": 0.2, "new_warn": 0.15, "new_alert": 0.3,
             "low_confidence": 0.5, "p_warn": 0.01, "p_alert": 0.001, "min_rows": 50}'::jsonb
$$;

-- One row per bucket: the bucket compared with the table's baseline.
--   label_psi, label_js        predicted-label distribution vs the baseline (smoothed; JS distance, base 2)
--   top_movers                 labels whose share moved most: [{label, share, baseline_share}]
--   confidence_*               mean, share below thresholds->low_confidence, PSI over 10 bins
--   new_descriptor_share       rows whose normalized descriptor was never seen before in the table
--                              (n/a for the first bucket and inside a reference window)
--   unk_token_share, mean_tokens   input drift under the model's tokenizer
--   *_status, status           ok / warn / alert: effect >= threshold and p < p_warn / p_alert;
--                              'n/a (low volume)' under min_rows rows; n/a where there is nothing to compare
--   label_p, category_p, confidence_p   P(a difference this large | no change, sampling alone):
--                              G-test of the bucket's counts against the baseline's rows, rare classes pooled
--   category_psi, category_js, category_status   the same at category level (far fewer bins)
--   baseline_new_descriptor_share, new_descriptor_p   the baseline's own never-seen share at the
--                              table's history before the bucket, and P(a share this high | that share)
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

-- Every monitored table's latest bucket at a glance.
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

REVOKE ALL ON FUNCTION _check_reader(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _check_reader(regclass) TO PUBLIC;
GRANT SELECT ON drift_summary TO PUBLIC;
