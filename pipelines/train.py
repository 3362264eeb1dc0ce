"""``recsys train``: load → validate → split → fit → evaluate → save a versioned bundle."""

from __future__ import annotations

import gc
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from pipelines._common import PROJECT_ROOT, echo_report, fail, load, log
from recsys.exceptions import RecsysError

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "train.yaml"


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def print_metrics(metrics: pl.DataFrame, k: int) -> None:
    """One table: every model and baseline side by side, and its ratio to buy-again-then-popular."""
    wide = metrics.pivot(on="variant", index="model", values="map")
    base = wide.filter(pl.col("model") == "baseline:buy_again_then_popular")
    ref = base["all"][0] if base.height and "all" in base.columns else None
    typer.echo(f"\n{'model':<40} {'MAP@'+str(k)+' all':>12} {'new':>9} {'category':>9} {'× buy-again':>12}")
    for row in wide.iter_rows(named=True):
        ratio = f"{row['all'] / ref:.2f}" if ref and row.get("all") is not None else "-"
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        typer.echo(f"{row['model']:<40} {fmt(row.get('all')):>12} {fmt(row.get('new')):>9} "
                   f"{fmt(row.get('category')):>9} {ratio:>12}")


def _without_erased(ds, store: str | None):  # type: ignore[no-untyped-def]
    """Drop customers erased in the store, even if the source data still has them; say how many."""
    from recsys.privacy import drop_erased
    from recsys.store import Store

    if store is None:
        default = PROJECT_ROOT / "data" / "state.db"
        if not default.exists():
            return ds
        store = f"sqlite:///{default}"
    ds, n = drop_erased(ds, Store(store).erased_hashes())
    typer.echo(f"excluded {n} erased customer(s) recorded in the store", err=True)
    return ds


def train_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training YAML.")] = DEFAULT_CONFIG,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset name or YAML path.")] = None,
    data_path: Annotated[str | None, typer.Option("--data-path", help="Override the dataset folder/URI.")] = None,
    cutoff: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Test window start.")] = None,
    holdout_days: Annotated[float | None, typer.Option("--holdout-days", help="Test = last N days.")] = None,
    lenient: Annotated[bool, typer.Option("--lenient", help="Drop bad rows instead of failing.")] = False,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Store the bundle in the model store.")] = True,
    promote: Annotated[bool, typer.Option("--promote", help="Promote if not worse than the current one.")] = False,
    metrics_out: Annotated[Path | None, typer.Option("--metrics-out", help="Also write metrics JSON.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    store: Annotated[str | None, typer.Option(help="Store URI whose erasures training honours "
                                               "(default: data/state.db when it exists).")] = None,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Evaluate on the temporal holdout first; "
                                           "--no-eval is the fast nightly retrain (not promotable unforced).")] = True,
    refit: Annotated[bool, typer.Option("--refit/--no-refit", help="After evaluating, refit on all data up to the "
                                        "newest purchase (default); --no-refit saves the evaluated "
                                        "components.")] = True,
) -> None:
    """Train every component on a temporal split, evaluate against baselines, save a bundle."""
    from recsys.config import load_train_config
    from recsys.registry import Registry
    from recsys.training import train

    try:
        cfg = load_train_config(
            config if config.exists() or config != DEFAULT_CONFIG else None,
            dataset=dataset, data_path=data_path, lenient=lenient or None,
            cutoff=cutoff.date() if isinstance(cutoff, datetime) else cutoff, holdout_days=holdout_days,
        )
        ds, report, secs = load(cfg.dataset, cfg.data_path, cfg.lenient)
        echo_report(report)
        ds = _without_erased(ds, store)
        log.info("stage %-22s %7.2fs  (%s rows from %s)", "load+validate", secs, f"{ds.interactions.height:,}", ds.source)
        result = train(ds, cfg, progress=progress, evaluate=evaluate, refit=refit)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    info = result.info
    if evaluate:
        print_metrics(result.metrics, cfg.k)
        typer.echo(f"\ncandidate recall (test purchases among candidates): {info['candidate_recall']:.3f} "
                   f"with {info['candidates_per_customer']} candidates/customer")
        typer.echo(f"evaluated on purchases from {info['evaluation_cutoff']}; "
                   + ("bundle refitted on all data" if info["refit"] else "bundle = the evaluated components"))
    else:
        typer.echo("not evaluated (--no-eval): the bundle cannot be promoted over an evaluated one without --force")
    typer.echo(f"bundle fitted on purchases up to {info['fitted_until']} (data ends {info['data_end']})")
    typer.echo("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in info["timings"].items()))
    typer.echo(f"trained in {info['train_seconds']:.1f}s (+{secs:.1f}s load)")
    if metrics_out:
        metrics_out.parent.mkdir(parents=True, exist_ok=True)
        metrics_out.write_text(json.dumps({"metrics": result.metrics.to_dicts(), "info": info}, indent=2, default=str))
    if not save:
        return
    source = ds.source
    del ds  # the bundle holds what it needs: at H&M size the interactions are ~4 GB the save need not share
    gc.collect()
    registry = Registry()
    tag = registry.save(result.bundle.write_into, metadata={
        "headline": result.bundle.manifest["headline"], "dataset": source,
        "created": result.bundle.manifest["created"], "k": cfg.k, "evaluated": evaluate,
        "evaluation_cutoff": info["evaluation_cutoff"], "data_end": info["data_end"],
    })
    path = registry.get(tag).path
    typer.echo(f"saved {tag} ({dir_size(path) / 1e6:.1f} MB) → {path}")
    if promote:
        try:
            registry.promote(tag, metric=cfg.promote_metric)
            typer.echo(f"promoted {tag}")
        except RecsysError as exc:
            typer.echo(f"not promoted: {exc}")
