"""The complement graph as a file for merchandisers: CSV or Markdown, written atomically.

What they review before writing overrides (``recsys.models._complement_overrides``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recsys._io import atomic_write_text

__all__ = ["EXPORT_SUFFIXES", "write_graph"]

#: File types ``write_graph`` knows, by suffix (lower case).
EXPORT_SUFFIXES = (".csv", ".md", ".markdown")


def write_graph(frame: pl.DataFrame, path: Path, *, n: int, window_days: float, same_order: bool,
                shrinkage: float, min_support: int, min_lift: float) -> Path:
    """Write ``frame`` (``CategoryComplements.graph_frame`` columns, top ``n`` per source) to ``path``:
    CSV for ``.csv``, else Markdown with a header that explains the columns with these parameters.
    Readable by everyone (0o644): a report meant to be shared."""
    if path.suffix.lower() == ".csv":
        text = frame.with_columns(pl.col("confidence", "base_rate", "lift").round(4)).write_csv()
    else:
        text = _markdown(frame, n, window_days=window_days, same_order=same_order, shrinkage=shrinkage,
                         min_support=min_support, min_lift=min_lift)
    return atomic_write_text(path, text)


def _markdown(frame: pl.DataFrame, n: int, *, window_days: float, same_order: bool, shrinkage: float,
              min_support: int, min_lift: float) -> str:
    def fmt(v: float | None, digits: int) -> str:
        return "–" if v is None else f"{v:.{digits}f}"

    lines = [
        "# Category complements",
        "",
        f"Top {n} complements per category: B is bought within {window_days:g} days "
        f"{'(same day included) ' if same_order else ''}after A.  Support = customers who did; "
        f"confidence = P(B within the window | A); lift = confidence ÷ base rate (shrunk toward 1, "
        f"shrinkage {shrinkage:g}); learned edges need support ≥ {min_support} and "
        f"lift ≥ {min_lift:g}.",
        "",
        "| Source | # | Complement | Support | Confidence | Base rate | Lift | Origin |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in frame.iter_rows(named=True):
        origin = f"{r['origin']}, pinned" if r["pinned"] else r["origin"]
        lines.append(
            f"| {r['source']} | {r['rank']} | {r['target']} | {r['support']} | "
            f"{fmt(r['confidence'], 3)} | {fmt(r['base_rate'], 3)} | {r['lift']:.2f} | {origin} |"
        )
    return "\n".join(lines) + "\n"
