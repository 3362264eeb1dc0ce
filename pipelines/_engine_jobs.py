"""The ``--engine ray`` paths of ``recsys recommend``: resolve, open the cluster, call the library, print.

Kept out of ``recommend.py`` so the local command reads as before and nothing here imports Ray unless
the Ray path is taken.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines._common import fail
from pipelines._engine import cluster, default_via
from recsys.exceptions import RecsysError


def recommend_on_ray(model: str, *, customers: list[str] | None, n: int, out: Path, new_only: bool, batch: int,
                     shard: str | None, address: str | None, workers: int | None, via: str | None,
                     progress: bool) -> None:
    """``recsys recommend --engine ray``: the driver reads the ids (not the models) and writes the parts."""
    from recsys.campaigns import parse_shard, shard_mask
    from recsys.engines import BundleSource, require_ray
    from recsys.engines.picks import bundle_customer_ids, recommend_ray
    from recsys.registry import Registry

    try:
        require_ray()
        shard_t = parse_shard(shard)
        version = Registry().resolve(model)
        ids = customers if customers is not None else bundle_customer_ids(version.path)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    if shard_t is not None:
        ids = [c for c, keep in zip(ids, shard_mask(ids, shard_t), strict=True) if keep]
    with cluster(address, workers, progress) as info:
        source = BundleSource.of(version.path, via=default_via(address, via))
        typer.echo(f"ray: workers read {version.tag} from {source.describe()}", err=True)
        summary = recommend_ray(info, source, ids, n, out, new_only=new_only, batch=batch,
                                model_version=version.tag)
    typer.echo(f"wrote {summary.rows:,} rows for {len(ids):,} customers from {version.tag} → {out}/ "
               f"({summary.seconds:.1f}s, {summary.per_second:,.0f} customers/s, ray, "
               f"{info.workers} workers)")
