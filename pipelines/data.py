"""``recsys data validate | stats | generate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from pipelines._common import echo_report, fail, load
from recsys.data import describe as dataset_stats
from recsys.exceptions import RecsysError

app = typer.Typer(help="Load, validate, describe and generate datasets.", no_args_is_help=True)

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset name in configs/datasets or a YAML path.")]
DataPathOpt = Annotated[
    str | None, typer.Option("--data-path", help="Override the dataset's folder (files) or URI (sql).")
]
LenientOpt = Annotated[bool, typer.Option("--lenient", help="Report and drop bad rows instead of failing.")]


@app.command()
def validate(dataset: DatasetOpt = "synthetic", data_path: DataPathOpt = None, lenient: LenientOpt = False) -> None:
    """Load and validate a dataset; exit 2 with a message naming file, column and row on bad data."""
    try:
        ds, report, secs = load(dataset, data_path, lenient)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    echo_report(report)
    typer.echo(f"ok: {ds.source}: {ds.interactions.height:,} interactions, {ds.items.height:,} items, "
               f"{ds.customers.height:,} customer records; loaded and validated in {secs:.2f}s")


@app.command()
def stats(
    dataset: DatasetOpt = "synthetic",
    data_path: DataPathOpt = None,
    lenient: LenientOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Customers, items, categories, orders, date range, repeat-buyer share, top categories."""
    try:
        ds, report, secs = load(dataset, data_path, lenient)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    echo_report(report)
    s = dataset_stats(ds)
    s["load_seconds"] = round(secs, 3)
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    width = 22
    for key in ("source", "interactions", "purchases", "customers", "items_in_catalogue", "items_bought",
                "categories", "orders", "date_min", "date_max", "repeat_buyer_share"):
        v = s[key]
        typer.echo(f"{key:<{width}} {v:,}" if isinstance(v, int) else f"{key:<{width}} {v}")
    typer.echo("top categories (purchase lines):")
    for row in s["top_categories"]:
        typer.echo(f"  {str(row['category']):<30} {row['lines']:>10,}")
    typer.echo(f"{'load_seconds':<{width}} {secs:.2f}")


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder (csv/parquet) or .sqlite file to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv | csv.gz | parquet | sqlite")] = "csv",
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same shop).")] = 0,
    customers: Annotated[int | None, typer.Option("--customers", help="Number of customers.")] = None,
    items: Annotated[int | None, typer.Option("--items", help="Number of catalogue items.")] = None,
) -> None:
    """Write the seeded synthetic shop as files or a SQLite database (atomically)."""
    from recsys.data.synthetic import generate_shop, write_files, write_sqlite

    allowed: tuple[Literal["csv", "csv.gz", "parquet", "sqlite"], ...] = ("csv", "csv.gz", "parquet", "sqlite")
    if fmt not in allowed:
        raise typer.BadParameter(f"must be one of {', '.join(allowed)}; got {fmt!r}", param_hint="--format")
    kwargs = {k: v for k, v in {"n_customers": customers, "n_items": items}.items() if v is not None}
    shop = generate_shop(seed=seed, **kwargs)
    if fmt == "sqlite":
        write_sqlite(shop.dataset, out)
    else:
        write_files(shop.dataset, out, fmt=fmt)
    ds = shop.dataset
    typer.echo(f"wrote synthetic shop (seed={seed}): {ds.interactions.height:,} interactions, "
               f"{ds.items.height:,} items, {ds.customers.height:,} customers → {out}")
