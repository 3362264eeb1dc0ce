"""The HTML report: one self-contained file (inline CSS, PNGs as data URIs, no JavaScript).

Why self-contained: the report is mailed, attached to tickets and opened from artefact stores
that serve a single file; nothing may be fetched from elsewhere.  It must read on a phone
(fluid layout, tables scroll sideways inside their own box) and for screen readers (``lang``, table
captions and ``scope`` on headers, alt text on every chart, "best" spelt out, not only coloured).
"""

from __future__ import annotations

import base64
import struct
from html import escape
from typing import Any

import polars as pl

from recsys.reporting import _format as fmt
from recsys.reporting._content import BASELINE_LABEL, TOP_TARGETS, Column, ReportContent
from recsys.reporting._figures import Image

__all__ = ["render_html"]

_CSS = """
:root{--fg:#1b1b1b;--muted:#4a4a4a;--line:#c9ced6;--band:#f3f5f8;--accent:#0b5cad;--best:#ffe9a8}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif;-webkit-text-size-adjust:100%}
main{max-width:72rem;margin:0 auto;padding:1rem 1rem 3rem}
h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0 .25rem;overflow-wrap:anywhere}
h2{font-size:1.25rem;margin:2.2rem 0 .6rem;padding-top:.6rem;border-top:2px solid var(--line)}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
a{color:var(--accent)}
p,li,dd,dt{max-width:65rem}
.meta{color:var(--muted);margin:.2rem 0 1rem}
.meta code{overflow-wrap:anywhere}
nav ul{display:flex;flex-wrap:wrap;gap:.3rem 1rem;padding:0;margin:.5rem 0 0;list-style:none;font-size:.95rem}
.note{border-left:5px solid #b35900;background:#fff4e5;padding:.7rem 1rem;margin:1rem 0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(15rem,1fr));gap:.8rem}
.card{border:1px solid var(--line);border-radius:.5rem;padding:.8rem 1rem;background:var(--band)}
.card .label{font-weight:600}
.card .value{font-size:2rem;font-weight:700;font-variant-numeric:tabular-nums;line-height:1.2;margin:.2rem 0}
.card .ratio{font-weight:600}
.card .up{color:#0a6b2c}.card .down{color:#a1260d}
.card .expl{color:var(--muted);font-size:.9rem;margin:.3rem 0 0}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);border-radius:.4rem}
table{border-collapse:collapse;width:100%;font-size:.88rem}
caption{text-align:left;padding:.5rem .7rem;color:var(--muted);caption-side:top}
th,td{padding:.35rem .5rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#e4e8ee;position:sticky;top:0;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
thead th.num{min-width:4.5rem}
tbody th[scope=row]{font-weight:500;background:#fff;position:sticky;left:0;min-width:9rem}
tbody tr:nth-child(even) th[scope=row],tbody tr:nth-child(even) td{background:#f7f8fa}
tr.group th{background:#e9eef6;font-weight:700;position:static}
td.best{background:var(--best)!important;font-weight:700}
tr.served th[scope=row]{font-weight:700}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
figure{margin:1rem 0}
figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:.4rem;background:#fff}
figcaption{color:var(--muted);font-size:.92rem;margin-top:.3rem}
dl.facts{display:grid;grid-template-columns:minmax(8rem,15rem) minmax(0,1fr);gap:.25rem 1rem;margin:.5rem 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(20rem,1fr));gap:1rem 2rem;align-items:start}
details{margin:.6rem 0}summary{cursor:pointer;color:var(--accent)}
pre{background:var(--band);padding:.8rem;overflow-x:auto;font-size:.85rem;border-radius:.4rem}
.target{display:block;font-weight:600}.target small{font-weight:400;color:var(--muted)}
.legend{color:var(--muted);font-size:.9rem}
footer{color:var(--muted);font-size:.85rem;margin-top:3rem}
@media (max-width:40rem){body{font-size:15px}dl.facts{grid-template-columns:1fr}
dl.facts dd{margin-bottom:.4rem}.card .value{font-size:1.7rem}}
@media print{.scroll{overflow:visible}thead th,tbody th[scope=row]{position:static}}
"""


def _png_size(png: bytes) -> tuple[int, int] | None:
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return None
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def _figure(img: Image) -> str:
    data = base64.b64encode(img.png).decode("ascii")
    size = _png_size(img.png)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(img.alt)}"{dims} loading="lazy">'
            f"<figcaption>{escape(img.caption)}</figcaption></figure>")


def _facts(facts: list[tuple[str, str]]) -> str:
    if not facts:
        return "<p>Not recorded in this bundle.</p>"
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _cell(col: Column, value: Any, best: dict[str, float]) -> str:
    text = fmt.ratio(value) if col.kind == "ratio" else fmt.metric(value)
    if col.key in best and value is not None and value == best[col.key]:
        return f'<td class="num best">{text}<span class="sr"> (best)</span></td>'
    return f'<td class="num">{text}</td>'


def _metrics_table(c: ReportContent) -> str:
    if c.metrics.height == 0:
        return "<p>This bundle has no evaluation metrics.</p>"
    head = "".join(f'<th scope="col" class="num" title="{escape(col.help)}">{escape(col.label)}</th>'
                   for col in c.columns)
    body, section = [], None
    for row in c.metrics.iter_rows(named=True):
        if row["section"] != section:
            if section is not None:
                body.append("</tbody>")
            section = row["section"]
            body.append(f'<tbody><tr class="group"><th scope="rowgroup" colspan="{len(c.columns) + 1}">'
                        f"{escape(section)}</th></tr>")
        cls = ' class="served"' if row["model"] == "served" else ""
        cells = "".join(_cell(col, row.get(col.key), c.best) for col in c.columns)
        name = escape(row["model"]).replace(":", ":<wbr>")
        body.append(f'<tr{cls}><th scope="row">{name}</th>{cells}</tr>')
    body.append("</tbody>")
    n = ", ".join(f"{v} {fmt.count(n)}" for v, n in c.customers_per_variant.items())
    intro = ("Every list is scored with the same code on the same unseen test window"
             + (f" (customers who count: {n})" if n else "")
             + ". Served lists first, then the baselines, then each candidate generator on its own (padded "
             "with popular items). Highlighted: the best value in each column; ratios are MAP relative to "
             f"{BASELINE_LABEL}.")
    caption = f"Holdout metrics at K = {c.k}"
    legend = "".join(f"<li><strong>{escape(col.label)}</strong>: {escape(col.help)}</li>"
                     for col in c.columns if col.help)
    return (f'<p>{escape(intro)}</p><div class="scroll"><table><caption>{escape(caption)}</caption>'
            f'<thead><tr><th scope="col">model</th>{head}</tr></thead>{"".join(body)}</table></div>'
            f'<details><summary>What the columns mean</summary><ul class="legend">{legend}</ul></details>')


def _segments_table(c: ReportContent) -> str:
    seg = c.segments
    if seg is None:
        return ""
    wide = seg.pivot(on="model", index=["grouping", "order", "group", "variant"], values="map",
                     aggregate_function="first").sort("grouping", "variant", "order", "group")
    n = seg.group_by("grouping", "group", "variant").agg(pl.col("n_customers").max())
    wide = wide.join(n, on=["grouping", "group", "variant"], how="left", nulls_equal=True)
    models = [m for m in seg["model"].unique(maintain_order=True).to_list()]
    head = "".join(f'<th scope="col" class="num">{escape(m)}</th>' for m in models)
    rows = []
    for r in wide.iter_rows(named=True):
        cells = "".join(f'<td class="num">{fmt.metric(r.get(m))}</td>' for m in models)
        segment = f'{r["grouping"].replace("_", " ")}: {r["group"]}'
        rows.append(f'<tr><th scope="row">{escape(segment)}</th><td>{escape(r["variant"])}</td>'
                    f'<td class="num">{fmt.count(r["n_customers"])}</td>{cells}</tr>')
    return ('<details><summary>The numbers behind the chart</summary><div class="scroll"><table>'
            f"<caption>MAP@{c.k} per segment</caption><thead><tr><th scope=\"col\">segment</th>"
            f'<th scope="col">purchases</th><th scope="col" class="num">customers</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div></details>")


def _complements(c: ReportContent) -> str:
    note = f"<p>{escape(c.complements_note)}</p>"
    if c.complements is None:
        return note
    rows = []
    for (source,), part in c.complements.group_by("source", maintain_order=True):
        cells = []
        for r in part.iter_rows(named=True):
            pin = " · override" if r["origin"] != "learned" else ""
            cells.append(f'<td><span class="target">→ {escape(r["target"])}</span> <small>lift '
                         f'{r["lift"]:.2f} · support {fmt.count(r["support"])}{pin}</small></td>')
        cells += ["<td></td>"] * (TOP_TARGETS - len(cells))
        rows.append(f'<tr><th scope="row">{escape(str(source))}</th>{"".join(cells)}</tr>')
    head = "".join(f'<th scope="col">complement {i + 1}</th>' for i in range(TOP_TARGETS))
    return (note + '<div class="scroll"><table><caption>Learned directional category complements, strongest '
            f'sources first</caption><thead><tr><th scope="col">bought</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _headlines(c: ReportContent) -> str:
    cards = []
    for h in c.headlines:
        if h.ratio is None:
            ratio = f"no {BASELINE_LABEL} baseline to compare" if h.baseline is None else fmt.DASH
            ratio_html = f'<div class="ratio">{escape(ratio)}</div>'
        else:
            cls = "up" if h.ratio >= 1 else "down"
            ratio_html = (f'<div class="ratio {cls}">{fmt.ratio(h.ratio)} {BASELINE_LABEL} '
                          f"<span>({fmt.metric(h.baseline)})</span></div>")
        cards.append(f'<div class="card"><div class="label">{escape(h.label)}</div>'
                     f'<div class="value">{fmt.metric(h.value)}</div>{ratio_html}'
                     f'<p class="expl">{escape(h.explanation)}; list <code>{escape(h.model)}</code>.</p>'
                     "</div>")
    return f'<div class="cards">{"".join(cards)}</div>'


def _timings(c: ReportContent) -> str:
    if not c.timings:
        return "<p>Not recorded in this bundle.</p>"
    rows = "".join(f'<tr><th scope="row">{escape(stage)}</th><td class="num">{escape(secs)}</td></tr>'
                   for stage, secs in c.timings)
    return (f'<div class="scroll"><table><caption>Wall-clock time per training stage</caption><thead><tr>'
            '<th scope="col">stage</th><th scope="col" class="num">time</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


_SECTIONS = (("headline", "Headline"), ("metrics", "Metrics vs baselines"), ("segments", "Segments"),
             ("relationship", "Customer relationship"), ("curve", "Precision / recall"), ("complements", "Category complements"), ("data", "Data"),
             ("training", "Training"), ("provenance", "Provenance"))


def render_html(c: ReportContent, images: list[Image]) -> str:
    """The whole page as one string."""
    by_name = {img.name: img for img in images}

    def fig(name: str, missing: str) -> str:
        return _figure(by_name[name]) if name in by_name else f"<p>{escape(missing)}</p>"

    caveat = (f'<aside class="note" role="note"><strong>⚠ </strong>{escape(c.caveat)}</aside>'
              if c.caveat else "")
    notes = "".join(f'<aside class="note" role="note">{escape(n)}</aside>' for n in c.notes)
    nav = "".join(f'<li><a href="#{key}">{escape(title)}</a></li>' for key, title in _SECTIONS)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(c.title)}</title>",
        '<meta name="generator" content="recsys report">',
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>{escape(c.title)}</h1>",
        f'<p class="meta">Dataset <code>{escape(c.source)}</code> · trained '
        f'{escape(c.created.replace("T", " "))} · lists of K = {c.k}</p>',
        f'<nav aria-label="Sections"><ul>{nav}</ul></nav></header>',
        caveat, notes,
        '<section id="headline"><h2>Headline</h2>',
        f"<p>MAP@{c.k} of the served lists on the unseen test window, and how many times the "
        f"{BASELINE_LABEL} baseline (what each customer bought most, then the popular items) that is.</p>",
        _headlines(c), "</section>",
        '<section id="metrics"><h2>Metrics vs baselines</h2>', _metrics_table(c), "</section>",
        '<section id="segments"><h2>Segments</h2>',
        fig("segments", "Segment metrics were not recorded in this bundle."),
        fig("segments_value", "Metrics per value segment and lifecycle stage were not recorded in this bundle."),
        _segments_table(c), "</section>",
        '<section id="relationship"><h2>Customer relationship</h2>',
        "<p>Is the shop turning one-time buyers into repeat customers? Computed from all purchases at training "
        "(<code>recsys kpis --dataset</code> prints the same numbers).</p>",
        fig("cohorts", "Cohort retention was not recorded in this bundle."),
        fig("kpi_trends", "Relationship KPIs were not recorded in this bundle."), "</section>",
        '<section id="curve"><h2>Precision / recall</h2>',
        fig("curve", "The precision/recall curve was not recorded in this bundle."), "</section>",
        '<section id="complements"><h2>Category complements</h2>', _complements(c), "</section>",
        '<section id="data"><h2>Data</h2><div class="cols"><div>', _facts(c.data_facts), "</div><div>",
        fig("categories", "No category counts recorded."), "</div></div></section>",
        '<section id="training"><h2>Training</h2><div class="cols"><div><h3>Split and candidates</h3>',
        _facts(c.split_facts), "<h3>Ranker</h3>", _facts(c.ranker_facts), "</div><div><h3>Timings</h3>",
        _timings(c), "</div></div></section>",
        '<section id="provenance"><h2>Provenance</h2>', _facts(c.provenance),
        f"<details><summary>Training configuration</summary><pre>{escape(c.config_json)}</pre></details>",
        "</section>",
        f"<footer>Generated by <code>recsys report {escape(c.tag)}</code> from the bundle’s stored manifest "
        "and evaluation tables.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)
