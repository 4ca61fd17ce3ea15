#!/usr/bin/env python3
"""Parity: the extension's logits equal Python ONNX Runtime's on the same model within 1e-4,
and the extension's normalize_descriptor() equals the training code's normalize().

    test_parity.py "<psql connection flags>" <model dir> <oxford data dir>

Descriptors: the distinct real Oxford descriptors plus held-out synthetic ones (>= 200 in all).
Two tests, printed as 'parity: N passed, M failed' (non-zero exit on any failure):
  1. logits + normalize_descriptor() of every descriptor equal Python's (>= 200 compared);
  2. the Python normalizer reproduces tests/normalize_vectors.jsonl (the Rust half of the twin
     check is a cargo test);
  3. parse_descriptor() (Rust) equals the Python twin models/train/parse.py on every descriptor,
     and the twin reproduces tests/parse_vectors.jsonl (the Rust half is a cargo test);
  4. the name-evidence twin models/train/evidence.py reproduces tests/evidence_vectors.jsonl
     (the Rust half is core/tests/evidence_vectors.rs);
  5. the default serving policy on the hand-labeled Oxford gold set: >= 150 labels at precision
     >= 0.95 and ECE <= 0.05, the same labels the Python twin models/train/gold.py serves, and the
     same category coverage and precision on tests/gold/oxford_categories.csv.
"""
import csv
import glob
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
from normalize import normalize  # noqa: E402
from parse import parse  # noqa: E402
from generate import make  # noqa: E402
from pgclient import psql_script  # noqa: E402

TOL = 1e-4


def descriptors(data_dir, n_real=300, n_synth=150):
    seen, out = set(), []
    for path in sorted(glob.glob(os.path.join(data_dir, "*.csv"))):
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            for row in csv.DictReader(fh):
                d = (row.get("MCH.MERCHANT NAME") or row.get("Merchant") or "").strip()
                if d and d not in seen:
                    seen.add(d); out.append(d)
    out = out[:n_real]
    out += [d for d, _ in make("test", n_synth, 7)]
    out += ["", "   ", "☕ STARBUCKS 🎉", "A" * 5000, "ÜBER café", "SHELL\x01OIL"]
    return out


def gold_default_policy(conn, model_dir):
    """5. What the extension serves by default on the hand-labeled Oxford gold set
    (tests/gold/oxford_brands.csv): the labels served equal those of the Python twin
    (models/train/gold.py, its own tokenizer and onnxruntime), at precision >= 0.95, at least 150
    of them, with an expected calibration error <= 0.05; and the raw top-1 comes back with
    txclass.min_level = low and min_confidence = 0."""
    import gold
    from calibrate import reliability
    rows = list(csv.DictReader(open(gold.GOLD, newline="")))
    tsv = "\n".join(f"{i}\t" + r["descriptor"].replace("\\", "\\\\") for i, r in enumerate(rows)) + "\n"
    q = ("SELECT i, coalesce(d.label, ''), d.confidence, d.source, d.level, coalesce(d.category, '') "
         "FROM g, classify_transaction_detail(g.d) d ORDER BY i;\n")
    out = psql_script(conn, "SET search_path = txclass, public;\nCREATE TEMP TABLE g(i int, d text);\nCOPY g FROM STDIN;\n"
                      + tsv + "\\.\n" + q + "SET txclass.min_level = low;\nSET txclass.min_confidence = 0;\n" + q)
    lines = [l.split("\t") for l in out.splitlines() if l.count("\t") == 5]
    served, raw = lines[:len(rows)], lines[len(rows):]
    right = lambda r, label: label == r["label"] or (r["label"] == gold.UNKNOWN and label.startswith("Other "))
    answers = [(float(c), right(r, label)) for r, (_, label, c, src, _, _) in zip(rows, served) if src == "model"]
    n, ok = len(answers), sum(a[1] for a in answers)
    _, ece = reliability([a[0] for a in answers], [a[1] for a in answers])
    twin = gold.score(model_dir)
    same = (n, ok) == (twin["answered"], twin["answered_correct"]) and abs(ece - twin["ece_answered"]) < 1e-4
    raw_answered = sum(1 for x in raw if x[3] == "model")
    good = len(served) == len(rows) and same and n >= 150 and ok / max(n, 1) >= 0.95 and ece <= 0.05 and raw_answered == len(rows)
    # categories (tests/gold/oxford_categories.csv, the same strings): coverage and precision by rows
    cat_rows = list(csv.DictReader(open(gold.CATEGORIES, newline="")))
    w = [int(r["rows_in_file"]) for r in cat_rows]
    got = [x[5] for x in served]
    covered = sum(wi for g, wi in zip(got, w) if g) / sum(w)
    judged = [(g == r["category"], wi) for g, r, wi in zip(got, cat_rows, w) if g and r["category"]]
    cat_precision = sum(wi for ok, wi in judged if ok) / max(1, sum(wi for _, wi in judged))
    twin_cat = next(x for x in gold.categories(model_dir) if x["answer"] == "served")
    cat_same = [r["descriptor"] for r in cat_rows] == [r["descriptor"] for r in rows] and \
        abs(covered - twin_cat["coverage"]) < 1e-9 and abs(cat_precision - twin_cat["precision"]) < 1e-9
    print(f"parity: gold set, categories served: {covered:.3f} of rows at precision {cat_precision:.3f}; "
          f"Python twin {twin_cat['coverage']:.3f} / {twin_cat['precision']:.3f}")
    if not cat_same:
        print("FAIL the categories served on the gold set differ from the Python twin's")
    good = good and cat_same
    print(f"parity: gold set, default policy: {n} labels served, {ok} right (precision {ok / max(n, 1):.3f}), "
          f"ECE {ece:.3f}; Python twin {twin['answered']} / {twin['answered_correct']} / ECE {twin['ece_answered']:.3f}; "
          f"raw top-1 answers {raw_answered} of {len(rows)}")
    if not good:
        print("FAIL the default policy on the gold set (wants >= 150 served, precision >= 0.95, ECE <= 0.05, equal to the twin)")
    return good


def main():
    conn, model_dir, data_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    descs = descriptors(data_dir)
    tsv = "\n".join(f"{i}\t" + d.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ") for i, d in enumerate(descs)) + "\n"
    script = ("SET search_path = txclass, public;\n"
              "CREATE TEMP TABLE p(i int, d text);\n"
              "COPY p FROM STDIN;\n" + tsv + "\\.\n"
              "SELECT i, normalize_descriptor(d), coalesce(array_to_json(logits(d))::text, 'NULL') FROM p ORDER BY i;\n")
    rows = [line.split("\t") for line in psql_script(conn, script).splitlines() if line]
    assert len(rows) == len(descs), (len(rows), len(descs))
    parse_script = ("SET search_path = txclass, public;\n"
                    "CREATE TEMP TABLE p(i int, d text);\n"
                    "COPY p FROM STDIN;\n" + tsv + "\\.\n"
                    "SELECT i, row_to_json(x)::text FROM p, parse_descriptor(d) x ORDER BY i;\n")
    parsed = {int(line.split("\t", 1)[0]): json.loads(line.split("\t", 1)[1])
              for line in psql_script(conn, parse_script).splitlines() if line}

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    max_len = min(64, cfg.get("max_position_embeddings", 64))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.enable_truncation(max_length=max_len)
    so = ort.SessionOptions(); so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    bad = compared = 0
    worst = 0.0
    for (i, sql_norm, sql_logits), d in zip(rows, descs):
        norm = normalize(d)
        # normalize_descriptor prints '' as an empty field
        if sql_norm != norm:
            bad += 1
            print(f"FAIL normalize {d!r}: sql {sql_norm!r} python {norm!r}")
            continue
        if not norm:
            if sql_logits != "NULL":
                bad += 1
                print(f"FAIL {d!r} normalizes to '' but logits() returned {sql_logits[:40]}")
            continue
        ids = np.array([tok.encode(norm).ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        py = sess.run(["logits"], {k: v for k, v in feed.items() if k in names})[0][0]
        ext = np.array(json.loads(sql_logits), dtype=np.float32)
        diff = float(np.max(np.abs(py - ext))) if ext.shape == py.shape else float("inf")
        worst = max(worst, diff)
        compared += 1
        if diff > TOL or int(np.argmax(py)) != int(np.argmax(ext)):
            bad += 1
            print(f"FAIL logits {d!r}: max |diff| {diff}")
    print(f"parity: {compared} descriptors compared with Python onnxruntime {ort.__version__}, worst |logit diff| {worst:.2e} (tolerance {TOL})")
    if compared < 200:
        bad += 1
        print(f"FAIL only {compared} descriptors compared (need >= 200)")
    results = [bad == 0]
    print(f"parity: logits and normalization {'agree' if bad == 0 else f'disagree on {bad} descriptors'}")

    vbad = 0
    vectors = [json.loads(l) for l in open(os.path.join(ROOT, "tests", "normalize_vectors.jsonl"), encoding="utf-8") if l.strip()]
    for v in vectors:
        if normalize(v["raw"]) != v["normalized"] or normalize(v["normalized"]) != v["normalized"]:
            vbad += 1
            print(f"FAIL vector {v['raw']!r}: python {normalize(v['raw'])!r}, file {v['normalized']!r}")
    print(f"parity: python normalizer on {len(vectors)} shared vectors: {vbad} mismatches")
    results.append(vbad == 0 and len(vectors) >= 60)

    # name evidence: models/train/evidence.py reproduces tests/evidence_vectors.jsonl (the Rust
    # half is core/tests/evidence_vectors.rs)
    from evidence import names_for, supports
    ev = [json.loads(l) for l in open(os.path.join(ROOT, "tests", "evidence_vectors.jsonl"), encoding="utf-8") if l.strip()]
    ebad = 0
    names = names_for(list(ev[0]["names"]) + ["Other Retail"])
    if names != ev[0]["names"]:
        ebad += 1
        print("FAIL evidence names: models/train/evidence.py no longer writes the names in tests/evidence_vectors.jsonl")
    for v in ev[1:]:
        got = supports(names, v["label"], normalize(v["descriptor"]))
        if got != v["supported"] or normalize(v["descriptor"]) != v["normalized"]:
            ebad += 1
            print(f"FAIL evidence {v['descriptor']!r} as {v['label']}: python {got}, file {v['supported']}")
    print(f"parity: python name evidence on {len(ev) - 1} shared vectors: {ebad} mismatches")
    results.append(ebad == 0 and len(ev) > 15)

    pbad = 0
    for i, d in enumerate(descs):
        # COPY turned tabs and newlines into spaces on the way in
        py = parse(d.replace("\t", " ").replace("\n", " "))
        py = {"intermediary": py["intermediary"], "merchant": py["merchant"], "store": py["store"], "city": py["city"],
              "region": py["region"], "merchant_key": py["key"]}
        if parsed.get(i) != py:
            pbad += 1
            print(f"FAIL parse {d[:60]!r}: sql {parsed.get(i)} python {py}")
    pvectors = [json.loads(l) for l in open(os.path.join(ROOT, "tests", "parse_vectors.jsonl"), encoding="utf-8") if l.strip()]
    for v in pvectors:
        want = {k: v[k] for k in ("intermediary", "merchant", "store", "city", "region", "key")}
        if parse(v["raw"]) != want:
            pbad += 1
            print(f"FAIL parse vector {v['raw']!r}: python {parse(v['raw'])}, file {want}")
    print(f"parity: parse_descriptor() vs the Python twin on {len(descs)} descriptors and {len(pvectors)} shared vectors: {pbad} mismatches")
    results.append(pbad == 0 and len(pvectors) >= 25 and len(parsed) == len(descs))
    results.append(gold_default_policy(conn, model_dir))
    passed, failed = sum(results), len(results) - sum(results)
    print(f"parity: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
