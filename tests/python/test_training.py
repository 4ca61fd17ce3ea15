#!/usr/bin/env python3
"""Training from your own labels, end to end (issue 8), on a throwaway cluster of its own.

The labeled real file ../shared/data/oxford-pcard/procurement-card-spending-jan-mar-2017.csv
(Merchant -> Transaction description) is loaded into a table; then

  1. scripts/train.sh trains from a SQL query over that table (time split: the newest 20% test),
     and writes a model directory with a model card;
  2. txclass.register_model accepts the directory unchanged, activate_model serves it, and
     txclass.evaluate on the card's gold query reproduces the card's test figures exactly (same
     rows, same fingerprint, same number correct, accuracy, macro-F1);
  3. a warm start: a model trained on January-February only, continued on all three months — the
     classes of March are appended (old ids kept), the registry accepts the grown model, it serves;
  4. the CSV path: --csv with named columns gives the same data sizes as the query;
  5. drift against the trained model's own baseline (its predictions on its labeled rows): the
     Oxford training months replayed are mostly `ok` (issue 18's acceptance d).

    test_training.py <repo root> [minutes per training]
Prints 'training: N passed, M failed'.
"""
import json
import os
import shutil
import subprocess
import sys

import psycopg

import harness
from harness import Checks

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MINUTES = sys.argv[2] if len(sys.argv) > 2 else "0.75"
CSV = harness.OXFORD_LABELED
OUT = "/tmp/txclass-training"
check = Checks("training")


def cluster(cmd, port=54380):
    return harness.cluster(cmd, "training", port)


def train(*args):
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "train.sh"), "--minutes", MINUTES, *args],
                       capture_output=True, text=True)
    tail = (r.stdout + r.stderr)[-1500:]
    if r.returncode != 0:
        raise RuntimeError(f"train.sh {' '.join(args[:4])}... failed:\n{tail}")
    print("   " + "\n   ".join(line for line in r.stdout.splitlines() if line.startswith(("data:", "labels:", "trained", "test:"))),
          flush=True)
    return tail


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    os.chmod(OUT, 0o755)
    try:
        flags = cluster("start").split()
        ci = harness.conninfo(" ".join(flags))
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            harness.load_oxford_labels(c)
            n, classes = c.execute("SELECT count(*), count(DISTINCT label) FROM oxford_labels").fetchone()
        check("the labeled Oxford file loads", n == 1141 and classes >= 70, f"{n} rows, {classes} classes")

        # 1. train from SQL
        model = f"{OUT}/oxford-v1"
        train("--dsn", ci, "--sql", "SELECT descriptor, label, time, label ILIKE '%software%' AS subscription FROM oxford_labels",
              "--subscription-column", "subscription", "--out", model)
        files = sorted(os.listdir(model))
        card = open(f"{model}/MODEL_CARD.md").read()
        m = json.load(open(f"{model}/metrics.json"))
        need = {"model.onnx", "tokenizer.json", "config.json", "MODEL_CARD.md", "label_frequencies.json", "drift_baseline.json", "pytorch"}
        check("train.sh writes an Optimum-style directory with a model card", need <= set(files), str(files))
        subs = json.load(open(f"{model}/config.json"))["txclass"].get("subscription_labels")
        check("--subscription-column marks the labels whose rows say so (config.json txclass.subscription_labels)",
              subs and all("software" in l.lower() for l in subs), str(subs))
        check("the card has data sizes, both models' accuracy and macro-F1, and the label frequencies",
              all(s in card for s in ("train (", "TF-IDF", "macro-F1", "## Label frequencies", f"{m['bert']['accuracy']:.4f}"))
              and m["train_rows"] + m["calibration_rows"] + m["test_rows"] == m["rows"] and m["test_rows"] > 0,
              f"{m['train_rows']}/{m['calibration_rows']}/{m['test_rows']}")
        block = json.load(open(f"{model}/config.json"))["txclass"]
        lv = block.get("confidence_levels", {})
        check("the trainer calibrates: a temperature, nested level thresholds and a floor in config.json; the card has "
              "the calibration error before and after and a reliability table (issue 17)",
              block.get("temperature", 0) > 0 and lv and lv["very_high"] >= lv["high"] >= lv["medium"]
              and block.get("min_confidence") in (lv["medium"], 0.0)
              and all(x in card for x in ("## Calibration and confidence levels", "expected calibration error", "| confidence | rows |")),
              f"{ {k: v for k, v in block.items() if k != 'label2category'} }")
        check("the budget is the budget: with --minutes and no --max-steps training runs until the time is spent, "
              "and the card says what stopped it",
              m["stopped_by"] == "time budget" and m["max_steps"] is None and "stopped by the time budget" in card
              and m["bert"]["train_seconds"] >= float(MINUTES) * 60 * 0.9, f"{m['stopped_by']}, {m['bert']['train_seconds']} s")

        # 2. register, activate, evaluate reproduces the card
        os.system(f"chmod -R a+rX {OUT}")
        with psycopg.connect(ci, autocommit=True) as c:
            num = c.execute("SELECT num_labels FROM txclass.register_model('oxford-v1', %s)", (model,)).fetchone()[0]
            c.execute("SELECT txclass.activate_model('oxford-v1')")
            c.execute("SET txclass.min_confidence = 0")   # serving is checked here, not abstention
            c.execute("SET txclass.min_level = low")
            served = c.execute("SELECT txclass.classify_transaction('AMAZON.CO.UK MKTPLACE')").fetchone()[0]
            labels = {r[0] for r in c.execute("SELECT DISTINCT label FROM oxford_labels")}
            c.execute("RESET txclass.min_confidence")   # evaluate reports the coverage at the model's own floor
            c.execute("RESET txclass.min_level")
            ev = c.execute("SELECT txclass.evaluate('oxford-v1', %s)", (m["gold_query"],)).fetchone()[0]
            served_subs = c.execute("SELECT txclass._subscription_labels()").fetchone()[0]
        check("register_model accepts the directory unchanged and the activated model serves one of its labels",
              num == m["labels"] and served in labels, f"{num} labels; served {served!r}")
        check("the extension reads the served model's subscription labels (what txclass.subscriptions() keeps)",
              served_subs == subs, f"{served_subs}")
        b = m["bert"]
        same = (ev["rows"] == b["rows"] and ev["correct"] == b["correct"] and ev["gold_fingerprint"] == m["gold_fingerprint"]
                and abs(ev["accuracy"] - b["accuracy"]) < 1e-12 and abs(ev["macro_f1"] - b["macro_f1"]) < 1e-12)
        lev = ev.get("levels", {})
        check("evaluate reports precision per confidence level and the coverage at the model's floor",
              len(lev.get("per_level", [])) == 4 and 0 < sum(x["rows"] for x in lev["per_level"]) <= ev["rows"]
              and abs(lev["min_confidence"] - block["min_confidence"]) < 1e-6, str(lev)[:300])
        check("txclass.evaluate on the card's gold query reproduces the card's test figures",
              same, f"SQL: {ev['rows']} rows, {ev['correct']} correct, acc {ev['accuracy']:.4f}, F1 {ev['macro_f1']:.4f}, "
                    f"{ev['gold_fingerprint']}; card: {b['rows']} rows, {b['correct']} correct, acc {b['accuracy']:.4f}, "
                    f"F1 {b['macro_f1']:.4f}, {m['gold_fingerprint']}")

        # 2b. drift of the Oxford months against this model's own baseline (its predictions on its
        # labeled rows): the training months themselves must not alarm
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE TABLE oxford_stream (id serial PRIMARY KEY, descriptor text, time date)")
            c.execute("SELECT txclass.attach('oxford_stream', 'descriptor', time_column => 'time', drift_unit => 'month')")
            c.execute("INSERT INTO oxford_stream (descriptor, time) SELECT descriptor, time FROM oxford_labels ORDER BY time, id")
            c.execute("SELECT txclass.refresh_drift('oxford_stream')")
            kind = c.execute("SELECT label_shares_kind, rows FROM txclass.drift_baseline WHERE relid = 'oxford_stream'::regclass").fetchone()
            cols = ("round(label_psi::numeric, 3), round(label_p::numeric, 4), round(category_psi::numeric, 3), "
                    "round(confidence_psi::numeric, 3), round(confidence_p::numeric, 4), round(new_descriptor_share::numeric, 3), "
                    "round(baseline_new_descriptor_share::numeric, 3), label_psi_status, confidence_psi_status, "
                    "new_descriptor_status, category_status")
            months = c.execute(f"SELECT bucket::date::text, rows, {cols}, status FROM txclass.drift('oxford_stream') ORDER BY 1").fetchall()
            quarter = c.execute(f"SELECT status, {cols} FROM txclass.drift('oxford_stream', 'quarter')").fetchall()
        print("  Oxford months against oxford-v1's own baseline (month, rows, label PSI, p, category PSI, confidence PSI, p, "
              "never-seen, baseline never-seen, label/confidence/new/category status, status):")
        for r in months:
            print("   ", r)
        print("  the quarter:", quarter)
        ok_months = sum(1 for r in months if r[-1] == "ok")
        check("the trainer's drift baseline is the model's predictions; its own training months are mostly ok "
              "(month buckets: at least 2 of 3; the quarter: ok)",
              kind[0] == "predicted" and 0 < kind[1] <= 1141 and len(months) == 3 and ok_months >= 2 and [q[0] for q in quarter] == ["ok"],
              f"{kind}, {ok_months}/3 months ok, quarter {quarter}")

        # 3. warm start with new classes
        early = f"{OUT}/oxford-janfeb"
        grown = f"{OUT}/oxford-grown"
        train("--dsn", ci, "--sql", "SELECT descriptor, label, time FROM oxford_labels WHERE time < '2017-03-01'", "--out", early,
              "--split", "random")
        train("--dsn", ci, "--sql", "SELECT descriptor, label, time FROM oxford_labels", "--out", grown, "--warm-start", early)
        a = json.load(open(f"{early}/config.json"))["id2label"]
        g = json.load(open(f"{grown}/config.json"))["id2label"]
        gm = json.load(open(f"{grown}/metrics.json"))
        kept = all(g[k] == v for k, v in a.items())
        check("a warm start appends the new classes and keeps the old ids", len(g) > len(a) and kept and gm["new_labels"] == len(g) - len(a),
              f"{len(a)} -> {len(g)} classes")
        os.system(f"chmod -R a+rX {OUT}")
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("SELECT txclass.register_model('oxford-janfeb', %s)", (early,))
            num = c.execute("SELECT num_labels FROM txclass.register_model('oxford-grown', %s)", (grown,)).fetchone()[0]
            c.execute("SELECT txclass.activate_model('oxford-janfeb')")
            c.execute("SELECT txclass.activate_model('oxford-grown')")
            c.execute("SET txclass.min_confidence = 0")
            c.execute("SET txclass.min_level = low")
            model_now, served = c.execute(
                "SELECT model, label FROM txclass.classify_transaction_detail('TRAINLINE.COM')").fetchone()
            ev = c.execute("SELECT txclass.evaluate('oxford-grown', %s, store => false)", (gm["gold_query"],)).fetchone()[0]
        check("the registry accepts the grown model (class count changed) and serves it after the smaller one",
              num == len(g) and model_now.startswith("oxford-grown") and served in labels and ev["correct"] == gm["bert"]["correct"],
              f"{num} labels, {model_now}: {served!r}; SQL correct {ev['correct']} vs card {gm['bert']['correct']}")

        # 4. the CSV path
        from_csv = f"{OUT}/oxford-csv"
        train("--csv", CSV, "--text-column", "Merchant", "--label-column", "Transaction description", "--time-column", "Date",
              "--out", from_csv, "--max-steps", "50")
        cm = json.load(open(f"{from_csv}/metrics.json"))
        check("--csv with named columns reads the same rows as the query (same split, same test fingerprint)",
              (cm["train_rows"], cm["test_rows"], cm["gold_fingerprint"]) == (m["train_rows"], m["test_rows"], m["gold_fingerprint"]),
              f"{cm['train_rows']}/{cm['test_rows']} {cm['gold_fingerprint']}")

        # 5. the labeling loop's labels are training data: add_labels, then train.sh --sql over txclass.labels
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("SELECT txclass.add_labels(array_agg(descriptor ORDER BY time, id), array_agg(label ORDER BY time, id)) "
                      "FROM oxford_labels WHERE label IS NOT NULL AND txclass.normalize_descriptor(descriptor) <> ''")
            n_labels = c.execute("SELECT count(*) FROM txclass.labels").fetchone()[0]
        from_labels = f"{OUT}/oxford-labels"
        train("--dsn", ci, "--sql", "SELECT descriptor, label, category, labeled_at AS time FROM txclass.labels",
              "--split", "random", "--out", from_labels, "--max-steps", "30")
        lm = json.load(open(f"{from_labels}/metrics.json"))
        check("txclass.labels is training data: add_labels keeps one label per normalized descriptor, and train.sh --sql "
              "over it trains on every one of them",
              0 < n_labels < 1141 and lm["rows"] == n_labels, f"{n_labels} labels, {lm['rows']} rows trained on")
    except Exception as e:  # noqa: BLE001
        check("training tests ran to the end", False, repr(e)[-600:])
    finally:
        cluster("stop")
    check.finish()


if __name__ == "__main__":
    main()
