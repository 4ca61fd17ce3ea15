"""Honest confidence for a trained model: temperature scaling, calibration error, reliability
tables and per-level thresholds from held-out precision. Shared by train.py (the bundled model)
and from_labels.py (your labels); the extension applies what this writes into config.json's
`txclass` block (core/src/confidence.rs is the other half):

    "temperature": 1.37,                      softmax(logits / T) is the confidence
    "confidence_levels": {"very_high": 0.93,  lowest confidence whose held-out precision is >= 0.98
                          "high": 0.71,       ... >= 0.90
                          "medium": 0.42},    ... >= 0.70; below it the level is "low"
    "min_confidence": 0.42                    the model's default txclass.min_confidence: below
                                              it the label is NULL (source 'abstain')

Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks") divides the
logits by one scalar T fitted to minimise the negative log-likelihood of held-out labels. It
changes no argmax, so accuracy is untouched; it only makes the softmax mean probability.
"""
import math

import numpy as np

# the precision each level promises on held-out data
LEVEL_TARGETS = (("very_high", 0.98), ("high", 0.90), ("medium", 0.70))
# fewest held-out answers a threshold may rest on; fewer and the level is not offered (1.01)
MIN_SUPPORT = 30
UNREACHABLE = 1.01


def softmax(logits, temperature=1.0):
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits, y, temperature):
    p = softmax(logits, temperature)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(logits, y):
    """The T > 0 minimising held-out NLL: golden-section search on log T in [-3, 3] (the NLL is
    unimodal in T for a fixed set of logits)."""
    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, y, math.exp(a)), nll(logits, y, math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, y, math.exp(b))
    return round(math.exp((lo + hi) / 2), 4)


def reliability(conf, correct, bins=10):
    """Equal-width confidence bins: (low, high, rows, mean confidence, accuracy); and the expected
    calibration error, the row-weighted mean |accuracy - confidence| over the bins."""
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    rows, ece = [], 0.0
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        sel = (conf >= lo) & ((conf < hi) if k < bins - 1 else (conf <= hi))
        n = int(sel.sum())
        if n == 0:
            rows.append((lo, hi, 0, None, None))
            continue
        mc, acc = float(conf[sel].mean()), float(correct[sel].mean())
        ece += n / len(conf) * abs(acc - mc)
        rows.append((lo, hi, n, mc, acc))
    return rows, ece


def thresholds(conf, correct, targets=LEVEL_TARGETS, min_support=MIN_SUPPORT):
    """Per level, the lowest confidence t such that the held-out answers of that level — those
    at or above t and below the next level's threshold — have precision >= the level's target
    (with at least min_support of them). So each band keeps its own promise: `high` answers are
    right 90% of the time, not just the union of `high` and `very_high`. Nested by construction."""
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    out = {}
    ceiling, prev = np.inf, None
    for name, target in targets:
        band = conf < ceiling
        c = conf[band]
        order = np.argsort(-c, kind="stable")
        c = c[order]
        ok = np.cumsum(correct[band][order])
        n = np.arange(1, len(c) + 1)
        prec = ok / np.maximum(n, 1)
        t = UNREACHABLE
        good = np.nonzero((prec >= target) & (n >= min_support))[0]
        if len(good):
            i = good[-1]
            # only cut between different confidences: every row at the cut's confidence is in
            while i + 1 < len(c) and c[i + 1] == c[i]:
                i += 1
            if prec[i] >= target:
                t = float(c[i])
            else:
                above = np.nonzero(c > c[i])[0]
                t = float(c[above[-1]]) if len(above) else UNREACHABLE
        t = round(t, 4) if t < UNREACHABLE else UNREACHABLE
        if prev is not None:
            t = min(t, out[prev])
        out[name] = t
        prev = name
        # the next level's band lies below this threshold (or below the last one reached)
        ceiling = t if t < UNREACHABLE else ceiling
    return out


def level_of(confidence, levels):
    for name, _ in LEVEL_TARGETS:
        if confidence >= levels[name]:
            return name
    return "low"


def served_level(levels, min_level="high"):
    """The lowest level txclass serves as a label (core/src/confidence.rs Policy): `min_level`
    (txclass.min_level, default high), capped at the best level the model reaches; "low" for a
    model without fitted levels (`levels` None), whose levels promise nothing."""
    if not levels:
        return "low"
    order = [n for n, _ in LEVEL_TARGETS] + ["low"]  # very_high, high, medium, low
    best = next((i for i, n in enumerate(order[:3]) if levels[n] <= 1.0), 3)
    return order[max(order.index(min_level), best)]


def served_floor(levels, floor, min_level="high"):
    """The lowest confidence txclass serves as a label by default: the threshold of
    [`served_level`], never below the model's own floor. (An answer held at medium for want of
    the brand's name is also withheld; that depends on the descriptor, not on the confidence.)"""
    level = served_level(levels, min_level)
    return floor if level == "low" else max(levels[level], floor)


def level_table(conf, correct, levels, abstain_below):
    """Per level: rows, share of all rows, precision; and the abstention share."""
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    names = [level_of(x, levels) for x in conf]
    out = []
    for name in [n for n, _ in LEVEL_TARGETS] + ["low"]:
        sel = np.array([x == name for x in names])
        k = int(sel.sum())
        out.append((name, k, k / max(1, len(conf)), float(correct[sel].mean()) if k else None))
    return out, float((conf < abstain_below).mean())


def calibrate(logits, y, extra_conf_correct=None):
    """Fits T on (logits, y); returns the txclass block entries and a report. `extra_conf_correct`:
    (logits, correct) of further held-out answers that have no true label among the classes (the
    open-set unknowns): they count in the precision behind the thresholds, not in the NLL."""
    t = fit_temperature(logits, y)
    p1, pt = softmax(logits, 1.0), softmax(logits, t)
    pred = pt.argmax(axis=1)
    correct = pred == np.asarray(y)
    conf1, conft = p1.max(axis=1), pt.max(axis=1)
    all_conf, all_correct = conft, correct
    if extra_conf_correct is not None:
        xl, xc = extra_conf_correct
        all_conf = np.concatenate([conft, softmax(xl, t).max(axis=1)])
        all_correct = np.concatenate([correct, np.asarray(xc, dtype=bool)])
    rel_before, ece_before = reliability(conf1, correct)
    rel_after, ece_after = reliability(conft, correct)
    levels = thresholds(all_conf, all_correct)
    # abstain below medium; a model that never reaches medium's precision answers everything
    # (every answer is then "low", which says enough)
    floor = levels["medium"] if levels["medium"] < UNREACHABLE else 0.0
    block = {"temperature": t, "confidence_levels": levels, "min_confidence": floor}
    table, abstain = level_table(all_conf, all_correct, levels, served_floor(levels, floor))
    report = {
        "temperature": t, "ece_before": round(ece_before, 4), "ece_after": round(ece_after, 4),
        "nll_before": round(nll(logits, y, 1.0), 4), "nll_after": round(nll(logits, y, t), 4),
        "reliability_before": rel_before, "reliability_after": rel_after,
        "levels": levels, "level_table": table, "abstain_share": round(abstain, 4),
        "rows": int(len(y)), "open_set_rows": 0 if extra_conf_correct is None else int(len(extra_conf_correct[1])),
    }
    return block, report


def card_lines(report, what, fitted_on=None):
    """Markdown for a model card: temperature, ECE before/after, reliability, levels. `what`: the
    rows measured here; `fitted_on`: the rows the temperature and thresholds were fitted on."""
    r = report
    fitted_on = fitted_on or what
    lines = [
        "## Calibration and confidence levels",
        f"Temperature scaling fitted on {fitted_on}: **T = {r['temperature']}**, written to",
        "`config.json` (`txclass.temperature`); txclass reports softmax(logits / T) as the confidence.",
        f"Measured on {what} ({r['rows']} rows): expected calibration error (10 bins)",
        f"**{r['ece_before']:.4f} before, {r['ece_after']:.4f} after**;",
        f"negative log-likelihood {r['nll_before']:.4f} → {r['nll_after']:.4f}.",
        "",
        "| confidence | rows | mean confidence before | accuracy | rows | mean confidence after | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "" if v is None else f"{v:.3f}"
    for (lo, hi, n0, c0, a0), (_, _, n1, c1, a1) in zip(r["reliability_before"], r["reliability_after"]):
        lines.append(f"| {lo:.1f}–{hi:.1f} | {n0} | {fmt(c0)} | {fmt(a0)} | {n1} | {fmt(c1)} | {fmt(a1)} |")
    lv = r["levels"]
    shown = lambda t: "never (not reached)" if t >= UNREACHABLE else f"≥ {t}"
    extra = f", plus {r['open_set_rows']} generated unknown businesses that should abstain" if r["open_set_rows"] else ""
    lines += [
        "",
        f"Levels (`txclass.confidence_levels`), set from held-out precision on {fitted_on}; the rows below are",
        f"{what}{extra}:",
        "",
        "| level | confidence | promise | held-out rows | share | precision |",
        "|---|---|---|---|---|---|",
    ]
    promise = dict(LEVEL_TARGETS)
    for name, k, share, prec in r["level_table"]:
        cut = shown(lv[name]) if name in lv else f"< {lv['medium']}"
        lines.append(f"| {name} | {cut} | {'precision ≥ %.2f' % promise[name] if name in promise else ''} | {k} | {share:.3f} | {fmt(prec)} |")
    lines += [
        "",
    ]
    if lv["medium"] < UNREACHABLE:
        lines += [
            f"`txclass.min_confidence` defaults to the `medium` threshold ({lv['medium']}) and `txclass.min_level` to `high`:",
            f"a label is served from confidence {served_floor(lv, lv['medium'])} on; below it the label is NULL with source `abstain`",
            f"({r['abstain_share']:.1%} of these held-out rows). `SET txclass.min_level = medium` serves the `medium` answers too;",
            "`SET txclass.min_level = low` with `SET txclass.min_confidence = 0` serves every top-1 answer.",
            "",
        ]
    else:
        lines += ["No confidence reaches `medium`'s precision on held-out data: every answer is `low`, and the",
                  "model's `min_confidence` is 0 (it never abstains). Train longer or on more labels.", ""]
    return lines
