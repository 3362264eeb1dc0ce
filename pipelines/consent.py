"""``recsys consent import|show``: a CRM's consent list into the store, and the audit trail out of it.

Thin on purpose: parse flags, call ``recsys.consent`` / ``recsys.store``, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines._common import fail
from recsys.exceptions import RecsysError

app = typer.Typer(help="Consent and suppression from outside (CRM lists), with the audit history.",
                  no_args_is_help=True)

DEFAULT_STORE = "sqlite:///data/state.db"


@app.command("import")
def import_cmd(
    source: Annotated[str, typer.Argument(help="A .csv/.csv.gz/.parquet file, or a sqlite:///… / postgresql://… "
                                               "URI (with --table or --query).  Columns: customer_id, channel, "
                                               "granted, ts, source (optional).")],
    table: Annotated[str | None, typer.Option(help="Database table holding the records.")] = None,
    query: Annotated[str | None, typer.Option(help="SQL query returning the records.")] = None,
    store: Annotated[str, typer.Option(help="Store URI the records go to.")] = DEFAULT_STORE,
    source_name: Annotated[str | None, typer.Option(
        "--source", help="Fills empty 'source' values (default: the file name or uri#table).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and count, write nothing.")] = False,
) -> None:
    """Import consent records: all rows or none (one transaction); latest ts wins, history kept."""
    from recsys.consent import import_consent
    from recsys.store import Store

    try:
        st = Store(store) if not dry_run or not store.startswith("sqlite:///") or \
            Path(store[len("sqlite:///"):]).exists() else None
        report = import_consent(st, source, table=table, query=query, source_name=source_name, dry_run=dry_run)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    verb = "would import" if dry_run else "imported"
    typer.echo(f"{verb} {report.rows - report.skipped_erased:,} consent records from {report.origin} "
               f"({report.customers:,} customers; {report.granted:,} grants, {report.withdrawn:,} withdrawals)"
               + ("" if dry_run else f" as batch {report.batch}"))
    if report.skipped_erased:
        typer.echo(f"skipped {report.skipped_erased:,} records of erased customers")
    if report.ignored_columns:
        typer.echo(f"ignored columns: {', '.join(report.ignored_columns)}")


@app.command("show")
def show_cmd(
    customer_ids: Annotated[list[str], typer.Argument(help="Customer id(s).")],
    store: Annotated[str, typer.Option(help="Store URI.")] = DEFAULT_STORE,
) -> None:
    """Current consent per channel and every record received (the audit trail)."""
    from recsys.store import Store

    try:
        st = Store(store)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    state = st.consent_state(customer_ids)
    history = st.consent_history(customer_ids)
    suppressed = st.suppressed()
    for cid in customer_ids:
        typer.echo(f"{cid}{'  (suppressed)' if cid in suppressed else ''}")
        mine = state.filter(state["customer_id"] == cid)
        if mine.height == 0:
            typer.echo("  no consent record in the store (the data set's flag or default applies)")
        for r in mine.iter_rows(named=True):
            typer.echo(f"  {r['channel']:<6} {'granted' if r['granted'] else 'withdrawn':<9} as of {r['ts']:%Y-%m-%d %H:%M} "
                       f"(source {r['source']})")
        for r in history.filter(history["customer_id"] == cid).iter_rows(named=True):
            typer.echo(f"    history: {r['recorded_at']:%Y-%m-%d %H:%M} {r['channel']:<6} "
                       f"{'granted' if r['granted'] else 'withdrawn':<9} ts {r['ts']:%Y-%m-%d %H:%M} "
                       f"source {r['source']} batch {r['batch']}")
