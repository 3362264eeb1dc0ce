"""The Markdown report: the same content as the HTML page, with charts as PNG files beside it.

Why also Markdown: it diffs in a pull request, renders in GitLab/GitHub wikis and notebooks, and
pastes into tickets; the PNGs are referenced by relative path so the folder moves as one piece.
"""

from __future__ import annotations

from typing import Any

from recsys.reporting import _format as fmt
from recsys.reporting._content import BASELINE_LABEL, TOP_TARGETS, ReportContent
from recsys.reporting._figures import Image

__all__ = ["render_markdown"]


def _esc(text: Any) -> str:
    """Table-safe text: pipes and line breaks would end a cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(_esc(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _facts(facts: list[tuple[str, str]]) -> str:
    return _table(["fact", "value"], [[k, v] for k, v in facts]) if facts else "Not recorded in this bundle."


def _image(img: Image | None, missing: str) -> str:
    if img is None:
        return missing
    alt = img.alt.replace("[", "(").replace("]", ")")
    return f"![{alt}]({img.filename})\n\n*{img.caption}*"


def _metrics(c: ReportContent) -> str:
    if c.metrics.height == 0:
        return "This bundle has no evaluation metrics."
    rows = []
    for row in c.metrics.iter_rows(named=True):
        cells = [f"**{row['model']}**" if row["model"] == "served" else row["model"]]
        for col in c.columns:
            value = row.get(col.key)
            text = fmt.ratio(value) if col.kind == "ratio" else fmt.metric(value)
            best = col.key in c.best and value is not None and value == c.best[col.key]
            cells.append(f"**{text}**" if best else text)
        rows.append(cells)
    table = _table(["model", *[col.label for col in c.columns]], rows, set(range(1, len(c.columns) + 1)))
    legend = "\n".join(f"- **{col.label}**: {col.help}" for col in c.columns if col.help)
    n = ", ".join(f"{v} {fmt.count(n)}" for v, n in c.customers_per_variant.items())
    return (f"Holdout metrics at K = {c.k}" + (f" (customers who count: {n})" if n else "")
            + ". Served lists first, then baselines, then single generators. "
            "**Bold**: best in the column.\n\n"
            + table + "\n\n" + legend)


def _complements(c: ReportContent) -> str:
    if c.complements is None:
        return c.complements_note
    rows = []
    for (source,), part in c.complements.group_by("source", maintain_order=True):
        cells = [
            f"→ {r['target']} (lift {r['lift']:.2f}, support {fmt.count(r['support'])}"
            + (", override)" if r["origin"] != "learned" else ")")
            for r in part.iter_rows(named=True)
        ]
        rows.append([str(source), *cells, *[""] * (TOP_TARGETS - len(cells))])
    header = ["bought", *[f"complement {i + 1}" for i in range(TOP_TARGETS)]]
    return c.complements_note + "\n\n" + _table(header, rows)


def render_markdown(c: ReportContent, images: list[Image]) -> str:
    """The whole report as Markdown; images are referenced as ``<name>.png`` in the same folder."""
    by_name = {img.name: img for img in images}
    parts = [f"# {c.title}", "",
             f"Dataset `{c.source}` · trained {c.created.replace('T', ' ')} · lists of K = {c.k}", ""]
    if c.caveat:
        parts += [f"> ⚠ {c.caveat}", ""]
    parts += [f"> {n}\n" for n in c.notes]
    parts += ["## Headline", ""]
    for h in c.headlines:
        ratio = (f"{fmt.ratio(h.ratio)} {BASELINE_LABEL} ({fmt.metric(h.baseline)})" if h.ratio is not None
                 else f"no {BASELINE_LABEL} ratio")
        parts.append(f"- **{h.label}: {fmt.metric(h.value)}** — {ratio}; {h.explanation} (list `{h.model}`)")
    parts += ["", "## Metrics vs baselines", "", _metrics(c), "",
              "## Segments", "",
              _image(by_name.get("segments"), "Segment metrics were not recorded in this bundle."), "",
              _image(by_name.get("segments_value"), ""), "",
              "## Customer relationship", "",
              _image(by_name.get("cohorts"), "Cohort retention was not recorded in this bundle."), "",
              _image(by_name.get("kpi_trends"), "Relationship KPIs were not recorded in this bundle."), "",
              "## Precision / recall", "",
              _image(by_name.get("curve"), "The precision/recall curve was not recorded in this bundle."), "",
              "## Category complements", "", _complements(c), "",
              "## Data", "", _facts(c.data_facts), "", _image(by_name.get("categories"), ""), "",
              "## Training", "", "### Split and candidates", "", _facts(c.split_facts), "",
              "### Ranker", "", _facts(c.ranker_facts), "",
              "### Timings", "", _table(["stage", "time"], [list(t) for t in c.timings], {1}) if c.timings
              else "Not recorded in this bundle.", "",
              "## Provenance", "", _facts(c.provenance), "",
              "<details><summary>Training configuration</summary>", "", "```json", c.config_json, "```", "",
              "</details>", ""]
    return "\n".join(parts)
