-- txclass on a Citus cluster (see src/cluster.rs): which node this is, one registry for the
-- whole cluster, attachments of distributed tables known to the workers, work on the shards
-- where they are stored, and the cluster's state gathered on the coordinator.
--
-- The registry (models, deployments, active, rules), the labels people gave (served at once,
-- so a shard's trigger must see them too) and the attachments of distributed tables (monitored)
-- are changed on the coordinator. A statement trigger on each of those tables sends
-- the statement's rows to every worker through txclass._cluster_mailbox, a Citus reference
-- table: Citus writes a row of it on every node inside the coordinator's distributed
-- transaction and commits it everywhere with two-phase commit, or nowhere. On a worker a
-- trigger on the mailbox applies the rows (_cluster_apply, after checking that a model's files
-- are there with the registered checksum) and keeps nothing. On one node (no Citus, or a
-- coordinator without workers) the triggers do nothing.

-- 'single', 'coordinator' (Citus, with at least one active primary worker) or 'worker'.
CREATE FUNCTION _cluster_role() RETURNS text LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN 'single';
    END IF;
    -- group 0 is the coordinator's (pg_dist_local_group has one row on every Citus node)
    IF coalesce((SELECT groupid FROM pg_dist_local_group), 0) <> 0 THEN
        RETURN 'worker';
    END IF;
    IF EXISTS (SELECT FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' AND isactive) THEN
        RETURN 'coordinator';
    END IF;
    RETURN 'single';
END
$$;

-- Whether a table is a Citus table (distributed, reference, or added to the metadata).
CREATE FUNCTION _cluster_table(tbl regclass) RETURNS boolean LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = tbl);
END
$$;

-- Before txclass creates or drops its triggers on a Citus table: Citus refuses triggers on
-- distributed and reference tables unless citus.enable_unsafe_triggers is on (for this
-- transaction here). txclass's triggers read and write only the row's own shard and txclass's
-- own tables on that node, which is what makes a trigger safe there.
CREATE FUNCTION _cluster_allow_triggers(tbl regclass) RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
    IF txclass._cluster_table(tbl) THEN
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    END IF;
END
$$;

-- The primary key the rows of each forwarded table are applied by.
CREATE FUNCTION _cluster_key(tbl text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE tbl WHEN 'models' THEN 'name' WHEN 'deployments' THEN 'id' WHEN 'active' THEN 'singleton'
                    WHEN 'rules' THEN 'id' WHEN 'monitored' THEN 'relid' WHEN 'labels' THEN 'id' END
$$;

-- On a worker: the model's files must be on this node, with the checksum the coordinator
-- registered (the same files on every node).
CREATE FUNCTION _cluster_check_files(model text, directory text, checksum text) RETURNS void LANGUAGE plpgsql
AS $$
DECLARE info record; node text := coalesce(inet_server_addr()::text, 'localhost') || ':' || current_setting('port');
BEGIN
    BEGIN
        SELECT * INTO info FROM txclass._inspect_model(directory, false);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('txclass: model %L cannot be used on worker %s: %s', model, node, SQLERRM),
            HINT = format('copy the model''s directory %s to the same path on every node of the cluster, then try again', directory);
    END;
    IF info.checksum <> checksum THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('txclass: model %L: the files in %s on worker %s have checksum %s…, the coordinator registered %s…',
                             model, directory, node, left(info.checksum, 12), left(checksum, 12)),
            HINT = 'copy the same files to every node of the cluster, then try again';
    END IF;
END
$$;

-- On a worker, from the mailbox: applies a statement's rows of a forwarded
-- table (INSERT and UPDATE by key, DELETE by key, TRUNCATE).
CREATE FUNCTION _cluster_apply(tbl text, op text, payload jsonb) RETURNS void LANGUAGE plpgsql
AS $$
DECLARE
    key text := txclass._cluster_key(tbl);
    cols text;
    rcols text;
    r record;
BEGIN
    IF key IS NULL OR op NOT IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'SYNC') THEN
        RAISE EXCEPTION 'txclass: % of txclass.% is not applied across the cluster', op, tbl;
    END IF;
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg('r.' || quote_ident(a.attname), ', ' ORDER BY a.attnum)
    INTO cols, rcols
    FROM pg_attribute a WHERE a.attrelid = ('txclass.' || tbl)::regclass AND a.attnum > 0 AND NOT a.attisdropped;
    -- a model's files must be here before it is registered or served here
    IF tbl = 'models' AND op IN ('INSERT', 'SYNC') THEN
        FOR r IN SELECT * FROM jsonb_populate_recordset(NULL::txclass.models, payload) x
                 WHERE op = 'INSERT' OR NOT EXISTS (SELECT FROM txclass.models m WHERE m.name = x.name) LOOP
            PERFORM txclass._cluster_check_files(r.name, r.directory, r.checksum);
        END LOOP;
    ELSIF tbl = 'active' AND op IN ('INSERT', 'UPDATE', 'SYNC') THEN
        FOR r IN SELECT m.name, m.directory, m.checksum
                 FROM jsonb_populate_recordset(NULL::txclass.active, payload) x
                 JOIN txclass.deployments d ON d.id = x.deployment JOIN txclass.models m ON m.name = d.model LOOP
            PERFORM txclass._cluster_check_files(r.name, r.directory, r.checksum);
        END LOOP;
    END IF;
    IF op = 'SYNC' THEN
        -- this node's rows made equal to the coordinator's: rows it lacks inserted, changed ones
        -- updated (a registered model's files cannot change: the models trigger refuses that),
        -- rules, the active row and attachments of Citus tables it has beyond them deleted; the
        -- deployment log only grows
        payload := coalesce(payload, '[]');
        IF tbl IN ('rules', 'active', 'monitored', 'labels') THEN
            EXECUTE format('DELETE FROM txclass.%I t WHERE NOT EXISTS (SELECT FROM jsonb_populate_recordset(NULL::txclass.%I, $1) r WHERE r.%I = t.%I)%s',
                           tbl, tbl, key, key, CASE WHEN tbl = 'monitored' THEN ' AND txclass._cluster_table(t.relid)' ELSE '' END) USING payload;
        END IF;
        EXECUTE format('INSERT INTO txclass.%I AS t (%s) SELECT %s FROM jsonb_populate_recordset(NULL::txclass.%I, $1) r ON CONFLICT (%I) DO %s',
                       tbl, cols, rcols, tbl, key,
                       CASE WHEN tbl = 'deployments' THEN 'NOTHING'
                            ELSE format('UPDATE SET (%s) = ROW(%s) WHERE ROW(%s) IS DISTINCT FROM ROW(%s)', cols,
                                        replace(rcols, 'r.', 'EXCLUDED.'), replace(rcols, 'r.', 't.'), replace(rcols, 'r.', 'EXCLUDED.')) END)
            USING payload;
    ELSIF op = 'TRUNCATE' THEN
        EXECUTE format('DELETE FROM txclass.%I', tbl);
    ELSIF op = 'DELETE' THEN
        EXECUTE format('DELETE FROM txclass.%I t USING jsonb_populate_recordset(NULL::txclass.%I, $1) r WHERE t.%I = r.%I',
                       tbl, tbl, key, key) USING payload;
    ELSIF op = 'UPDATE' THEN
        EXECUTE format('UPDATE txclass.%I t SET (%s) = ROW(%s) FROM jsonb_populate_recordset(NULL::txclass.%I, $1) r WHERE t.%I = r.%I',
                       tbl, cols, rcols, tbl, key, key) USING payload;
    ELSE
        EXECUTE format('INSERT INTO txclass.%I (%s) SELECT %s FROM jsonb_populate_recordset(NULL::txclass.%I, $1) r',
                       tbl, cols, rcols, tbl) USING payload;
    END IF;
    IF tbl = 'monitored' THEN
        -- every backend of this node resolves the table's shards again
        PERFORM txclass._attached_changed(x.relid) FROM jsonb_populate_recordset(NULL::txclass.monitored, payload) x;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION _cluster_apply(text, text, jsonb) FROM PUBLIC;

-- The mailbox (a reference table once the coordinator first sends through it).
CREATE TABLE _cluster_mailbox (tbl text NOT NULL, op text NOT NULL, payload jsonb);
COMMENT ON TABLE _cluster_mailbox IS 'txclass on Citus: a registry change sent from the coordinator to every worker (a reference table; never holds a row)';

-- On each node's copy of the mailbox: a worker applies the change, and no node keeps the row.
CREATE FUNCTION _cluster_deliver() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF txclass._cluster_role() = 'worker' THEN
        PERFORM txclass._cluster_apply(NEW.tbl, NEW.op, NEW.payload);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliver BEFORE INSERT ON _cluster_mailbox FOR EACH ROW EXECUTE FUNCTION _cluster_deliver();

-- On the coordinator: sends a change to every worker in this transaction. The first time, makes
-- the mailbox a reference table (a copy on every node, its trigger with it). Nothing is sent
-- while an extension script runs: CREATE and ALTER EXTENSION run on every node themselves.
CREATE FUNCTION _cluster_send(tbl text, op text, payload jsonb) RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
    IF txclass._in_extension_script() THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'txclass._cluster_mailbox'::regclass) THEN
        LOCK TABLE txclass._cluster_mailbox IN EXCLUSIVE MODE;
        IF NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'txclass._cluster_mailbox'::regclass) THEN
            -- its trigger reads only this node's registry (Citus calls every trigger unsafe)
            PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
            PERFORM create_reference_table('txclass._cluster_mailbox');
        END IF;
    END IF;
    INSERT INTO txclass._cluster_mailbox (tbl, op, payload) VALUES (tbl, op, payload);
END
$$;
REVOKE ALL ON FUNCTION _cluster_send(text, text, jsonb) FROM PUBLIC;

-- The statement trigger on each forwarded table: on the coordinator, sends the statement's
-- rows to every worker (same distributed transaction).
CREATE FUNCTION _cluster_forward() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    role text := txclass._cluster_role();
    payload jsonb;
BEGIN
    IF role = 'single' THEN
        RETURN NULL;
    END IF;
    IF role = 'worker' THEN
        RETURN NULL;  -- applied from the coordinator (or a worker's own table attached on it)
    END IF;
    IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
        SELECT jsonb_agg(to_jsonb(n)) INTO payload FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT jsonb_agg(to_jsonb(o)) INTO payload FROM old_rows o;
    END IF;
    IF TG_TABLE_NAME = 'monitored' THEN
        IF TG_OP = 'TRUNCATE' THEN
            RETURN NULL;  -- nothing a worker would miss: the coordinator's attachments went
        END IF;
        -- attachments of Citus tables only, and updates only of what a shard's trigger reads
        -- (not the drift and recurring watermarks, which the coordinator alone keeps)
        SELECT jsonb_agg(e) INTO payload FROM jsonb_array_elements(payload) e
        WHERE txclass._cluster_table((e->>'relid')::regclass);
        IF TG_OP = 'UPDATE' THEN
            SELECT jsonb_agg(e) INTO payload FROM jsonb_array_elements(payload) e
            WHERE EXISTS (SELECT FROM old_rows o WHERE o.relid = (e->>'relid')::regclass
                  AND (to_jsonb(o) - '{watermark,recurring_watermark,attached_at,thresholds,drift_unit,time_column}'::text[])
                      IS DISTINCT FROM (e - '{watermark,recurring_watermark,attached_at,thresholds,drift_unit,time_column}'::text[]));
        END IF;
    END IF;
    IF TG_OP <> 'TRUNCATE' AND payload IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM txclass._cluster_send(TG_TABLE_NAME, TG_OP, payload);
    RETURN NULL;
END
$$;

-- Before any change of the registry on a worker: refused unless the coordinator sends it
-- (before the change runs, so the error says why rather than what broke first).
CREATE FUNCTION _cluster_guard() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF txclass._cluster_role() = 'worker' AND NOT txclass._cluster_internal() THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('txclass: this node is a Citus worker: txclass.%s is changed on the coordinator only', TG_TABLE_NAME),
            HINT = 'run register_model, activate_model, rollback_model, rule changes and add_labels on the coordinator: it applies them to every node in one distributed transaction';
    END IF;
    RETURN NULL;
END
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['models', 'deployments', 'active', 'rules', 'labels'] LOOP
        EXECUTE format('CREATE TRIGGER cluster_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON txclass.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION txclass._cluster_guard()', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['models', 'deployments', 'active', 'rules', 'monitored', 'labels'] LOOP
        EXECUTE format('CREATE TRIGGER cluster_insert AFTER INSERT ON txclass.%I REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION txclass._cluster_forward()', t);
        EXECUTE format('CREATE TRIGGER cluster_update AFTER UPDATE ON txclass.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION txclass._cluster_forward()', t);
        EXECUTE format('CREATE TRIGGER cluster_delete AFTER DELETE ON txclass.%I REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION txclass._cluster_forward()', t);
        EXECUTE format('CREATE TRIGGER cluster_truncate AFTER TRUNCATE ON txclass.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION txclass._cluster_forward()', t);
    END LOOP;
END
$$;

-- On the coordinator: makes every worker's registry (models, deployments, the active model,
-- rules), labels and attachments of Citus tables equal to the coordinator's, in one distributed
-- transaction: for a worker added after models were registered (citus_add_node creates the
-- extension there, not its rows), or one that was disabled while they changed. Returns the rows
-- sent per table. Each worker checks the files of every model it did not have.
CREATE FUNCTION cluster_sync() RETURNS TABLE (tbl text, rows bigint) LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE payload jsonb;
BEGIN
    IF txclass._cluster_role() <> 'coordinator' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'txclass.cluster_sync() runs on the coordinator of a Citus cluster with workers',
            HINT = format('this node is %s', CASE txclass._cluster_role() WHEN 'worker' THEN 'a worker' ELSE 'not part of a Citus cluster' END);
    END IF;
    -- no activation, rule change or label meanwhile
    LOCK TABLE txclass.active, txclass.rules, txclass.labels IN SHARE ROW EXCLUSIVE MODE;
    -- a node added since the mailbox became a reference table has no copy of it yet
    IF EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'txclass._cluster_mailbox'::regclass) THEN
        PERFORM replicate_reference_tables('block_writes');
    END IF;
    FOREACH tbl IN ARRAY ARRAY['models', 'deployments', 'active', 'rules', 'monitored', 'labels'] LOOP
        EXECUTE format('SELECT jsonb_agg(to_jsonb(t)) FROM txclass.%I t%s', tbl,
                       CASE WHEN tbl = 'monitored' THEN ' WHERE txclass._cluster_table(t.relid)' ELSE '' END) INTO payload;
        PERFORM txclass._cluster_send(tbl, 'SYNC', coalesce(payload, '[]'));
        rows := jsonb_array_length(coalesce(payload, '[]'));
        RETURN NEXT;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION cluster_sync() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cluster_sync() TO txclass_model_admin;

-- ---- work on the shards, where they are stored ------------------------------------------------

-- The Citus table a relation is a shard of (NULL: none, or no Citus): the name ends in
-- _<shard id>, listed in pg_dist_shard in the same schema (as src/cluster.rs resolves triggers).
CREATE FUNCTION _cluster_shard_of(rel regclass) RETURNS regclass LANGUAGE plpgsql STABLE
AS $$
DECLARE r regclass;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN NULL;
    END IF;
    SELECT s.logicalrelid INTO r
    FROM pg_class sc
    JOIN pg_dist_shard s ON s.shardid = substring(sc.relname FROM '_([0-9]{1,18})$')::bigint
    JOIN pg_class lc ON lc.oid = s.logicalrelid AND lc.relnamespace = sc.relnamespace
    WHERE sc.oid = rel;
    RETURN r;
END
$$;

-- The Citus table a shard's name (as another node lists it) belongs to: NULL if none.
CREATE FUNCTION _cluster_shard_of_name(shard text) RETURNS regclass LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF shard IS NULL OR NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT s.logicalrelid FROM pg_dist_shard s WHERE s.shardid = substring(shard FROM '_([0-9]{1,18})"?$')::bigint);
END
$$;

-- Whether txclass.backfill runs a table on the workers: a hash-distributed table (a reference
-- table is small and copied to every node: the coordinator backfills it through Citus).
CREATE FUNCTION _cluster_sharded(tbl regclass) RETURNS boolean LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF txclass._cluster_role() <> 'coordinator' THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = tbl AND partmethod = 'h');
END
$$;

-- On a worker (sent by _cluster_backfill): backfills the given shards of this node one after
-- another, each with its own progress row and resume point. The coordinator's connection may
-- go away (a cancel there): the check below then ends this run at its next batch, and the
-- committed batches stay done.
CREATE PROCEDURE _backfill_shards(shards text[], batch_size integer, reclassify boolean)
LANGUAGE plpgsql AS $$
DECLARE s text;
BEGIN
    PERFORM set_config('client_connection_check_interval', '1000', false);
    -- txclass writes the outputs into the shards themselves (Citus asks for this setting to let
    -- a session other than its own change a shard)
    PERFORM set_config('citus.enable_manual_changes_to_shards', 'on', false);
    FOREACH s IN ARRAY shards LOOP
        CALL txclass.backfill(s::regclass, batch_size, reclassify);
    END LOOP;
END
$$;

-- On the coordinator (from txclass.backfill): every worker backfills its own shards of `tbl`
-- (its partitions' shards too), all workers at once; the coordinator only waits. A worker that
-- fails is named; a second call resumes every shard after its last committed batch.
CREATE PROCEDURE _cluster_backfill(tbl regclass, batch_size integer, reclassify boolean)
LANGUAGE plpgsql AS $$
DECLARE
    nodes text[];
    ports integer[];
    commands text[];
    r record;
    failures text;
BEGIN
    SELECT array_agg(x.nodename ORDER BY x.nodename, x.nodeport), array_agg(x.nodeport ORDER BY x.nodename, x.nodeport),
           array_agg(format('CALL txclass._backfill_shards(%L, %s, %L)', x.shards, batch_size, reclassify) ORDER BY x.nodename, x.nodeport)
    INTO nodes, ports, commands
    FROM (SELECT s.nodename, s.nodeport, array_agg(s.shard_name::text ORDER BY s.shardid) AS shards
          FROM citus_shards s
          -- the leaves: a partitioned table's shards are partitioned by its partitions' shards
          WHERE s.table_name IN (SELECT tbl UNION SELECT t.relid FROM pg_partition_tree(tbl) t WHERE t.isleaf)
            AND (SELECT relkind FROM pg_class WHERE oid = s.table_name) <> 'p'
          GROUP BY s.nodename, s.nodeport) x;
    IF nodes IS NULL THEN
        RAISE NOTICE '% has no shards on any worker', tbl;
        RETURN;
    END IF;
    RAISE NOTICE 'backfilling % on % workers (txclass.cluster_backfill_progress shows each shard)', tbl, cardinality(nodes);
    FOR r IN SELECT * FROM master_run_on_worker(nodes, ports, commands, true) LOOP
        IF NOT r.success THEN
            failures := concat_ws('; ', failures, format('%s:%s: %s', r.node_name, r.node_port, r.result));
        END IF;
    END LOOP;
    IF failures IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'external_routine_exception',
            MESSAGE = format('txclass: the backfill of %s failed on %s', tbl, failures),
            HINT = format('CALL txclass.backfill(%L) again: every shard resumes after its last committed batch', tbl::text);
    END IF;
END
$$;

-- ---- the cluster's state, gathered from every node --------------------------------------------

-- Runs `query` on every node (Citus' run_command_on_all_nodes; without Citus, here) and
-- returns its rows as JSON, per node. A node that cannot be reached is a row with its error.
CREATE FUNCTION _cluster_gather(query text)
RETURNS TABLE (nodename text, nodeport integer, rows jsonb, error text) LANGUAGE plpgsql VOLATILE
AS $$
DECLARE wrapped text := format('SELECT coalesce(jsonb_agg(to_jsonb(x)), ''[]'') FROM (%s) x', query);
BEGIN
    IF txclass._cluster_role() = 'single' THEN
        nodename := 'localhost';
        nodeport := current_setting('port')::integer;
        EXECUTE wrapped INTO rows;
        RETURN NEXT;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT coalesce(n.nodename, ''localhost''), coalesce(n.nodeport, current_setting(''port'')::integer),
                CASE WHEN r.success THEN r.result::jsonb END, CASE WHEN NOT r.success THEN r.result END
         FROM run_command_on_all_nodes($1) r LEFT JOIN pg_dist_node n ON n.nodeid = r.nodeid
         ORDER BY 1, 2' USING wrapped;
END
$$;

CREATE VIEW cluster_model_info AS
SELECT g.nodename, g.nodeport, g.error, i.model, i.source, i.inference, i.execution_provider, i.labels, i.checksum, i.load_ms
FROM txclass._cluster_gather('SELECT model, source, inference, execution_provider, labels, checksum, load_ms FROM txclass.model_info()') g
LEFT JOIN LATERAL jsonb_to_recordset(g.rows) AS i(model text, source text, inference text, execution_provider text,
                                                   labels integer, checksum text, load_ms float8) ON true;
COMMENT ON VIEW cluster_model_info IS 'txclass.model_info() of every node of the Citus cluster (one node: this one): which model each node serves';

CREATE VIEW cluster_cache_stats AS
SELECT g.nodename, g.nodeport, g.error, s.*
FROM txclass._cluster_gather('SELECT * FROM txclass.cache_stats') g
LEFT JOIN LATERAL jsonb_populate_recordset(NULL::txclass.cache_stats, g.rows) s ON true;
COMMENT ON VIEW cluster_cache_stats IS 'txclass.cache_stats of every node of the Citus cluster: each node caches the answers of its own shards';

CREATE VIEW cluster_worker_stats AS
SELECT g.nodename, g.nodeport, g.error, s.*
FROM txclass._cluster_gather('SELECT * FROM txclass.worker_stats') g
LEFT JOIN LATERAL jsonb_populate_recordset(NULL::txclass.worker_stats, g.rows) s ON true;
COMMENT ON VIEW cluster_worker_stats IS 'txclass.worker_stats (shared inference workers) of every node of the Citus cluster';

CREATE VIEW cluster_backfill_progress AS
SELECT g.nodename, g.nodeport, g.error, txclass._cluster_shard_of_name(p.relid) AS tbl, p.*
FROM txclass._cluster_gather('SELECT relid::text AS relid, status, started_at, updated_at, rows_done, rows_total, batches, rows_per_s, eta, model, pid FROM txclass.backfill_progress') g
LEFT JOIN LATERAL jsonb_to_recordset(g.rows) AS p(relid text, status text, started_at timestamptz, updated_at timestamptz, rows_done bigint,
                                                  rows_total bigint, batches bigint, rows_per_s float8, eta interval, model text, pid integer) ON true;
COMMENT ON VIEW cluster_backfill_progress IS 'txclass.backfill progress on every node: on the workers, one row per shard (tbl: its distributed table)';

-- trigger functions and what only txclass itself calls (trigger functions cannot be called
-- directly; revoked all the same, as the other definers are)
REVOKE ALL ON FUNCTION _cluster_deliver(), _cluster_forward(), _cluster_guard(), _cluster_check_files(text, text, text) FROM PUBLIC;
