"""``--engine local|ray`` for the batch commands: the shared options and the cluster the Ray path joins.

Thin: the commands keep their local path as it was; with ``--engine ray`` they open a cluster here
(``recsys.engines.ray_cluster``), print where it is, and call the library's Ray job.  Ray is imported
only on that path, so the local commands work without the extra installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipelines._common import fail
from recsys.exceptions import RecsysError

if TYPE_CHECKING:
    from recsys.dataset import Dataset
    from recsys.engines import ClusterInfo

EngineOpt = Annotated[str, typer.Option(
    "--engine", help="local: this process (default) · ray: a Ray cluster (pip install -e '.[ray]').")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="With --engine ray: join this cluster (auto, host:6379 or ray://host:10001); "
                      "default: start a local one with this machine's CPUs.")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", min=1, help="With --engine ray: worker processes, one CPU each (default: every CPU of "
                             "the cluster); each loads the bundle once.")]
ShipOpt = Annotated[str | None, typer.Option(
    "--bundle-via", help="With --engine ray: how workers get the bundle: 'path' (the model store's folder; "
                         "every node must see it, e.g. a shared BENTOML_HOME), 'object-store' (shipped "
                         "through Ray; the default with --address) or a URI every node can read "
                         "(s3://…, gs://…, a shared folder).")]


def check_engine_flags(engine: str, *, address: str | None, workers: int | None, via: str | None) -> None:
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"must be local or ray, got {engine!r}", param_hint="--engine")
    if engine == "local" and (address or via):
        raise typer.BadParameter("--address and --bundle-via need --engine ray", param_hint="--engine")


def default_via(address: str | None, via: str | None) -> str:
    """A local cluster reads the model store in place; a joined one gets the files through Ray."""
    return via or ("path" if address is None else "object-store")


@contextlib.contextmanager
def cluster(address: str | None, workers: int | None, progress: bool) -> Iterator[ClusterInfo]:
    """The Ray cluster for one command, its address and dashboard printed; errors as one clean line."""
    from recsys.engines import ray_cluster

    try:
        with ray_cluster(address, workers=workers, progress=progress) as info:
            where = "started locally" if info.started else "joined"
            dashboard = info.dashboard or "not running (pip install 'ray[default]')"
            typer.echo(f"ray: {where} {info.address} · {info.cpus} CPUs · {info.workers} workers · "
                       f"dashboard {dashboard}", err=True)
            yield info
    except RecsysError as exc:
        raise fail(str(exc)) from None


@contextlib.contextmanager
def ray_picker(engine: str, address: str | None, workers: int | None, progress: bool, bundle_dir: Path,
               via: str | None, data: Dataset) -> Iterator[Any]:
    """``None`` for the local engine; else a ``RayPicker`` on a cluster open for the whole command."""
    if engine != "ray":
        yield None
        return
    from recsys.engines import BundleSource
    from recsys.engines.campaigns import RayPicker

    with cluster(address, workers, progress) as info:
        source = BundleSource.of(bundle_dir, via=default_via(address, via))
        typer.echo(f"ray: workers read the bundle from {source.describe()}", err=True)
        yield RayPicker(info, source, data)
