#!/usr/bin/env python3
"""One-command drift report: label shares and drift scores over time for a monitored table, as
one self-contained HTML file (inline SVG, no JavaScript, no network).

    build/venv/bin/python scripts/drift_report.py "<libpq conninfo>" <table> [unit] [out.html]

unit: hour, day, week, month, quarter or year (default: the table's drift_unit). Reads only
txclass.drift() and txclass.drift_counts (run txclass.refresh_drift(table) first).
"""
import html
import json
import sys

import psycopg

COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
STATUS = {"ok": "#59a14f", "warn": "#edc948", "alert": "#e15759", "n/a": "#bab0ac", "n/a (low volume)": "#bab0ac"}


def stacked(buckets, shares, labels, w=900, h=260):
    pad, bw = 40, (w - 60) / max(len(buckets), 1)
    out = [f'<svg width="{w}" height="{h + 40}" xmlns="http://www.w3.org/2000/svg">']
    for i, b in enumerate(buckets):
        y = h
        for j, lab in enumerate(labels):
            s = shares[b].get(lab, 0.0)
            hh = s * (h - 10)
            y -= hh
            out.append(f'<rect x="{pad + i * bw:.1f}" y="{y:.1f}" width="{bw * 0.85:.1f}" height="{hh:.1f}" '
                       f'fill="{COLORS[j % len(COLORS)]}"><title>{html.escape(lab)}: {s:.1%}</title></rect>')
        out.append(f'<text x="{pad + i * bw:.1f}" y="{h + 14}" font-size="10">{html.escape(b[:10])}</text>')
    out.append("</svg>")
    legend = " ".join(f'<span style="color:{COLORS[j % len(COLORS)]}">■</span> {html.escape(l)}' for j, l in enumerate(labels))
    return "\n".join(out) + f"<p>{legend}</p>"


def lines(buckets, series, thresholds, w=900, h=220):
    pad = 40
    top = max([v for s in series.values() for v in s if v is not None] + list(thresholds.values()) + [0.05]) * 1.1
    x = lambda i: pad + i * (w - 60) / max(len(buckets) - 1, 1)  # noqa: E731
    y = lambda v: h - v / top * (h - 10)  # noqa: E731
    out = [f'<svg width="{w}" height="{h + 30}" xmlns="http://www.w3.org/2000/svg">']
    for name, t in thresholds.items():
        out.append(f'<line x1="{pad}" x2="{w - 20}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#999" stroke-dasharray="4"/>'
                   f'<text x="{w - 18}" y="{y(t):.1f}" font-size="9">{name} {t}</text>')
    for j, (name, vals) in enumerate(series.items()):
        pts = [(x(i), y(v)) for i, v in enumerate(vals) if v is not None]
        if pts:
            out.append(f'<polyline fill="none" stroke="{COLORS[j]}" stroke-width="2" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')
    for i, b in enumerate(buckets):
        out.append(f'<text x="{x(i) - 12:.1f}" y="{h + 14}" font-size="10">{html.escape(b[:10])}</text>')
    out.append("</svg>")
    legend = " ".join(f'<span style="color:{COLORS[j]}">━</span> {html.escape(n)}' for j, n in enumerate(series))
    return "\n".join(out) + f"<p>{legend}</p>"


def main():
    conninfo, table = sys.argv[1], sys.argv[2]
    unit = sys.argv[3] if len(sys.argv) > 3 else None
    out = sys.argv[4] if len(sys.argv) > 4 else "drift-report.html"
    with psycopg.connect(conninfo) as c:
        m = c.execute("SELECT drift_unit, thresholds FROM txclass.monitored WHERE relid = %s::regclass", (table,)).fetchone()
        if not m:
            sys.exit(f"{table} is not monitored (txclass.attach)")
        unit = unit or m[0]
        th = m[1]
        rows = c.execute("SELECT bucket::text, rows, label_psi, label_js, confidence_psi, new_descriptor_share, confidence_mean, "
                         "status, top_movers, label_p, category_psi, category_p, baseline_new_descriptor_share "
                         "FROM txclass.drift(%s::regclass, %s) ORDER BY bucket", (table, unit)).fetchall()
        th = c.execute("SELECT txclass._drift_defaults() || %s::jsonb", (json.dumps(th),)).fetchone()[0]
        counts = c.execute("SELECT date_trunc(%s, bucket)::text, label, sum(rows) FROM txclass.drift_counts "
                           "WHERE relid = %s::regclass AND label <> '(none)' GROUP BY 1, 2", (unit, table)).fetchall()
        base = c.execute("SELECT kind, source FROM txclass.drift_baseline WHERE relid = %s::regclass", (table,)).fetchone()
    buckets = [r[0] for r in rows]
    counts = [(b, lab, float(n)) for b, lab, n in counts]
    totals, shares, overall = {}, {b: {} for b in buckets}, {}
    for b, lab, n in counts:
        totals[b] = totals.get(b, 0) + n
        overall[lab] = overall.get(lab, 0) + n
    for b, lab, n in counts:
        if b in shares:
            shares[b][lab] = n / totals[b]
    top = [l for l, _ in sorted(overall.items(), key=lambda kv: -kv[1])[:9]]
    for b in buckets:
        shares[b]["other"] = 1 - sum(shares[b].get(l, 0) for l in top)
    series = {"label PSI": [r[2] for r in rows], "label JS distance": [r[3] for r in rows],
              "confidence PSI": [r[4] for r in rows], "never-seen share": [r[5] for r in rows],
              "category PSI": [r[10] for r in rows]}
    p = lambda v: "" if v is None else (f"{v:.4f}" if v >= 0.0001 else f"{v:.0e}")  # noqa: E731
    table_rows = "".join(
        f"<tr><td>{html.escape(r[0])}</td><td>{r[1]}</td>" + "".join(
            f"<td>{'' if v is None else f'{v:.3f}'}</td>" for v in (r[2], r[3], r[4], r[5], r[6]))
        + f"<td>{p(r[9])}</td><td>{'' if r[10] is None else f'{r[10]:.3f}'}</td><td>{p(r[11])}</td>"
        + f'<td style="background:{STATUS.get(r[7], "#fff")}">{r[7]}</td><td>'
        + html.escape(", ".join(f"{m['label']} {m['baseline_share']:.1%}→{m['share']:.1%}" for m in (r[8] or [])[:3])) + "</td></tr>"
        for r in rows)
    doc = f"""<!doctype html><meta charset="utf-8"><title>txclass drift: {html.escape(table)}</title>
<body style="font-family:sans-serif;max-width:960px;margin:auto">
<h1>Drift report: {html.escape(table)}</h1>
<p>Per {unit}; baseline: {html.escape(base[0])} ({html.escape(base[1])}). Thresholds: {html.escape(json.dumps(th))}.</p>
<h2>Predicted-label shares</h2>{stacked(buckets, shares, top + ["other"])}
<h2>Drift scores</h2>{lines(buckets, series, {"PSI warn": th["psi_warn"], "PSI alert": th["psi_alert"]})}
<h2>Per {unit}</h2><table border="1" cellspacing="0" cellpadding="3" style="font-size:12px">
<tr><th>bucket</th><th>rows</th><th>label PSI</th><th>label JS</th><th>confidence PSI</th><th>never seen</th>
<th>mean confidence</th><th>label p</th><th>category PSI</th><th>category p</th><th>status</th><th>top movers (baseline→bucket)</th></tr>{table_rows}</table>
<p>A status is warn or alert only when the effect (PSI, JS, rise of the never-seen share) reaches the table's threshold
<em>and</em> the p-value (the probability of a difference that large from sampling alone, given the bucket's and the
baseline's rows) is below p_warn / p_alert; buckets under min_rows rows are n/a (low volume).</p></body>"""
    open(out, "w").write(doc)
    print(out)


if __name__ == "__main__":
    main()
