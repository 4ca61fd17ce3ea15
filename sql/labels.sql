-- The labeling loop: the labels people give (served at once for their text, a gold set for
-- txclass.evaluate, training data for scripts/train.sh --sql) and what to label next.
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
    note        text,
    -- the model the label was given against (the serving model's name when it was written): the
    -- label is served for its text by that model and by every model registered as a retrain of it
    model       text
);
COMMENT ON TABLE labels IS 'txclass: labels given by people (txclass.add_labels); served at once for their normalized text (after the rules, before the cache and the model), a gold set (txclass.evaluate), training data (scripts/train.sh --sql)';
COMMENT ON COLUMN labels.label IS 'The right label: one of the model''s classes, or a new class (a brand the model does not know, or a long-tail name)';
COMMENT ON COLUMN labels.model IS 'The model the label was given against (stamped with the serving model''s name); it is served by that model and its retrains (txclass.models.retrain_of); NULL: by every model';
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
    IF TG_OP = 'INSERT' AND NEW.model IS NULL THEN
        NEW.model := txclass._serving_model_name();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON labels FOR EACH ROW EXECUTE FUNCTION _label_stamp();
-- a label is served from the next statement after its commit: every backend reads the labels
-- again (src/labels.rs), as after a rule change
CREATE TRIGGER publish AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON labels
    FOR EACH STATEMENT EXECUTE FUNCTION _rules_changed();

-- add_labels(descriptors, labels[, categories][, source][, as_rules][, note]): adds or replaces
-- one label per descriptor (by its normalized text; the last of repeats in one call wins),
-- given against the serving model: served for that text from the next statement on. as_rules
-- => true also adds an exact-match rule per label (txclass.rules: served by every model, ahead
-- of the labels); that needs txclass_model_admin. Returns the labels written.
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
