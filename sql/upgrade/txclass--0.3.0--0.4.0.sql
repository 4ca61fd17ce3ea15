-- txclass 0.3.0 → 0.4.0: the write path on the tables users really have
--
-- Run by ALTER EXTENSION txclass UPDATE. Keeps every row. txclass.monitored gains key_columns
-- (any primary or unique key, composite too) and attnums (by which renames are followed); the
-- triggers resolve their table from txclass.monitored instead of their arguments (a 0.2.0 or
-- 0.3.0 trigger keeps working: its arguments are no longer read); event triggers follow
-- renames, new and detached partitions, added keys and dropped tables; backfill walks any key,
-- partitions, or ctid ranges; refresh_drift and refresh_recurring take any key.
-- refresh_recurring names a series by the model's label where confidence >= 0.9 and the
-- answer's level is high or very_high (0.3.0: confidence alone, so a confident answer without
-- the name in the descriptor, HOTJAR as Hotels.com, named it), and not by a class of many
-- merchants ("Other Restaurant": two restaurants are two series); charges folded before the update keep their
-- merchant: to fold them again, DELETE the table's rows (relid = 'tbl'::regclass) from
-- txclass.recurring_charges and txclass.recurring_series, SET recurring_watermark = NULL in
-- txclass.monitored, and run txclass.refresh_recurring('tbl').

-- 0.4.0's library must be the one this backend runs: the first new C function says so
-- clearly instead of failing half-way through with "could not find function".
DO $guard$
BEGIN
CREATE  FUNCTION txclass."_attached_changed"(
	"tbl" oid /* pg_sys :: Oid */
) RETURNS void
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_attached_changed_wrapper';
EXCEPTION WHEN undefined_function THEN
    RAISE EXCEPTION 'txclass: this backend runs an older txclass library than 0.4.0 (%)', SQLERRM
        USING HINT = 'Install txclass 0.4.0, then restart PostgreSQL if txclass is in shared_preload_libraries '
                     '(the postmaster keeps the library it started with), or reconnect if it is not; '
                     'then run ALTER EXTENSION txclass UPDATE again. Nothing was changed.';
END
$guard$;

-- the default bundled model is now txclass-merchants-v3 (name evidence, invented places in
-- training); txclass-merchants-v2's files are those 0.3.0 shipped, so a database that registered
-- it keeps serving it. A database that relies on the default is told, and how to keep v2.
DO $default$
BEGIN
    IF NOT EXISTS (SELECT FROM txclass.active) THEN
        RAISE NOTICE 'txclass 0.4.0 serves the bundled model txclass-merchants-v3 where no model is activated (this database activated none; it served txclass-merchants-v2)'
            USING HINT = 'to keep txclass-merchants-v2: SELECT txclass.register_model(''v2'', ''txclass-merchants-v2''); SELECT txclass.activate_model(''v2'');';
    END IF;
END
$default$;

ALTER TABLE monitored ADD COLUMN key_columns name[], ADD COLUMN attnums jsonb;
COMMENT ON COLUMN monitored.key_column IS 'The key when it is a single column (see key_columns)';
COMMENT ON COLUMN monitored.key_columns IS 'The primary or unique key through which misses are classified per statement in batches (NULL: row by row)';

-- new helpers (sql/enrich.sql)

CREATE FUNCTION _key_columns(tbl regclass) RETURNS name[] LANGUAGE sql STABLE AS $$
    SELECT (SELECT array_agg(a.attname ORDER BY k.o)
            FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
            JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
            WHERE k.o <= i.indnkeyatts)
    FROM pg_catalog.pg_index i
    WHERE i.indrelid = tbl
      AND (i.indisprimary OR (i.indisunique AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL))
    ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid LIMIT 1
$$;

CREATE FUNCTION _key_list(keys name[], alias text DEFAULT NULL) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(coalesce(alias || '.', '') || quote_ident(k), ', ' ORDER BY o) FROM unnest(keys) WITH ORDINALITY u(k, o)
$$;

CREATE FUNCTION _key_position(tbl regclass, keys name[], param text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN cardinality(keys) = 1 THEN format('%s::%s', param, max(x.t))
                ELSE format('ROW(%s)', string_agg(format('(%s::jsonb->>%s)::%s', param, x.o - 1, x.t), ', ' ORDER BY x.o)) END
    FROM (SELECT u.o, format_type(a.atttypid, a.atttypmod) AS t FROM unnest(keys) WITH ORDINALITY u(k, o)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attname = u.k AND a.attnum > 0 AND NOT a.attisdropped) x
$$;

CREATE FUNCTION _key_text(keys name[], alias text DEFAULT NULL) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN cardinality(keys) = 1 THEN format('%s::text', txclass._key_list(keys, alias))
                ELSE format('jsonb_build_array(%s)::text',
                            (SELECT string_agg(coalesce(alias || '.', '') || quote_ident(k) || '::text', ', ' ORDER BY o)
                             FROM unnest(keys) WITH ORDINALITY u(k, o))) END
$$;

CREATE FUNCTION _key_last(tbl regclass, keys name[]) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE upto text;
BEGIN
    EXECUTE format('SELECT %s AS txclass_position FROM %s ORDER BY %s LIMIT 1', txclass._key_text(keys), tbl,
                   (SELECT string_agg(quote_ident(k) || ' DESC', ', ') FROM unnest(keys) k)) INTO upto;
    RETURN upto;
END
$$;

CREATE FUNCTION _attnums(m monitored) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(c.k, a.attnum), '{}')
    FROM (VALUES ('descriptor_column', m.descriptor_column), ('label_column', m.label_column),
                 ('category_column', m.category_column), ('confidence_column', m.confidence_column),
                 ('model_column', m.model_column), ('level_column', m.level_column), ('time_column', m.time_column),
                 ('account_column', m.account_column), ('amount_column', m.amount_column)) c(k, n)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = m.relid AND a.attname = c.n AND a.attnum > 0 AND NOT a.attisdropped
$$;

CREATE FUNCTION _tree(tbl regclass) RETURNS SETOF regclass LANGUAGE sql STABLE AS $$
    SELECT tbl UNION SELECT relid FROM pg_catalog.pg_partition_tree(tbl)
$$;

CREATE FUNCTION _sync_statement_triggers(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE m txclass.monitored; r regclass; has boolean;
BEGIN
    SELECT * INTO m FROM txclass.monitored WHERE relid = tbl;
    -- only beside the row trigger attach creates (a restore adds keys before its triggers, and
    -- restores the statement triggers itself)
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = tbl AND tgname = 'txclass_enrich') THEN
        RETURN;
    END IF;
    FOR r IN SELECT txclass._tree(tbl) LOOP
        has := EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = r AND tgname = 'txclass_enrich_batch');
        IF m.relid IS NOT NULL AND m.key_columns IS NOT NULL AND NOT has THEN
            EXECUTE format('CREATE TRIGGER txclass_enrich_batch AFTER INSERT OR UPDATE OF %I ON %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION txclass._enrich_statement()', m.descriptor_column, r);
        ELSIF (m.relid IS NULL OR m.key_columns IS NULL) AND has THEN
            EXECUTE format('DROP TRIGGER txclass_enrich_batch ON %s', r);
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION _follow(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE m txclass.monitored; j jsonb; k text; v jsonb; nm name; keys name[];
BEGIN
    SELECT * INTO m FROM txclass.monitored WHERE relid = tbl;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    j := to_jsonb(m);
    -- a column whose name is gone was renamed: its attribute number gives the new name (a
    -- name still there is kept: a restored table's attribute numbers may differ from the
    -- dumped ones, its names do not)
    FOR k, v IN SELECT e.key, e.value FROM jsonb_each(coalesce(m.attnums, '{}')) e
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = tbl
                                  AND a.attname = j->>e.key AND a.attnum > 0 AND NOT a.attisdropped) LOOP
        SELECT a.attname INTO nm FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = tbl AND a.attnum = v::int2 AND NOT a.attisdropped;
        IF FOUND THEN
            j := jsonb_set(j, ARRAY[k], to_jsonb(nm));
        END IF;
    END LOOP;
    keys := txclass._key_columns(tbl);
    j := jsonb_set(j, '{key_columns}', coalesce(to_jsonb(keys), 'null'));
    j := jsonb_set(j, '{key_column}', CASE WHEN cardinality(keys) = 1 THEN to_jsonb(keys[1]) ELSE 'null' END);
    j := jsonb_set(j, '{attnums}', txclass._attnums(jsonb_populate_record(m, j)));
    IF j IS DISTINCT FROM to_jsonb(m) THEN
        UPDATE txclass.monitored t
        SET descriptor_column = x.descriptor_column, label_column = x.label_column, category_column = x.category_column,
            confidence_column = x.confidence_column, model_column = x.model_column, level_column = x.level_column,
            time_column = x.time_column, account_column = x.account_column, amount_column = x.amount_column,
            key_column = x.key_column, key_columns = x.key_columns, attnums = x.attnums
        FROM jsonb_populate_record(NULL::txclass.monitored, j) x WHERE t.relid = tbl;
    END IF;
    PERFORM txclass._sync_statement_triggers(tbl);
    PERFORM txclass._attached_changed(tbl);
END
$$;

CREATE FUNCTION _on_ddl() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE root regclass; orphan regclass; followed boolean := false;
BEGIN
    -- nothing attached: nothing to follow (the common case costs one look-up)
    IF NOT EXISTS (SELECT FROM txclass.monitored) THEN
        RETURN;
    END IF;
    FOR root IN
        SELECT DISTINCT mo.relid
        FROM pg_event_trigger_ddl_commands() c
        CROSS JOIN LATERAL (SELECT coalesce((SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = c.objid), c.objid)) t(rel)
        CROSS JOIN LATERAL (SELECT t.rel UNION SELECT a::oid FROM pg_catalog.pg_partition_ancestors(t.rel::regclass) a) x(rel)
        JOIN txclass.monitored mo ON mo.relid::oid = x.rel
        WHERE c.classid = 'pg_catalog.pg_class'::regclass AND EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = t.rel)
    LOOP
        PERFORM txclass._follow(root);
        followed := true;
    END LOOP;
    IF NOT followed THEN
        RETURN;
    END IF;
    -- a partition detached from an attached table keeps no statement trigger of txclass's
    FOR orphan IN
        SELECT g.tgrelid::regclass FROM pg_catalog.pg_trigger g
        WHERE g.tgname = 'txclass_enrich_batch'
          AND NOT EXISTS (SELECT FROM txclass.monitored o WHERE o.relid::oid IN
                          (SELECT g.tgrelid UNION SELECT a::oid FROM pg_catalog.pg_partition_ancestors(g.tgrelid::regclass) a))
    LOOP
        EXECUTE format('DROP TRIGGER txclass_enrich_batch ON %s', orphan);
    END LOOP;
EXCEPTION WHEN OTHERS THEN
    -- never fail the user's DDL: say what enrichment lacks and how to repair it
    RAISE WARNING 'txclass could not follow this change of an attached table: %', SQLERRM
        USING HINT = 'run SELECT txclass.attach(...) on the table again';
END
$$;

CREATE FUNCTION _on_drop() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE gone oid;
BEGIN
    FOR gone IN SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                JOIN txclass.monitored m ON m.relid::oid = d.objid
                WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 LOOP
        DELETE FROM txclass.monitored WHERE relid::oid = gone;
        DELETE FROM txclass.drift_counts WHERE relid::oid = gone;
        DELETE FROM txclass.drift_seen WHERE relid::oid = gone;
        DELETE FROM txclass.drift_baseline WHERE relid::oid = gone;
        DELETE FROM txclass.recurring_charges WHERE relid::oid = gone;
        DELETE FROM txclass.recurring_series WHERE relid::oid = gone;
        DELETE FROM txclass.backfill_progress WHERE relid::oid = gone;
    END LOOP;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'txclass could not remove the record of a dropped attached table: %', SQLERRM
        USING HINT = 'delete its row from txclass.monitored';
END
$$;


-- changed functions: the same signatures, new bodies

CREATE OR REPLACE FUNCTION _drop_enrich_triggers(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    -- the row trigger's clones on partitions go with it; the statement triggers are per table
    FOR t IN SELECT g.tgname, g.tgrelid::regclass AS rel FROM pg_catalog.pg_trigger g
             WHERE g.tgrelid IN (SELECT txclass._tree(tbl)) AND g.tgparentid = 0
               AND g.tgname IN ('txclass_enrich', 'txclass_enrich_batch') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION attach(tbl regclass, descriptor_column name,
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
    keys name[];
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
    -- the key misses are written back through, per statement in batches: the primary key, else
    -- a unique key (composite keys too)
    keys := txclass._key_columns(tbl);
    IF keys IS NULL THEN
        RAISE NOTICE '% has no primary key or unique key: cache misses are classified one row at a time, and txclass.backfill walks it by ctid ranges', tbl;
    END IF;
    PERFORM txclass._drop_enrich_triggers(tbl);
    -- the triggers carry nothing: txclass resolves the table's columns from txclass.monitored at
    -- use (src/enrich.rs), so a rename needs no re-attach. On a partitioned table the row trigger
    -- is cloned onto every partition, present and future.
    EXECUTE format('CREATE TRIGGER txclass_enrich BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION txclass._enrich_row()', descriptor_column, tbl);
    INSERT INTO txclass.monitored (relid, descriptor_column, label_column, category_column, confidence_column,
                                   model_column, key_column, on_error, attached_by, time_column, drift_unit,
                                   account_column, amount_column, level_column, key_columns)
    VALUES (tbl, descriptor_column, label_column, category_column, confidence_column,
            model_column, CASE WHEN cardinality(keys) = 1 THEN keys[1] END, on_error, caller, time_column, drift_unit,
            account_column, amount_column, level_column, keys)
    ON CONFLICT (relid) DO UPDATE SET descriptor_column = EXCLUDED.descriptor_column, label_column = EXCLUDED.label_column,
        category_column = EXCLUDED.category_column, confidence_column = EXCLUDED.confidence_column,
        model_column = EXCLUDED.model_column, key_column = EXCLUDED.key_column, on_error = EXCLUDED.on_error,
        attached_by = EXCLUDED.attached_by, attached_at = now(), time_column = EXCLUDED.time_column,
        drift_unit = EXCLUDED.drift_unit, account_column = EXCLUDED.account_column, amount_column = EXCLUDED.amount_column,
        level_column = EXCLUDED.level_column, key_columns = EXCLUDED.key_columns
    RETURNING * INTO m;
    UPDATE txclass.monitored SET attnums = txclass._attnums(m) WHERE relid = tbl RETURNING * INTO m;
    PERFORM txclass._sync_statement_triggers(tbl);
    -- every backend resolves the table again (its cached columns, key and on_error)
    PERFORM txclass._attached_changed(tbl);
    RETURN m;
END
$$;

CREATE OR REPLACE FUNCTION detach(tbl regclass) RETURNS boolean LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM txclass._check_owner(tbl, 'detach it');
    PERFORM txclass._drop_enrich_triggers(tbl);
    PERFORM txclass._attached_changed(tbl);
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

CREATE OR REPLACE PROCEDURE backfill(tbl regclass, batch_size integer DEFAULT 10000, reclassify boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
    m txclass.monitored;
    p txclass.backfill_progress;
    keys name[];
    model text;
    pending text;
    outputs text;
    units regclass[];
    u regclass;
    -- where a run stands (backfill_progress.last_key): the partitions done, the one being read
    -- and the position in it (a key as txclass._key_text writes it, or the next block), as JSON;
    -- a plain table with a single-column key keeps 0.3.0's form, the last key's text
    plain_form boolean;
    resuming boolean := false;
    finished oid[] := '{}';
    at_unit oid;
    after text;
    next_after text;
    state text;
    n bigint;
    cnt bigint;
    blocks bigint;
    step bigint;
    t0 timestamptz;
    t_batch timestamptz;
    done bigint := 0;
    total bigint := 0;
    rate float8;
BEGIN
    m := txclass._monitored(tbl);
    keys := m.key_columns;
    IF batch_size < 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format('batch_size must be at least 1, got %s', batch_size);
    END IF;
    SELECT i.model INTO model FROM txclass.model_info() i;
    -- rows still without outputs; with reclassify, also every row another model answered (its
    -- outputs are rewritten, to NULL where the descriptor gives nothing to classify)
    -- (by the model column: an abstention has no label but is answered, with its model)
    pending := format('%I IS NOT NULL AND %I IS NULL', m.descriptor_column, m.model_column);
    IF reclassify THEN
        pending := format('(%s OR %I IS DISTINCT FROM %L)', pending, m.model_column, model);
    END IF;
    outputs := format('%I = res.label, %I = res.category, %I = res.confidence, %I = res.model%s',
                      m.label_column, m.category_column, m.confidence_column, m.model_column,
                      CASE WHEN m.level_column IS NOT NULL THEN format(', %I = res.level', m.level_column) ELSE '' END);
    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = tbl) = 'p' THEN
        units := ARRAY(SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t WHERE t.isleaf ORDER BY t.relid::oid);
    ELSE
        units := ARRAY[tbl];
    END IF;
    plain_form := coalesce(units = ARRAY[tbl] AND cardinality(keys) = 1, false);
    -- a table loaded moments ago has no statistics yet, and the batch plan needs them (without,
    -- each batch may join the whole table instead of looking the keys up)
    FOREACH u IN ARRAY units LOOP
        IF (SELECT s.last_analyze IS NULL AND s.last_autoanalyze IS NULL FROM pg_catalog.pg_stat_user_tables s WHERE s.relid = u) THEN
            EXECUTE format('ANALYZE %s', u);
        END IF;
    END LOOP;
    SELECT * INTO p FROM txclass.backfill_progress WHERE relid = tbl;
    IF FOUND AND p.status <> 'done' AND p.last_key IS NOT NULL THEN
        IF plain_form THEN
            at_unit := tbl;
            after := p.last_key;
        ELSIF p.last_key LIKE '{%' THEN
            finished := ARRAY(SELECT e::oid FROM jsonb_array_elements_text(p.last_key::jsonb->'done') e);
            at_unit := (p.last_key::jsonb->>'unit')::oid;
            after := p.last_key::jsonb->>'after';
        END IF;
        resuming := at_unit IS NOT NULL OR cardinality(finished) > 0;
        IF resuming THEN
            done := p.rows_done;
            RAISE NOTICE 'resuming the backfill of % at %, after % (% rows done before)',
                tbl, coalesce(at_unit::regclass::text, 'the next partition'), coalesce(after, 'its start'), done;
        END IF;
    END IF;
    -- the rows to do: a count, for the progress and its ETA
    FOREACH u IN ARRAY units LOOP
        CONTINUE WHEN u::oid = ANY (finished);
        EXECUTE format('SELECT count(*) FROM %s WHERE %s%s', u, pending,
                       CASE WHEN u::oid IS DISTINCT FROM at_unit OR after IS NULL THEN ''
                            WHEN keys IS NULL THEN ' AND ctid >= (''('' || $1 || '',0)'')::tid'
                            ELSE format(' AND (%s) > %s', txclass._key_list(keys), txclass._key_position(u, keys, '$1')) END)
        INTO cnt USING after;
        total := total + cnt;
    END LOOP;
    total := total + done;
    t0 := clock_timestamp();
    INSERT INTO txclass.backfill_progress (relid, status, started_at, updated_at, rows_done, rows_total, last_key, model, pid)
    VALUES (tbl, 'running', t0, t0, done, total, CASE WHEN resuming THEN p.last_key END, model, pg_backend_pid())
    ON CONFLICT (relid) DO UPDATE SET status = 'running', started_at = EXCLUDED.started_at, updated_at = EXCLUDED.updated_at,
        rows_done = EXCLUDED.rows_done, rows_total = EXCLUDED.rows_total, batches = 0, rows_per_s = NULL, eta = NULL,
        last_key = CASE WHEN resuming THEN EXCLUDED.last_key END, model = EXCLUDED.model, pid = EXCLUDED.pid;
    COMMIT;
    FOREACH u IN ARRAY units LOOP
        CONTINUE WHEN u::oid = ANY (finished);
        IF u::oid IS DISTINCT FROM at_unit THEN
            after := NULL;
        END IF;
        IF keys IS NULL THEN
            -- ctid ranges of about batch_size rows, up to the table's end as it is now (rows a
            -- batch rewrites move behind it and are not read twice)
            blocks := pg_catalog.pg_relation_size(u) / current_setting('block_size')::int;
            step := greatest(1, (SELECT batch_size / greatest(CASE WHEN c.relpages > 0 THEN c.reltuples / c.relpages END, 1)
                                 FROM pg_catalog.pg_class c WHERE c.oid = u))::bigint;
            after := coalesce(after, '0');
        END IF;
        LOOP
            t_batch := clock_timestamp();
            IF keys IS NOT NULL THEN
                EXECUTE format($q$
                    WITH batch AS MATERIALIZED (
                        SELECT row_number() OVER (ORDER BY %1$s) AS txclass_i, %1$s, %2$I AS txclass_d FROM %3$s
                        WHERE %4$s AND ($1 IS NULL OR (%1$s) > %5$s)
                        ORDER BY %1$s LIMIT $2),
                    -- materialized: rows of (position, outputs) only
                    res AS MATERIALIZED (SELECT b.ordinality AS txclass_i, b.label, b.category, b.confidence, b.model, b.level
                            FROM txclass.classify_batch(ARRAY(SELECT txclass_d FROM batch ORDER BY txclass_i)) b),
                    upd AS (UPDATE %3$s AS t SET %6$s FROM batch JOIN res USING (txclass_i) WHERE %7$s RETURNING 1)
                    SELECT (SELECT count(*) FROM batch), (SELECT %8$s FROM batch ORDER BY txclass_i DESC LIMIT 1),
                           (SELECT count(*) FROM upd)
                    $q$, txclass._key_list(keys), m.descriptor_column, u, pending, txclass._key_position(u, keys, '$1'), outputs,
                    (SELECT string_agg(format('t.%1$I = batch.%1$I', k), ' AND ') FROM unnest(keys) k),
                    txclass._key_text(keys, 'batch'))
                INTO n, next_after USING after, batch_size;
                EXIT WHEN n = 0;
            ELSE
                EXIT WHEN after::bigint >= blocks;
                EXECUTE format($q$
                    WITH batch AS MATERIALIZED (
                        SELECT row_number() OVER () AS txclass_i, ctid AS txclass_k, %1$I AS txclass_d FROM %2$s
                        WHERE %3$s AND ctid >= ('(' || $1 || ',0)')::tid AND ctid < ('(' || $2 || ',0)')::tid),
                    res AS MATERIALIZED (SELECT b.ordinality AS txclass_i, b.label, b.category, b.confidence, b.model, b.level
                            FROM txclass.classify_batch(ARRAY(SELECT txclass_d FROM batch ORDER BY txclass_i)) b),
                    upd AS (UPDATE %2$s AS t SET %4$s FROM batch JOIN res USING (txclass_i)
                            WHERE t.ctid = ANY (ARRAY(SELECT txclass_k FROM batch)) AND t.ctid = batch.txclass_k RETURNING 1)
                    SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM upd)
                    $q$, m.descriptor_column, u, pending, outputs)
                INTO n, cnt USING after::bigint, after::bigint + step;
                next_after := (after::bigint + step)::text;
            END IF;
            after := next_after;
            done := done + n;
            state := CASE WHEN plain_form THEN after
                          ELSE jsonb_build_object('done', to_jsonb(finished), 'unit', u::oid, 'after', after)::text END;
            rate := done / greatest(extract(epoch FROM clock_timestamp() - t0), 1e-6);
            UPDATE txclass.backfill_progress
            SET updated_at = clock_timestamp(), rows_done = done, batches = batches + 1, rows_per_s = rate,
                eta = make_interval(secs => greatest(total - done, 0) / greatest(rate, 1e-9)), last_key = state
            WHERE relid = tbl;
            COMMIT;
            IF n > 0 THEN
                RAISE NOTICE 'backfill %: % of % rows (% rows/s, this batch % rows in % ms), ETA %',
                    u, done, total, round(rate), n, round(extract(epoch FROM clock_timestamp() - t_batch) * 1000),
                    make_interval(secs => round(greatest(total - done, 0) / greatest(rate, 1e-9)));
            END IF;
        END LOOP;
        finished := finished || u::oid;
        IF NOT plain_form THEN
            UPDATE txclass.backfill_progress
            SET last_key = jsonb_build_object('done', to_jsonb(finished), 'unit', NULL, 'after', NULL)::text
            WHERE relid = tbl;
            COMMIT;
        END IF;
    END LOOP;
    UPDATE txclass.backfill_progress SET status = 'done', updated_at = clock_timestamp(), eta = '0'::interval
    WHERE relid = tbl;
    COMMIT;
    RAISE NOTICE 'backfill %: done, % rows in %', tbl, done, date_trunc('second', clock_timestamp() - t0);
END
$$;

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
            USING broken || ARRAY['a rename is followed by itself; for a dropped or retyped column re-run txclass.attach() (it adds missing output columns), then txclass.backfill()'];
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        -- enriched: rows with outputs (an abstention has its model, confidence and level, not a label)
        'SELECT count(*), count(%1$I), count(*) FILTER (WHERE %1$I IS NULL AND %2$I IS NOT NULL), '
        '(SELECT coalesce(jsonb_object_agg(coalesce(x.m, ''(none)''), x.n), ''{}'') FROM (SELECT %3$I AS m, count(*) AS n FROM %4$s GROUP BY 1) x), '
        '''{}''::text[] FROM %4$s', m.model_column, m.descriptor_column, m.model_column, tbl);
END
$$;

CREATE OR REPLACE FUNCTION refresh_drift(tbl regclass) RETURNS bigint LANGUAGE plpgsql VOLATILE
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

CREATE OR REPLACE FUNCTION refresh_drift_all() RETURNS TABLE (tbl regclass, rows bigint) LANGUAGE plpgsql VOLATILE AS $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT relid FROM txclass.monitored WHERE key_columns IS NOT NULL ORDER BY relid::text LOOP
        tbl := t;
        rows := txclass.refresh_drift(t);
        RETURN NEXT;
    END LOOP;
END
$$;

-- the serving model's classes of many merchants ("Other Restaurant"): they name no series
CREATE FUNCTION txclass."_generic_labels"() RETURNS TEXT[]
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_generic_labels_wrapper';

CREATE OR REPLACE FUNCTION refresh_recurring(tbl regclass) RETURNS bigint LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE m txclass.monitored; upto text; n bigint; accounts text[]; merchants text[]; upsert text := '';
BEGIN
    m := txclass._check_reader(tbl);
    IF m.account_column IS NULL OR m.amount_column IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no account and amount columns for recurring payments', tbl),
            HINT = format('re-attach it naming them: SELECT txclass.attach(%L, %L, account_column => ..., amount_column => ...)',
                          tbl::text, m.descriptor_column);
    END IF;
    IF m.key_columns IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no primary key or unique key; recurring charges are folded in key order', tbl),
            HINT = 'add one (e.g. ALTER TABLE ... ADD PRIMARY KEY (...)): txclass takes it up at once';
    END IF;
    PERFORM pg_advisory_xact_lock('txclass.recurring_charges'::regclass::oid::int, tbl::oid::int);
    SELECT recurring_watermark INTO m.recurring_watermark FROM txclass.monitored WHERE relid = tbl;
        -- the newest key (a composite key's as a JSON array): the refresh reads up to it
    upto := txclass._key_last(tbl, m.key_columns);
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
                   CASE WHEN %14$s THEN %2$I
                        ELSE (SELECT p.merchant_key FROM txclass.parse_descriptor(%4$I) p) END AS merchant,
                   %5$I::date AS day, %6$I::float8 AS amount,
                   -- the label and category name the series only where they named the merchant
                   CASE WHEN %14$s THEN %2$I END AS label,
                   CASE WHEN %14$s THEN %7$I END AS category
            FROM %8$s WHERE ($1 IS NULL OR (%9$s) > %10$s) AND (%9$s) <= %13$s
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
             m.category_column, tbl, txclass._key_list(m.key_columns), txclass._key_position(tbl, m.key_columns, '$1'), tbl::oid::text, upsert,
             txclass._key_position(tbl, m.key_columns, '$2'),
             -- named: confidence >= 0.9 and, where the row has a level, high or very_high (a
             -- confident answer without the name in the descriptor is medium: HOTJAR is not
             -- Hotels.com). A class of many merchants ("Other Restaurant", $3) names none: two
             -- restaurants are two series
             format('%1$I IS NOT NULL AND %3$I >= 0.9 AND coalesce(%2$s IN (''high'', ''very_high''), true) AND %1$I <> ALL ($3)',
                    m.label_column, CASE WHEN m.level_column IS NULL THEN 'NULL::text' ELSE quote_ident(m.level_column) END,
                    m.confidence_column))
    INTO n, accounts, merchants USING m.recurring_watermark, upto, txclass._generic_labels();
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

CREATE OR REPLACE FUNCTION refresh_all() RETURNS TABLE (tbl regclass, drift_rows bigint, recurring_rows bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE r txclass.monitored;
BEGIN
    FOR r IN SELECT * FROM txclass.monitored WHERE key_columns IS NOT NULL AND has_table_privilege(relid, 'SELECT')
             ORDER BY relid::text LOOP
        tbl := r.relid;
        drift_rows := txclass.refresh_drift(r.relid);
        recurring_rows := CASE WHEN r.account_column IS NOT NULL AND r.amount_column IS NOT NULL
                               THEN txclass.refresh_recurring(r.relid) END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- every attached table: its key (a partitioned or composite-key table gains batched misses and
-- backfill) and the attribute numbers of its columns; statement triggers where its key and
-- partitions need them (existing triggers stay as they are, enabled or not)
UPDATE monitored SET key_columns = _key_columns(relid);
UPDATE monitored SET key_column = CASE WHEN cardinality(key_columns) = 1 THEN key_columns[1] END;
UPDATE monitored m SET attnums = _attnums(m);
SELECT _sync_statement_triggers(relid) FROM monitored;

CREATE EVENT TRIGGER txclass_follow_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE INDEX', 'ALTER INDEX')
    EXECUTE FUNCTION _on_ddl();
CREATE EVENT TRIGGER txclass_follow_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA')
    EXECUTE FUNCTION _on_drop();

REVOKE ALL ON FUNCTION _attached_changed(oid), _follow(regclass), _sync_statement_triggers(regclass), _on_ddl(), _on_drop() FROM PUBLIC;
