"""Processor and merchant parsing of a card descriptor: the Python twin of core/src/parse.rs
(same rules, same test vectors: tests/parse_vectors.jsonl).

    >>> parse("SQ *BLUE BOTTLE COF 8473 OAKLAND CA")["merchant"]
    'BLUE BOTTLE COF'
"""

INTERMEDIARIES = [
    ("APPLE.COM/BILL", "Apple"), ("APL*ITUNES.COM/BILL", "Apple"), ("APL* ", "Apple"), ("APL*", "Apple"),
    ("AMAZON MARKETPLACE", "Amazon Marketplace"), ("AMAZON MKTPLACE", "Amazon Marketplace"),
    ("AMZN MKTPLACE", "Amazon Marketplace"), ("AMZN MKTP", "Amazon Marketplace"),
    ("AMAZON UK MARKETPLACE", "Amazon Marketplace"), ("AMAZON.CO.UK MKTPLACE", "Amazon Marketplace"),
    ("PAYPAL *", "PayPal"), ("PAYPAL*", "PayPal"), ("PAYPAL ", "PayPal"), ("PP*", "PayPal"),
    ("GOOGLE *", "Google"), ("GOOGLE*", "Google"), ("SQ *", "Square"), ("SQ*", "Square"),
    ("TST* ", "Toast"), ("TST*", "Toast"), ("SP * ", "Shopify"), ("SP *", "Shopify"), ("SP ", "Shopify"),
    ("IZ *", "Zettle"), ("IZ*", "Zettle"), ("ZETTLE_*", "Zettle"), ("SUMUP *", "SumUp"), ("SUMUP*", "SumUp"),
    ("FS *", "FastSpring"), ("FS*", "FastSpring"), ("PADDLE.NET* ", "Paddle"), ("PADDLE.NET*", "Paddle"),
    ("2CO.COM*", "2Checkout"), ("WPY*", "WePay"), ("STRIPE *", "Stripe"), ("CKO*", "Checkout.com"),
]
US_STATES = set("AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
                "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC".split())
COUNTRIES = set("GB GBR UK IE IRL USA US FR DE NL ES IT LU BE AU NZ".split())
CITY_PREFIXES = set("SAN LOS LAS NEW SANTA ST SAINT FORT FT EL PALO SALT BATON BEVERLY LONG PORT".split())


def merchant_key(merchant):
    m = merchant.lower().replace("'", "").replace("/bill", "")
    for suffix in [".co.uk", ".com", ".net", ".org", ".io", ".uk", ".us"]:
        i = m.find(suffix)
        if i >= 0:
            end = i + len(suffix)
            if end == len(m) or not m[end].isalnum():
                m = m[:i] + m[end:]
    return " ".join("".join(c if c.isalnum() else " " for c in m).split())


def _is_phone(t):
    digits = sum(c.isdigit() for c in t)
    return all(c.isdigit() or c in "-()." for c in t) and 10 <= digits <= 11 and ("-" in t or digits >= 10)


def _is_reference(t):
    digits = sum(c.isdigit() for c in t)
    letters = sum(c.isalpha() for c in t)
    return len(t) >= 6 and digits >= 2 and letters >= 1 and all(c.isalnum() for c in t)


def _store_number(t):
    s = t[1:] if t.startswith("#") else t
    if s and len(s) <= 6 and s.isascii() and s.isdigit() and (t.startswith("#") or len(s) >= 2):
        return s
    return None


def parse(descriptor):
    text = " ".join(descriptor[:512].upper().split())
    out = {"intermediary": None, "merchant": "", "store": None, "city": None, "region": None}
    rest = text
    for prefix, name in INTERMEDIARIES:
        if rest.startswith(prefix):
            out["intermediary"] = name
            rest = rest[len(prefix):].lstrip(" *")
            break
    tokens = []
    for t in rest.split(" "):
        t = t.strip("*,;")
        if not t:
            continue
        if "*" in t:
            t = t.split("*")[0]
        long_number = len(t) >= 7 and t.isascii() and t.isdigit()
        domain = bool(tokens) and any(t.endswith(d) for d in (".COM", ".NET", ".CO.UK", ".ORG"))
        if not t or _is_phone(t) or _is_reference(t) or long_number or domain:
            continue
        if "-" in t:
            name, code = t.split("-", 1)
            if name and name.isalpha() and code and code.isascii() and code.isdigit():
                tokens.append(name)
                if out["store"] is None:
                    out["store"] = code
                continue
        tokens.append(t)
    if len(tokens) >= 2 or (len(tokens) == 1 and out["intermediary"]):
        last = tokens[-1]
        if last in US_STATES or last in COUNTRIES:
            out["region"] = last
            tokens.pop()
            n = len(tokens)
            if n >= 2 and tokens[-1].isalpha():
                take = 2 if n >= 3 and tokens[-2] in CITY_PREFIXES else 1
                out["city"] = " ".join(tokens[n - take:])
                tokens = tokens[:n - take]
    i = 1
    while i < len(tokens):
        num = _store_number(tokens[i])
        marker = tokens[i - 1] in ("STORE", "STR", "NO", "NO.", "UNIT")
        if num is not None:
            if out["store"] is None:
                out["store"] = num
            del tokens[i]
            if marker and i >= 2:
                del tokens[i - 1]
                i -= 1
            continue
        i += 1
    merchant = " ".join(tokens).strip("-*. ")
    out["merchant"] = merchant or (out["intermediary"] or "").upper()
    out["key"] = merchant_key(out["merchant"])
    return out


if __name__ == "__main__":
    import json
    import os
    import sys
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "parse_vectors.jsonl")
    bad = 0
    for line in open(path, encoding="utf-8"):
        if line.strip():
            v = json.loads(line)
            got = parse(v["raw"])
            want = {k: v[k] for k in ("intermediary", "merchant", "store", "city", "region", "key")}
            if got != want:
                bad += 1
                print(f"{v['raw']!r}: {got} != {want}")
    print(f"parse twin: {bad} of the vectors differ")
    sys.exit(1 if bad else 0)
