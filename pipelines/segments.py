"""``recsys segments``: RFM value segments, lifecycle stages, churn risk and expected value per customer.

Thin: load → fit churn and CLV on a time split and print their holdout numbers → refit on the latest
window → write the per-customer table → print counts and revenue share per segment.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from tqdm.auto import tqdm

from pipelines._common import echo_report, fail, load, log
from pipelines._engine import AddressOpt, EngineOpt, WorkersOpt, check_engine_flags, cluster
from recsys.exceptions import RecsysError


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:+.1f} %"  # noqa: PLR0124 - NaN check


def write_table(table: pl.DataFrame, out: Path) -> None:
    """Parquet or CSV by suffix, written to a temp file beside ``out`` and renamed into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if out.suffix == ".csv":
            table.write_csv(tmp)
        else:
            table.write_parquet(tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def print_summary(summary: pl.DataFrame, by: str) -> None:
    has_risk, has_clv = "mean_churn_risk" in summary.columns, "expected_clv" in summary.columns
    head = f"{by:<16} {'customers':>10} {'share':>8} {'revenue':>14} {'rev share':>10}"
    head += f" {'churn risk':>11}" if has_risk else ""
    head += f" {'exp. value':>14}" if has_clv else ""
    typer.echo("\n" + head)
    for row in summary.iter_rows(named=True):
        line = (f"{row[by] or '-':<16} {row['customers']:>10,} {100 * row['customer_share']:>7.1f}% "
                f"{row['revenue']:>14,.0f} {100 * row['revenue_share']:>9.1f}%")
        if has_risk:
            risk = row["mean_churn_risk"]
            line += f" {'-' if risk is None else f'{risk:.2f}':>11}"
        if has_clv:
            line += f" {row['expected_clv'] or 0:>14,.0f}"
        typer.echo(line)


def segments_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name or YAML path.")] = "synthetic",
    data_path: Annotated[str | None, typer.Option("--data-path", help="Override the dataset folder/URI.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .parquet or .csv.")] = Path("segments.parquet"),
    horizon_days: Annotated[float, typer.Option("--horizon-days", min=1,
                                                help="Churn = no order in this many days.")] = 30.0,
    clv_horizon_days: Annotated[float, typer.Option("--clv-horizon-days", min=1,
                                                    help="Expected value = spend over this many days.")] = 90.0,
    lenient: Annotated[bool, typer.Option("--lenient", help="Drop bad rows instead of failing.")] = False,
    metrics_out: Annotated[Path | None, typer.Option("--metrics-out", help="Also write holdout metrics JSON.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Segment every customer (RFM, lifecycle, churn risk, expected value); models checked on a time split.

    With --engine ray the per-customer scoring (features, churn risk, expected value) runs on a Ray
    cluster; fitting and the RFM quantiles, which need every customer, stay here.
    """
    from recsys.segments import CLVModel, ChurnModel, holdout_cutoffs, purchase_lines, segments, summarize

    check_engine_flags(engine, address=address, workers=workers, via=None)
    if out.suffix not in (".parquet", ".csv"):
        raise typer.BadParameter(f"must end in .parquet or .csv, got {out.name!r}", param_hint="--out")
    try:
        ds, report, load_secs = load(dataset, data_path, lenient)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    echo_report(report)
    log.info("loaded %s rows from %s in %.2fs", f"{ds.interactions.height:,}", ds.source, load_secs)
    t0 = time.perf_counter()
    lines = purchase_lines(ds)
    if lines.height == 0:
        raise fail(f"{ds.source}: no purchases to segment")
    metrics: dict[str, Any] = {"dataset": ds.source}
    models: dict[str, Any] = {"churn": None, "clv": None}
    specs = [("churn", ChurnModel(horizon_days=horizon_days)), ("clv", CLVModel(horizon_days=clv_horizon_days))]
    bar = tqdm(total=2 * len(specs) + 1, desc="segments", unit="step", disable=not progress, leave=False)
    for name, model in specs:
        fit_at, eval_at = holdout_cutoffs(lines, model.horizon_days)
        try:
            bar.set_postfix_str(f"{name}: time split")
            metrics[name] = model.fit(ds, cutoff=fit_at).evaluate(ds, cutoff=eval_at)
            metrics[name]["trained_on"] = [w.isoformat() for w in model.windows_]
            bar.update()
            bar.set_postfix_str(f"{name}: refit on the latest window")
            models[name] = type(model)(**model.get_params()).fit(ds)
        except RecsysError as exc:
            metrics[name] = {"skipped": str(exc)}
            bar.update()
        bar.update()
    bar.set_postfix_str("table")
    if engine == "ray":
        from recsys.engines.segments import segments_ray

        with cluster(address, workers, progress) as info:
            table = segments_ray(info, ds, churn=models["churn"], clv=models["clv"])
    else:
        table = segments(ds, churn=models["churn"], clv=models["clv"])
    bar.update()
    bar.close()

    churn_m, clv_m = metrics["churn"], metrics["clv"]
    if "skipped" in churn_m:
        typer.echo(f"churn risk: skipped — {churn_m['skipped']}")
    else:
        typer.echo(
            f"churn risk (no order in {horizon_days:g} days), holdout from {churn_m['cutoff'][:10]}: "
            f"AUC {churn_m['auc']:.3f} (days since last order alone {churn_m['auc_recency']:.3f}), "
            f"Brier {churn_m['brier']:.3f}, base rate {100 * churn_m['base_rate']:.1f} %, {churn_m['n']:,} customers"
        )
    if "skipped" in clv_m:
        typer.echo(f"expected value: skipped — {clv_m['skipped']}")
    else:
        typer.echo(
            f"expected value (spend in {clv_m['horizon_days']:g} days), holdout from {clv_m['cutoff'][:10]}: "
            f"MAE {clv_m['mae']:,.1f} vs {clv_m['mae_naive']:,.1f} naive (last period's spend), "
            f"RMSE {clv_m['rmse']:,.1f} vs {clv_m['rmse_naive']:,.1f}; total {_pct(clv_m['rel_error_total'])} "
            f"vs {_pct(clv_m['rel_error_total_naive'])} naive; {clv_m['n']:,} customers"
        )
    write_table(table, out)
    typer.echo(f"wrote {table.height:,} customers → {out}")
    for by in ("value_segment", "lifecycle"):
        print_summary(summarize(table, by), by)
    if metrics_out:
        metrics_out.parent.mkdir(parents=True, exist_ok=True)
        metrics_out.write_text(json.dumps(metrics, indent=2, default=str))
    typer.echo(f"\nsegmented {table.height:,} customers in {time.perf_counter() - t0:.1f}s (+{load_secs:.1f}s load)")
