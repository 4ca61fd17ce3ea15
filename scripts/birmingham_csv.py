#!/usr/bin/env python3
"""Birmingham City Council's purchase-card transactions (the monthly .xls files it publishes under
the UK Open Government Licence) as one CSV: date, merchant, expense (TRANS CAC DESC 1, the
council's expense class for the transaction). A second real labeled data set for the trainer:
tens of thousands of rows, about 100 classes, a time split.

    python scripts/birmingham_csv.py <directory of the monthly .xls files> <out.csv[.gz]>

Rows without a merchant or an expense class are left out. Needs xlrd (PyPI). Prints rows, months
and classes.
"""
import csv
import gzip
import os
import sys

import xlrd

WANT = {"TRANS DATE": "date", "MERCHANT NAME": "merchant", "TRANS CAC DESC 1": "expense"}


def rows_of(path):
    book = xlrd.open_workbook(path)
    sheet = book.sheet_by_index(0)
    header = [str(h).strip().upper() for h in sheet.row_values(0)]
    cols = {WANT[h]: i for i, h in enumerate(header) if h in WANT}
    if len(cols) < 3:
        raise SystemExit(f"{path}: no {sorted(set(WANT) - set(header))} column in {header}")
    for r in range(1, sheet.nrows):
        v = sheet.row_values(r)
        d = v[cols["date"]]
        if isinstance(d, float):
            d = xlrd.xldate_as_datetime(d, book.datemode).date().isoformat()
        merchant, expense = str(v[cols["merchant"]]).strip(), str(v[cols["expense"]]).strip()
        if merchant and expense and d:
            yield str(d), merchant, expense


def main():
    src, out = sys.argv[1], sys.argv[2]
    rows = []
    for name in sorted(os.listdir(src)):
        if name.lower().endswith(".xls"):
            rows.extend(rows_of(os.path.join(src, name)))
    rows.sort()
    opener = gzip.open if out.endswith(".gz") else open
    with opener(out, "wt", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["date", "merchant", "expense"])
        w.writerows(rows)
    print(f"{len(rows)} rows, {len({r[0][:7] for r in rows})} months ({rows[0][0]} – {rows[-1][0]}), "
          f"{len({r[2] for r in rows})} expense classes, {len({r[1] for r in rows})} distinct merchant strings")


if __name__ == "__main__":
    main()
