"""``recsys complements export``: the learned directional category map of a trained model, for people.

Merchandisers review it before writing overrides (``configs/complements_overrides.yaml``): a table
(Markdown or CSV, overrides marked in the ``origin``/``pinned`` columns) or a graph picture (PNG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import polars as pl
import typer

from pipelines._common import fail
from recsys.exceptions import RecsysError

app = typer.Typer(help="The category-complement map of a trained model.", no_args_is_help=True)

Format = Literal["md", "csv", "png"]


@app.command("export")
def export_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Tag, 'promoted' or 'latest'.")] = "promoted",
    fmt: Annotated[Format, typer.Option("--format", "-f", help="md (table), csv (table) or png (graph).")] = "md",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default complements.<format>).")]
        = None,
    n: Annotated[int, typer.Option("--n", min=1, max=100, help="Complements per source category.")] = 5,
) -> None:
    """Write the top-N complements of every category: who buys A goes on to buy B (directional)."""
    from recsys._io import atomic_write
    from recsys.bundle import load_bundle
    from recsys.reporting import complement_graph_png

    out = out or Path(f"complements.{fmt}")
    if out.suffix.lower().lstrip(".") not in ({fmt, "markdown"} if fmt == "md" else {fmt}):
        raise typer.BadParameter(f"{out} does not end in .{fmt}", param_hint="--out")
    try:
        version, bundle = load_bundle(model)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    cc = bundle.hybrid.category_complements
    if cc is None:
        raise fail(f"{version.tag} has no category_complements generator (the shop has no categories, "
                   "or the train config switched it off)")
    graph = cc.graph_frame().filter(pl.col("rank") <= n)
    if fmt == "png":
        png = complement_graph_png(graph, title=f"Category complements of {version.tag} (top {n} per category)")
        atomic_write(out, lambda tmp: tmp.write_bytes(png))
    else:
        cc.export(out, n=n)
    overrides = graph.filter(pl.col("origin") == "override")
    typer.echo(f"{graph.height} edges from {graph['source'].n_unique()} categories "
               f"({overrides.height} from overrides, {int(graph['pinned'].sum())} pinned) of {version.tag} → {out}")
