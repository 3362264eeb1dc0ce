"""The directional category-complement map as a picture: categories on a circle, an arrow per edge.

Why a picture beside the table: a merchandiser reviewing overrides asks "what leads where" — which
categories feed many others, which are dead ends, where an override changed the map — and a graph
answers at a glance what a 100-row table does not.  Why no graph library: a circle layout with
matplotlib arrows is enough for a shop's few dozen categories, and adds no dependency.

Learned edges are solid blue, override edges dashed orange, pinned ones thicker with a ``pin`` label;
arrow width grows with lift.  Drawn on a bare ``Figure`` (no pyplot state), as the report's charts.
"""

from __future__ import annotations

import io
import math

import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["complement_graph_png"]

_LEARNED = "#0072B2"
_OVERRIDE = "#D55E00"


def complement_graph_png(frame: pl.DataFrame, *, title: str = "Category complements") -> bytes:
    """PNG bytes of the edges in ``frame`` (``CategoryComplements.graph_frame`` columns: ``source``,
    ``target``, ``lift``, ``origin``, ``pinned``; filter to the top ``n`` per source first)."""
    cats = sorted(set(frame["source"].to_list()) | set(frame["target"].to_list()))
    size = 6.0 + 0.12 * len(cats)
    fig = Figure(figsize=(size, size), dpi=110)
    ax = fig.add_subplot()
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=12)
    if not cats:
        ax.text(0.5, 0.5, "no complements learned", ha="center", va="center", transform=ax.transAxes)
        return _png(fig)
    pos = {c: (math.cos(2 * math.pi * k / len(cats) + math.pi / 2), math.sin(2 * math.pi * k / len(cats) + math.pi / 2))
           for k, c in enumerate(cats)}
    top = max(float(frame["lift"].cast(pl.Float64).max() or 1.0), 1.0)  # type: ignore[arg-type]
    for r in frame.iter_rows(named=True):
        (x0, y0), (x1, y1) = pos[r["source"]], pos[r["target"]]
        override = r["origin"] == "override"
        width = 0.6 + 2.4 * min(float(r["lift"]) / top, 1.0) + (1.0 if r["pinned"] else 0.0)
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={
            "arrowstyle": "-|>", "color": _OVERRIDE if override else _LEARNED, "lw": width,
            "linestyle": "--" if override else "-", "alpha": 0.9 if override else 0.55,
            "shrinkA": 22, "shrinkB": 22, "connectionstyle": "arc3,rad=0.12", "mutation_scale": 10 + 2 * width})
        if r["pinned"]:
            ax.text(x0 + 0.55 * (x1 - x0), y0 + 0.55 * (y1 - y0), "pin", fontsize=7, color=_OVERRIDE,
                    ha="center", va="center", bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"})
    for c, (x, y) in pos.items():
        ax.text(x, y, c, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.25", "fc": "#f2f2f2", "ec": "#999999"})
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    ax.legend(handles=[Line2D([], [], color=_LEARNED, lw=2, label="learned (width ∝ lift)"),
                       Line2D([], [], color=_OVERRIDE, lw=2, ls="--", label="override"),
                       Line2D([], [], color=_OVERRIDE, lw=3.5, ls="--", label="override, pinned")],
              loc="lower center", bbox_to_anchor=(0.5, -0.06), ncol=3, fontsize=8, frameon=False)
    return _png(fig)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
