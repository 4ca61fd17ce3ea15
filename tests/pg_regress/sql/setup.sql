-- Installs the extension into the regression database; later files reuse it.
CREATE EXTENSION txclass;
-- every object lives in schema txclass
SELECT extnamespace::regnamespace AS schema, extrelocatable FROM pg_extension WHERE extname = 'txclass';
-- classify functions are STABLE (they depend on the active model, never IMMUTABLE),
-- STRICT and PARALLEL SAFE; normalize_descriptor is IMMUTABLE
SELECT proname, provolatile, proisstrict, proparallel, prosecdef
FROM pg_proc WHERE pronamespace = 'txclass'::regnamespace ORDER BY proname;
