"""The report's charts as PNG bytes, drawn with matplotlib's object API on the Agg canvas.

Why ``matplotlib.figure.Figure`` and not ``pyplot``: pyplot keeps global state (a current figure,
a backend chosen at first import); a library must neither depend on nor change it.  A bare
``Figure`` renders through Agg whatever backend the caller's process uses, and is garbage-collected
like any object.

Colours are the Okabe–Ito colour-blind-safe palette, and every series also differs by hatch or
marker so the charts survive greyscale printing.  Each image carries alt text that states the
numbers a sighted reader would take from it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from recsys.reporting import _format as fmt
from recsys.reporting._content import BASELINE, ReportContent

__all__ = ["Image", "draw_all"]

_PALETTE = {"served": "#0072B2", BASELINE: "#E69F00", "baseline:popularity_global": "#009E73"}
_OTHER = ("#CC79A7", "#56B4E9", "#D55E00", "#000000")
_HATCH = {"served": "", BASELINE: "//", "baseline:popularity_global": ".."}
_MARKER = {"served": "o", BASELINE: "s", "baseline:popularity_global": "^"}
_LABEL = {
    "served": "served",
    BASELINE: "buy-again-then-popular",
    "baseline:popularity_global": "global popularity",
}
_DPI = 110


@dataclass(frozen=True)
class Image:
    """One chart: ``name`` is its file stem (``segments`` → ``segments.png``)."""

    name: str
    png: bytes
    alt: str
    caption: str

    @property
    def filename(self) -> str:
        """The chart's file name (``<name>.png``)."""
        return f"{self.name}.png"


def _style(fig: Figure) -> None:
    for ax in fig.axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#d0d0d0", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=9)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software"/date metadata: the same bundle renders byte-identical PNGs.
    fig.savefig(buf, format="png", dpi=_DPI, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def _colour(model: str, i: int) -> str:
    return _PALETTE.get(model, _OTHER[i % len(_OTHER)])


_TITLES = {"activity": "by activity (orders before cut-off)", "cold_vs_known": "cold vs known",
           "value_segment": "by value segment (RFM at cut-off)", "lifecycle": "by lifecycle stage at cut-off"}


def _segments(content: ReportContent, groupings: tuple[str, ...] = ("activity", "cold_vs_known"),
              name: str = "segments") -> Image | None:
    seg = content.segments
    if seg is None:
        return None
    groupings = tuple(g for g in groupings if g in set(seg["grouping"]))
    variants = [v for v in ("all", "new") if v in set(seg["variant"])]
    if not groupings or not variants:
        return None
    models = [m for m in seg["model"].unique(maintain_order=True).to_list()]
    widths = [max(2.6, seg.filter(pl.col("grouping") == g)["group"].n_unique()) for g in groupings]
    fig = Figure(figsize=(10, 3.6 * len(variants)), layout="constrained")
    axes = fig.subplots(len(variants), len(groupings), squeeze=False, gridspec_kw={"width_ratios": widths})
    alt_parts = []
    for r, variant in enumerate(variants):
        for c, grouping in enumerate(groupings):
            ax = axes[r][c]
            part = seg.filter((pl.col("grouping") == grouping) & (pl.col("variant") == variant))
            groups = part.select("group", "order").unique().sort("order", "group")["group"].to_list()
            width = 0.8 / max(1, len(models))
            for i, model in enumerate(models):
                rows = dict(part.filter(pl.col("model") == model).select("group", "map").iter_rows())
                xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(groups))]
                ys = [rows.get(g) or 0.0 for g in groups]
                bars = ax.bar(xs, ys, width * 0.95, color=_colour(model, i), hatch=_HATCH.get(model, ""),
                              edgecolor="white", linewidth=0.5, label=_LABEL.get(model, model))
                labels = [f"{y:.3f}" if rows.get(g) is not None else "–"
                          for g, y in zip(groups, ys, strict=True)]
                ax.bar_label(bars, labels=labels, fontsize=7, padding=1.5,
                             rotation=90 if len(groups) * len(models) > 12 else 0)
            n_by_group = dict(part.filter(pl.col("model") == models[0]).select("group", "n_customers")
                              .iter_rows())
            shown = [g.replace("_", "\n").replace(" ", "\n") for g in groups]  # narrow columns: wrap
            ax.set_xticks(range(len(groups)),
                          [f"{t}\nn={n_by_group[g]:,}" if n_by_group.get(g) is not None else t
                           for g, t in zip(groups, shown, strict=True)])
            ax.set_ylabel(f"MAP@{content.k}", fontsize=9)
            ax.margins(y=0.22)
            title = _TITLES.get(grouping, grouping)
            ax.set_title(f"{title} · {variant} purchases", fontsize=10, loc="left")
            served = part.filter(pl.col("model") == "served")
            if served.height:
                alt_parts.append(f"{variant}, {grouping.replace('_', ' ')}: served " + ", ".join(
                    f"{g} {fmt.metric(v, 3)}" for g, v in served.select("group", "map").iter_rows()))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(models), frameon=False, fontsize=9)
    _style(fig)
    alt = (f"Grouped bar charts of MAP@{content.k} per customer segment for "
           + ", ".join(_LABEL.get(m, m) for m in models) + ". " + "; ".join(alt_parts) + ".")
    which = ("activity tiers (orders before the test cut-off) and cold vs known customers" if name == "segments"
             else "value segment (RFM) and lifecycle stage at the test cut-off")
    caption = (f"MAP@{content.k} per segment: {which}, on all purchases and on new items only. "
               "n = test customers in the segment.")
    return Image(name, _png(fig), alt, caption)


def _curve(content: ReportContent) -> Image | None:
    curve = content.curve
    if curve is None:
        return None
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    models = curve["model"].unique(maintain_order=True).to_list()
    models.sort(key=lambda m: (m != "served", m))
    alt_parts = []
    for i, model in enumerate(models):
        part = curve.filter(pl.col("model") == model).sort("k")
        ax.plot(part["recall"], part["precision"], marker=_MARKER.get(model, "D"), markersize=4,
                color=_colour(model, i), linewidth=2 if model == "served" else 1.4,
                label=_LABEL.get(model, model))
        first, last = part.row(0, named=True), part.row(-1, named=True)
        for row in (first, last):
            ax.annotate(f"K={row['k']}", (row["recall"], row["precision"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=7, color="#333333")
        alt_parts.append(f"{_LABEL.get(model, model)} from precision {first['precision']:.3f} / recall "
                         f"{first['recall']:.3f} at K={first['k']} to {last['precision']:.3f} / "
                         f"{last['recall']:.3f} at K={last['k']}")
    ax.set_xlabel("recall@K", fontsize=9)
    ax.set_ylabel("precision@K", fontsize=9)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=9)
    _style(fig)
    ax.grid(axis="x", color="#d0d0d0", linewidth=0.6)
    alt = ("Precision against recall as the list length K grows, one line per model: "
           + "; ".join(alt_parts) + ".")
    caption = (f"Precision/recall@K for K = 1…{curve['k'].cast(pl.Int64).max()!s} on all test purchases "
               "(up and to the right is better).")
    return Image("curve", _png(fig), alt, caption)


def _categories(content: ReportContent) -> Image | None:
    cats = content.top_categories
    if cats.height == 0:
        return None
    cats = cats.sort("lines", descending=True)
    fig = Figure(figsize=(6, 0.8 + 0.3 * cats.height), layout="constrained")
    ax = fig.subplots()
    names = cats["category"].to_list()[::-1]
    lines = cats["lines"].to_list()[::-1]
    bars = ax.barh(names, lines, color="#0072B2", height=0.7)
    ax.bar_label(bars, labels=[f"{v:,}" for v in lines], fontsize=8, padding=3)
    ax.set_xlabel("purchase lines", fontsize=9)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.margins(x=0.12)
    _style(fig)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color="#d0d0d0", linewidth=0.6)
    alt = f"Horizontal bar chart of the {cats.height} categories with most purchase lines: " + ", ".join(
        f"{c} {n:,}" for c, n in cats.iter_rows()) + "."
    return Image("categories", _png(fig), alt, f"The {cats.height} categories with most purchase lines.")


def draw_all(content: ReportContent) -> list[Image]:
    """Every chart the content supports, in report order (missing data → no image)."""
    from recsys.reporting._relationship_figures import cohort_heatmap, kpi_trends

    images = (_segments(content), _segments(content, ("value_segment", "lifecycle"), "segments_value"),
              _curve(content), _categories(content), cohort_heatmap(content), kpi_trends(content))
    return [img for img in images if img is not None]
