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
    preset: Annotated[str | None, typer.Option(
        "--preset", help="A real shop's size, streamed in blocks: hm (H&M: 1.37M customers, 105k items, "
                         "31.8M purchase lines over 730 days).")] = None,
    scale: Annotated[float | None, typer.Option(
        "--scale", help="Fraction of the preset: customers, items and lines scaled together.")] = None,
    lines: Annotated[int | None, typer.Option(
        "--lines", help="Target number of purchase lines (streams the shop; sizes the order rate).")] = None,
    days: Annotated[int | None, typer.Option(
        "--days", help="Days of history (default 365; 730 with --preset hm).")] = None,
    block_size: Annotated[int | None, typer.Option(
        "--block-size", help="Customers per block of a streamed shop (default 50000).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar.")] = True,
) -> None:
    """Write the seeded synthetic shop as files or a SQLite database (atomically).

    With --preset or --lines the shop is generated block by block and streamed to the files in
    bounded memory (H&M's size in about a minute); otherwise it is built in memory as before.
    """
    allowed: tuple[Literal["csv", "csv.gz", "parquet", "sqlite"], ...] = ("csv", "csv.gz", "parquet", "sqlite")
    if fmt not in allowed:
        raise typer.BadParameter(f"must be one of {', '.join(allowed)}; got {fmt!r}", param_hint="--format")
    sizes = {"--customers": customers, "--items": items, "--lines": lines, "--days": days,
             "--block-size": block_size}
    for flag, value in sizes.items():
        if value is not None and value < 1:
            raise typer.BadParameter(f"must be ≥ 1; got {value}", param_hint=flag)
    if preset is not None or lines is not None:
        _generate_streamed(out, fmt, seed, customers, items, preset, scale, lines, days, block_size, progress)
        return
    if scale is not None:
        raise typer.BadParameter("scales a preset; add --preset hm", param_hint="--scale")
    if block_size is not None:
        raise typer.BadParameter("applies to streamed shops only; add --preset or --lines",
                                 param_hint="--block-size")

    from recsys.data.synthetic import generate_shop, write_files, write_sqlite

    kwargs = {k: v for k, v in (("n_customers", customers), ("n_items", items), ("days", days)) if v}
    shop = generate_shop(seed=seed, **kwargs)
    if fmt == "sqlite":
        write_sqlite(shop.dataset, out)
    else:
        write_files(shop.dataset, out, fmt=fmt)
    ds = shop.dataset
    typer.echo(f"wrote synthetic shop (seed={seed}): {ds.interactions.height:,} interactions, "
               f"{ds.items.height:,} items, {ds.customers.height:,} customers → {out}")


def _generate_streamed(out: Path, fmt: str, seed: int, customers: int | None, items: int | None,
                       preset: str | None, scale: float | None, lines: int | None, days: int | None,
                       block_size: int | None, progress: bool) -> None:
    """``generate`` for --preset / --lines: check the flag combination, then stream the blocks."""
    from dataclasses import replace

    from recsys.data.synthetic import ShopConfig
    from recsys.data.synthetic_stream import PRESETS, generate_shop_files, preset_config

    if fmt == "sqlite":
        raise typer.BadParameter("a streamed shop (--preset/--lines) is written as csv, csv.gz or parquet",
                                 param_hint="--format")
    if preset is not None and preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}",
                                 param_hint="--preset")
    if scale is not None:
        if preset is None:
            raise typer.BadParameter("scales a preset; add --preset hm", param_hint="--scale")
        if not 0 < scale <= 10:
            raise typer.BadParameter(f"must be in (0, 10]; got {scale}", param_hint="--scale")
        given = [f for f, v in (("--customers", customers), ("--items", items), ("--lines", lines)) if v]
        if given:
            raise typer.BadParameter(f"scales the preset's customers, items and lines together; drop "
                                     f"{given[0]} or --scale", param_hint="--scale")
    if preset is None and customers is None:
        raise typer.BadParameter("needs --customers (or --preset) to size a streamed shop",
                                 param_hint="--lines")
    if preset is not None:
        config, target = preset_config(preset, scale=scale or 1.0, seed=seed)
    else:
        config, target = ShopConfig(seed=seed), 0
    try:
        config = replace(config, n_customers=customers or config.n_customers,
                         n_items=items or config.n_items, days=days or config.days)
    except ValueError as exc:  # ShopConfig's own rule, e.g. fewer items than categories
        raise fail(str(exc)) from None
    try:
        shop = generate_shop_files(config, out, lines=lines or target, fmt=fmt,  # type: ignore[arg-type]
                                   block_size=block_size or 50_000, progress=progress)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"wrote synthetic shop (seed={seed}, streamed in {shop.blocks} blocks): "
               f"{shop.n_purchases:,} purchase lines in {shop.n_orders:,} orders, {shop.n_items:,} items, "
               f"{shop.n_customers:,} customers in {shop.seconds:.1f}s → {out}")
