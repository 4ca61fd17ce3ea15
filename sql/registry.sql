-- Model registry, deployment log, rules (see src/registry.rs, src/rules.rs, src/evaluate.rs).
--
-- Privileges: everyone may read these tables. Registering, activating and rolling back go
-- through SECURITY DEFINER functions that validate first; only superusers and members of
-- txclass_model_admin may call them. Nobody but the owner writes the registry tables
-- directly, so every registered directory was validated and every deployment is logged.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'txclass_model_admin') THEN
        CREATE ROLE txclass_model_admin NOLOGIN;
        COMMENT ON ROLE txclass_model_admin IS 'txclass: may register, activate and roll back models, store evaluations and edit txclass.rules';
    END IF;
END
$$;

CREATE TABLE models (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    directory     text NOT NULL,
    checksum      text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    num_labels    integer NOT NULL CHECK (num_labels > 0),
    labels        text[] NOT NULL,
    registered_by text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    metrics       jsonb NOT NULL DEFAULT '{}',
    -- the model this one retrains (a registered model's name, or a bundled model's): the labels
    -- people gave against it are served by this one too
    retrain_of    text CHECK (retrain_of <> name)
);
COMMENT ON TABLE models IS 'txclass: registered models (validated at registration; immutable but for metrics)';
COMMENT ON COLUMN models.retrain_of IS 'The model this one retrains (registered or bundled name): labels given against it (txclass.labels.model) are served by this one too';
COMMENT ON COLUMN models.checksum IS 'SHA-256 over model.onnx, tokenizer.json and config.json: checked again at activation and at every load';
COMMENT ON COLUMN models.metrics IS 'Free-form metrics given at registration; evaluations (txclass.evaluate) under "evaluations", keyed by gold-set fingerprint';

CREATE TABLE deployments (
    id          bigserial PRIMARY KEY,
    model       text NOT NULL REFERENCES models (name),
    action      text NOT NULL CHECK (action IN ('activate', 'rollback')),
    previous    bigint REFERENCES deployments (id),
    deployed_by text NOT NULL,
    deployed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    reason      text
);
COMMENT ON TABLE deployments IS 'txclass: append-only log of activations and rollbacks';
COMMENT ON COLUMN deployments.previous IS 'The deployment txclass.rollback_model() returns to from this one';

CREATE TABLE active (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    deployment bigint NOT NULL REFERENCES deployments (id)
);
COMMENT ON TABLE active IS 'txclass: the deployment in force (one row; none until a model is activated)';

CREATE TABLE rules (
    id         bigserial PRIMARY KEY,
    pattern    text NOT NULL CHECK (txclass._valid_pattern(pattern)),
    label      text NOT NULL CHECK (label <> ''),
    category   text,
    priority   integer NOT NULL DEFAULT 100,
    enabled    boolean NOT NULL DEFAULT true,
    note       text,
    created_by text NOT NULL DEFAULT current_user,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE rules IS 'txclass: rules answered ahead of the model; pattern is a regular expression (Rust regex syntax) over the normalized descriptor; the highest priority wins, then the lowest id';

-- pg_dump keeps the registry's rows (extension tables are otherwise left out).
SELECT pg_catalog.pg_extension_config_dump('txclass.models', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.deployments', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.deployments_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.active', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.rules', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.rules_id_seq', '');

-- The log is append-only, and a registered model's files are fixed.
CREATE FUNCTION _refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON deployments
    FOR EACH ROW EXECUTE FUNCTION _refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION _refuse_change();
CREATE TRIGGER immutable BEFORE UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION _refuse_change();

-- Publishing: the active model at commit (a deferred trigger sees the transaction's final
-- state); rule changes bump the generation so every backend reloads its rules.
CREATE FUNCTION _active_changed() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM txclass._publish_at_commit();
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER publish AFTER INSERT OR UPDATE OR DELETE ON active
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION _active_changed();
CREATE FUNCTION _rules_changed() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM txclass._bump_at_commit();
    RETURN NULL;
END
$$;
CREATE TRIGGER publish AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION _rules_changed();

-- register_model(name, directory[, metrics][, retrain_of]): validate (files, checksum, ONNX
-- inputs/outputs, output width = labels, smoke inference), then record. retrain_of: the model
-- this one retrains (the labels given against that one are served by this one too).
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

-- The model active now (no row: none was activated, the bundled default serves).
CREATE VIEW active_model AS
SELECT m.name, m.directory, m.checksum, m.num_labels, d.id AS deployment, d.action,
       d.deployed_by, d.deployed_at, d.reason
FROM txclass.active a
JOIN txclass.deployments d ON d.id = a.deployment
JOIN txclass.models m ON m.name = d.model;

-- Stored evaluations, one row per model and gold set.
CREATE VIEW evaluations AS
SELECT m.name AS model, e.key AS gold_fingerprint, e.value->>'gold_set' AS gold_set,
       (e.value->>'rows')::bigint AS rows, (e.value->>'accuracy')::float8 AS accuracy,
       (e.value->>'macro_f1')::float8 AS macro_f1, (e.value->>'evaluated_at')::timestamptz AS evaluated_at
FROM txclass.models m, jsonb_each(coalesce(m.metrics->'evaluations', '{}')) e;

CREATE FUNCTION _record_evaluation(model text, evaluation jsonb) RETURNS void LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE txclass.models
    SET metrics = metrics || jsonb_build_object('evaluations',
            coalesce(metrics->'evaluations', '{}') || jsonb_build_object(evaluation->>'gold_fingerprint', evaluation))
    WHERE name = _record_evaluation.model;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model % is not registered', _record_evaluation.model;
    END IF;
END
$$;

-- activate_model(name): re-validates the files (refused if they changed since registration),
-- optionally requires a macro-F1 at least the active model's on a common gold set, logs the
-- deployment and points txclass.active at it. Every backend serves it from its next call
-- after commit.
CREATE FUNCTION activate_model(name text, require_better boolean DEFAULT false,
                               gold_set text DEFAULT NULL, reason text DEFAULT NULL)
RETURNS deployments LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    m txclass.models;
    cur txclass.deployments;
    cur_model txclass.models;
    d txclass.deployments;
    info record;
    cmp record;
BEGIN
    -- one activation at a time; readers are not blocked
    LOCK TABLE txclass.active IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO m FROM txclass.models WHERE name = activate_model.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('model %L is not registered', activate_model.name),
            HINT = 'register it first with txclass.register_model(name, directory); registered models: SELECT name FROM txclass.models';
    END IF;
    SELECT d.* INTO cur FROM txclass.active a JOIN txclass.deployments d ON d.id = a.deployment;
    IF cur.id IS NOT NULL AND cur.model = m.name THEN
        RAISE NOTICE 'model % is already active (deployment %)', m.name, cur.id;
        RETURN cur;
    END IF;
    SELECT * INTO info FROM txclass._inspect_model(m.directory, false);
    IF info.checksum <> m.checksum THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('model %L: the files in %s changed since it was registered (checksum now %s…, registered %s…)',
                             m.name, m.directory, left(info.checksum, 12), left(m.checksum, 12)),
            HINT = 'registered models are immutable: restore the original files, or register the new files under a new name';
    END IF;
    IF require_better THEN
        IF cur.id IS NULL THEN
            RAISE NOTICE 'no model is active: require_better has nothing to compare with';
        ELSE
            SELECT * INTO cur_model FROM txclass.models WHERE name = cur.model;
            SELECT c.key AS fingerprint, c.value->>'gold_set' AS gold_set,
                   (c.value->>'macro_f1')::float8 AS candidate, (a.value->>'macro_f1')::float8 AS active
            INTO cmp
            FROM jsonb_each(coalesce(m.metrics->'evaluations', '{}')) c
            JOIN jsonb_each(coalesce(cur_model.metrics->'evaluations', '{}')) a ON a.key = c.key
            WHERE activate_model.gold_set IS NULL OR c.key = activate_model.gold_set
                  OR c.value->>'gold_set' = activate_model.gold_set OR a.value->>'gold_set' = activate_model.gold_set
            ORDER BY c.value->>'evaluated_at' DESC
            LIMIT 1;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                    MESSAGE = format('cannot tell whether model %L is better than the active model %L: they were not evaluated on a common gold set%s',
                                     m.name, cur.model, CASE WHEN activate_model.gold_set IS NULL THEN '' ELSE format(' named %L', activate_model.gold_set) END),
                    HINT = format('run txclass.evaluate(%L, gold_query) and txclass.evaluate(%L, gold_query) with the same gold query', cur.model, m.name);
            END IF;
            IF cmp.candidate < cmp.active THEN
                RAISE EXCEPTION USING ERRCODE = 'check_violation',
                    MESSAGE = format('model %L is not better than the active model %L on gold set %s: macro-F1 %s < %s',
                                     m.name, cur.model, cmp.gold_set, round(cmp.candidate::numeric, 4), round(cmp.active::numeric, 4)),
                    HINT = 'activate without require_better to deploy it anyway';
            END IF;
            RAISE NOTICE 'model % macro-F1 % >= active model % macro-F1 % on gold set %',
                m.name, round(cmp.candidate::numeric, 4), cur.model, round(cmp.active::numeric, 4), cmp.gold_set;
        END IF;
    END IF;
    INSERT INTO txclass.deployments (model, action, previous, deployed_by, reason)
    VALUES (m.name, 'activate', cur.id, txclass._caller(), activate_model.reason)
    RETURNING * INTO d;
    INSERT INTO txclass.active (singleton, deployment) VALUES (true, d.id)
    ON CONFLICT (singleton) DO UPDATE SET deployment = EXCLUDED.deployment;
    RETURN d;
END
$$;

-- rollback_model(): back to the model that was active before the current deployment
-- (repeatable: each rollback steps one further back).
CREATE FUNCTION rollback_model(reason text DEFAULT NULL)
RETURNS deployments LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    cur txclass.deployments;
    prev txclass.deployments;
    m txclass.models;
    info record;
    d txclass.deployments;
BEGIN
    LOCK TABLE txclass.active IN SHARE ROW EXCLUSIVE MODE;
    SELECT d.* INTO cur FROM txclass.active a JOIN txclass.deployments d ON d.id = a.deployment;
    IF cur.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'no model has been activated, so there is nothing to roll back',
            HINT = 'activate a registered model with txclass.activate_model(name)';
    END IF;
    IF cur.previous IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('there is no previous model to roll back to: %L is the first model activated (deployment %s)', cur.model, cur.id),
            HINT = 'activate another registered model with txclass.activate_model(name); the history is in txclass.deployments';
    END IF;
    SELECT * INTO prev FROM txclass.deployments WHERE id = cur.previous;
    SELECT * INTO m FROM txclass.models WHERE name = prev.model;
    SELECT * INTO info FROM txclass._inspect_model(m.directory, false);
    IF info.checksum <> m.checksum THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot roll back to model %L: the files in %s changed since it was registered (checksum now %s…, registered %s…)',
                             m.name, m.directory, left(info.checksum, 12), left(m.checksum, 12)),
            HINT = 'restore the original files, or activate another registered model';
    END IF;
    INSERT INTO txclass.deployments (model, action, previous, deployed_by, reason)
    VALUES (m.name, 'rollback', prev.previous, txclass._caller(), rollback_model.reason)
    RETURNING * INTO d;
    UPDATE txclass.active SET deployment = d.id;
    RETURN d;
END
$$;

-- A/B summary over txclass.compare_models.
CREATE FUNCTION compare_summary(model_a text, model_b text, query text, max_disagreements integer DEFAULT 100)
RETURNS TABLE (rows bigint, agreements bigint, agreement_rate float8, disagreements jsonb)
LANGUAGE sql VOLATILE AS $$
    WITH c AS (SELECT * FROM txclass.compare_models(model_a, model_b, query))
    SELECT count(*), count(*) FILTER (WHERE agree),
           (count(*) FILTER (WHERE agree))::float8 / nullif(count(*), 0),
           coalesce((SELECT jsonb_agg(to_jsonb(x)) FROM (
                SELECT descriptor, label_a, confidence_a, label_b, confidence_b
                FROM c WHERE NOT agree ORDER BY descriptor LIMIT max_disagreements) x), '[]')
    FROM c
$$;

-- Per-class figures of a stored evaluation (the most recent when gold_set is NULL).
CREATE FUNCTION evaluation_classes(model text, gold_set text DEFAULT NULL)
RETURNS TABLE (label text, "precision" float8, recall float8, f1 float8, support bigint, predicted bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.label, p."precision", p.recall, p.f1, p.support, p.predicted
    FROM (SELECT e.value AS ev
          FROM txclass.models m, jsonb_each(coalesce(m.metrics->'evaluations', '{}')) e
          WHERE m.name = evaluation_classes.model
            AND (evaluation_classes.gold_set IS NULL OR e.key = evaluation_classes.gold_set
                 OR e.value->>'gold_set' = evaluation_classes.gold_set)
          ORDER BY e.value->>'evaluated_at' DESC LIMIT 1) s,
         jsonb_to_recordset(s.ev->'per_class')
            AS p(label text, "precision" float8, recall float8, f1 float8, support bigint, predicted bigint)
$$;

-- Privileges.
GRANT SELECT ON models, deployments, active, rules, active_model, evaluations TO PUBLIC;
REVOKE ALL ON FUNCTION register_model(text, text, jsonb, text), activate_model(text, boolean, text, text),
    rollback_model(text), _record_evaluation(text, jsonb), _inspect_model(text, boolean),
    _publish_at_commit(), _bump_at_commit(), _active_changed(), _rules_changed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION register_model(text, text, jsonb, text), activate_model(text, boolean, text, text),
    rollback_model(text), _record_evaluation(text, jsonb) TO txclass_model_admin;
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON rules TO txclass_model_admin;
GRANT USAGE ON SEQUENCE rules_id_seq TO txclass_model_admin;

-- A re-created extension starts with an empty registry: publish that at commit.
SELECT txclass._publish_at_commit();
