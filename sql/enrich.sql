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
    level_column      name,
    -- 0.4.0: every column of the key misses are written back through (the primary key, else a
    -- unique key; composite keys too; NULL: none), and the attribute numbers of the named
    -- columns, by which txclass._on_ddl() follows a rename
    key_columns       name[],
    attnums           jsonb
);
COMMENT ON TABLE monitored IS 'txclass: tables enriched on write (txclass.attach); the drift views read this list';
COMMENT ON COLUMN monitored.key_column IS 'The key when it is a single column (see key_columns)';
COMMENT ON COLUMN monitored.key_columns IS 'The primary or unique key through which misses are classified per statement in batches (NULL: row by row)';
SELECT pg_catalog.pg_extension_config_dump('txclass.monitored', '');

-- The key a table's misses, backfill and refreshes go through: its primary key, else its first
-- unique key without expressions or a predicate (NULL: none). Composite keys too (a partitioned
-- table's key holds its partition key).
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

-- SQL text for a key: its columns ("alias.k1, alias.k2"); a stored position (the text
-- parameter `param`: a single key's value, a composite key's JSON array of values) as a value
-- or row of the key's types; and a row's key as such text.
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

-- The newest key of `tbl` as a stored position (txclass._key_text), NULL when it is empty: how
-- far refresh_drift and refresh_recurring read.
CREATE FUNCTION _key_last(tbl regclass, keys name[]) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE upto text;
BEGIN
    EXECUTE format('SELECT %s AS txclass_position FROM %s ORDER BY %s LIMIT 1', txclass._key_text(keys), tbl,
                   (SELECT string_agg(quote_ident(k) || ' DESC', ', ') FROM unnest(keys) k)) INTO upto;
    RETURN upto;
END
$$;

-- The attribute numbers of the columns a monitored row names (those the table has).
CREATE FUNCTION _attnums(m monitored) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(c.k, a.attnum), '{}')
    FROM (VALUES ('descriptor_column', m.descriptor_column), ('label_column', m.label_column),
                 ('category_column', m.category_column), ('confidence_column', m.confidence_column),
                 ('model_column', m.model_column), ('level_column', m.level_column), ('time_column', m.time_column),
                 ('account_column', m.account_column), ('amount_column', m.amount_column)) c(k, n)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = m.relid AND a.attname = c.n AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- The table and, when it is partitioned, every partition (all levels).
CREATE FUNCTION _tree(tbl regclass) RETURNS SETOF regclass LANGUAGE sql STABLE AS $$
    SELECT tbl UNION SELECT relid FROM pg_catalog.pg_partition_tree(tbl)
$$;

CREATE FUNCTION _drop_enrich_triggers(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
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

-- The statement trigger that writes a statement's queued misses, on the table and on every
-- partition (a statement that names a partition fires that partition's statement triggers, not
-- its parent's), while the table has a key; none where it has not.
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
        -- on a Citus worker, a shard (or a partition's shard) of an attached distributed table:
        -- its table's record, for the shard
        SELECT mo.* INTO m
        FROM (SELECT txclass._cluster_shard_of(tbl) AS s) x
        JOIN txclass.monitored mo ON mo.relid::oid IN (SELECT x.s::oid UNION SELECT a::oid FROM pg_catalog.pg_partition_ancestors(x.s) a)
        WHERE x.s IS NOT NULL;
        IF FOUND THEN
            m.relid := tbl;
            RETURN m;
        END IF;
    END IF;
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
    keys name[];
    m txclass.monitored;
BEGIN
    PERFORM txclass._check_owner(tbl, 'attach it');
    PERFORM txclass._cluster_allow_triggers(tbl);
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

-- detach(table): removes the triggers and the record; the data and the columns stay.
CREATE FUNCTION detach(tbl regclass) RETURNS boolean LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM txclass._check_owner(tbl, 'detach it');
    PERFORM txclass._cluster_allow_triggers(tbl);
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

-- After DDL on an attached table (or on a partition of one): follow renames of the table's
-- columns (by attribute number) into txclass.monitored, take up a key added or dropped, give new
-- partitions (CREATE TABLE ... PARTITION OF, ATTACH PARTITION) the statement trigger, and make
-- every backend resolve the table again. Renaming or moving the table itself needs nothing
-- (txclass.monitored holds its OID).
CREATE FUNCTION _follow(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE m txclass.monitored; j jsonb; k text; v jsonb; nm name; keys name[];
BEGIN
    SELECT * INTO m FROM txclass.monitored WHERE relid = tbl;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- on a Citus worker, a distributed table's record is the coordinator's: it follows the DDL
    -- there and sends the result (sql/cluster.sql); here the shards are only resolved again
    IF txclass._cluster_role() = 'worker' AND txclass._cluster_table(tbl) THEN
        PERFORM txclass._attached_changed(tbl);
        RETURN;
    END IF;
    PERFORM txclass._cluster_allow_triggers(tbl);
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

-- A dropped table is detached: its record and summaries go with it.
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

CREATE EVENT TRIGGER txclass_follow_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE INDEX', 'ALTER INDEX')
    EXECUTE FUNCTION _on_ddl();
CREATE EVENT TRIGGER txclass_follow_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA')
    EXECUTE FUNCTION _on_drop();

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
-- reclassify => true, rows classified by another model than the active one) one committed batch
-- at a time: in key order (the primary key or a unique key, composite keys too), or by ctid
-- ranges where the table has no key; a partitioned table one partition after another.
-- Resumable: a re-run after a cancel or a crash continues after the last committed batch. Locks
-- only the rows of the batch being written.
CREATE PROCEDURE backfill(tbl regclass, batch_size integer DEFAULT 10000, reclassify boolean DEFAULT false)
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
    -- a hash-distributed Citus table: each worker backfills its own shards (sql/cluster.sql)
    IF txclass._cluster_sharded(tbl) THEN
        CALL txclass._cluster_backfill(tbl, batch_size, reclassify);
        RETURN;
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
REVOKE ALL ON FUNCTION _attached_changed(oid), _follow(regclass), _sync_statement_triggers(regclass), _on_ddl(), _on_drop() FROM PUBLIC;
