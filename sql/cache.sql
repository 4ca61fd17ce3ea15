-- Result-cache observability (see src/cache.rs).
CREATE VIEW cache_stats AS
SELECT shared, capacity, entries, hits, misses, hit_ratio, inserts, evictions, stats_reset
FROM cache_info();
COMMENT ON VIEW cache_stats IS 'txclass result cache: capacity, entries, hits, misses, hit ratio, inserts, evictions; shared = false means a per-backend cache (txclass not in shared_preload_libraries)';
-- As pg_stat_statements_reset: superusers, and roles a superuser grants it to.
REVOKE ALL ON FUNCTION cache_reset() FROM PUBLIC;
GRANT SELECT ON cache_stats TO PUBLIC;
