"""``recsys recommend``: batch top-N lists for evaluation and export (a stable external interface)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from tqdm.auto import tqdm

from pipelines._common import fail, log
from recsys.exceptions import RecsysError


def load_bundle(tag: str):  # type: ignore[no-untyped-def]
    from recsys.bundle import Bundle
    from recsys.registry import Registry

    t0 = time.perf_counter()
    version = Registry().resolve(tag)
    bundle = Bundle.load(version.path)
    log.info("loaded %s in %.2fs", version.tag, time.perf_counter() - t0)
    return version, bundle


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
    batch: Annotated[int, typer.Option(help="Customers per batch.")] = 2000,
) -> None:
    """Write (customer_id, rank, item_id, score, reason_type) for the chosen customers."""
    if (customers is None) == (not all_customers):
        raise typer.BadParameter("give exactly one of --customers FILE or --all", param_hint="--customers/--all")
    try:
        version, bundle = load_bundle(model)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    hybrid = bundle.hybrid
    ids = hybrid.history.customers.ids.tolist() if all_customers else read_customers(customers)  # type: ignore[arg-type]
    from recsys.baselines import popular_items

    popular = popular_items(hybrid.generators["popularity"], n * 3)  # type: ignore[arg-type]
    fallback = pl.DataFrame({"item_id": popular, "score": [float(len(popular) - i) for i in range(len(popular))]})
    t0 = time.perf_counter()
    parts = []
    for start in tqdm(range(0, len(ids), batch), desc="recommend", unit="batch"):
        chunk = ids[start:start + batch]
        parts.append(hybrid.recommend(chunk, n, exclude_bought=not include_bought, fallback=fallback))
    recs = pl.concat(parts) if parts else pl.DataFrame()
    recs = recs.select("customer_id", "rank", "item_id", "score", "reason_type")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".csv":
        recs.write_csv(tmp)
    else:
        recs.write_parquet(tmp)
    tmp.replace(out)
    secs = time.perf_counter() - t0
    typer.echo(f"wrote {recs.height:,} rows for {len(ids):,} customers from {version.tag} → {out} "
               f"({secs:.1f}s, {len(ids) / max(secs, 1e-9):,.0f} customers/s)")
