-- txclass 0.1.0 → 0.2.0
--
-- Run by ALTER EXTENSION txclass UPDATE. Keeps every row of the registry, the rollout history,
-- rules, attached tables, drift summaries and evaluations; changes only functions and views.
-- Objects of a database still at 0.1.0 keep working on the 0.2.0 library (src/upgrade.rs), so
-- the update can run whenever it suits, after the library is installed.

-- 0.2.0's library must be the one this backend runs: the first new C function says so
-- clearly instead of failing half-way through with "could not find function".
DO $guard$
BEGIN
    CREATE FUNCTION txclass.worker_info() RETURNS TABLE (
        "worker" INT,
        "pid" INT,
        "started_at" timestamp with time zone,
        "models_loaded" bigint,
        "requests" bigint,
        "rows" bigint,
        "runs" bigint,
        "onnx_batches" bigint,
        "mean_rows_per_run" double precision,
        "queue_wait_p50_ms" double precision,
        "queue_wait_p99_ms" double precision,
        "busy_share" double precision,
        "restarts" bigint,
        "backend_fallbacks" bigint,
        "queue_full_waits" bigint,
        "slots_busy" bigint
    )
    STRICT VOLATILE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'worker_info_wrapper';
EXCEPTION WHEN undefined_function THEN
    RAISE EXCEPTION 'txclass: this backend runs an older txclass library than 0.2.0 (%)', SQLERRM
        USING HINT = 'Install txclass 0.2.0, then restart PostgreSQL if txclass is in shared_preload_libraries '
                     '(the postmaster keeps the library it started with), or reconnect if it is not; '
                     'then run ALTER EXTENSION txclass UPDATE again. Nothing was changed.';
END
$guard$;

-- Shared inference workers (txclass.inference = worker): statistics and their reset.
CREATE FUNCTION txclass.worker_stats_reset() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'worker_stats_reset_wrapper';
REVOKE ALL ON FUNCTION txclass.worker_stats_reset() FROM PUBLIC;
CREATE VIEW txclass.worker_stats AS SELECT * FROM txclass.worker_info();
COMMENT ON VIEW txclass.worker_stats IS 'Shared inference workers (txclass.inference = worker): one row per worker.';

-- Two functions change their result columns, which CREATE OR REPLACE cannot do: each is
-- dropped and created again, and the privileges a DBA gave it are put back.
SELECT pg_catalog.set_config('txclass_upgrade.acl_' || f, coalesce((SELECT p.proacl::text FROM pg_catalog.pg_proc p
           WHERE p.oid = pg_catalog.to_regprocedure(s)), ''), true)
FROM (VALUES ('model_info', 'txclass.model_info()'), ('enrichment_status', 'txclass.enrichment_status(regclass)')) v(f, s);

-- model_info(): new column `inference` (backend or worker); new symbol (0.1.0's stays loadable)
DROP FUNCTION txclass.model_info();
CREATE FUNCTION txclass.model_info() RETURNS TABLE (
    "model" TEXT,
    "directory" TEXT,
    "checksum" TEXT,
    "labels" INT,
    "execution_provider" TEXT,
    "max_length" INT,
    "batch_size" INT,
    "onnxruntime_library" TEXT,
    "load_ms" double precision,
    "source" TEXT,
    "rules" INT,
    "inference" TEXT
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'model_info_0_2_wrapper';

-- enrichment_status(table): new column `problems` (what DDL since attach broke, with the fix)
DROP FUNCTION txclass.enrichment_status(regclass);
CREATE FUNCTION txclass.enrichment_status(tbl regclass)
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
                 (4, m.confidence_column, 'real'), (5, m.model_column, 'text')) w(ord, name, type)
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attname = w.name AND a.attnum > 0 AND NOT a.attisdropped
    WHERE a.attname IS NULL OR (w.type IS NOT NULL AND format_type(a.atttypid, a.atttypmod) <> w.type);
    IF broken IS NOT NULL THEN
        RETURN QUERY EXECUTE format('SELECT count(*), NULL::bigint, NULL::bigint, NULL::jsonb, $1 FROM %s', tbl)
            USING broken || ARRAY['re-run txclass.attach() with the current column names, then txclass.backfill()'];
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT count(*), count(%1$I), count(*) FILTER (WHERE %1$I IS NULL AND %2$I IS NOT NULL), '
        '(SELECT coalesce(jsonb_object_agg(coalesce(x.m, ''(none)''), x.n), ''{}'') FROM (SELECT %3$I AS m, count(*) AS n FROM %4$s GROUP BY 1) x), '
        '''{}''::text[] FROM %4$s', m.label_column, m.descriptor_column, m.model_column, tbl);
END
$$;

DO $acl$
DECLARE
    f record;
    g record;
BEGIN
    FOR f IN SELECT * FROM (VALUES ('model_info', 'txclass.model_info()'),
                                   ('enrichment_status', 'txclass.enrichment_status(regclass)')) v(name, sig) LOOP
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
