"""``recsys recommend``: batch top-N lists for evaluation and export (a stable external interface)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from pipelines._common import fail
from pipelines._engine import AddressOpt, EngineOpt, ShipOpt, WorkersOpt, check_engine_flags
from recsys.exceptions import RecsysError


def read_customers(path: Path) -> list[str]:
    """A text file (one id per line), or a CSV/Parquet with a ``customer_id`` column."""
    if not path.exists():
        raise typer.BadParameter(f"file not found: {path}", param_hint="--customers")
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pl.read_csv(path, infer_schema=False)
    else:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if "customer_id" not in frame.columns:
        raise typer.BadParameter(f"{path}: no 'customer_id' column (columns: {', '.join(frame.columns)})",
                                 param_hint="--customers")
    return frame["customer_id"].cast(pl.String).drop_nulls().unique(maintain_order=True).to_list()


def recommend_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Tag, 'promoted' or 'latest'.")] = "promoted",
    customers: Annotated[Path | None, typer.Option(help="File of customer ids (txt, csv or parquet).")] = None,
    all_customers: Annotated[bool, typer.Option("--all", help="Every customer known to the model.")] = False,
    n: Annotated[int, typer.Option("--n", min=1, max=100, help="Items per customer.")] = 12,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .parquet or .csv.")] = Path("recs.parquet"),
    include_bought: Annotated[bool, typer.Option("--include-bought/--new-only",
                                                 help="Allow items the customer bought before.")] = True,
    batch: Annotated[int, typer.Option(min=1, help="Customers per batch (bounds memory).")] = 10_000,
    shard: Annotated[str | None, typer.Option(help="Only shard i of n (1-based), e.g. 2/8: the same "
                                              "customer hash as campaigns, so n shards partition the base.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    bundle_via: ShipOpt = None,
) -> None:
    """Write (customer_id, rank, item_id, score, reason_type, reason_text, source_item_id, source_date,
    due_date) for the chosen customers, streamed in batches.

    With --engine ray, --out is a folder of Parquet parts (in customer order) written by a Ray Data job.
    """
    from recsys.batch import recommend_batches, write_recommendations
    from recsys.bundle import load_bundle
    from recsys.campaigns import parse_shard, shard_mask
    from recsys.reasons import item_names

    if (customers is None) == (not all_customers):
        raise typer.BadParameter("give exactly one of --customers FILE or --all", param_hint="--customers/--all")
    check_engine_flags(engine, address=address, workers=workers, via=bundle_via)
    if engine == "ray":
        from pipelines._engine_jobs import recommend_on_ray

        return recommend_on_ray(model, customers=read_customers(customers) if customers else None, n=n,
                                out=out, new_only=not include_bought, batch=batch, shard=shard,
                                address=address, workers=workers, via=bundle_via, progress=progress)
    try:
        shard_t = parse_shard(shard)
        version, bundle = load_bundle(model)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    hybrid = bundle.hybrid
    ids = hybrid.history.customers.ids.tolist() if all_customers else read_customers(customers)  # type: ignore[arg-type]
    if shard_t is not None:
        ids = [c for c, keep in zip(ids, shard_mask(ids, shard_t), strict=True) if keep]
    frames = recommend_batches(hybrid, ids, n, new_only=not include_bought, batch=batch, progress=progress,
                               names=item_names(bundle.catalogue))
    summary = write_recommendations(frames, out, customers=len(ids))
    typer.echo(f"wrote {summary.rows:,} rows for {len(ids):,} customers from {version.tag} → {out} "
               f"({summary.seconds:.1f}s, {summary.per_second:,.0f} customers/s)")
