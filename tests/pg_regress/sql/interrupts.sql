-- Long calls check for interrupts: a statement timeout stops a 200k-row classify_batch
-- (distinct descriptors, ~20 s of work) and the backend goes on serving.
SET search_path = public, txclass;
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');  -- load the model first
SET statement_timeout = '1s';
SELECT count(*) FROM classify_batch(ARRAY(
  SELECT 'merchant ' || translate(md5(g::text), '0123456789', 'ghijklmnop') FROM generate_series(1, 200000) g));
RESET statement_timeout;
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
