-- txclass 0.2.0 → 0.3.0: honest confidence and the labeling loop
--
-- Run by ALTER EXTENSION txclass UPDATE. Keeps every row; adds the confidence functions, the
-- classification type's `level`, classify_batch's `level` and `source`, attach's level column,
-- txclass.labels with add_labels and review_queue, and the txclass_labeler role. Objects of a
-- database still at 0.2.0 keep working on the 0.3.0 library (src/upgrade.rs).

-- 0.3.0's library must be the one this backend runs: the first new C function says so
-- clearly instead of failing half-way through with "could not find function".
DO $guard$
BEGIN
CREATE FUNCTION txclass."confidence_level"(
	"confidence" real /* f32 */
) RETURNS TEXT /* & '_ str */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'confidence_level_wrapper';
EXCEPTION WHEN undefined_function THEN
    RAISE EXCEPTION 'txclass: this backend runs an older txclass library than 0.3.0 (%)', SQLERRM
        USING HINT = 'Install txclass 0.3.0, then restart PostgreSQL if txclass is in shared_preload_libraries '
                     '(the postmaster keeps the library it started with), or reconnect if it is not; '
                     'then run ALTER EXTENSION txclass UPDATE again. Nothing was changed.';
END
$guard$;

CREATE  FUNCTION "confidence_info"() RETURNS TABLE (
	"model" TEXT,  /* String */
	"temperature" real,  /* f32 */
	"very_high" real,  /* f32 */
	"high" real,  /* f32 */
	"medium" real,  /* f32 */
	"levels_fitted" bool,  /* bool */
	"model_min_confidence" real,  /* f32 */
	"min_confidence" real  /* f32 */
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'confidence_info_wrapper';

-- the default bundled model is now txclass-merchants-v2 (calibrated, abstains on businesses that
-- are none of its brands); a database that relies on the default is told, and how to keep v1
DO $default$
BEGIN
    IF NOT EXISTS (SELECT FROM txclass.active) THEN
        RAISE NOTICE 'txclass 0.3.0 serves the bundled model txclass-merchants-v2 where no model is activated (this database activated none; it served txclass-merchants-v1)'
            USING HINT = 'to keep txclass-merchants-v1: SELECT txclass.register_model(''v1'', ''txclass-merchants-v1''); SELECT txclass.activate_model(''v1'');';
    END IF;
END
$default$;

-- the classification type gains the answer's level (classify_transaction_detail)
ALTER TYPE classification ADD ATTRIBUTE level text;

-- classify_batch gains `level` and `source`: a result-column change CREATE OR REPLACE cannot
-- make; dropped and created again (new symbol; 0.2.0's stays loadable), its privileges put back
SELECT pg_catalog.set_config('txclass_upgrade.acl_classify_batch', coalesce((SELECT p.proacl::text FROM pg_catalog.pg_proc p
           WHERE p.oid = pg_catalog.to_regprocedure('txclass.classify_batch(text[])')), ''), true);
DROP FUNCTION classify_batch(text[]);
CREATE  FUNCTION "classify_batch"(
	"descriptors" TEXT[] /* Array < & str > */
) RETURNS TABLE (
	"ordinality" bigint,  /* i64 */
	"label" TEXT,  /* Option < & '_ str > */
	"category" TEXT,  /* Option < & '_ str > */
	"confidence" real,  /* Option < f32 > */
	"model" TEXT,  /* Option < & '_ str > */
	"level" TEXT,  /* Option < & '_ str > */
	"source" TEXT  /* Option < & '_ str > */
)
STRICT STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'classify_batch_0_3_wrapper';

-- attach: a level column (default txclass_level); triggers attached by 0.2.0 keep working
-- without one until the table is attached again
ALTER TABLE monitored ADD COLUMN level_column name;
SELECT pg_catalog.set_config('txclass_upgrade.acl_attach', coalesce((SELECT p.proacl::text FROM pg_catalog.pg_proc p
           WHERE p.oid = pg_catalog.to_regprocedure('txclass.attach(regclass, name, name, name, name, name, text, name, text, name, name)')), ''), true);
DROP FUNCTION attach(regclass, name, name, name, name, name, text, name, text, name, name);
CREATE FUNCTION attach(tbl regclass, descriptor_column name,
                       label_column name DEFAULT 'txclass_label',
                       category_column name DEFAULT 'txclass_category',
                       confidence_column name DEFAULT 'txclass_confidence',
                       model_column name DEFAULT 'txclass_model',
                       on_error text DEFAULT 'null',
                       time_column name DEFAULT NULL,
                       drift_unit text DEFAULT NULL,
                       account_column name DEFAULT NULL,
                       amount_column name DEFAULT NULL,
                       level_column name DEFAULT 'txclass_level')
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
                                      (confidence_column, 'real'), (model_column, 'text'), (level_column, 'text')) v(name, type)
                 WHERE name IS NOT NULL LOOP
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
        update_sql := format('UPDATE %s AS t SET %I = u.l, %I = u.c, %I = u.f, %I = u.m%s '
                             'FROM unnest($1::text[], $2::text[], $3::text[], $4::real[], $5::text[], $6::text[]) AS u(k, l, c, f, m, v) '
                             'WHERE t.%I = u.k::%s',
                             tbl, label_column, category_column, confidence_column, model_column,
                             CASE WHEN level_column IS NOT NULL THEN format(', %I = u.v', level_column) ELSE '' END,
                             key_col, key_type);
    END IF;
    EXECUTE format('CREATE TRIGGER txclass_enrich BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION txclass._enrich_row(%L, %L, %L, %L, %L, %L, %L, %L, %L)',
                   descriptor_column, tbl, descriptor_column, label_column, category_column,
                   confidence_column, model_column, on_error, coalesce(key_col, ''), coalesce(update_sql, ''),
                   coalesce(level_column, ''));
    IF key_col IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER txclass_enrich_batch AFTER INSERT OR UPDATE OF %I ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION txclass._enrich_statement(%L, %L)',
                       descriptor_column, tbl, on_error, update_sql);
    END IF;
    INSERT INTO txclass.monitored (relid, descriptor_column, label_column, category_column, confidence_column,
                                   model_column, key_column, on_error, attached_by, time_column, drift_unit,
                                   account_column, amount_column, level_column)
    VALUES (tbl, descriptor_column, label_column, category_column, confidence_column,
            model_column, key_col, on_error, caller, time_column, drift_unit, account_column, amount_column, level_column)
    ON CONFLICT (relid) DO UPDATE SET descriptor_column = EXCLUDED.descriptor_column, label_column = EXCLUDED.label_column,
        category_column = EXCLUDED.category_column, confidence_column = EXCLUDED.confidence_column,
        model_column = EXCLUDED.model_column, key_column = EXCLUDED.key_column, on_error = EXCLUDED.on_error,
        attached_by = EXCLUDED.attached_by, attached_at = now(), time_column = EXCLUDED.time_column,
        drift_unit = EXCLUDED.drift_unit, account_column = EXCLUDED.account_column, amount_column = EXCLUDED.amount_column,
        level_column = EXCLUDED.level_column
    RETURNING * INTO m;
    RETURN m;
END
$$;
REVOKE ALL ON FUNCTION attach(regclass, name, name, name, name, name, text, name, text, name, name, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION attach(regclass, name, name, name, name, name, text, name, text, name, name, name) TO PUBLIC;

-- the DBA's privileges on the two recreated functions, as they were
DO $acl$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN SELECT * FROM (VALUES ('classify_batch', 'txclass.classify_batch(text[])'),
                                   ('attach', 'txclass.attach(regclass, name, name, name, name, name, text, name, text, name, name, name)')) v(name, sig) LOOP
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

-- backfill: pending rows by the model column (an abstention is answered), writes the level
DROP PROCEDURE backfill(regclass, integer, boolean);
CREATE PROCEDURE backfill(tbl regclass, batch_size integer DEFAULT 10000, reclassify boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    m txclass.monitored;
    p txclass.backfill_progress;
    key_type text;
    model text;
    pending text;
    last_key text;
    n bigint;
    next_key text;
    t0 timestamptz;
    t_batch timestamptz;
    done bigint := 0;
    total bigint;
    rate float8;
BEGIN
    m := txclass._monitored(tbl);
    IF m.key_column IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no single-column primary key; backfill walks the table in key order', tbl),
            HINT = 'add a primary key (e.g. ALTER TABLE ... ADD COLUMN id bigserial PRIMARY KEY) and attach again';
    END IF;
    IF batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1, got %', batch_size;
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type
    FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = m.key_column;
    SELECT i.model INTO model FROM txclass.model_info() i;
    -- rows still without outputs; with reclassify, also every row another model answered (its
    -- outputs are rewritten, to NULL where the descriptor gives nothing to classify)
    -- (by the model column: an abstention has no label but is answered, with its model)
    pending := format('%I IS NOT NULL AND %I IS NULL', m.descriptor_column, m.model_column);
    IF reclassify THEN
        pending := format('(%s OR %I IS DISTINCT FROM %L)', pending, m.model_column, model);
    END IF;
    -- a table loaded moments ago has no statistics yet, and the batch plan needs them (without,
    -- each batch may join the whole table instead of looking the keys up)
    IF (SELECT s.last_analyze IS NULL AND s.last_autoanalyze IS NULL FROM pg_catalog.pg_stat_user_tables s WHERE s.relid = tbl) THEN
        EXECUTE format('ANALYZE %s', tbl);
    END IF;
    SELECT * INTO p FROM txclass.backfill_progress WHERE relid = tbl;
    IF FOUND AND p.status <> 'done' AND p.last_key IS NOT NULL THEN
        last_key := p.last_key;
        done := p.rows_done;
        RAISE NOTICE 'resuming the backfill of % after key % (% rows done before)', tbl, last_key, done;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s WHERE %s AND ($1 IS NULL OR %I > $1::%s)', tbl, pending, m.key_column, key_type)
        INTO total USING last_key;
    total := total + done;
    t0 := clock_timestamp();
    INSERT INTO txclass.backfill_progress (relid, status, started_at, updated_at, rows_done, rows_total, last_key, model, pid)
    VALUES (tbl, 'running', t0, t0, done, total, last_key, model, pg_backend_pid())
    ON CONFLICT (relid) DO UPDATE SET status = 'running', started_at = EXCLUDED.started_at, updated_at = EXCLUDED.updated_at,
        rows_done = EXCLUDED.rows_done, rows_total = EXCLUDED.rows_total, batches = 0, rows_per_s = NULL, eta = NULL,
        last_key = EXCLUDED.last_key, model = EXCLUDED.model, pid = EXCLUDED.pid;
    COMMIT;
    LOOP
        t_batch := clock_timestamp();
        EXECUTE format($q$
            WITH batch AS MATERIALIZED (
                SELECT %1$I AS k, %2$I AS d FROM %3$s
                WHERE %4$s AND ($1 IS NULL OR %1$I > $1::%5$s)
                ORDER BY %1$I LIMIT $2),
            agg AS (SELECT array_agg(k ORDER BY k) AS ks, array_agg(d ORDER BY k) AS ds FROM batch),
            -- materialized: rows of (key, outputs) only; otherwise a plan may carry both whole
            -- arrays along every row into a sort (gigabytes on disk for a 10,000-row batch)
            res AS MATERIALIZED (SELECT agg.ks[b.ordinality] AS k, b.label, b.category, b.confidence, b.model, b.level
                    FROM agg, txclass.classify_batch(agg.ds) b),
            upd AS (UPDATE %3$s AS t SET %6$I = res.label, %7$I = res.category, %8$I = res.confidence, %9$I = res.model%10$s
                    FROM res WHERE t.%1$I = res.k RETURNING 1)
            SELECT (SELECT count(*) FROM batch), (SELECT max(k)::text FROM batch), (SELECT count(*) FROM upd)
            $q$, m.key_column, m.descriptor_column, tbl, pending, key_type,
            m.label_column, m.category_column, m.confidence_column, m.model_column,
            CASE WHEN m.level_column IS NOT NULL THEN format(', %I = res.level', m.level_column) ELSE '' END)
        INTO n, next_key USING last_key, batch_size;
        EXIT WHEN n = 0;
        last_key := next_key;
        done := done + n;
        rate := done / greatest(extract(epoch FROM clock_timestamp() - t0), 1e-6);
        UPDATE txclass.backfill_progress
        SET updated_at = clock_timestamp(), rows_done = done, batches = batches + 1, rows_per_s = rate,
            eta = make_interval(secs => greatest(total - done, 0) / greatest(rate, 1e-9)), last_key = next_key
        WHERE relid = tbl;
        COMMIT;
        RAISE NOTICE 'backfill %: % of % rows (% rows/s, this batch % rows in % ms), ETA %',
            tbl, done, total, round(rate), n, round(extract(epoch FROM clock_timestamp() - t_batch) * 1000),
            make_interval(secs => round(greatest(total - done, 0) / greatest(rate, 1e-9)));
    END LOOP;
    UPDATE txclass.backfill_progress SET status = 'done', updated_at = clock_timestamp(), eta = '0'::interval
    WHERE relid = tbl;
    COMMIT;
    RAISE NOTICE 'backfill %: done, % rows in %', tbl, done, date_trunc('second', clock_timestamp() - t0);
END
$$;

-- enrichment_status: `enriched` counts answered rows (abstentions included); the level column checked
CREATE OR REPLACE FUNCTION enrichment_status(tbl regclass)
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
                 (4, m.confidence_column, 'real'), (5, m.model_column, 'text'), (6, m.level_column, 'text')) w(ord, name, type)
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attname = w.name AND a.attnum > 0 AND NOT a.attisdropped
    WHERE w.name IS NOT NULL AND (a.attname IS NULL OR (w.type IS NOT NULL AND format_type(a.atttypid, a.atttypmod) <> w.type));
    IF broken IS NOT NULL THEN
        RETURN QUERY EXECUTE format('SELECT count(*), NULL::bigint, NULL::bigint, NULL::jsonb, $1 FROM %s', tbl)
            USING broken || ARRAY['re-run txclass.attach() with the current column names, then txclass.backfill()'];
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        -- enriched: rows with outputs (an abstention has its model, confidence and level, not a label)
        'SELECT count(*), count(%1$I), count(*) FILTER (WHERE %1$I IS NULL AND %2$I IS NOT NULL), '
        '(SELECT coalesce(jsonb_object_agg(coalesce(x.m, ''(none)''), x.n), ''{}'') FROM (SELECT %3$I AS m, count(*) AS n FROM %4$s GROUP BY 1) x), '
        '''{}''::text[] FROM %4$s', m.model_column, m.descriptor_column, m.model_column, tbl);
END
$$;

-- refresh_recurring: charges inserted in key order, a plain INSERT on a first refresh (faster)
CREATE OR REPLACE FUNCTION refresh_recurring(tbl regclass) RETURNS bigint LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE m txclass.monitored; key_type text; upto text; n bigint; accounts text[]; merchants text[]; upsert text := '';
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
    -- charges already there (not the first refresh): new rows of a known day and amount add up.
    -- On a first refresh a plain INSERT in key order costs half as much (bench/recurring.sh)
    IF EXISTS (SELECT FROM txclass.recurring_charges WHERE relid = tbl) THEN
        upsert := 'ON CONFLICT (relid, account, merchant, day, amount) DO UPDATE SET n = r.n + EXCLUDED.n, '
                  'label = coalesce(EXCLUDED.label, r.label), category = coalesce(EXCLUDED.category, r.category)';
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
            ORDER BY account, merchant, day, amount   -- in key order: the index grows at its end, not at random
            %12$s
            RETURNING account, merchant),
        touched AS (SELECT DISTINCT account, merchant FROM ins)
        SELECT (SELECT count(*) FROM inc), (SELECT array_agg(account ORDER BY account, merchant) FROM touched),
               (SELECT array_agg(merchant ORDER BY account, merchant) FROM touched)
        $q$, m.account_column, m.label_column, m.confidence_column, m.descriptor_column, m.time_column, m.amount_column,
             m.category_column, tbl, m.key_column, key_type, tbl::oid::text, upsert)
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

-- ---- the labeling loop (sql/labels.sql) --------------------------------------------------
-- The labeling loop: the labels people give (a gold set for txclass.evaluate, training data for
-- scripts/train.sh --sql, exact-match rules for an immediate fix) and what to label next.
--
-- Privileges: members of txclass_labeler (and txclass_model_admin) may add and change labels;
-- only txclass_model_admin may turn them into rules, register or activate models. Everyone may
-- read them.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'txclass_labeler') THEN
        CREATE ROLE txclass_labeler NOLOGIN;
        COMMENT ON ROLE txclass_labeler IS 'txclass: may add and change labels (txclass.labels, txclass.add_labels); not rules or models';
    END IF;
END
$$;

CREATE TABLE labels (
    id          bigserial PRIMARY KEY,
    descriptor  text NOT NULL CHECK (descriptor <> ''),
    -- one label per normalized descriptor (what the cache and the model see): a later label of
    -- the same text replaces the earlier one
    normalized  text NOT NULL UNIQUE CHECK (normalized <> ''),
    label       text NOT NULL CHECK (label <> ''),
    category    text,
    labeled_by  text NOT NULL,
    labeled_at  timestamptz NOT NULL,
    source      text NOT NULL DEFAULT 'human',
    note        text
);
COMMENT ON TABLE labels IS 'txclass: labels given by people (txclass.add_labels); a gold set (txclass.evaluate), training data (scripts/train.sh --sql) and, with as_rules, exact-match rules';
COMMENT ON COLUMN labels.label IS 'The right label: one of the model''s classes, or a new class (a brand the model does not know, or a long-tail name)';
SELECT pg_catalog.pg_extension_config_dump('txclass.labels', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.labels_id_seq', '');

-- who and when are the database's to say, not the writer's
CREATE FUNCTION _label_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.normalized := txclass.normalize_descriptor(NEW.descriptor);
    IF NEW.normalized = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('descriptor %L normalizes to nothing; there is nothing to label', NEW.descriptor);
    END IF;
    NEW.labeled_by := current_user;
    NEW.labeled_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON labels FOR EACH ROW EXECUTE FUNCTION _label_stamp();

-- add_labels(descriptors, labels[, categories][, source][, as_rules][, note]): adds or replaces
-- one label per descriptor (by its normalized text; the last of repeats in one call wins).
-- as_rules => true also adds an exact-match rule per label (txclass.rules), so the fix is
-- served at once; that needs txclass_model_admin. Returns the labels written.
CREATE FUNCTION add_labels(descriptors text[], labels text[], categories text[] DEFAULT NULL,
                           source text DEFAULT 'human', as_rules boolean DEFAULT false, note text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE n bigint; bad text;
BEGIN
    IF cardinality(descriptors) IS DISTINCT FROM cardinality(labels)
       OR (categories IS NOT NULL AND cardinality(categories) <> cardinality(descriptors)) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('add_labels got %s descriptors, %s labels and %s categories; give one of each per row',
                             coalesce(cardinality(descriptors), 0), coalesce(cardinality(labels), 0),
                             coalesce(cardinality(categories)::text, 'no')),
            HINT = 'pass categories => NULL to leave them out';
    END IF;
    IF EXISTS (SELECT FROM unnest(descriptors, labels) u(d, l) WHERE d IS NULL OR l IS NULL OR btrim(l) = '') THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'add_labels: every descriptor and label must be given (a NULL or empty one was); nothing was added';
    END IF;
    SELECT d INTO bad FROM unnest(descriptors) d WHERE txclass.normalize_descriptor(d) = '' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('add_labels: descriptor %L normalizes to nothing, so there is nothing to label; nothing was added', bad);
    END IF;
    IF as_rules AND NOT pg_catalog.has_table_privilege('txclass.rules', 'INSERT') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = 'permission denied to add rules from labels (as_rules => true); nothing was added',
            HINT = 'add the labels without as_rules, and ask a member of txclass_model_admin to turn them into rules';
    END IF;
    WITH given AS (
        SELECT DISTINCT ON (txclass.normalize_descriptor(d)) d, btrim(l) AS l, c, o
        FROM unnest(descriptors, labels, coalesce(categories, array_fill(NULL::text, ARRAY[cardinality(descriptors)])))
             WITH ORDINALITY u(d, l, c, o)
        ORDER BY txclass.normalize_descriptor(d), o DESC),
    written AS (
        INSERT INTO txclass.labels AS t (descriptor, normalized, label, category, labeled_by, labeled_at, source, note)
        SELECT d, '', l, c, '', now(), add_labels.source, add_labels.note FROM given
        ON CONFLICT (normalized) DO UPDATE SET descriptor = EXCLUDED.descriptor, label = EXCLUDED.label,
            category = EXCLUDED.category, source = EXCLUDED.source, note = EXCLUDED.note
        RETURNING t.normalized, t.label, t.category)
    SELECT count(*) INTO n FROM written;
    IF as_rules THEN
        -- one exact-match rule per normalized text (a label given again replaces its rule)
        DELETE FROM txclass.rules r USING unnest(descriptors) d
        WHERE r.note = 'txclass label' AND r.pattern = '^' || txclass._regex_quote(txclass.normalize_descriptor(d)) || '$';
        INSERT INTO txclass.rules (pattern, label, category, priority, note)
        SELECT DISTINCT ON (pattern) pattern, l, c, 200, 'txclass label'
        FROM (SELECT '^' || txclass._regex_quote(txclass.normalize_descriptor(d)) || '$' AS pattern, btrim(l) AS l, c, o
              FROM unnest(descriptors, labels, coalesce(categories, array_fill(NULL::text, ARRAY[cardinality(descriptors)])))
                   WITH ORDINALITY u(d, l, c, o)) x
        ORDER BY pattern, o DESC;
    END IF;
    RETURN n;
END
$$;

-- A regular expression (Rust regex syntax) that matches `s` literally.
CREATE FUNCTION _regex_quote(s text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT regexp_replace(s, '([\\.+*?()|\[\]{}^$])', '\\\1', 'g')
$$;

-- review_queue(table[, n][, since]): the distinct descriptors of an attached table to label next
-- — new merchants (first seen in the last week) first, then by traffic × uncertainty
-- (rows × (1 − mean confidence); rows without outputs count as confidence 0, rules as 1, so
-- they come last); what txclass.labels already holds is left out. `since`: only rows of the
-- table's time column from then on.
CREATE FUNCTION review_queue(tbl regclass, n integer DEFAULT 50, since timestamptz DEFAULT NULL)
RETURNS TABLE (descriptor text, normalized text, rows bigint, mean_confidence real, predicted text,
               level text, first_seen timestamptz, new_merchant boolean, priority float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE m txclass.monitored := txclass._monitored(tbl);
BEGIN
    IF n < 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format('n must be at least 1, got %s', n);
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH rows AS (
            SELECT %1$I AS d, %2$I AS label, %3$I AS conf, %5$I::timestamptz AS at
            FROM %6$s WHERE %1$I IS NOT NULL AND ($1 IS NULL OR %5$I >= $1)),
        per AS (
            SELECT txclass.normalize_descriptor(d) AS norm, min(d) AS d, count(*) AS rows,
                   avg(coalesce(conf, 0))::real AS conf, mode() WITHIN GROUP (ORDER BY label) AS label,
                   min(at) AS first_seen
            FROM rows GROUP BY 1)
        SELECT per.d, per.norm, per.rows, per.conf, per.label, txclass.confidence_level(per.conf), per.first_seen,
               per.first_seen >= now() - interval '7 days',
               per.rows * (1 - per.conf)::float8
        FROM per
        WHERE per.norm <> '' AND NOT EXISTS (SELECT FROM txclass.labels l WHERE l.normalized = per.norm)
        ORDER BY per.first_seen >= now() - interval '7 days' DESC, per.rows * (1 - per.conf) DESC, per.rows DESC, per.norm
        LIMIT $2
        $q$, m.descriptor_column, m.label_column, m.confidence_column, m.model_column, m.time_column, tbl)
    USING since, n;
END
$$;

GRANT SELECT ON labels TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON labels TO txclass_labeler, txclass_model_admin;
GRANT USAGE ON SEQUENCE labels_id_seq TO txclass_labeler, txclass_model_admin;
REVOKE ALL ON FUNCTION add_labels(text[], text[], text[], text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_labels(text[], text[], text[], text, boolean, text) TO txclass_labeler, txclass_model_admin;
