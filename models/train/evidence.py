"""Name evidence for a model's brands (the twin of core/src/evidence.rs): the names each brand is
printed as — the generator's descriptor stems (merchants.py), normalized (normalize.py), then
letters, digits and `#` (the normalizer's mark for a run of digits: O2 is `o#`) only — written into config.json as `txclass.evidence`. txclass holds a brand
answer whose descriptor carries none of its brand's names at `medium` at most (a shared word is
not the brand: `SMITH & LOW LTD` is not WHSmith). The long-tail *Other ...* classes get none.

    build/trainvenv/bin/python models/train/evidence.py MODEL_DIR     (adds it to MODEL_DIR/config.json)

train.py writes it for every model it trains.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from merchants import CATEGORIES  # noqa: E402
from normalize import normalize  # noqa: E402

MIN_PREFIX = 5  # core/src/evidence.rs


def squash(text):
    return "".join(c for c in text.lower() if c.isascii() and (c.isalnum() or c == "#"))


def names_for(labels):
    """{label: sorted names} for the labels the generator has stems for (not the Other ... classes)."""
    stems = {}
    for brands in CATEGORIES.values():
        for label, ss in brands:
            stems.setdefault(label, []).extend(ss)
    out = {}
    for label in labels:
        if label.startswith("Other ") or label not in stems:
            continue
        # the stems as printed, and the brand's own name (`TESCO` alone is Tesco too)
        names = sorted(({squash(normalize(s)) for s in stems[label]} | {squash(normalize(label))}) - {""})
        if names:
            out[label] = names
    return out


def supports(names, label, text):
    """Whether the normalized descriptor `text` carries a name of `label` (True without names)."""
    ns = names.get(label)
    if not ns:
        return True
    whole = squash(text)
    words = {squash(w) for w in text.split()}
    for n in ns:
        if len(n) <= 3:
            if n in words:
                return True
            continue
        if n in whole or any(whole.endswith(n[:m]) for m in range(MIN_PREFIX, len(n))):
            return True
    return False


def write(model_dir):
    path = os.path.join(model_dir, "config.json")
    cfg = json.load(open(path))
    labels = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    cfg.setdefault("txclass", {})["evidence"] = names_for(labels)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return len(cfg["txclass"]["evidence"])


if __name__ == "__main__":
    for d in sys.argv[1:]:
        print(f"{d}: names for {write(d)} labels")
