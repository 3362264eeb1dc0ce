"""``recsys kpis --dataset NAME``: the relationship KPIs of a shop's purchases, per period and per segment.

Repeat-purchase rate, returning share, churn rate, AOV and average CLV per calendar period
(``recsys.segments.relationship_kpis``) and the first-purchase cohorts' retention; with ``--by`` the same
per value segment or lifecycle stage (today's segment).  Thin: parse, call ``recsys.segments``, print.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer

from pipelines._common import echo_report, fail, load
from recsys.exceptions import RecsysError


def relationship_report(*, dataset: str, data_path: str | None, period: str, by: str | None, churn_days: float,
                        out: Path | None, last: int = 12) -> None:
    from recsys.segments import cohort_retention, relationship_kpis, segments

    try:
        data, report, _ = load(dataset, data_path, False)
        echo_report(report)
        seg = segments(data) if by else None
        table = relationship_kpis(data, period=period, churn_days=churn_days,  # type: ignore[arg-type]
                                  segments=seg, by=by)
        cohorts = cohort_retention(data, period=period)  # type: ignore[arg-type]
    except RecsysError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"relationship KPIs of {data.source} per {period} (churn: no order for {churn_days:g} days)"
               + (f", by {by} (today's)" if by else ""))
    head = f"{'period':<10} " + (f"{by:<16} " if by else "")
    typer.echo(head + f"{'buyers':>7} {'new':>6} {'return.':>8} {'repeat':>7} {'churn':>6} {'orders':>7} "
               f"{'revenue':>11} {'AOV':>8} {'avg CLV':>8}")
    shown = table.filter(pl.col("period").is_in(table["period"].unique().sort().tail(last).implode()))

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    for r in shown.iter_rows(named=True):
        typer.echo(f"{r['period']!s:<10} " + (f"{str(r[by])[:16]:<16} " if by else "")
                   + f"{r['customers']:>7,.0f} {r['new_customers']:>6,.0f} {pct(r['returning_share']):>8} "
                   f"{pct(r['repeat_purchase_rate']):>7} {pct(r['churn_rate']):>6} {r['orders']:>7,.0f} "
                   f"{r['revenue']:>11,.2f} {r['aov'] or 0:>8,.2f} {r['avg_clv'] or 0:>8,.2f}")
    wide = cohorts.filter(pl.col("offset") <= 6).pivot(on="offset", index=["cohort", "cohort_size"],
                                                        values="retention").sort("cohort").tail(last)
    typer.echo(f"retention by first-purchase cohort ({period}s after the first; share of the cohort buying)")
    offsets = [c for c in wide.columns if c not in ("cohort", "cohort_size")]
    typer.echo(f"{'cohort':<10} {'size':>6} " + " ".join(f"{'+' + c:>6}" for c in offsets))
    for r in wide.iter_rows(named=True):
        typer.echo(f"{r['cohort']!s:<10} {r['cohort_size']:>6,} "
                   + " ".join(f"{pct(r[c]):>6}" if r[c] is not None else f"{'':>6}" for c in offsets))
    if out is not None:
        from pipelines.campaign import _write_atomic

        _write_atomic(table, out)
        typer.echo(f"wrote {table.height} rows → {out}")
