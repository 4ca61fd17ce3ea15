-- Another backend: hits what cache.sql's backend inserted.
SET search_path = public, txclass;
SELECT entries, hits, misses FROM cache_stats;
SELECT count(label) FROM classify_batch(ARRAY['STARBUCKS STORE 01234', 'TESCO STORES 6292', 'UBER *TRIP HELP.UBER.COM', 'SHELL OIL 57444']);
SELECT entries, hits, misses FROM cache_stats;
