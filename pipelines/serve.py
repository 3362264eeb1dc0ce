"""``recsys serve``: start the BentoML service on the promoted (or a given) model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipelines._common import PROJECT_ROOT


def serve_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="'promoted', 'latest' or a tag.")] = "promoted",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 3000,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    store: Annotated[str, typer.Option(help="Event store URI (sqlite:///… or postgresql://…).")] =
        "sqlite:///data/state.db",
    api_key: Annotated[str | None, typer.Option(envvar="RECSYS_API_KEY", help="Key for /events and admin.")] = None,
    placements: Annotated[Path, typer.Option(help="Business rules per placement.")] =
        PROJECT_ROOT / "configs" / "placements.yaml",
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve /recommend, /complements, /similar, /popular, /events on HOST:PORT (bentoml serve underneath)."""
    env = dict(os.environ)
    env.update({
        "RECSYS_MODEL": model, "RECSYS_STORE_URI": store, "RECSYS_PLACEMENTS": str(placements),
        "BENTOML_DO_NOT_TRACK": "True", "OPENBLAS_NUM_THREADS": "1",
    })
    if api_key:
        env["RECSYS_API_KEY"] = api_key
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:CrossSell", "--host", host,
           "--port", str(port), "--working-dir", str(PROJECT_ROOT)]
    if workers != 1:
        env["RECSYS_WORKERS"] = str(workers)
    typer.echo(f"serving {model} on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    raise typer.Exit(subprocess.call(cmd, env=env, cwd=PROJECT_ROOT))
