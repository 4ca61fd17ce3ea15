"""txclass descriptor normalization, version 1 -- the Python twin of core/src/normalize.rs.

Training and serving must normalize identically (the cache is keyed by the normalized text and
the model only ever sees normalized text). Both implementations are checked against the same
test vectors: tests/normalize_vectors.tsv.

Rules (applied in order; only the first 16384 characters of the input are read):
1. Every character is lower-cased on its own (per-character Unicode lower case).
2. Letters, digits and '#' are kept. '.' is kept only between two of those ("amazon.co.uk");
   "'" is dropped ("mcdonald's" -> "mcdonalds"); '*' and '&' become tokens of their own
   ("sq*blue" -> "sq * blue"); every other character (spaces, punctuation, control characters,
   symbols, emoji) separates tokens.
3. In each token every run of ASCII digits and '#' becomes one '#'; a token left with two or
   more '#' (a reference code such as "z9uj3aep92") becomes '#'. (So normalizing is idempotent.)
4. Consecutive '#' tokens collapse into one.
5. Tokens are joined with single spaces; the result is cut to 256 characters and trailing
   spaces removed. Empty input (or input with nothing but separators) gives "".
"""

MAX_CHARS = 256
MAX_INPUT_CHARS = MAX_CHARS * 64
VERSION = 1


def _is_word(c: str) -> bool:
    return c.isalnum()


def _kept(c: str) -> bool:
    return c.isalnum() or c == "#"


def normalize(text: str) -> str:
    # per-character lower case (a character may expand into several, e.g. U+0130)
    flat = "".join(c.lower() for c in text[:MAX_INPUT_CHARS])
    out = []
    n = len(flat)
    for i, c in enumerate(flat):
        if _is_word(c) or c == "#":
            out.append(c)
        elif c == ".":
            if 0 < i < n - 1 and _kept(flat[i - 1]) and _kept(flat[i + 1]):
                out.append(c)
            else:
                out.append(" ")
        elif c == "'":
            continue
        elif c in "*&":
            out.append(" ")
            out.append(c)
            out.append(" ")
        else:
            out.append(" ")
    tokens = []
    for tok in "".join(out).split():
        t = []
        groups = 0
        in_digits = False
        for c in tok:
            if "0" <= c <= "9" or c == "#":
                if not in_digits:
                    t.append("#")
                    groups += 1
                    in_digits = True
            else:
                t.append(c)
                in_digits = False
        tok = "#" if groups >= 2 else "".join(t)
        if tok == "#" and tokens and tokens[-1] == "#":
            continue
        tokens.append(tok)
    result = " ".join(tokens)[:MAX_CHARS]
    # the cut may end the text in a "." that was kept only because a letter followed it
    return result.rstrip(" .")


def rewrite_vectors(path):
    """Recomputes the "normalized" field of every vector in a JSON-lines file."""
    import json
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"raw": r["raw"], "normalized": normalize(r["raw"])}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--write-vectors":
        rewrite_vectors(sys.argv[2])
    else:
        for line in sys.stdin:
            print(normalize(line.rstrip("\n")))
