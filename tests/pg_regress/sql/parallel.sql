-- PARALLEL SAFE for real: parallel workers load their own sessions and give the serial answers.
SET search_path = public, txclass;
CREATE TABLE par AS
  SELECT g AS id, (ARRAY['WALMART', 'TESCO STORES', 'UBER TRIP', 'SHELL OIL', 'NETFLIX.COM', 'JOES DINER'])[1 + g % 6]
                  || ' ' || translate(md5(g::text), '0123456789', 'ghijklmnop') AS d
  FROM generate_series(1, 3000) g;
ANALYZE par;
SET txclass.cache = off;   -- every row through the model, in each process
CREATE TABLE par_serial AS SELECT id, classify_transaction(d) AS label FROM par;
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT id, classify_transaction(d) AS label FROM par;
CREATE TABLE par_parallel AS SELECT id, classify_transaction(d) AS label FROM par;
RESET max_parallel_workers_per_gather;
SELECT count(*) AS rows, count(*) FILTER (WHERE s.label IS DISTINCT FROM p.label) AS different
FROM par_serial s JOIN par_parallel p USING (id);
DROP TABLE par, par_serial, par_parallel;
