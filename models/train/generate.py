"""Synthetic card-descriptor generator for the bundled txclass model.

Builds descriptors the way card networks print them: optional processor prefix, a merchant
stem, store numbers, location (US city + state, UK town), phone numbers, dates, reference
codes, case and spacing noise, and truncation of the merchant-name field at 22 characters.

The held-out split is built from cities, towns, store numbers and generic shop names that the
training split never uses, so the test accuracy measures generalisation to unseen places and
stores rather than memorisation.
"""
import random
import string

from merchants import (CATEGORIES, GENERIC_CATEGORIES, NAME_WORDS, PROCESSOR_PREFIXES,
                       UK_PLACES, US_PLACES)


def labels_and_categories():
    out = []
    for cat, brands in CATEGORIES.items():
        for label, _ in brands:
            out.append((label, cat))
    for label, (cat, _) in GENERIC_CATEGORIES.items():
        out.append((label, cat))
    return out


def _split(seq, held_out_every):
    train = [x for i, x in enumerate(seq) if i % held_out_every != 0]
    test = [x for i, x in enumerate(seq) if i % held_out_every == 0]
    return train, test


class Generator:
    def __init__(self, split: str, seed: int):
        assert split in ("train", "test")
        self.rng = random.Random(seed)
        self.split = split
        us_tr, us_te = _split(US_PLACES, 5)
        uk_tr, uk_te = _split(UK_PLACES, 5)
        nw_tr, nw_te = _split(NAME_WORDS, 5)
        self.us = us_tr if split == "train" else us_te
        self.uk = uk_tr if split == "train" else uk_te
        self.names = nw_tr if split == "train" else nw_te
        self.stems = {}
        for cat, brands in CATEGORIES.items():
            for label, stems in brands:
                self.stems[label] = stems
        self.generic = GENERIC_CATEGORIES
        self.labels = [l for l, _ in labels_and_categories()]

    # store numbers: training uses n % 7 != 3, the test split only n % 7 == 3
    def store_number(self):
        r = self.rng
        while True:
            n = r.choice([r.randint(1, 99), r.randint(100, 9999), r.randint(10000, 99999)])
            if (n % 7 == 3) == (self.split == "test"):
                break
        fmt = r.choice(["#{n}", "{n}", "{n:04d}", "#{n:05d}", "T-{n}", "STORE {n}", "NO.{n}", "{n}"])
        return fmt.format(n=n)

    def location(self):
        r = self.rng
        kind = r.random()
        if kind < 0.55:
            city, st = r.choice(self.us)
            return r.choice([f"{city} {st}", f"{city}  {st}", f"{city} {st} US", f"{city[:13]} {st}", f"{city},{st}"])
        if kind < 0.85:
            town = r.choice(self.uk)
            return r.choice([town, f"{town} GB", f"{town} GBR", f"{town[:10]}", f"{town} UK"])
        if kind < 0.95:
            return self.phone()
        return r.choice(["WA", "CA", "NY", "GB", "LU", "IE", "NL", "DUBLIN", "LUXEMBOURG"])

    def phone(self):
        r = self.rng
        return r.choice([
            f"{r.choice(['800', '888', '877', '866', '855'])}-{r.randint(200, 999)}-{r.randint(0, 9999):04d}",
            f"{r.randint(200, 999)}-{r.randint(200, 999)}-{r.randint(0, 9999):04d}",
            f"0{r.randint(1000, 9999)} {r.randint(100000, 999999)}",
            f"{r.randint(200, 999)}{r.randint(1000000, 9999999)}",
        ])

    def ref_code(self):
        r = self.rng
        n = r.randint(5, 12)
        alphabet = string.ascii_uppercase + string.digits
        while True:
            code = "".join(r.choice(alphabet) for _ in range(n))
            if sum(c.isdigit() for c in code) >= 2:
                return code

    def date(self):
        r = self.rng
        m, d = r.randint(1, 12), r.randint(1, 28)
        return r.choice([f"{m:02d}/{d:02d}", f"{d:02d}/{m:02d}/{r.randint(17, 26)}", f"{m:02d}{d:02d}"])

    def generic_name(self, label):
        r = self.rng
        cat, suffixes = self.generic[label]
        first = r.choice(self.names)
        style = r.random()
        if style < 0.3:
            name = f"{first}'S {r.choice(suffixes)}" if r.random() < 0.5 else f"{first}S {r.choice(suffixes)}"
        elif style < 0.6:
            name = f"{first} {r.choice(suffixes)}"
        elif style < 0.8:
            name = f"{first} {r.choice(self.names)} {r.choice(suffixes)}"
        elif style < 0.9:
            # company-register style: "SMITH & LOW LTD"
            name = f"{first} & {r.choice(self.names)}"
        else:
            # the business's web address: "WWW.GREENWAYPLUMBING.CO.UK"
            body = (first + r.choice(suffixes)).replace(" ", "").replace("&", "AND").replace("'", "")
            return r.choice(["WWW.", ""]) + body + r.choice([".CO.UK", ".COM", ".ORG.UK", ".NET"])
        if r.random() < 0.35:
            name += r.choice([" LTD", " LIMITED", " PLC", " INC", " LLC", " CO", " & SONS", " AND CO"])
        return name

    def noise_case(self, s):
        r = self.rng
        x = r.random()
        if x < 0.12:
            return s.lower()
        if x < 0.2:
            return s.title()
        return s

    def typo(self, s):
        r = self.rng
        if len(s) < 6 or r.random() > 0.04:
            return s
        i = r.randint(1, len(s) - 2)
        return s[:i] + s[i + 1:]

    def descriptor(self, label):
        r = self.rng
        if label in self.generic:
            stem = self.generic_name(label)
        else:
            stem = r.choice(self.stems[label])
        stem = self.typo(stem)
        name = stem
        if r.random() < 0.3:
            pre = r.choice(PROCESSOR_PREFIXES)
            name = pre + name
        if r.random() < 0.5:
            sep = r.choice([" ", " ", "  ", " #", "*"])
            name = name.rstrip() + (sep if not sep.endswith("#") else " ") + self.store_number()
        if r.random() < 0.15:
            name = name + " " + self.ref_code()
        if r.random() < 0.55:
            name = name[:22]  # the card network's merchant-name field
        parts = [name]
        if r.random() < 0.65:
            parts.append(self.location())
        if r.random() < 0.1:
            parts.insert(0 if r.random() < 0.5 else len(parts), self.date())
        s = r.choice([" ", " ", "  "]).join(parts)
        return self.noise_case(s)

    def sample(self):
        label = self.rng.choice(self.labels)
        return self.descriptor(label), label


def make(split, n, seed):
    g = Generator(split, seed)
    return [g.sample() for _ in range(n)]


if __name__ == "__main__":
    for d, l in make("train", 40, 1):
        print(f"{l:24s} | {d}")
    print("---- test")
    for d, l in make("test", 15, 2):
        print(f"{l:24s} | {d}")
