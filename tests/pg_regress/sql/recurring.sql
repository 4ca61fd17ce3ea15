-- Recurring payments: attach knows the money, refresh folds charges in, the views answer;
-- refusals name the fix.
SET search_path = public, txclass;
CREATE TABLE card (id bigserial PRIMARY KEY, acct text, descriptor text, amount numeric(10,2), posted date);
SELECT account_column, amount_column FROM attach('card', 'descriptor', time_column => 'posted');
SELECT refresh_recurring('card');
SELECT attach('card', 'descriptor', account_column => 'nope', amount_column => 'amount');
SELECT attach('card', 'descriptor', account_column => 'acct', amount_column => 'descriptor');
-- a re-attach adds the money columns and keeps the time column
SELECT time_column, drift_unit, account_column, amount_column FROM attach('card', 'descriptor', account_column => 'acct', amount_column => 'amount');
-- one account: a monthly subscription on the 31st (month ends), a price change, a yearly plan,
-- irregular shopping; another account: a weekly charge with one skipped week
INSERT INTO card (acct, descriptor, amount, posted)
SELECT 'a1', 'PAYPAL *KESTRELPIXEL', CASE WHEN k < 6 THEN 9.99 ELSE 12.99 END,
       (date '2026-01-31' + k * interval '1 month')::date
FROM generate_series(0, 9) k;
INSERT INTO card (acct, descriptor, amount, posted)
SELECT 'a1', 'CEDAR ARBOR ANNUAL', 89.00, make_date(2023 + k, 4, 15) FROM generate_series(0, 3) k;
INSERT INTO card (acct, descriptor, amount, posted)
VALUES ('a1', 'ORBIT STORES', 23.10, '2026-02-03'), ('a1', 'ORBIT STORES', 7.45, '2026-02-19'),
       ('a1', 'ORBIT STORES', 61.00, '2026-05-02'), ('a1', 'ORBIT STORES', 14.99, '2026-05-30');
INSERT INTO card (acct, descriptor, amount, posted)
SELECT 'a2', 'SQ *TUNDRA QUILL 0042 OAKLAND CA', 25.00, date '2026-09-04' + 7 * k FROM generate_series(0, 9) k WHERE k <> 4;
SELECT refresh_recurring('card') AS rows_read;
SELECT refresh_recurring('card') AS nothing_new;
SELECT account, merchant, cadence, round(regularity::numeric, 2) AS regularity, charges, amount, fixed_amount,
       price_changes, first_charge, last_charge, next_expected, next_amount, status
FROM recurring('card', '2026-11-20') ORDER BY account, merchant;
-- status moves with the day it is asked on
SELECT merchant, status FROM recurring('card', '2027-01-05', 'a1') ORDER BY merchant;
SELECT * FROM upcoming('card', 30, '2026-11-20');
SELECT * FROM price_changes('card');
-- late rows join their series at the next refresh
INSERT INTO card (acct, descriptor, amount, posted) VALUES ('a2', 'SQ *TUNDRA QUILL 0042 OAKLAND CA', 25.00, '2026-10-02');
SELECT refresh_recurring('card') AS late_rows;
SELECT charges, round(regularity::numeric, 2) AS regularity FROM recurring('card', '2026-11-20', 'a2');
-- refresh_all: drift and recurring for every attached table
SELECT tbl, drift_rows >= 0 AS drift_refreshed, recurring_rows FROM refresh_all() WHERE tbl = 'card'::regclass;
