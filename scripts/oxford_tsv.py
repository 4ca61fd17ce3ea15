#!/usr/bin/env python3
"""Flattens the Oxford City Council card-spending CSVs (../shared/data/oxford-pcard) into one
TSV for COPY: month_file, txn_date (ISO), descriptor, amount, council_category.
The files name their columns differently (see the data's README); council_category is only in
the Jan-Mar 2017 file. Contains public sector information licensed under the Open Government
Licence v3.0.
"""
import csv
import glob
import os
import sys


def pick(row, *names):
    for n in names:
        if n in row and row[n] is not None:
            return row[n].strip()
    return ""


def iso(d):
    try:
        dd, mm, yy = d.split("/")
        return f"{int(yy):04d}-{int(mm):02d}-{int(dd):02d}"
    except ValueError:
        return ""


def clean(s):
    return s.replace("\t", " ").replace("\n", " ").replace("\r", " ").replace("\\", "\\\\")


def main(data_dir, out):
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        for path in sorted(glob.glob(os.path.join(data_dir, "*.csv"))):
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
                for row in csv.DictReader(fh):
                    desc = pick(row, "MCH.MERCHANT NAME", "Merchant")
                    date = iso(pick(row, "FIN.TRANSACTION DATE", "Date"))
                    amount = pick(row, "FIN.TRANSACTION AMOUNT", "Value").replace(",", "")
                    try:
                        float(amount)
                    except ValueError:
                        amount = ""
                    cat = pick(row, "Transaction description")
                    f.write("\t".join([
                        os.path.basename(path), date or "\\N", clean(desc), amount or "\\N", clean(cat) or "\\N"]) + "\n")
                    n += 1
    print(n)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
