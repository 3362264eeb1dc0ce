"""``recsys campaign run``, ``recsys audience`` and ``recsys kpis``: email campaigns from the terminal.

Thin on purpose: parse flags, load the campaign file, bundle, data set and store, call
``recsys.campaigns``, print.  Flags are a contract with schedulers (``--shard i/n`` fans a run out
over machines; ``--run-id`` makes retries idempotent): keep them stable.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer

from pipelines._common import PROJECT_ROOT, echo_report, fail, load
from pipelines._engine import AddressOpt, EngineOpt, ShipOpt, check_engine_flags, ray_picker
from recsys.exceptions import RecsysError

if TYPE_CHECKING:
    from recsys.store import Store

app = typer.Typer(help="Consent-aware email-pick campaigns.", no_args_is_help=True)

DEFAULT_STORE = "sqlite:///data/state.db"
DEFAULT_PLACEMENTS = PROJECT_ROOT / "configs" / "placements.yaml"
_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


def _open_store(uri: str, *, dry_run: bool) -> Store | None:
    """The store, or ``None`` for a dry run against a SQLite file that does not exist (never create it)."""
    from recsys.store import Store

    if dry_run and uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if path != ":memory:" and not Path(path).exists():
            typer.echo(f"note: store {path} does not exist; dry run without consent overrides, suppression, "
                       "erasures or send log", err=True)
            return None
    return Store(uri)


def _write_atomic(frame: pl.DataFrame, out: Path) -> None:
    from recsys._io import atomic_write, atomic_write_text

    if out.suffix == ".json":
        atomic_write_text(out, frame.write_json())
    else:
        atomic_write(out, frame.write_csv if out.suffix == ".csv" else frame.write_parquet)


@app.command("run")
def run_cmd(
    configs: Annotated[list[Path], typer.Argument(
        help="Campaign YAML file(s) (configs/campaigns/*.yaml); several run in order against one loaded "
             "bundle, data set and index, each logging its sends before the next (caps apply across them).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Tag, 'promoted' or 'latest'.")] = "promoted",
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Picks file (.parquet or .csv); summary JSON beside it.  With several campaign "
                            "files it must contain {campaign}.")]
        = Path("picks.parquet"),
    shard: Annotated[str | None, typer.Option(help="Run shard i of n (1-based), e.g. 2/8.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write the picks file but nothing to the store.")]
        = False,
    run_id: Annotated[str | None, typer.Option(
        "--run-id", help="Idempotency key (default <campaign>-<date>; with several campaign files, "
                         "<run-id>:<campaign>).")] = None,
    store: Annotated[str, typer.Option(help="Store URI: consent, suppression, erasures, send log.")]
        = DEFAULT_STORE,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d",
                                                help="Dataset name or YAML (default: the bundle's).")] = None,
    data_path: Annotated[str | None, typer.Option(help="Override the dataset location.")] = None,
    now: Annotated[datetime | None, typer.Option(
        formats=_DATE_FORMATS, help="Reference time (default: midnight after the last purchase).")] = None,
    placements: Annotated[Path, typer.Option(help="Business rules per placement.")] = DEFAULT_PLACEMENTS,
    batch_size: Annotated[int, typer.Option(min=1, help="Customers per vectorised batch.")] = 4000,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Threads picking batches at once (default: the machine's cores, at most 4); with "
                    "--engine ray, Ray worker processes (default: every CPU of the cluster).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    bundle_via: ShipOpt = None,
) -> None:
    """Pick items for campaigns' consenting audiences, export them and log the sends.

    With --engine ray the picks run on a Ray cluster; audience, consent, caps, holdout, export and the
    send log stay here (one transaction per campaign), so the files and the log equal the local run's.
    """
    from recsys.bundle import load_bundle
    from recsys.campaigns import load_campaign, parse_shard, run_campaigns, summary_lines, summary_path
    from recsys.rules import load_placements

    if len(configs) > 1 and "{campaign}" not in str(out):
        raise fail(f"--out: with {len(configs)} campaign files the picks path must contain {{campaign}} "
                   f"(e.g. picks-{{campaign}}.parquet); got {out}")
    check_engine_flags(engine, address=address, workers=workers, via=bundle_via)
    threads = workers or max(1, min(4, os.cpu_count() or 1))
    try:
        campaigns = [load_campaign(c) for c in configs]
        shard_t = parse_shard(shard)
        rules = load_placements(placements)
        version, bundle = load_bundle(model)
        cfg = bundle.manifest.get("config", {})
        name = dataset or cfg.get("dataset", "synthetic")
        location = data_path if (data_path or dataset) else cfg.get("data_path")
        data, report, secs = load(name, location, bool(cfg.get("lenient", False)))
        echo_report(report)
        typer.echo(f"loaded {data.source} ({data.interactions.height:,} interactions) in {secs:.1f}s",
                   err=True)
        st = _open_store(store, dry_run=dry_run)
        with ray_picker(engine, address, workers, progress, version.path, bundle_via, data) as picker:
            for run in run_campaigns(campaigns, bundle, data, placements=rules, store=st, out=out,
                                     dry_run=dry_run, run_id=run_id, shard=shard_t, now=now,
                                     model_version=version.tag, batch_size=batch_size, progress=progress,
                                     workers=threads, notify=lambda line: typer.echo(line, err=True),
                                     picker=picker):
                for line in summary_lines(run.summary):
                    typer.echo(line)
                typer.echo(f"wrote {run.picks.height:,} picks → {run.out} · summary → {summary_path(run.out)}")
    except RecsysError as exc:
        raise fail(str(exc)) from None
    if dry_run:
        typer.echo("dry run: nothing written to the store")


def audience_cmd(
    category: Annotated[str | None, typer.Option("--category", "-c", help="Target category, e.g. belts.")]
        = None,
    item: Annotated[str | None, typer.Option("--item", help="Target item id (its category's audience, "
                                             "sharpened by what is bought with it).")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="How many customers to keep.")] = 5000,
    model: Annotated[str, typer.Option("--model", "-m", help="Tag, 'promoted' or 'latest'.")] = "promoted",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the list (.parquet, .csv or .json).")]
        = None,
    now: Annotated[datetime | None, typer.Option(formats=_DATE_FORMATS,
                                                 help="Reference time (default: the bundle's).")] = None,
    show: Annotated[int, typer.Option(help="Rows to print.")] = 10,
    store: Annotated[str, typer.Option(help="Store URI: consent, suppression, erasures.")] = DEFAULT_STORE,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d",
                                                help="Dataset name or YAML (default: the bundle's).")] = None,
    data_path: Annotated[str | None, typer.Option(help="Override the dataset location.")] = None,
    ignore_consent: Annotated[bool, typer.Option(
        "--ignore-consent", help="Rank everyone (e.g. for on-site targeting): no consent, suppression or "
                                 "erasure filter.")] = False,
) -> None:
    """Customers most likely to buy from CATEGORY (or ITEM) soon (affinity × complement graph × recency;
    for an item also × what is bought with it), among those who may be mailed (email consent, not
    suppressed, not erased) unless --ignore-consent."""
    from recsys.bundle import load_bundle
    from recsys.campaigns import category_propensity, item_propensity

    if (category is None) == (item is None):
        raise typer.BadParameter("give exactly one of --category or --item", param_hint="--category/--item")
    try:
        version, bundle = load_bundle(model)
        if item is not None:
            ranked = item_propensity(bundle, item, n=n if ignore_consent else None, now=now)
        else:
            ranked = category_propensity(bundle, category, n=n if ignore_consent else None, now=now)  # type: ignore[arg-type]
        if not ignore_consent:
            ranked = _reachable(ranked, bundle, n=n, store=store, dataset=dataset, data_path=data_path)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    target = f"item {item!r}" if item is not None else repr(category)
    typer.echo(f"top {ranked.height:,} customers for {target} from {version.tag}")
    with_item = "bought_with" in ranked.columns
    typer.echo(f"  {'#':>5}  {'customer':<14} {'score':>9} {'affinity':>9} {'compl.':>7}"
               + (f" {'b.with':>7}" if with_item else "") + "  trigger")
    for r in ranked.head(show).iter_rows(named=True):
        trig = (f"{r['trigger_category']} ({r['trigger_item_id']}, {r['trigger_ts']:%Y-%m-%d})"
                if r["trigger_category"] else "-")
        if with_item and r["bought_with_item_id"]:
            trig += f"; bought with {r['bought_with_item_id']}"
        typer.echo(f"  {r['rank']:>5}  {r['customer_id']:<14} {r['score']:>9.4f} {r['affinity']:>9.4f} "
                   f"{r['complement']:>7.2f}" + (f" {r['bought_with']:>7.2f}" if with_item else "") + f"  {trig}")
    if out is not None:
        _write_atomic(ranked, out)
        typer.echo(f"wrote {ranked.height:,} customers → {out}")


def _reachable(ranked: pl.DataFrame, bundle: object, *, n: int, store: str, dataset: str | None,
               data_path: str | None) -> pl.DataFrame:
    """``ranked`` without the customers the contact rules leave out (recsys.consent.keep_reachable), with
    a line saying how many and why."""
    from recsys.consent import keep_reachable

    cfg = bundle.manifest.get("config", {})  # type: ignore[attr-defined]
    location = data_path if (data_path or dataset) else cfg.get("data_path")
    data, report, _ = load(dataset or cfg.get("dataset", "synthetic"), location, bool(cfg.get("lenient", False)))
    echo_report(report)
    kept, left = keep_reachable(ranked, data, _open_store(store, dry_run=True), n=n)
    typer.echo("left out (may not be mailed): " + ", ".join(f"{k} {v:,}" for k, v in left.items()), err=True)
    return kept


def _echo_feedback(store: Store, since: datetime | None) -> None:
    """"Not interested" dismissals per source (recsys.feedback), when there are any."""
    from recsys.feedback import feedback_counts

    counts = feedback_counts(store, since=since)
    if counts.height == 0:
        return
    typer.echo(f"not interested: {int(counts['events'].sum()):,} dismissals ({int(counts['items'].sum()):,} items, "
               f"{int(counts['categories'].sum()):,} categories)")
    for r in counts.iter_rows(named=True):
        typer.echo(f"  {str(r['source'] or '(no source)')[:40]:<40} {r['events']:>6,} by {r['customers']:,} customers")


def kpis_cmd(
    store: Annotated[str, typer.Option(help="Store URI holding events and the send log.")] = DEFAULT_STORE,
    since: Annotated[datetime | None, typer.Option(formats=_DATE_FORMATS,
                                                   help="Only sends/events from here.")] = None,
    window_days: Annotated[float, typer.Option(min=0.0, help="Purchases within N days of the send count.")]
        = 14.0,
    out: Annotated[Path | None, typer.Option("--out", "-o",
                                             help="Also write the table (.parquet/.csv/.json).")] = None,
) -> None:
    """Per campaign and model version: recipients, CTR, conversion, revenue, AOV and uplift vs holdout."""
    from recsys.campaigns import campaign_kpis
    from recsys.store import Store

    try:
        st = Store(store)
        table = campaign_kpis(st, since=since, window_days=window_days)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    _echo_feedback(st, since)
    if table.height == 0:
        typer.echo("no sends or attributed events in the store yet")
        return

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def num(v: float | int | None, fmt: str = ",.2f") -> str:
        return "-" if v is None else format(v, fmt)

    typer.echo(f"{'kind':<8} {'source':<28} {'model':<34} {'recip.':>7} {'ctrl':>5} {'CTR':>7} {'conv.':>7} "
               f"{'rev/recip':>10} {'AOV':>9} {'treated':>8} {'control':>8} {'uplift':>8} {'not int.':>8}")
    for r in table.iter_rows(named=True):
        uplift = "-" if r["uplift"] is None else f"{100 * r['uplift']:+.1f}pp"
        typer.echo(
            f"{r['kind']:<8} {str(r['source'])[:28]:<28} {str(r['model_version'])[:34]:<34} "
            f"{num(r['recipients'], ',d'):>7} {num(r['controls'], ',d'):>5} {pct(r['ctr']):>7} "
            f"{pct(r['conversion']):>7} {num(r['revenue_per_recipient']):>10} {num(r['aov']):>9} "
            f"{pct(r['treated_purchase_rate']):>8} {pct(r['control_purchase_rate']):>8} "
            f"{uplift:>8} {num(r['not_interested'], ',d'):>8}"
        )
    if out is not None:
        _write_atomic(table, out)
        typer.echo(f"wrote {table.height} rows → {out}")
