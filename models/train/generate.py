"""Synthetic card-descriptor generator for the bundled txclass model.

Builds descriptors the way card networks print them: optional processor prefix, a merchant
stem, store numbers, location (US city + state, UK town), phone numbers, dates, reference
codes, case and spacing noise, and truncation of the merchant-name field at 22 characters.

The held-out split is built from cities, towns, store numbers and generic shop names that the
training split never uses, so the test accuracy measures generalisation to unseen places and
stores rather than memorisation.
"""
import collections
import random
import string

from merchants import (CATEGORIES, CHARITY, COMPANY_SUFFIXES, EDUCATION, GENERIC_CATEGORIES, NAME_SYLLABLES,
                       NAME_WORDS, PLAIN_WORDS, PROCESSOR_PREFIXES, PUBLIC_BODIES, SAINTS, SURNAMES, UK_PLACES,
                       US_PLACES)

# the label of a generated business that is none of the classes (open set): no class is right
UNKNOWN = None
# ordinary words that brands share with local firms ("OXFORD GARDEN CENTRE" is not Olive Garden)
NEAR_MISS_WORDS = ["GARDEN", "HOUSE", "WORLD", "TRAVEL", "TRADE", "RECYCLING", "TOOLS", "OFFICE", "CENTRE", "NEWS",
                   "MEDIA", "HOME", "STATION", "TRAINS", "RAILWAY", "BOOKS", "CARS", "TAXIS", "HIRE"]


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


# invented places (training split only): consonant-vowel syllables, place-name endings, and
# the starts of brand names (JACKSON starts like Jack in the Box, PHILADELPHIA like Philz)
ONSETS = ["B", "C", "D", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "T", "V", "W", "Z",
          "BR", "CH", "CL", "DR", "GR", "KL", "PL", "SH", "ST", "TR", "TH", "WH"]
VOWELS = ["A", "E", "I", "O", "U", "EA", "OU", "AI", "Y"]
CODAS = ["", "", "", "N", "R", "L", "S", "T", "M", "CK", "ND", "RN"]
PLACE_ENDINGS = ["VILLE", "TON", "BURG", "FORD", "FIELD", "PORT", "WOOD", "LAND", "DALE", "SON", "HAM",
                 "CHESTER", "MOUTH", "BY", "BURY", "STEAD", "SPRINGS", "CITY", "FALLS", "HEIGHTS", "BEACH",
                 "PARK", "VIEW", "CREEK", "ISH", "ANO", "IA", "OLIS"]
PLACE_HEADS = ["NEW", "EAST", "WEST", "NORTH", "SOUTH", "SAINT", "ST", "FORT", "LAKE", "MOUNT", "PORT",
               "GREAT", "LITTLE", "UPPER", "LOWER", "SAN", "LOS", "EL"]


class Generator:
    def __init__(self, split: str, seed: int, open_set: bool = False, invented_places: float = 0.0):
        assert split in ("train", "test")
        self.rng = random.Random(seed)
        self.split = split
        self.open_set = open_set
        # share of training locations that are invented places (never in the test split: its
        # random stream, and so the held-out rows, are the same whatever the share)
        self.invented_places = invented_places if split == "train" else 0.0
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
        pick = lambda seq: _split(seq, 4)[0 if split == "train" else 1]
        self.surnames, self.syllables, self.plain = pick(SURNAMES), pick(NAME_SYLLABLES), pick(PLAIN_WORDS)
        self._stems = None

    # store numbers: training uses n % 7 != 3, the test split only n % 7 == 3
    def store_number(self):
        r = self.rng
        while True:
            n = r.choice([r.randint(1, 99), r.randint(100, 9999), r.randint(10000, 99999)])
            if (n % 7 == 3) == (self.split == "test"):
                break
        fmt = r.choice(["#{n}", "{n}", "{n:04d}", "#{n:05d}", "T-{n}", "STORE {n}", "NO.{n}", "{n}"])
        return fmt.format(n=n)

    def invented_place(self):
        """A place name no list holds: the model must read any word after the merchant as a
        place, not only the places it was trained on."""
        r = self.rng
        if r.random() < 0.35:
            w = r.choice(self.brand_words()[1])
            core = w[: r.randint(3, max(3, min(6, len(w) - 1)))]
        else:
            core = "".join(r.choice(ONSETS) + r.choice(VOWELS) + r.choice(CODAS) for _ in range(r.choice([1, 2, 2, 3])))
        word = core + (r.choice(PLACE_ENDINGS) if r.random() < 0.6 else "")
        if r.random() < 0.25:
            word = r.choice(PLACE_HEADS) + " " + word
        return word

    def location(self):
        r = self.rng
        if self.invented_places and r.random() < self.invented_places:
            place = self.invented_place()
            if r.random() < 0.6:
                st = r.choice(self.us)[1]
                return r.choice([f"{place} {st}", f"{place}  {st}", f"{place} {st} US", f"{place[:13]} {st}", f"{place},{st}"])
            return r.choice([place, f"{place} GB", f"{place} GBR", f"{place[:10]}", f"{place} UK"])
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
            # company-register style: "SMITH & LOW LTD" (in the open set, with its trade: a bare
            # "SMITH & LOW" names no family, so it belongs to the unknowns)
            name = f"{first} & {r.choice(self.names)}"
            if self.open_set:
                name += " " + r.choice(suffixes)
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

    # ---- open set -------------------------------------------------------------------------
    def brand_stems(self):
        if self._stems is None:
            from normalize import normalize
            self._stems = [normalize(s) for stems in self.stems.values() for s in stems]
            self._stems = [s for s in self._stems if len(s) >= 4]
        return self._stems

    def invented(self):
        r = self.rng
        return "".join(r.choice(self.syllables) for _ in range(r.choice([2, 2, 3])))

    def unknown_name(self):
        """A business that is none of the brands and names no long-tail family: a firm called
        after people, places, plain words or invented words; a public body; a school; a charity."""
        r = self.rng
        place = r.choice(self.uk)
        kind = r.random()
        if kind < 0.22:
            name = f"{r.choice(self.surnames)} {r.choice(COMPANY_SUFFIXES)}"
        elif kind < 0.34:
            name = f"{r.choice(self.surnames)} & {r.choice(self.surnames)}"
            if r.random() < 0.5:
                name += " " + r.choice(COMPANY_SUFFIXES)
        elif kind < 0.50:
            name = self.invented() + (" " + r.choice(COMPANY_SUFFIXES) if r.random() < 0.6 else "")
        elif kind < 0.62:
            words = " ".join(r.choice(self.plain) for _ in range(r.choice([1, 2, 2, 3])))
            name = words + (" " + r.choice(COMPANY_SUFFIXES) if r.random() < 0.6 else "")
        elif kind < 0.72:
            letters = "".join(r.choice(string.ascii_uppercase) for _ in range(r.choice([2, 3, 3, 4])))
            name = f"{letters} {r.choice(COMPANY_SUFFIXES)}"
        elif kind < 0.82:
            body = r.choice(PUBLIC_BODIES)
            name = r.choice([f"{place} {body}", f"{body} OF {place}", f"{place}SHIRE {body}"])
        elif kind < 0.91:
            school = r.choice(EDUCATION)
            name = r.choice([f"{place} {school}", f"{r.choice(SAINTS)} {school}", f"{school} OF {place}",
                             f"{r.choice(self.surnames)} {school}"])
        else:
            org = r.choice(CHARITY)
            name = r.choice([f"{place} {org}", f"{r.choice(self.plain)} {org}", f"{r.choice(SAINTS)} {org}",
                             f"{r.choice(self.surnames)} {org}", f"{place} {r.choice(self.plain)} {org}"])
        return name

    def brand_words(self):
        """(words of multi-word brand stems, first words of all stems), for near misses."""
        if getattr(self, "_words", None) is None:
            multi, first, own = collections.Counter(), set(), set()
            for label, stems in self.stems.items():
                # a word that names the brand by itself (its label's first word, a one-word stem:
                # ETSY, TESCO) is the brand wherever it appears: never a near miss
                own.add(label.split()[0].upper().replace("'", ""))
                for st in stems:
                    parts = st.replace("*", " ").replace(".", " ").split()
                    if len(parts) == 1:
                        own.add(parts[0])
                    ws = [w for w in parts if w.isalpha() and len(w) >= 4]
                    if len(parts) > 1:
                        multi.update({(w, label) for w in ws})
                    if ws:
                        first.add(ws[0])
            # generic words: in the stems of two brands or more (CENTRE, DIRECT, EXPRESS), or
            # ordinary words a brand shares with local firms
            brands_of = collections.Counter(w for w, _ in multi)
            generic = {w for w, k in brands_of.items() if k >= 2} | set(NEAR_MISS_WORDS)
            # never a long-tail family's trade word: "... SERVICES", "... HOTEL", "... PARKING"
            # name an Other class, not an unknown
            trade = {w for _, suffixes in self.generic.values() for sfx in suffixes for w in sfx.split()}
            trade |= {w + "S" for w in trade} | {w[:-1] for w in trade if w.endswith("S")}
            self._words = (sorted(generic - own - trade - {"AMZN", "EDISON"}), sorted(first))
        return self._words

    def near_miss_name(self):
        """A business that shares a word or a word's start with a brand but is not it: "OXFORD
        GARDEN CENTRE" is not Olive Garden, "TOOLMASTER" is not Toolstation, "BOOKER LIMITED" is not
        Booking.com. Without these the model answers a brand for any string that shares a piece of it."""
        r = self.rng
        multi, first = self.brand_words()
        kind = r.random()
        if kind < 0.5 and multi:
            w = r.choice(multi)
            other = r.choice([r.choice(self.surnames), r.choice(self.plain), r.choice(self.uk), self.invented()])
            name = r.choice([f"{other} {w}", f"{w} {other}", f"{self.rng.choice(self.uk)} {w} {r.choice(self.plain)}"])
        else:
            w = r.choice(first)
            cut = w[: r.randint(3, max(3, min(5, len(w) - 1)))]
            name = cut + r.choice(self.syllables + ["MASTER", "ER", "ERS", "WISE", "LINE", "WORLD", "TECH", "PRO"])
        if r.random() < 0.5:
            name += " " + r.choice(COMPANY_SUFFIXES)
        return name

    def unknown_descriptor(self):
        from normalize import normalize
        while True:
            stem = self.near_miss_name() if self.rng.random() < 0.4 else self.unknown_name()
            n = " " + normalize(stem) + " "
            if not any(f" {s} " in n for s in self.brand_stems()):
                break
        return self.dress(self.typo(stem))

    def dress(self, name):
        """The card network's framing around a merchant name (see descriptor())."""
        r = self.rng
        if r.random() < 0.2:
            name = r.choice(PROCESSOR_PREFIXES) + name
        if r.random() < 0.15:
            name = name.rstrip() + " " + self.ref_code()
        if r.random() < 0.55:
            name = name[:22]
        parts = [name]
        if r.random() < 0.5:
            parts.append(self.location())
        return self.noise_case(" ".join(parts))


def make(split, n, seed, unknown_share=0.0, invented_places=0.0):
    """n (descriptor, label) pairs; with unknown_share > 0 (the open set) that share of them are
    businesses that are none of the classes, with label UNKNOWN (None); invented_places: the
    share of training locations that are invented place names."""
    g = Generator(split, seed, open_set=unknown_share > 0, invented_places=invented_places)
    out = []
    for _ in range(n):
        if unknown_share > 0 and g.rng.random() < unknown_share:
            out.append((g.unknown_descriptor(), UNKNOWN))
        else:
            out.append(g.sample())
    return out


def heldout(test_size, seed, unknown_share=0.0):
    """The trainer's held-out test split (train.py --seed + 1): test_size rows of known brands,
    and the unknown businesses drawn with them (test_size × unknown_share more rows drawn)."""
    rows = make("test", test_size + int(test_size * unknown_share), seed + 1, unknown_share)
    return [x for x in rows if x[1] is not None][:test_size], [x for x in rows if x[1] is None]


if __name__ == "__main__":
    for d, l in make("train", 40, 1, unknown_share=0.3, invented_places=0.4):
        print(f"{l or '(unknown)':24s} | {d}")
    print("---- test")
    for d, l in make("test", 15, 2):
        print(f"{l or '(unknown)':24s} | {d}")
