-- The unqualified form, after the README's one-line set-up.
SET search_path = public, txclass;
CREATE TABLE txns (id int PRIMARY KEY, descriptor text);
INSERT INTO txns VALUES
  (1, 'SQ *BLUE BOTTLE COF 8473 OAKLAND CA'),
  (2, 'TST* SHAKE SHACK 1123 NEW YORK NY'),
  (3, 'PAYPAL *NETFLIX 4029357733'),
  (4, 'POS DEBIT 1234 WAL-MART #5512 DALLAS TX'),
  (5, 'CHECKCARD 0412 SHELL OIL 57444 HOUSTON TX'),
  (6, 'AMZN Mktp US*2K3L4M5N6'),
  (7, 'UBER *TRIP HELP.UBER.COM'),
  (8, 'TESCO STORES 6292'),
  (9, 'TRAINLINE.COM'),
  (10, 'SCREWFIX DIRECT'),
  (11, NULL),
  (12, ''),
  (13, '   ');
SELECT id, descriptor, normalize_descriptor(descriptor), classify_transaction(descriptor) FROM txns ORDER BY id;
-- detail: label, category, a confidence in (0, 1], the model identity
SELECT id, (d).label, (d).category, (d).confidence > 0 AND (d).confidence <= 1 AS conf_ok,
       (d).model LIKE 'txclass-merchants-v3@%' AS model_ok
FROM (SELECT id, classify_transaction_detail(descriptor) AS d FROM txns) s ORDER BY id;
-- batch: one row per element in order, NULL rows for NULL / empty elements
SELECT b.ordinality, b.label, b.category, b.confidence IS NOT NULL AS has_conf
FROM classify_batch(ARRAY(SELECT descriptor FROM txns ORDER BY id)) b;
-- batch and scalar agree
SELECT count(*) AS disagreements
FROM classify_batch(ARRAY(SELECT descriptor FROM txns ORDER BY id)) b
JOIN txns t ON t.id = b.ordinality
WHERE b.label IS DISTINCT FROM classify_transaction(t.descriptor);
SELECT count(*) FROM classify_batch('{}'::text[]);
SELECT count(*) FROM classify_batch(NULL);
-- top-k: ranked, most probable first
SELECT rank, label, category FROM classify_topk('STARBUCKS STORE 01234 SEATTLE WA', 3) WHERE rank = 1;
SELECT count(*), bool_and(confidence > 0) FROM classify_topk('STARBUCKS STORE 01234 SEATTLE WA', 3);
SELECT count(*) FROM classify_topk('', 3);
-- long, control and emoji input: no error, truncated to max_length tokens
SELECT classify_transaction(repeat('AMAZON MKTPLACE PMTS ', 5000)) IS NOT NULL AS long_ok,
       classify_transaction(E'SHELL\x01OIL\t57444') AS control_chars,
       classify_transaction('☕ STARBUCKS 🎉') AS emoji;
SELECT array_length(logits('WALMART'), 1) = (SELECT count(*) FROM labels()) AS logits_width_ok;
SELECT label, category FROM labels() WHERE id = 0;
SELECT labels, execution_provider, max_length FROM model_info();
-- processor and merchant parsing: intermediary, merchant, store, location; one key through PayPal and direct
SELECT * FROM parse_descriptor('SQ *BLUE BOTTLE COF 8473 OAKLAND CA');
SELECT intermediary, merchant, merchant_key FROM parse_descriptor('PAYPAL *NETFLIX 4029357733');
SELECT (SELECT merchant_key FROM parse_descriptor('PAYPAL *NETFLIX 4029357733')) = (SELECT merchant_key FROM parse_descriptor('NETFLIX.COM')) AS one_series;
SELECT count(*) FROM parse_descriptor(NULL);
SELECT merchant, city, region FROM parse_descriptor('STARBUCKS STORE 12345 SEATTLE WA');
