"""``recsys erase``: forget customers everywhere (store, every model version, running services)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines._common import fail
from recsys.exceptions import RecsysError


def erase_cmd(
    customer_ids: Annotated[list[str] | None, typer.Argument(help="Customer ids to erase.")] = None,
    from_file: Annotated[Path | None, typer.Option("--from-file", help="One customer id per line.")] = None,
    store: Annotated[str, typer.Option(help="Store URI (events, send log, consent, erasures).")] =
        "sqlite:///data/state.db",
) -> None:
    """Erase customers from the store and every stored model; record only a hash and the time."""
    from recsys.privacy import erase_everywhere
    from recsys.registry import Registry
    from recsys.store import Store

    ids = list(customer_ids or [])
    if from_file is not None:
        if not from_file.exists():
            raise typer.BadParameter(f"file not found: {from_file}", param_hint="--from-file")
        ids += [line.strip() for line in from_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise typer.BadParameter("give customer ids or --from-file", param_hint="CUSTOMER_IDS")
    try:
        report = erase_everywhere(ids, Store(store), Registry())
    except RecsysError as exc:
        raise fail(str(exc)) from None
    rows = ", ".join(f"{k} {v}" for k, v in report.store_rows.items())
    typer.echo(f"erased {report.requested - len(report.unknown)} of {report.requested} customers: store rows ({rows}); "
               f"{report.history_rows_removed} history rows removed from {len(report.bundles_rewritten)} model "
               f"version(s); running services forget them within seconds")
    if report.unknown:
        typer.echo(f"unknown (nothing held, erasure recorded anyway): {len(report.unknown)}")
