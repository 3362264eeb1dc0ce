"""``recsys models list | promote | rollback``: the registry from a data scientist's terminal."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines._common import fail
from recsys.exceptions import RecsysError

app = typer.Typer(help="List, promote and roll back trained versions.", no_args_is_help=True)


@app.command("list")
def list_cmd(metric: Annotated[str, typer.Option(help="Headline metric to show.")] = "all.map") -> None:
    """Versions, newest first, with their holdout metrics; * marks the promoted one."""
    from recsys.registry import Registry

    reg = Registry()
    promoted = reg.promoted()
    versions = reg.versions()
    if not versions:
        typer.echo("no trained versions yet: run `recsys train`")
        return
    typer.echo(f"  {'tag':<42} {'created':<20} {metric:>9} {'new.map':>9} {'category.map':>13}  dataset")
    for v in versions:
        mark = "*" if promoted and promoted.tag == v.tag else " "
        f = lambda m: "-" if v.metric(m) is None else f"{v.metric(m):.4f}"  # noqa: E731
        typer.echo(f"{mark} {v.tag:<42} {v.created:%Y-%m-%d %H:%M:%S}  {f(metric):>9} {f('new.map'):>9} "
                   f"{f('category.map'):>13}  {v.metadata.get('dataset', '')}")


@app.command()
def promote(
    tag: Annotated[str | None, typer.Argument(
        help="crosssell:<version>, <version> or 'latest' (with --online-evidence: default the challenger).")] = None,
    metric: Annotated[str, typer.Option(help="Holdout metric compared with the promoted version.")] = "all.map",
    force: Annotated[bool, typer.Option("--force", help="Promote even if the metric is worse.")] = False,
    online_evidence: Annotated[str | None, typer.Option(
        "--online-evidence", help="Promote the challenger of this experiment only if it wins on the experiment's "
                                  "primary metric (significant, large enough sample); replaces the holdout check.")]
        = None,
    store: Annotated[str, typer.Option(help="With --online-evidence: the store holding the experiment.")]
        = "sqlite:///data/state.db",
) -> None:
    """Make TAG the serving version — refused when its holdout metric is worse than the current one, or,
    with --online-evidence NAME, unless the experiment's challenger won."""
    from recsys.registry import Registry

    if online_evidence is not None:
        from pipelines.experiment import promote_on_evidence

        promote_on_evidence(online_evidence, tag=tag, store=store, metric=metric)
        return
    if tag is None:
        raise fail("TAG: which version to promote (or --online-evidence NAME)")
    try:
        v = Registry().promote(tag, metric=metric, force=force)
    except RecsysError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"promoted {v.tag} ({metric} {v.metric(metric)})")


@app.command()
def rollback() -> None:
    """Re-promote the previously promoted version."""
    from recsys.registry import Registry

    try:
        v = Registry().rollback()
    except RecsysError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"rolled back to {v.tag}")
