-- Enrichment in the write path (see src/enrich.rs): attach / detach, backfill, progress.

CREATE TABLE monitored (
    relid             regclass PRIMARY KEY,
    descriptor_column name NOT NULL,
    label_column      name NOT NULL,
    category_column   name NOT NULL,
    confidence_column name NOT NULL,
    model_column      name NOT NULL,
    key_column        name,
    on_error          text NOT NULL CHECK (on_error IN ('null', 'error')),
    attached_by       text NOT NULL,
    attached_at       timestamptz NOT NULL DEFAULT now(),
    -- drift monitoring (sql/drift.sql)
    time_column       name NOT NULL,
    drift_unit        text NOT NULL DEFAULT 'day' CHECK (drift_unit IN ('hour', 'day', 'week', 'month')),
    -- txclass._drift_defaults() (sql/drift.sql) fills keys a row does not set
    thresholds        jsonb NOT NULL DEFAULT '{"psi_warn": 0.1, "psi_alert": 0.25, "js_warn": 0.1, "js_alert": 0.2,
                                                "new_warn": 0.15, "new_alert": 0.3, "low_confidence": 0.5,
                                                "p_warn": 0.01, "p_alert": 0.001, "min_rows": 50}',
    watermark         text,
    -- recurring payments (sql/recurring.sql): the account and amount columns, and how far
    -- txclass.refresh_recurring has read (by key)
    account_column    name,
    amount_column     name,
    recurring_watermark text,
    -- confidence levels (0.3.0): the column the trigger writes the answer's level into
    level_column      name
);
COMMENT ON TABLE monitored IS 'txclass: tables enriched on write (txclass.attach); the drift views read this list';
COMMENT ON COLUMN monitored.key_column IS 'Single-column primary key through which misses are classified per statement in batches (NULL: row by row)';
SELECT pg_catalog.pg_extension_config_dump('txclass.monitored', '');

CREATE FUNCTION _drop_enrich_triggers(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t name;
BEGIN
    FOR t IN SELECT tgname FROM pg_catalog.pg_trigger
             WHERE tgrelid = tbl AND tgname IN ('txclass_enrich', 'txclass_enrich_batch') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
    END LOOP;
END
$$;

-- The checks every per-table function starts with: the caller (not a SECURITY DEFINER
-- function's owner) owns the table; the table is attached (its txclass.monitored row).
CREATE FUNCTION _check_owner(tbl regclass, action text) RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT pg_has_role(txclass._caller(), (SELECT relowner FROM pg_class WHERE oid = tbl), 'USAGE') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('must be owner of table %s to %s', tbl, action);
    END IF;
END
$$;

CREATE FUNCTION _monitored(tbl regclass) RETURNS monitored LANGUAGE plpgsql STABLE AS $$
DECLARE m txclass.monitored;
BEGIN
    SELECT * INTO m FROM txclass.monitored WHERE relid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s is not monitored', tbl),
            HINT = format('attach it first: SELECT txclass.attach(%L, descriptor_column, time_column => ...)', tbl::text);
    END IF;
    RETURN m;
END
$$;

-- attach(table, descriptor_column, ...): adds the output columns if missing, installs the
-- triggers, records the table. The caller must own the table.
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

-- detach(table): removes the triggers and the record; the data and the columns stay.
CREATE FUNCTION detach(tbl regclass) RETURNS boolean LANGUAGE plpgsql VOLATILE
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

CREATE VIEW enrichment_stats AS SELECT * FROM enrichment_counters();
COMMENT ON VIEW enrichment_stats IS 'txclass write-path enrichment since server start: rows answered in place (rules, cache), row by row, in statement batches, and rows left with NULL outputs by a failure';

-- Backfill progress: one row per table, committed after every batch (another connection can
-- watch it; a re-run resumes after last_key).
CREATE TABLE backfill_progress (
    relid       regclass PRIMARY KEY,
    status      text NOT NULL,
    started_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    rows_done   bigint NOT NULL DEFAULT 0,
    rows_total  bigint,
    batches     bigint NOT NULL DEFAULT 0,
    rows_per_s  float8,
    eta         interval,
    last_key    text,
    model       text,
    pid         integer
);
COMMENT ON TABLE backfill_progress IS 'txclass.backfill(): progress per table, updated after each committed batch';

-- backfill(table, batch_size, reclassify): classifies rows whose outputs are NULL (and, with
-- reclassify => true, rows classified by another model than the active one) in key order,
-- one committed batch at a time. Resumable: a re-run after a cancel or a crash continues after
-- the last committed batch. Locks only the rows of the batch being written.
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

-- Per-table state: how many rows, how many enriched, how many with NULL outputs.
-- problems: what DDL since attach broke (a column renamed, dropped or of another type); the
-- trigger then writes rows without outputs (one WARNING per statement) until attach is re-run.
CREATE FUNCTION enrichment_status(tbl regclass)
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

GRANT SELECT ON monitored, backfill_progress, enrichment_stats TO PUBLIC;
GRANT INSERT, UPDATE ON backfill_progress TO PUBLIC;
-- backfill runs as its caller, who records progress; a row may only be written by a role that
-- may UPDATE the table it describes (else anyone could make someone's backfill skip rows by
-- moving last_key), and read by one that may SELECT it.
ALTER TABLE backfill_progress ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers ON backfill_progress FOR SELECT USING (has_table_privilege(relid, 'SELECT'));
CREATE POLICY writers_insert ON backfill_progress FOR INSERT WITH CHECK (has_table_privilege(relid, 'UPDATE'));
CREATE POLICY writers_update ON backfill_progress FOR UPDATE
    USING (has_table_privilege(relid, 'UPDATE')) WITH CHECK (has_table_privilege(relid, 'UPDATE'));
REVOKE ALL ON FUNCTION _check_owner(regclass, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION attach(regclass, name, name, name, name, name, text, name, text, name, name, name), detach(regclass), _drop_enrich_triggers(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION attach(regclass, name, name, name, name, name, text, name, text, name, name, name), detach(regclass) TO PUBLIC;
