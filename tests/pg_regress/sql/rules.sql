-- Rules ahead of the model: precedence, reporting, batch, no stale answers after a change.
SET search_path = public, txclass;
SELECT normalize_descriptor('TESCO STORES 6292 OXFORD');
SELECT label, source, rule_id FROM classify_transaction_detail('TESCO STORES 6292 OXFORD');
INSERT INTO rules (pattern, label, category, priority, note) VALUES
    ('^tesco stores', 'Tesco Stores (rule)', 'Groceries', 100, 'hot fix'),
    ('^tesco', 'Tesco (broad rule)', NULL, 50, 'lower priority'),
    ('oxford city council', 'Oxford City Council', 'Government', 100, 'long tail');
-- the rule wins and says so; a rule without category takes the model's category for its label
SELECT label, category, confidence, source, rule_id FROM classify_transaction_detail('TESCO STORES 6292 OXFORD');
SELECT label, category, source, rule_id FROM classify_transaction_detail('TESCO EXPRESS 1234');
SELECT label, category, source FROM classify_transaction_detail('OXFORD CITY COUNCIL PARKING');
SELECT label, source FROM classify_transaction_detail('STARBUCKS STORE 01234 SEATTLE WA');
SELECT classify_transaction('TESCO STORES 6292 OXFORD');
SELECT ordinality, label, category, round(confidence::numeric, 3) AS confidence
FROM classify_batch(ARRAY['TESCO STORES 6292 OXFORD', 'STARBUCKS STORE 01234', NULL, 'tesco metro']);
-- a rule with the same label as a model class: the model's category
INSERT INTO rules (pattern, label) VALUES ('^shell oil', 'Shell');
SELECT label, category, source FROM classify_transaction_detail('SHELL OIL 57444 HOUSTON TX');
-- disable, update, delete: the next call sees it (no stale cache entry)
UPDATE rules SET enabled = false WHERE note = 'hot fix';
SELECT label, source FROM classify_transaction_detail('TESCO STORES 6292 OXFORD');
DELETE FROM rules WHERE note = 'lower priority';
SELECT label, source FROM classify_transaction_detail('TESCO STORES 6292 OXFORD');
-- an aborted rule change changes nothing
BEGIN;
INSERT INTO rules (pattern, label) VALUES ('^starbucks', 'Not Starbucks');
SELECT classify_transaction('STARBUCKS STORE 01234');
ROLLBACK;
SELECT classify_transaction('STARBUCKS STORE 01234');
-- bad patterns are refused at insert, naming the problem
INSERT INTO rules (pattern, label) VALUES ('tesco(', 'x');
INSERT INTO rules (pattern, label) VALUES ('((a{1000}){1000}){100}', 'x');
\set VERBOSITY terse
INSERT INTO rules (pattern, label) VALUES ('^ok', '');
\set VERBOSITY default
TRUNCATE rules;
SELECT label, source FROM classify_transaction_detail('OXFORD CITY COUNCIL PARKING');
SELECT rules FROM model_info();
