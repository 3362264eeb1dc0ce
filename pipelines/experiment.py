"""``recsys kpis [--experiment NAME]``: campaign KPIs, or an experiment's read-out per arm.

Thin: ``recsys.experiments.read_experiment`` computes; this prints one table (values, 95 % intervals,
the difference to the control with its interval and p-value, the verdict), names the test behind every
metric, and ends with the decision the promotion gate would take.  Without ``--experiment`` it is the
campaign KPI table of ``pipelines/campaign.py``, unchanged.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines._common import fail
from recsys.exceptions import RecsysError

DEFAULT_STORE = "sqlite:///data/state.db"
_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
_LABEL = {"ctr": "CTR", "conversion": "conversion", "revenue_per_customer": "revenue/customer", "aov": "AOV"}


def _fmt(metric: str, v: float | None, *, diff: bool = False) -> str:
    if v is None:
        return "-"
    if metric in ("ctr", "conversion"):
        return f"{100 * v:+.2f}pp" if diff else f"{100 * v:.2f}%"
    return f"{v:+,.2f}" if diff else f"{v:,.2f}"


def _ci(metric: str, lo: float | None, hi: float | None, *, diff: bool = False) -> str:
    if lo is None or hi is None:
        return "-"
    return f"[{_fmt(metric, lo, diff=diff)}, {_fmt(metric, hi, diff=diff)}]"


def readout_lines(result: Any) -> list[str]:
    """The read-out as text lines (the table ``recsys kpis --experiment`` prints)."""
    r = result.readout
    cfg = result.config
    head = (f"experiment {result.name} ({result.kind}) · control arm: {r.control} · primary metric: "
            f"{r.primary_metric} · alpha {r.alpha:g} (two-sided)")
    lines = [head]
    if result.kind == "service":
        lines.append(f"  models: control {cfg.get('control_model')} · challenger {cfg.get('challenger_model')} "
                     f"({100 * float(cfg.get('share', 0)):g} %) · attribution window {cfg.get('attribution_hours')}h "
                     f"· CTR's impressions: {result.impressions_are}")
    else:
        lines.append(f"  campaign {cfg.get('campaign')} · window {cfg.get('window_days')} days after the send · "
                     f"holdout {100 * float(cfg.get('holdout_share') or 0):g} % · units: every assigned customer "
                     "(emailed or not)")
    lines.append(f"  {'arm':<12} {'model':<24} {'customers':>9}  {'metric':<16} {'value':>10} {'95% CI':>22} "
                 f"{'diff vs control':>15} {'95% CI of diff':>24} {'p':>8}  verdict")
    for row in r.table.iter_rows(named=True):
        m = row["metric"]
        p = "-" if row["p_value"] is None else f"{row['p_value']:.3g}"
        rel = "" if row["relative"] is None else f" ({100 * row['relative']:+.1f}%)"
        verdict = row["verdict"] + (f": {row['note']}" if row["note"] else "")
        lines.append(f"  {row['arm']:<12} {str(row['model_version'] or '-')[:24]:<24} {row['customers']:>9,}  "
                     f"{_LABEL[m]:<16} {_fmt(m, row['value']):>10} {_ci(m, row['low'], row['high']):>22} "
                     f"{(_fmt(m, row['diff'], diff=True) + rel) if row['diff'] is not None else '-':>15} "
                     f"{_ci(m, row['diff_low'], row['diff_high'], diff=True):>24} {p:>8}  {verdict}")
    from recsys.experiments import METRIC_TESTS

    lines.append("  tests: " + "; ".join(f"{_LABEL[k]}: {v}" for k, v in METRIC_TESTS.items()))
    lines.append("  customers are the unit of every test; a comparison with fewer than "
                 f"{cfg.get('min_customers', 100)} customers or {cfg.get('min_events', 10)} counted events per arm "
                 "is 'too small to call'")
    for note in r.notes:
        lines.append(f"  note: {note}")
    for arm in r.treatments:
        d = r.decide(arm)
        lines.append(f"  decision for {arm}: {'WINS' if d.wins else 'does not win'} — {d.reason}")
    return lines


def kpis_cmd(
    store: Annotated[str, typer.Option(help="Store URI holding events and the send log.")] = DEFAULT_STORE,
    since: Annotated[datetime | None, typer.Option(formats=_DATE_FORMATS,
                                                   help="Only sends/events from here.")] = None,
    window_days: Annotated[float, typer.Option(min=0.0, help="Purchases within N days of the send count.")]
        = 14.0,
    out: Annotated[Path | None, typer.Option("--out", "-o",
                                             help="Also write the table (.parquet/.csv/.json).")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="Read out this experiment instead (service A/B or campaign arms): per arm CTR, conversion, "
             "revenue per customer and AOV with 95 % intervals and a test against the control arm.")] = None,
    control: Annotated[str | None, typer.Option(help="With --experiment: compare against this arm.")] = None,
    alpha: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="With --experiment: the test level "
                                                                        "(default: the experiment's).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Relationship KPIs of this shop's "
                                                "purchases instead: repeat rate, churn, AOV, CLV, cohorts.")] = None,
    data_path: Annotated[str | None, typer.Option(help="With --dataset: override its location.")] = None,
    period: Annotated[str, typer.Option(help="With --dataset: week, month or quarter.")] = "month",
    by: Annotated[str | None, typer.Option(help="With --dataset: per value_segment or lifecycle.")] = None,
    churn_days: Annotated[float, typer.Option(min=1.0, help="With --dataset: no order for this many days "
                                                            "= churned.")] = 90.0,
) -> None:
    """Per campaign and model version: recipients, CTR, conversion, revenue, AOV and uplift vs holdout;
    with --experiment, the experiment's read-out per arm; with --dataset, the relationship KPIs (repeat-purchase
    rate, retention by first-purchase cohort, churn rate, AOV, average CLV) per period and segment."""
    if dataset is not None:
        from pipelines.relationship import relationship_report

        if by not in (None, "value_segment", "lifecycle"):
            raise typer.BadParameter(f"must be value_segment or lifecycle, got {by!r}", param_hint="--by")
        relationship_report(dataset=dataset, data_path=data_path, period=period, by=by, churn_days=churn_days,
                            out=out)
        return
    if experiment is None:
        from pipelines.campaign import kpis_cmd as campaign_kpis

        campaign_kpis(store=store, since=since, window_days=window_days, out=out)
        return
    from recsys.experiments import read_experiment
    from recsys.store import Store

    try:
        result = read_experiment(Store(store), experiment, alpha=alpha, control=control)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    for line in readout_lines(result):
        typer.echo(line)
    if out is not None:
        from pipelines.campaign import _write_atomic

        _write_atomic(result.readout.table, out)
        typer.echo(f"wrote {result.readout.table.height} rows → {out}")


def promote_on_evidence(name: str, *, tag: str | None, store: str, metric: str) -> None:
    """``recsys models promote --online-evidence NAME``: promote the experiment's challenger model only
    when the read-out's decision says it wins; otherwise exit 1 with the reason.  Online evidence replaces
    the offline holdout comparison (it is the better evidence), so the registry is told ``force``."""
    from recsys.experiments import read_experiment
    from recsys.registry import Registry
    from recsys.store import Store

    try:
        result = read_experiment(Store(store), name)
        registry = Registry()
        if result.kind == "service":
            arm, model = "challenger", str(result.config.get("challenger_model") or result.config.get("challenger"))
            if tag is not None and registry.resolve(tag).tag != registry.resolve(model).tag:
                raise fail(f"TAG: experiment {name}'s challenger is {model}, not {tag}")
        else:
            if tag is None:
                raise fail(f"TAG: experiment {name} compares campaign arms; name the model tag of the arm to promote")
            wanted = registry.resolve(tag).tag
            arms = [a for a in result.readout.treatments
                    if wanted in (result.readout.table.filter(pl_arm(a))["model_version"].drop_nulls().to_list())]
            if not arms:
                raise fail(f"TAG: no arm of experiment {name} was served by {wanted}")
            arm, model = arms[0], wanted
        decision = result.readout.decide(arm)
        for line in readout_lines(result):
            typer.echo(line)
        if not decision.wins:
            raise fail(f"refusing to promote {model}: {decision.reason}")
        v = registry.promote(model, metric=metric, force=True)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"promoted {v.tag} on online evidence of {name}: {decision.reason}")


def pl_arm(arm: str) -> Any:
    import polars as pl

    return pl.col("arm") == arm
