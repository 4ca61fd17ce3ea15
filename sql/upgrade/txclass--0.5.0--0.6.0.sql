-- txclass 0.5.0 → 0.6.0: labels served at once
--
-- Run by ALTER EXTENSION txclass UPDATE (on a Citus coordinator, Citus runs it on every node).
-- Keeps every row. New: a label people give (txclass.labels, add_labels) is served for its
-- normalized text from the next statement on, by the model it was given against
-- (labels.model, stamped with the serving model's name) and the models registered as its
-- retrains (models.retrain_of, register_model(..., retrain_of)): after the rules, ahead of the
-- cache and the model, source 'label'. A statement trigger on labels makes every backend read
-- them again at commit; on Citus the coordinator sends labels to every worker, as it sends the
-- registry. evaluate(..., labels => true) measures the model with the labels answering first.
-- Labels given before 0.6.0 have no model: they are served by every model (the NOTICE says how
-- many; UPDATE txclass.labels SET model = '<name>' scopes them).

-- 0.6.0's library must be the one this backend runs: the first new C function says so
-- clearly instead of failing half-way through with "could not find function".
DO $guard$
BEGIN
CREATE  FUNCTION "_serving_model_name"() RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_serving_model_name_wrapper';
EXCEPTION WHEN undefined_function THEN
    RAISE EXCEPTION 'txclass: this backend runs an older txclass library than 0.6.0 (%)', SQLERRM
        USING HINT = 'Install txclass 0.6.0, then restart PostgreSQL if txclass is in shared_preload_libraries '
                     '(the postmaster keeps the library it started with), or reconnect if it is not; '
                     'then run ALTER EXTENSION txclass UPDATE again';
END
$guard$;

-- ---- labels: the model they were given against, served at once --------------------------------
ALTER TABLE labels ADD COLUMN model text;
COMMENT ON TABLE labels IS 'txclass: labels given by people (txclass.add_labels); served at once for their normalized text (after the rules, before the cache and the model), a gold set (txclass.evaluate), training data (scripts/train.sh --sql)';
COMMENT ON COLUMN labels.model IS 'The model the label was given against (stamped with the serving model''s name); it is served by that model and its retrains (txclass.models.retrain_of); NULL: by every model';
CREATE OR REPLACE FUNCTION _label_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.normalized := txclass.normalize_descriptor(NEW.descriptor);
    IF NEW.normalized = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('descriptor %L normalizes to nothing; there is nothing to label', NEW.descriptor);
    END IF;
    NEW.labeled_by := current_user;
    NEW.labeled_at := now();
    IF TG_OP = 'INSERT' AND NEW.model IS NULL THEN
        NEW.model := txclass._serving_model_name();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER publish AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON labels
    FOR EACH STATEMENT EXECUTE FUNCTION _rules_changed();
CREATE OR REPLACE FUNCTION add_labels(descriptors text[], labels text[], categories text[] DEFAULT NULL,
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
            category = EXCLUDED.category, source = EXCLUDED.source, note = EXCLUDED.note, model = EXCLUDED.model
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

-- (a WARNING: an extension script shows nothing below it)
DO $notice$
DECLARE n bigint;
BEGIN
    SELECT count(*) INTO n FROM txclass.labels;
    IF n > 0 THEN
        RAISE WARNING 'txclass 0.6.0 serves the labels people give for their text; the % labels given before have no model and are served by every model', n
            USING HINT = 'to serve them only by one model and its retrains: UPDATE txclass.labels SET model = ''<model name>''';
    END IF;
END
$notice$;
-- every backend, including those open now, reads the labels again after this commits
SELECT txclass._bump_at_commit();

-- ---- models: the model a model retrains -------------------------------------------------------
ALTER TABLE models ADD COLUMN retrain_of text CHECK (retrain_of <> name);
COMMENT ON COLUMN models.retrain_of IS 'The model this one retrains (registered or bundled name): labels given against it (txclass.labels.model) are served by this one too';
CREATE OR REPLACE FUNCTION _refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'models' AND TG_OP = 'UPDATE' THEN
        IF (NEW.name, NEW.directory, NEW.checksum, NEW.num_labels, NEW.labels, NEW.retrain_of)
           IS NOT DISTINCT FROM (OLD.name, OLD.directory, OLD.checksum, OLD.num_labels, OLD.labels, OLD.retrain_of) THEN
            RETURN NEW;  -- metrics only
        END IF;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'prohibited_sql_statement_attempted',
        MESSAGE = CASE TG_TABLE_NAME
            WHEN 'models' THEN format('txclass.models: %s of a registered model refused', TG_OP)
            ELSE format('txclass.%s is append-only: %s refused', TG_TABLE_NAME, TG_OP) END,
        HINT = CASE TG_TABLE_NAME
            WHEN 'models' THEN 'registered models are immutable (only metrics change); register the new files under a new name'
            ELSE 'the deployment log records every activation and rollback; roll back with txclass.rollback_model()' END;
END
$$;

-- register_model gains retrain_of; evaluate gains labels: dropped and created again (evaluate:
-- a new symbol, 0.5.0's stays loadable), their privileges put back
SELECT pg_catalog.set_config('txclass_upgrade.acl_register_model', coalesce((SELECT p.proacl::text FROM pg_catalog.pg_proc p
           WHERE p.oid = pg_catalog.to_regprocedure('txclass.register_model(text, text, jsonb)')), ''), true);
SELECT pg_catalog.set_config('txclass_upgrade.acl_evaluate', coalesce((SELECT p.proacl::text FROM pg_catalog.pg_proc p
           WHERE p.oid = pg_catalog.to_regprocedure('txclass.evaluate(text, text, text, boolean)')), ''), true);
DROP FUNCTION register_model(text, text, jsonb);
CREATE FUNCTION register_model(name text, directory text, metrics jsonb DEFAULT '{}', retrain_of text DEFAULT NULL)
RETURNS models LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    info record;
    existing txclass.models;
    m txclass.models;
BEGIN
    IF register_model.name IS NULL OR register_model.name !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid model name %L', register_model.name),
            HINT = 'a model name is 1 to 63 letters, digits, ''.'', ''-'' or ''_'', starting with a letter or digit';
    END IF;
    SELECT * INTO existing FROM txclass.models WHERE name = register_model.name;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('model %L is already registered (directory %s, checksum %s…)',
                             existing.name, existing.directory, left(existing.checksum, 12)),
            HINT = 'registered models are immutable: register new files under a new name';
    END IF;
    IF register_model.retrain_of IS NOT NULL AND register_model.retrain_of IS NOT DISTINCT FROM register_model.name THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('model %L cannot retrain itself', register_model.name),
            HINT = 'retrain_of names the model this one was trained from: a registered model, or a bundled one';
    END IF;
    SELECT * INTO info FROM txclass._inspect_model(register_model.directory, true);
    FOR existing IN SELECT * FROM txclass.models WHERE checksum = info.checksum LOOP
        RAISE NOTICE 'model % has the same files (checksum %…) as the registered model %',
            register_model.name, left(info.checksum, 12), existing.name;
    END LOOP;
    INSERT INTO txclass.models (name, directory, checksum, num_labels, labels, registered_by, metrics, retrain_of)
    VALUES (register_model.name, info.directory, info.checksum, info.num_labels, info.labels,
            txclass._caller(), coalesce(register_model.metrics, '{}'), register_model.retrain_of)
    RETURNING * INTO m;
    RETURN m;
END
$$;
REVOKE ALL ON FUNCTION register_model(text, text, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION register_model(text, text, jsonb, text) TO txclass_model_admin;
DROP FUNCTION evaluate(text, text, text, boolean);
CREATE  FUNCTION "evaluate"(
	"model" TEXT, /* & str */
	"gold_query" TEXT, /* & str */
	"gold_set" TEXT DEFAULT NULL, /* Option < & str > */
	"store" bool DEFAULT true, /* bool */
	"labels" bool DEFAULT false /* bool */
) RETURNS jsonb /* pgrx :: JsonB */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'evaluate_0_6_wrapper';

DO $acl$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN SELECT * FROM (VALUES ('register_model', 'txclass.register_model(text, text, jsonb, text)'),
                                   ('evaluate', 'txclass.evaluate(text, text, text, boolean, boolean)')) v(name, sig) LOOP
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

-- ---- Citus: labels go from the coordinator to every worker, like the registry -----------------
CREATE OR REPLACE FUNCTION _cluster_key(tbl text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE tbl WHEN 'models' THEN 'name' WHEN 'deployments' THEN 'id' WHEN 'active' THEN 'singleton'
                    WHEN 'rules' THEN 'id' WHEN 'monitored' THEN 'relid' WHEN 'labels' THEN 'id' END
$$;
CREATE OR REPLACE FUNCTION _cluster_apply(tbl text, op text, payload jsonb) RETURNS void LANGUAGE plpgsql
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
CREATE OR REPLACE FUNCTION _cluster_guard() RETURNS trigger LANGUAGE plpgsql
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
CREATE OR REPLACE FUNCTION cluster_sync() RETURNS TABLE (tbl text, rows bigint) LANGUAGE plpgsql VOLATILE
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
CREATE TRIGGER cluster_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON labels
    FOR EACH STATEMENT EXECUTE FUNCTION _cluster_guard();
CREATE TRIGGER cluster_insert AFTER INSERT ON labels REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _cluster_forward();
CREATE TRIGGER cluster_update AFTER UPDATE ON labels REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _cluster_forward();
CREATE TRIGGER cluster_delete AFTER DELETE ON labels REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _cluster_forward();
CREATE TRIGGER cluster_truncate AFTER TRUNCATE ON labels
    FOR EACH STATEMENT EXECUTE FUNCTION _cluster_forward();
