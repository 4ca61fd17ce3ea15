-- Recurring payments and subscriptions (see core/src/recurring.rs for the detection).
--
-- A table attached with account_column and amount_column (and its time_column) is summarized
-- by txclass.refresh_recurring(table): rows added since its last run (by primary key; late
-- rows included) are folded into per-account, per-merchant charges (day, amount, count); the
-- series of every account and merchant that got new charges are detected again. The merchant
-- is the model's label where the model is confident (>= 0.9, and the answer's level, where the
-- row has one, high or very_high: the descriptor carries the brand's name) and the label is a
-- brand, not a class of many merchants ("Other Restaurant"); else the descriptor's merchant
-- key (txclass.parse_descriptor), so long-tail merchants recur too, and a service billed through
-- PayPal and directly is one merchant. The views read only the summaries.

CREATE TABLE recurring_charges (
    relid    regclass NOT NULL,
    account  text NOT NULL,
    merchant text NOT NULL,
    day      date NOT NULL,
    amount   float8 NOT NULL,
    n        integer NOT NULL,
    label    text,
    category text,
    PRIMARY KEY (relid, account, merchant, day, amount)
);
COMMENT ON TABLE recurring_charges IS 'txclass recurring payments: charges per monitored table, account, merchant, day and amount';

CREATE TABLE recurring_series (
    relid         regclass NOT NULL,
    account       text NOT NULL,
    merchant      text NOT NULL,
    series        integer NOT NULL,
    label         text,
    category      text,
    cadence       text NOT NULL,
    regularity    float8 NOT NULL,
    charges       integer NOT NULL,
    extras        integer NOT NULL,
    amount        float8 NOT NULL,
    fixed_amount  boolean NOT NULL,
    price_changes jsonb NOT NULL,
    first_charge  date NOT NULL,
    last_charge   date NOT NULL,
    next_expected date NOT NULL,
    next_amount   float8 NOT NULL,
    anchor_day    integer NOT NULL,
    PRIMARY KEY (relid, account, merchant, series)
);
COMMENT ON TABLE recurring_series IS 'txclass recurring payments: the series detected per monitored table, account and merchant';
CREATE INDEX recurring_series_next ON recurring_series (relid, next_expected);

SELECT pg_catalog.pg_extension_config_dump('txclass.recurring_charges', '');
SELECT pg_catalog.pg_extension_config_dump('txclass.recurring_series', '');

-- a role sees the charges and series of tables it may SELECT
ALTER TABLE recurring_charges ENABLE ROW LEVEL SECURITY;
ALTER TABLE recurring_series ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers ON recurring_charges FOR SELECT USING (has_table_privilege(relid, 'SELECT'));
CREATE POLICY readers ON recurring_series FOR SELECT USING (has_table_privilege(relid, 'SELECT'));
GRANT SELECT ON recurring_charges, recurring_series TO PUBLIC;

-- Folds rows added since the last refresh into the charges and detects the touched series
-- again; returns how many rows it read.
CREATE FUNCTION refresh_recurring(tbl regclass) RETURNS bigint LANGUAGE plpgsql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE m txclass.monitored; upto text; n bigint; accounts text[]; merchants text[]; upsert text := '';
BEGIN
    m := txclass._check_reader(tbl);
    IF m.account_column IS NULL OR m.amount_column IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no account and amount columns for recurring payments', tbl),
            HINT = format('re-attach it naming them: SELECT txclass.attach(%L, %L, account_column => ..., amount_column => ...)',
                          tbl::text, m.descriptor_column);
    END IF;
    IF m.key_columns IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('%s has no primary key or unique key; recurring charges are folded in key order', tbl),
            HINT = 'add one (e.g. ALTER TABLE ... ADD PRIMARY KEY (...)): txclass takes it up at once';
    END IF;
    PERFORM pg_advisory_xact_lock('txclass.recurring_charges'::regclass::oid::int, tbl::oid::int);
    SELECT recurring_watermark INTO m.recurring_watermark FROM txclass.monitored WHERE relid = tbl;
        -- the newest key (a composite key's as a JSON array): the refresh reads up to it
    upto := txclass._key_last(tbl, m.key_columns);
    IF upto IS NULL THEN
        RETURN 0;
    END IF;
    -- charges already there (not the first refresh): new rows of a known day and amount add up.
    -- On a first refresh a plain INSERT in key order costs half as much (bench/recurring.sh)
    IF EXISTS (SELECT FROM txclass.recurring_charges WHERE relid = tbl) THEN
        upsert := 'ON CONFLICT (relid, account, merchant, day, amount) DO UPDATE SET n = r.n + EXCLUDED.n, '
                  'label = coalesce(EXCLUDED.label, r.label), category = coalesce(EXCLUDED.category, r.category)';
    END IF;
    EXECUTE format($q$
        WITH inc AS MATERIALIZED (
            SELECT %1$I::text AS account,
                   CASE WHEN %14$s THEN %2$I
                        ELSE (SELECT p.merchant_key FROM txclass.parse_descriptor(%4$I) p) END AS merchant,
                   %5$I::date AS day, %6$I::float8 AS amount,
                   -- the label and category name the series only where they named the merchant
                   CASE WHEN %14$s THEN %2$I END AS label,
                   CASE WHEN %14$s THEN %7$I END AS category
            FROM %8$s WHERE ($1 IS NULL OR (%9$s) > %10$s) AND (%9$s) <= %13$s
              AND %1$I IS NOT NULL AND %5$I IS NOT NULL AND %6$I > 0),
        agg AS (
            SELECT account, merchant, day, amount, count(*)::int AS n, max(label) AS label, max(category) AS category
            FROM inc WHERE merchant IS NOT NULL AND merchant <> '' GROUP BY 1, 2, 3, 4),
        ins AS (
            INSERT INTO txclass.recurring_charges AS r (relid, account, merchant, day, amount, n, label, category)
            SELECT %11$L::regclass, account, merchant, day, amount, n, label, category FROM agg
            ORDER BY account, merchant, day, amount   -- in key order: the index grows at its end, not at random
            %12$s
            RETURNING account, merchant),
        touched AS (SELECT DISTINCT account, merchant FROM ins)
        SELECT (SELECT count(*) FROM inc), (SELECT array_agg(account ORDER BY account, merchant) FROM touched),
               (SELECT array_agg(merchant ORDER BY account, merchant) FROM touched)
        $q$, m.account_column, m.label_column, m.confidence_column, m.descriptor_column, m.time_column, m.amount_column,
             m.category_column, tbl, txclass._key_list(m.key_columns), txclass._key_position(tbl, m.key_columns, '$1'), tbl::oid::text, upsert,
             txclass._key_position(tbl, m.key_columns, '$2'),
             -- named: confidence >= 0.9 and, where the row has a level, high or very_high (a
             -- confident answer without the name in the descriptor is medium: HOTJAR is not
             -- Hotels.com). A class of many merchants ("Other Restaurant", $3) names none: two
             -- restaurants are two series
             format('%1$I IS NOT NULL AND %3$I >= 0.9 AND coalesce(%2$s IN (''high'', ''very_high''), true) AND %1$I <> ALL ($3)',
                    m.label_column, CASE WHEN m.level_column IS NULL THEN 'NULL::text' ELSE quote_ident(m.level_column) END,
                    m.confidence_column))
    INTO n, accounts, merchants USING m.recurring_watermark, upto, txclass._generic_labels();
    DELETE FROM txclass.recurring_series s USING unnest(accounts, merchants) t(account, merchant)
    WHERE s.relid = tbl AND s.account = t.account AND s.merchant = t.merchant;
    INSERT INTO txclass.recurring_series
    SELECT tbl, t.account, t.merchant, d.series, c.label, c.category, d.cadence, d.regularity, d.charges, d.extras,
           d.amount, d.fixed_amount, d.price_changes, '1970-01-01'::date + d.first_day, '1970-01-01'::date + d.last_day,
           '1970-01-01'::date + d.next_expected, d.next_amount, d.anchor_day
    FROM unnest(accounts, merchants) t(account, merchant),
         LATERAL (SELECT array_agg(r.day - '1970-01-01'::date ORDER BY r.day) AS days, array_agg(r.amount ORDER BY r.day) AS amounts,
                         max(r.label) AS label, max(r.category) AS category
                  FROM txclass.recurring_charges r, generate_series(1, r.n)
                  WHERE r.relid = tbl AND r.account = t.account AND r.merchant = t.merchant) c,
         LATERAL txclass._detect_series(c.days, c.amounts) d;
    UPDATE txclass.monitored SET recurring_watermark = upto WHERE relid = tbl;
    RETURN n;
END
$$;

-- Everything attached, for one pg_cron job: drift summaries (tables with a key) and recurring
-- payments (tables with account and amount columns).
CREATE FUNCTION refresh_all() RETURNS TABLE (tbl regclass, drift_rows bigint, recurring_rows bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE r txclass.monitored;
BEGIN
    FOR r IN SELECT * FROM txclass.monitored WHERE key_columns IS NOT NULL AND has_table_privilege(relid, 'SELECT')
             ORDER BY relid::text LOOP
        tbl := r.relid;
        drift_rows := txclass.refresh_drift(r.relid);
        recurring_rows := CASE WHEN r.account_column IS NOT NULL AND r.amount_column IS NOT NULL
                               THEN txclass.refresh_recurring(r.relid) END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Every series of a table: cadence, regularity, amounts, price changes, first and last charge,
-- the next expected date and amount, and its status on as_of.
CREATE FUNCTION recurring(tbl regclass, as_of date DEFAULT current_date, for_account text DEFAULT NULL)
RETURNS TABLE (account text, merchant text, label text, category text, cadence text, regularity float8, charges integer,
               amount float8, fixed_amount boolean, price_changes jsonb, first_charge date, last_charge date,
               next_expected date, next_amount float8, status text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM txclass._check_reader(tbl);
    RETURN QUERY
    SELECT s.account, s.merchant, s.label, s.category, s.cadence, s.regularity, s.charges, s.amount, s.fixed_amount,
           (SELECT coalesce(jsonb_agg(jsonb_build_object('since', '1970-01-01'::date + (c->>'day')::int,
                                                         'from', (c->>'from')::float8, 'to', (c->>'to')::float8)
                                      ORDER BY (c->>'day')::int), '[]')
            FROM jsonb_array_elements(s.price_changes) c),
           s.first_charge, s.last_charge, s.next_expected, s.next_amount,
           txclass._series_status(s.cadence, s.next_expected - '1970-01-01'::date, s.anchor_day, as_of - '1970-01-01'::date)
    FROM txclass.recurring_series s WHERE s.relid = tbl AND (for_account IS NULL OR s.account = for_account)
    ORDER BY s.account, s.merchant, s.series;
END
$$;

-- Series whose merchant is a subscription service: the model's subscription labels
-- (config.json, txclass.subscription_labels) or, for a model without them, its categories of
-- services people subscribe to.
CREATE FUNCTION subscriptions(tbl regclass, as_of date DEFAULT current_date, for_account text DEFAULT NULL)
RETURNS TABLE (account text, merchant text, label text, category text, cadence text, amount float8, fixed_amount boolean,
               price_changes jsonb, first_charge date, last_charge date, next_expected date, next_amount float8, status text)
LANGUAGE plpgsql STABLE AS $$
DECLARE subs text[] := txclass._subscription_labels();
BEGIN
    RETURN QUERY
    SELECT r.account, r.merchant, r.label, r.category, r.cadence, r.amount, r.fixed_amount, r.price_changes,
           r.first_charge, r.last_charge, r.next_expected, r.next_amount, r.status
    FROM txclass.recurring(tbl, as_of, for_account) r
    WHERE CASE WHEN subs IS NOT NULL THEN r.label = ANY (subs)
               ELSE r.category IN ('Streaming & Digital Media', 'Software & Cloud', 'Telecom', 'Insurance', 'Fitness',
                                   'Utilities') END;
END
$$;

-- Expected charges in the next `days` days, per account.
CREATE FUNCTION upcoming(tbl regclass, days integer DEFAULT 30, as_of date DEFAULT current_date, for_account text DEFAULT NULL)
RETURNS TABLE (account text, merchant text, label text, expected date, amount float8, cadence text, status text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM txclass._check_reader(tbl);
    RETURN QUERY
    SELECT r.account, r.merchant, r.label, r.next_expected, r.next_amount, r.cadence, r.status
    FROM txclass.recurring(tbl, as_of, for_account) r
    WHERE r.status <> 'ended' AND r.next_expected >= as_of AND r.next_expected < as_of + days
    ORDER BY r.account, r.next_expected, r.merchant;
END
$$;

-- Price changes of every series: when, from what, to what.
CREATE FUNCTION price_changes(tbl regclass)
RETURNS TABLE (account text, merchant text, label text, since date, old_amount float8, new_amount float8)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM txclass._check_reader(tbl);
    RETURN QUERY
    SELECT s.account, s.merchant, s.label, '1970-01-01'::date + (c->>'day')::int, (c->>'from')::float8, (c->>'to')::float8
    FROM txclass.recurring_series s, jsonb_array_elements(s.price_changes) c
    WHERE s.relid = tbl
    ORDER BY 1, 2, 4;
END
$$;

REVOKE ALL ON FUNCTION refresh_recurring(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION refresh_recurring(regclass) TO PUBLIC;
