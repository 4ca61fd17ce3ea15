#!/usr/bin/env bash
# Replays the real Oxford City Council card months (../shared/data/oxford-pcard) through
# txclass on a throwaway cluster: attach (time column = transaction date, monthly buckets),
# COPY every month through the enrichment trigger, refresh the drift summaries, and print the
# per-month drift against (1) the bundled model's training distribution and (2) a reference
# window of the first three months. Writes an HTML report to build/drift-oxford.html.
#   bash scripts/oxford_drift.sh
source "$(dirname "$0")/common.sh"
cd "$ROOT"
DATA="${TXCLASS_DATA:-$ROOT/../shared/data/oxford-pcard}"
bash scripts/setup.sh >/dev/null
mkdir -p "$BUILD"; tsv="$BUILD/oxford-drift.tsv"
python3 scripts/oxford_tsv.py "$DATA" "$tsv" >/dev/null; chmod 644 "$tsv"
trap 'bash "$ROOT/scripts/cluster.sh" stop oxdrift >/dev/null 2>&1 || true' EXIT
conn="$(bash scripts/cluster.sh start oxdrift "${TXCLASS_OXDRIFT_PORT:-54347}")"
P() { psql $conn -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
P <<SQL
SET client_min_messages = warning;
CREATE EXTENSION txclass;
CREATE TABLE oxford (id bigserial PRIMARY KEY, month_file text, txn_date date, descriptor text, amount numeric, council_category text);
\o /dev/null
SELECT txclass.attach('oxford', 'descriptor', time_column => 'txn_date', drift_unit => 'month');
\copy oxford (month_file, txn_date, descriptor, amount, council_category) FROM '$tsv'
SELECT txclass.refresh_drift('oxford');
\o
\echo
\echo '== Oxford card spending, per month, against the model''s training distribution'
SELECT bucket::date AS month, rows, round(label_psi::numeric, 2) AS label_psi, round(label_js::numeric, 3) AS label_js,
       round(category_psi::numeric, 2) AS cat_psi,
       round(confidence_mean::numeric, 3) AS mean_conf, round(low_confidence_share::numeric, 3) AS conf_lt_05,
       round(confidence_psi::numeric, 2) AS conf_psi, round(new_descriptor_share::numeric, 3) AS never_seen,
       round(baseline_new_descriptor_share::numeric, 3) AS base_never_seen,
       round(unk_token_share::numeric, 3) AS unk, status
FROM txclass.drift('oxford') ORDER BY bucket;
\echo
\echo '== the same months against a reference window: January to March 2017'
\o /dev/null
SELECT txclass.set_baseline('oxford', '2017-01-01', '2017-04-01');
\o
SELECT bucket::date AS month, rows, round(label_psi::numeric, 3) AS label_psi, round(label_js::numeric, 3) AS label_js,
       round(label_p::numeric, 4) AS label_p, round(category_psi::numeric, 3) AS cat_psi, round(category_p::numeric, 4) AS cat_p,
       round(confidence_psi::numeric, 3) AS conf_psi, round(new_descriptor_share::numeric, 3) AS never_seen,
       round(baseline_new_descriptor_share::numeric, 3) AS base_never_seen,
       label_psi_status, label_js_status, confidence_psi_status, new_descriptor_status, status, category_status,
       (SELECT string_agg(format('%s %s%%→%s%%', m->>'label', round((m->>'baseline_share')::numeric * 100, 1),
                                 round((m->>'share')::numeric * 100, 1)), '; ')
        FROM jsonb_array_elements(top_movers) WITH ORDINALITY x(m, o) WHERE o <= 2) AS top_movers
FROM txclass.drift('oxford') ORDER BY bucket;
SELECT "table", bucket::date, status FROM txclass.drift_summary;
SQL
sock="$(echo $conn | awk '{print $2}')"; port="$(echo $conn | awk '{print $4}')"
"$PYVENV/bin/python" scripts/drift_report.py "host=$sock port=$port user=postgres dbname=postgres" oxford month "$BUILD/drift-oxford.html"
