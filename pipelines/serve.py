"""``recsys serve``: start the BentoML service on the promoted (or a given) model."""

from __future__ import annotations

import os
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
    api_key: Annotated[str | None, typer.Option(
        "--api-key", "--admin-key", envvar=["RECSYS_API_KEY", "RECSYS_ADMIN_KEY"],
        help="The admin key (x-api-key header): every route, /admin/* (erase, consent, reload) included.")] = None,
    public_key: Annotated[str | None, typer.Option(
        envvar="RECSYS_PUBLIC_KEY",
        help="The public key a web page may hold: reads and storefront events only.")] = None,
    redis: Annotated[str | None, typer.Option(
        envvar="RECSYS_REDIS_URL", help="redis://… to nudge other workers at once (they poll the store anyway).")] = None,
    unknown_items: Annotated[str, typer.Option(
        envvar="RECSYS_UNKNOWN_ITEMS", help="Events naming items not in the catalogue: 'reject' (422) or 'accept' "
                                            "(stored, flagged, never folded in).")] = "reject",
    max_body_bytes: Annotated[int, typer.Option(
        envvar="RECSYS_MAX_BODY_BYTES", help="Larger request bodies are refused with 413.")] = 1_000_000,
    placements: Annotated[Path, typer.Option(help="Business rules per placement.")] =
        PROJECT_ROOT / "configs" / "placements.yaml",
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    challenger: Annotated[str | None, typer.Option(
        help="A/B test: serve this model tag to --share of the customers (sticky by customer or session id).")]
        = None,
    share: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Share of customers served by the challenger (default 0.2).")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="Experiment name for `recsys kpis --experiment` (default <model>-vs-<challenger>).")] = None,
    experiment_config: Annotated[Path | None, typer.Option(
        help="Experiment YAML (configs/experiments/*.yaml); the flags above override its fields.")] = None,
    attribution_hours: Annotated[float | None, typer.Option(
        min=0.0, help="Clicks and purchases count for the arm that showed the item this many hours after "
                      "(default 24).")] = None,
) -> None:
    """Serve /recommend, /complements, /similar, /popular, /events on HOST:PORT (bentoml serve underneath)."""
    env = dict(os.environ)
    env.update({
        "RECSYS_MODEL": model, "RECSYS_STORE_URI": store, "RECSYS_PLACEMENTS": str(placements),
        "BENTOML_DO_NOT_TRACK": "True", "OPENBLAS_NUM_THREADS": "1",
    })
    env.update({"RECSYS_UNKNOWN_ITEMS": unknown_items, "RECSYS_MAX_BODY_BYTES": str(max_body_bytes)})
    for name, value in (("RECSYS_API_KEY", api_key), ("RECSYS_PUBLIC_KEY", public_key), ("RECSYS_REDIS_URL", redis)):
        if value:
            env[name] = value
    if experiment_config is not None or challenger:
        from recsys.exceptions import RecsysError
        from serving.experiment import config_from_env

        exp_env = {"RECSYS_EXPERIMENT_CONFIG": str(experiment_config.resolve()) if experiment_config else "",
                   "RECSYS_CHALLENGER": challenger or "", "RECSYS_CHALLENGER_SHARE": "" if share is None else str(share),
                   "RECSYS_EXPERIMENT": experiment or "",
                   "RECSYS_ATTRIBUTION_HOURS": "" if attribution_hours is None else str(attribution_hours)}
        try:  # checked here, so a typo fails the command instead of every worker
            cfg = config_from_env(model, exp_env)
        except (RecsysError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        env.update({k: v for k, v in exp_env.items() if v})
        if cfg is not None:
            typer.echo(f"experiment {cfg.name}: {model} (control) vs {cfg.challenger} ({100 * cfg.share:g} % of "
                       f"customers); read it with `recsys kpis --experiment {cfg.name}`")
    from serving.process import bentoml_serve_cmd, start_service, stop_on_signals, stop_service

    if workers != 1:
        env["RECSYS_WORKERS"] = str(workers)
    typer.echo(f"serving {model} on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    # SIGTERM or Ctrl+C stops the supervisor and every worker (their own process group), freeing the port.
    with stop_on_signals():
        proc = start_service(bentoml_serve_cmd(host=host, port=port, working_dir=PROJECT_ROOT), env=env,
                             cwd=PROJECT_ROOT)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            code = 0
        finally:
            stop_service(proc)
    raise typer.Exit(code)
