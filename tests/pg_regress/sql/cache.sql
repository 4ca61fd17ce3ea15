-- The shared result cache (pg_regress runs with shared_preload_libraries = 'txclass').
SET search_path = public, txclass;
SELECT cache_reset();
SELECT shared, capacity > 0 AS has_capacity, entries, hits, misses, hit_ratio, inserts, evictions FROM cache_stats;
-- five descriptors, four distinct after normalization (store numbers), one NULL, one empty
CREATE TEMP TABLE d AS SELECT ARRAY['STARBUCKS STORE 01234', 'STARBUCKS STORE 99999', 'TESCO STORES 6292',
                                    'UBER *TRIP HELP.UBER.COM', 'SHELL OIL 57444', NULL, ''] AS a;
SELECT count(label) FROM d, classify_batch(d.a);
SELECT entries, hits, misses, inserts FROM cache_stats;
-- the same again: all hits
SELECT count(label) FROM d, classify_batch(d.a);
SELECT entries, hits, misses, inserts FROM cache_stats;
-- the scalar and detailed forms use the cache too
SELECT classify_transaction('TESCO STORES 1111'), (classify_transaction_detail('SHELL OIL 1')).label;
SELECT entries, hits, misses FROM cache_stats;
-- txclass.cache = off: no lookups, same answers
SET txclass.cache = off;
SELECT classify_transaction('TESCO STORES 1111');
SELECT hits, misses FROM cache_stats;
RESET txclass.cache;
-- another model identity (max_length is part of it) never reads these entries
SET txclass.max_length = 32;
SELECT count(label) FROM d, classify_batch(d.a);
SELECT entries, hits, misses FROM cache_stats;
RESET txclass.max_length;
-- the field's stale-cache outage: switch to a model that differs only in one label's name; the
-- cached answer of the old model must not come back (fixture: tests/python/make_fixtures.py)
SELECT classify_transaction('STARBUCKS STORE 01234');   -- cached above
SET txclass.model = '/tmp/txclass-fixtures/relabelled';
SELECT classify_transaction('STARBUCKS STORE 01234'), (classify_transaction_detail('STARBUCKS STORE 01234')).category;
RESET txclass.model;
SELECT classify_transaction('STARBUCKS STORE 01234');
-- cached results equal computed ones, for 1200 distinct descriptors
CREATE TEMP TABLE many AS
  SELECT array_agg(b || ' ' || translate(md5(g::text), '0123456789', 'ghijklmnop') ORDER BY g) AS a
  FROM generate_series(1, 1200) g,
       LATERAL (SELECT (ARRAY['WALMART', 'TESCO STORES', 'UBER TRIP', 'SHELL OIL', 'NETFLIX.COM', 'JOES DINER'])[1 + g % 6]) x(b);
SET txclass.cache = off;
CREATE TEMP TABLE uncached AS SELECT b.* FROM many, classify_batch(many.a) b;
RESET txclass.cache;
SELECT count(*) AS filled FROM many, classify_batch(many.a);   -- misses: fill the cache
CREATE TEMP TABLE cached AS SELECT b.* FROM many, classify_batch(many.a) b;   -- hits
SELECT count(*) AS compared, count(*) FILTER (WHERE u.label IS DISTINCT FROM c.label OR u.confidence IS DISTINCT FROM c.confidence) AS different
FROM uncached u JOIN cached c USING (ordinality);
SELECT hits >= 1200 AS served_from_cache FROM cache_stats;
-- reset: superusers, and roles granted it
CREATE ROLE txclass_cache_plain;
CREATE ROLE txclass_cache_admin;
GRANT EXECUTE ON FUNCTION cache_reset() TO txclass_cache_admin;
SET ROLE txclass_cache_plain;
SELECT txclass.cache_reset();
SELECT shared, entries > 0 AS plain_user_sees_stats FROM txclass.cache_stats;
SET ROLE txclass_cache_admin;
SELECT txclass.cache_reset();
SELECT entries, hits, misses FROM txclass.cache_stats;
RESET ROLE;
DROP ROLE txclass_cache_plain;
REVOKE EXECUTE ON FUNCTION cache_reset() FROM txclass_cache_admin;
DROP ROLE txclass_cache_admin;
-- leave entries for the next file, which runs in another backend
SELECT count(label) FROM d, classify_batch(d.a);
