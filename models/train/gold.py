"""Scores a model directory on the hand-labeled Oxford gold set (tests/gold/oxford_brands.csv):
precision at each confidence level, abstentions, how often a string that is no known brand
is answered with a brand at `high` or above, and what the default serving policy returns: the
labels served (txclass.min_level = high where the levels were fitted, and the model's
min_confidence), their precision, and their calibration (expected calibration error and a
reliability table) — as txclass serves it (normalization, truncation, temperature, levels, name
evidence and min_confidence from config.json; core/src/confidence.rs is the other half).

    build/venv/bin/python models/train/gold.py models/txclass-merchants-v3 [models/txclass-merchants-v2 ...] [--json] [--heldout] [--min-level=medium]

--heldout scores the trainer's synthetic held-out split (regenerated from metrics.json) the same way.
--min-level: the txclass.min_level to serve at (default high; low with no floor: the raw top-1).
--categories: category coverage and precision on tests/gold/oxford_categories.csv (the same
strings, each with a category), weighted by the rows behind each string: what the policy serves
(the category of each label served), and what the probability mass of each category would give.

Right answers: for a string labeled with one of the model's brands, that label; for one labeled
"not a known brand", an abstention or one of the long-tail "Other ..." classes.
"""
import csv
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from normalize import normalize  # noqa: E402
from evidence import supports  # noqa: E402
from calibrate import served_level  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLD = os.path.join(ROOT, "tests", "gold", "oxford_brands.csv")
UNKNOWN = "not a known brand"
LEVELS = ("very_high", "high", "medium", "low")
UNCALIBRATED = {"very_high": 0.95, "high": 0.80, "medium": 0.50}  # core/src/confidence.rs


def level_of(c, cuts):
    for name in LEVELS[:3]:
        if c >= cuts[name]:
            return name
    return "low"


def heldout_rows(model_dir, test_size=10000):
    """The trainer's held-out test split, regenerated from the seed and open-set share in the
    model's metrics.json (train.py's default --test-size): its brands, and its generated unknown
    businesses as "not a known brand"."""
    from generate import heldout
    m = json.load(open(os.path.join(model_dir, "metrics.json")))
    known, unknown = heldout(test_size, m["seed"], m.get("unknown_share", 0.0))
    return [{"descriptor": d, "label": l} for d, l in known] + [{"descriptor": d, "label": UNKNOWN} for d, _ in unknown]


def score(model_dir, max_length=64, rows=None, min_level="high"):
    import onnxruntime as ort
    from tokenizers import Tokenizer
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    block = cfg.get("txclass", {})
    labels = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    t = block.get("temperature", 1.0)
    cuts = block.get("confidence_levels", UNCALIBRATED)
    floor = block.get("min_confidence", 0.0)
    least = LEVELS.index(served_level(block.get("confidence_levels"), min_level))
    names = block.get("evidence", {})
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(min(max_length, cfg.get("max_position_embeddings", max_length)))
    so = ort.SessionOptions(); so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), so, providers=["CPUExecutionProvider"])
    if rows is None:
        rows = list(csv.DictReader(open(GOLD, newline="")))
    per = {lv: [0, 0] for lv in LEVELS}
    unknown_brand_high = unknown = abstained = answered = answered_ok = 0
    high_up = high_up_ok = 0
    examples = []
    served = []  # (confidence, right) of every label served by the policy
    for r in rows:
        n = normalize(r["descriptor"])
        x = np.array([tok.encode(n).ids], dtype=np.int64)
        lg = sess.run(["logits"], {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)})[0][0]
        z = (lg - lg.max()) / t
        p = np.exp(z) / np.exp(z).sum()
        k = int(p.argmax())
        conf, pred = float(p[k]), labels[k]
        lv = level_of(conf, cuts)
        if lv in ("very_high", "high") and not supports(names, pred, n):
            lv = "medium"  # the brand's name is not in the descriptor (core/src/evidence.rs)
        abstain = conf < floor or LEVELS.index(lv) > least
        truth = r["label"]
        is_other = pred.startswith("Other ")
        if truth == UNKNOWN:
            unknown += 1
            ok = abstain or is_other
            if lv in ("very_high", "high") and not is_other:
                unknown_brand_high += 1
                if len(examples) < 8:
                    examples.append(f"{r['descriptor']} → {pred} {conf:.2f}")
        else:
            ok = (not abstain) and pred == truth
        per[lv][0] += 1
        per[lv][1] += ok
        if lv in ("very_high", "high"):
            high_up += 1
            high_up_ok += ok
        if abstain:
            abstained += 1
        else:
            answered += 1
            answered_ok += (pred == truth) or (truth == UNKNOWN and is_other)
            served.append((conf, (pred == truth) or (truth == UNKNOWN and is_other)))
    from calibrate import reliability
    table, ece = reliability([c for c, _ in served], [ok for _, ok in served])
    return {
        "model": os.path.basename(os.path.normpath(model_dir)), "rows": len(rows), "not_known_brand": unknown,
        "temperature": t, "levels": cuts, "min_confidence": floor,
        "per_level": {lv: {"rows": n, "precision": (k / n if n else None)} for lv, (n, k) in per.items()},
        "precision_high_and_above": high_up_ok / high_up if high_up else None, "rows_high_and_above": high_up,
        "not_known_brand_answered_brand_high": unknown_brand_high / max(unknown, 1),
        "abstained": abstained / len(rows), "answered_precision": answered_ok / answered if answered else None,
        "min_level": LEVELS[least], "answered": answered, "answered_correct": answered_ok, "ece_answered": ece,
        "reliability_answered": [{"low": lo, "high": hi, "rows": n, "mean_confidence": mc, "accuracy": acc}
                                 for lo, hi, n, mc, acc in table if n],
        "examples_not_known_high": examples,
    }


CATEGORIES = os.path.join(ROOT, "tests", "gold", "oxford_categories.csv")


def categories(model_dir, max_length=64, min_level="high", masses=(0.5, 0.7, 0.9)):
    """Category coverage (share of rows with a category answered) and precision (share right of
    the answered rows whose string has a category), weighted by rows_in_file: served = the
    category of each label the policy serves; mass@t = that, else the category whose classes
    hold at least t of the probability (a coarser answer where no label is served)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    block = cfg.get("txclass", {})
    labels = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    l2c = block.get("label2category", {})
    cats = sorted(set(l2c.values()))
    member = np.zeros((len(labels), len(cats)))
    for i, l in enumerate(labels):
        if l in l2c:
            member[i, cats.index(l2c[l])] = 1
    t, cuts = block.get("temperature", 1.0), block.get("confidence_levels", UNCALIBRATED)
    floor, names = block.get("min_confidence", 0.0), block.get("evidence", {})
    least = LEVELS.index(served_level(block.get("confidence_levels"), min_level))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(min(max_length, cfg.get("max_position_embeddings", max_length)))
    so = ort.SessionOptions(); so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), so, providers=["CPUExecutionProvider"])
    rows = list(csv.DictReader(open(CATEGORIES, newline="")))
    answers = {"served": []}
    answers.update({f"mass@{m}": [] for m in masses})
    for r in rows:
        n = normalize(r["descriptor"])
        x = np.array([tok.encode(n).ids], dtype=np.int64)
        lg = sess.run(["logits"], {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)})[0][0]
        z = (lg - lg.max()) / t
        p = np.exp(z) / np.exp(z).sum()
        k = int(p.argmax())
        lv = level_of(float(p[k]), cuts)
        if lv in ("very_high", "high") and not supports(names, labels[k], n):
            lv = "medium"
        served = l2c.get(labels[k]) if float(p[k]) >= floor and LEVELS.index(lv) <= least else None
        answers["served"].append(served)
        mass = p @ member
        j = int(mass.argmax())
        for m in masses:
            answers[f"mass@{m}"].append(served or (cats[j] if mass[j] >= m else None))
    w = [int(r["rows_in_file"]) for r in rows]
    out = []
    for name, a in answers.items():
        answered = sum(wi for ai, wi in zip(a, w) if ai)
        judged = [(ai == r["category"], wi) for ai, r, wi in zip(a, rows, w) if ai and r["category"]]
        right = sum(wi for ok, wi in judged if ok)
        out.append({"model": os.path.basename(os.path.normpath(model_dir)), "answer": name, "rows": sum(w),
                    "coverage": answered / sum(w), "precision": right / max(1, sum(wi for _, wi in judged)),
                    "strings_answered": sum(1 for ai in a if ai), "strings_right": sum(1 for ok, _ in judged if ok)})
    return out


def markdown(results):
    lines = ["| model | rows at high+ | precision at high+ | not-known brands answered a brand at high+ | "
             "very_high | high | medium | low | abstained |", "|---|---|---|---|---|---|---|---|---|"]
    cell = lambda d: f"{d['rows']} ({d['precision']:.2f})" if d["precision"] is not None else f"{d['rows']}"
    for r in results:
        pl = r["per_level"]
        ph = f"{r['precision_high_and_above']:.3f}" if r["precision_high_and_above"] is not None else "—"
        lines.append(f"| {r['model']} | {r['rows_high_and_above']} | {ph} | {r['not_known_brand_answered_brand_high']:.1%} | "
                     f"{cell(pl['very_high'])} | {cell(pl['high'])} | {cell(pl['medium'])} | {cell(pl['low'])} | {r['abstained']:.1%} |")
    lines += ["", "Served by default (`txclass.min_level`, `min_confidence`): labels returned, their precision and "
              "calibration (ECE: row-weighted mean |accuracy - confidence| over 10 equal-width bins):", "",
              "| model | min_level | labels served | right | precision | ECE |", "|---|---|---|---|---|---|"]
    for r in results:
        p = f"{r['answered_precision']:.3f}" if r["answered_precision"] is not None else "—"
        lines.append(f"| {r['model']} | {r['min_level']} | {r['answered']} | {r['answered_correct']} | {p} | {r['ece_answered']:.3f} |")
    for r in results:
        lines += ["", f"Reliability of what {r['model']} serves:", "", "| confidence | rows | mean confidence | right |",
                  "|---|---|---|---|"]
        lines += [f"| {b['low']:.1f}–{b['high']:.1f} | {b['rows']} | {b['mean_confidence']:.3f} | {b['accuracy']:.3f} |"
                  for b in r["reliability_answered"]]
    return "\n".join(lines)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    # --heldout: the model's own synthetic held-out split instead of the Oxford gold set
    level = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--min-level=")), "high")
    if "--categories" in sys.argv:
        cres = [x for a in args for x in categories(a, min_level=level)]
        if "--json" in sys.argv:
            print(json.dumps(cres, indent=1))
        else:
            print("| model | category answered | rows covered | precision (rows) | strings answered | right |")
            print("|---|---|---|---|---|---|")
            for x in cres:
                print(f"| {x['model']} | {x['answer']} | {x['coverage']:.3f} | {x['precision']:.3f} | "
                      f"{x['strings_answered']} | {x['strings_right']} |")
        sys.exit(0)
    res = [score(a, rows=heldout_rows(a) if "--heldout" in sys.argv else None, min_level=level) for a in args]
    if "--json" in sys.argv:
        print(json.dumps(res, indent=1))
    else:
        print(markdown(res))
        for r in res:
            for e in r["examples_not_known_high"]:
                print(f"  {r['model']}: {e}")
