-- txclass 0.4.0 → 0.5.0: txclass on a Citus cluster
--
-- Run by ALTER EXTENSION txclass UPDATE (on a Citus coordinator, Citus runs it on every node in
-- one distributed transaction). Keeps every row. New: txclass._cluster_* (sql/cluster.sql) —
-- the node's role, statement triggers that send changes of the registry (models, deployments,
-- active, rules) and of attachments of Citus tables (monitored) from the coordinator to every
-- worker in the same distributed transaction (through txclass._cluster_mailbox, made a reference
-- table at the first change), a guard that refuses registry changes made on a worker directly,
-- backfill of distributed tables on the workers, and the cluster_* views. attach, detach and _follow allow txclass's triggers on Citus tables
-- (citus.enable_unsafe_triggers, for their own transaction) and leave a distributed table's
-- record on a worker to the coordinator. A transaction that activates a model may now be
-- prepared (two-phase commit): 0.4.0 refused it, which made CREATE EXTENSION fail on Citus.
-- On one node nothing changes in behaviour.

-- 0.5.0's library must be the one this backend runs: the first new C function says so
-- clearly instead of failing half-way through with "could not find function".
DO $guard$
BEGIN
CREATE  FUNCTION txclass."_in_extension_script"() RETURNS bool /* bool */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_in_extension_script_wrapper';
EXCEPTION WHEN undefined_function THEN
    RAISE EXCEPTION 'txclass: this backend runs an older txclass library than 0.5.0 (%)', SQLERRM
        USING HINT = 'Install txclass 0.5.0, then restart PostgreSQL if txclass is in shared_preload_libraries '
                     '(the postmaster keeps the library it started with), or reconnect if it is not; '
                     'then run ALTER EXTENSION txclass UPDATE again';
END
$guard$;

CREATE  FUNCTION txclass."_cluster_internal"() RETURNS bool /* bool */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_cluster_internal_wrapper';

-- ---- sql/cluster.sql, as 0.5.0 installs it ----------------------------------------------------
-- txclass on a Citus cluster (see src/cluster.rs): which node this is, one registry for the
-- whole cluster, attachments of distributed tables known to the workers, work on the shards
-- where they are stored, and the cluster's state gathered on the coordinator.
--
-- The registry (models, deployments, active, rules) and the attachments of distributed tables
-- (monitored) are changed on the coordinator. A statement trigger on each of those tables sends
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
                    WHEN 'rules' THEN 'id' WHEN 'monitored' THEN 'relid' END
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
        IF tbl IN ('rules', 'active', 'monitored') THEN
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
            HINT = 'run register_model, activate_model, rollback_model and rule changes on the coordinator: it applies them to every node in one distributed transaction';
    END IF;
    RETURN NULL;
END
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['models', 'deployments', 'active', 'rules'] LOOP
        EXECUTE format('CREATE TRIGGER cluster_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON txclass.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION txclass._cluster_guard()', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['models', 'deployments', 'active', 'rules', 'monitored'] LOOP
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
-- rules) and attachments of Citus tables equal to the coordinator's, in one distributed
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
    -- no activation or rule change meanwhile
    LOCK TABLE txclass.active, txclass.rules IN SHARE ROW EXCLUSIVE MODE;
    -- a node added since the mailbox became a reference table has no copy of it yet
    IF EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'txclass._cluster_mailbox'::regclass) THEN
        PERFORM replicate_reference_tables('block_writes');
    END IF;
    FOREACH tbl IN ARRAY ARRAY['models', 'deployments', 'active', 'rules', 'monitored'] LOOP
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

-- ---- sql/enrich.sql: attach, detach, _follow, _monitored and backfill on Citus tables ------------

CREATE OR REPLACE FUNCTION _monitored(tbl regclass) RETURNS monitored LANGUAGE plpgsql STABLE AS $$
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

CREATE OR REPLACE FUNCTION detach(tbl regclass) RETURNS boolean LANGUAGE plpgsql VOLATILE
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

CREATE OR REPLACE FUNCTION _follow(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
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
