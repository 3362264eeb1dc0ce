"""``recsys report TAG``: the HTML + Markdown report of one trained bundle, for people."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines._common import fail
from recsys.exceptions import RecsysError


def report_cmd(
    tag: Annotated[str, typer.Argument(help="crosssell:<version>, <version>, 'latest' or 'promoted'.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Parent folder; the report goes into OUT/<version>/.")
    ] = Path("reports"),
) -> None:
    """Write report.html (self-contained) and report.md with its charts for TAG."""
    from recsys.bundle import load_bundle
    from recsys.reporting import write_report

    try:
        version, bundle = load_bundle(tag)
        paths = write_report(bundle, out, tag=version.tag)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"report of {version.tag}:")
    typer.echo(f"  html      {paths.html}")
    typer.echo(f"  markdown  {paths.markdown}")
    for image in paths.images:
        typer.echo(f"  image     {image}")
