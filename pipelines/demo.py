"""``recsys demo``: the main job on the embedded synthetic shop, end to end, in one command.

Why a command rather than a shell recipe: a newcomer (and CI) runs exactly one line; each step below
is also a command of its own, and the demo prints them so people learn the real ones.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from pipelines._common import DATASETS, echo_report
from recsys.data import describe as dataset_stats
from recsys.data import load_dataset
from recsys.data.synthetic import generate_shop, write_sqlite


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its shop database.")] = Path("data/demo"),
    seed: Annotated[int, typer.Option(help="Synthetic shop seed.")] = 0,
) -> None:
    """Generate the synthetic shop into SQLite, load and validate it back, and describe it."""
    t0 = time.perf_counter()
    shop = generate_shop(seed=seed)
    db = workdir / "shop.sqlite"
    write_sqlite(shop.dataset, db)
    typer.echo(f"[1] generated synthetic shop (seed={seed}) → {db}   "
               f"(recsys data generate --format sqlite --out {db})")
    ds, report = load_dataset(DATASETS / "canonical-sqlite.yaml", location=f"sqlite:///{db}")
    echo_report(report)
    typer.echo(f"[2] loaded and validated {ds.interactions.height:,} interactions from SQLite   "
               f"(recsys data validate -d canonical-sqlite --data-path sqlite:///{db})")
    s = dataset_stats(ds)
    typer.echo(f"[3] {s['customers']:,} customers, {s['items_in_catalogue']:,} items, {s['categories']} categories, "
               f"{s['orders']:,} orders, {s['date_min']} → {s['date_max']}, repeat buyers {s['repeat_buyer_share']:.0%}")
    typer.echo("    top categories: " + ", ".join(f"{r['category']} ({r['lines']:,})" for r in s["top_categories"][:5]))
    typer.echo(f"done in {time.perf_counter() - t0:.1f}s")
