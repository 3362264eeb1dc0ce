"""The Ray plumbing every distributed job shares: joining or starting a cluster, shipping data-only
folders (a bundle, a fitted model) and frames to the workers, and running blocks through a pool of
stateful workers with their outputs handed back in block order.

Why blocks in order: each job's output must equal the local run row for row, so block ``k`` is the
``k``-th slice of the customers the local run would have walked through, and the driver writes (or
concatenates) the blocks in that order.  Ray retries a block whose worker died (actors restart,
their tasks are retried); a block's output is one value produced at the end of its call, so a worker
killed half-way leaves nothing behind and the retry's output is the only one.  The driver still checks
that no block comes back twice.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

from recsys.exceptions import ConfigError, RecsysError

__all__ = [
    "BLOCK",
    "BlockWorker",
    "BundleSource",
    "ClusterInfo",
    "EngineError",
    "RayUnavailableError",
    "check_engine",
    "get_frames",
    "put_frames",
    "ray_cluster",
    "require_ray",
    "run_blocks",
]

log = logging.getLogger(__name__)

#: Column carrying the block number through a job (dropped from every output).
BLOCK = "_block"
#: Seconds an unreachable ``--address`` may take before the job gives up.
CONNECT_TIMEOUT = 30.0
#: Environment of every worker: one BLAS thread (implicit asks for it) and polars sized to one CPU,
#: since each worker holds one CPU of the cluster.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1",
              "BENTOML_DO_NOT_TRACK": "True"}


class EngineError(RecsysError, RuntimeError):
    """A distributed job cannot start or finish: no cluster at the address, too few CPUs, a lost block."""


class RayUnavailableError(EngineError, ImportError):
    """``--engine ray`` without Ray installed."""


def require_ray() -> ModuleType:
    """Import Ray (and Ray Data), or say which extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the jobs need Ray Data, not only Ray core
    except ImportError as exc:
        raise RayUnavailableError(
            f"--engine ray needs Ray Data, which is not installed ({exc.name or exc}): "
            "pip install -e '.[ray]' (or pip install 'crosssell[ray]')") from None
    return ray


def check_engine(engine: str) -> str:
    """Validate the ``engine`` option (``local`` or ``ray``) at the edge; returns it."""
    if engine not in ("local", "ray"):
        raise ConfigError(f"The 'engine' option must be one of local, ray. Got {engine!r} instead.")
    return engine


@dataclass(frozen=True)
class ClusterInfo:
    """The cluster a job runs on: its address, dashboard (``None``: not running), CPUs and workers."""

    address: str
    dashboard: str | None
    cpus: int
    workers: int
    started: bool  # this process started it (a local cluster) rather than joined one


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` to probe for an address, or ``None`` for ``auto`` (Ray finds it itself)."""
    if address == "auto":
        return None
    rest, default = (address[len("ray://"):], 10001) if address.startswith("ray://") else (address, 6379)
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", str(default))
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError(f"The '--address' option must be auto, host:port or ray://host:port. "
                          f"Got {address!r} instead.") from None


def _probe(address: str, timeout: float) -> None:
    """Fail fast (and name the address) when nothing listens there; Ray itself would retry for minutes."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as exc:
        raise EngineError(f"no Ray cluster reachable at --address {address} ({exc.strerror or exc}); "
                          "start one with `ray start --head`, or leave --address out to start a local "
                          "one") from None


@contextlib.contextmanager
def ray_cluster(address: str | None = None, *, workers: int | None = None, cpus: int | None = None,
                progress: bool = False, timeout: float = CONNECT_TIMEOUT) -> Iterator[ClusterInfo]:
    """Join the cluster at ``address`` (``auto``, ``host:port``, ``ray://host:10001``), or start a local
    one with this machine's CPUs when ``address`` is ``None``; disconnect (and stop what was started)
    on exit.  A Ray already initialised in this process (a test's cluster, a notebook) is used as is.

    Parameters
    ----------
    workers
        Worker processes per job (one CPU each); default every CPU of the cluster.
    cpus
        CPUs of a local cluster (default: this machine's).
    progress
        Ray Data's progress bars (off: a quiet log).
    timeout
        Seconds to wait for an unreachable address before ``EngineError`` names it.
    """
    ray = require_ray()
    from ray.data import DataContext

    started = owned = False
    if not ray.is_initialized():
        env = {"env_vars": dict(WORKER_ENV)}
        t0 = time.perf_counter()
        if address is None:
            ray.init(num_cpus=cpus or os.cpu_count() or 1, runtime_env=env, log_to_driver=False,
                     _node_ip_address="127.0.0.1", configure_logging=False)
            started = True
        else:
            _probe(address, min(timeout, 10.0))
            try:
                ray.init(address=address, runtime_env=env, log_to_driver=False, configure_logging=False)
            except (ConnectionError, TimeoutError) as exc:
                raise EngineError(f"cannot join the Ray cluster at --address {address}: {exc}") from None
            if time.perf_counter() - t0 > timeout:
                log.warning("joining %s took %.0fs", address, time.perf_counter() - t0)
        owned = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = workers or cpus
        if n > cpus:
            raise EngineError(f"--workers {n} needs {n} CPUs but the cluster has {cpus}")
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.print_on_execution_start = progress
        rt = ray.get_runtime_context()
        info = ClusterInfo(address=str(rt.gcs_address), dashboard=_dashboard(ray), cpus=cpus, workers=n,
                           started=started)
        yield info
    finally:
        if owned:
            ray.shutdown()


def _dashboard(ray: ModuleType) -> str | None:
    try:
        from ray._private.worker import get_dashboard_url  # no public accessor after init

        url = get_dashboard_url()
    except Exception:  # noqa: BLE001 - no dashboard is not an error
        return None
    return f"http://{url}" if url and not url.startswith("http") else (url or None)


@dataclass(frozen=True)
class BundleSource:
    """How workers reach a data-only folder (a model bundle, a fitted segment model).

    ``path``: a folder or URI every node can read — a local path on a one-machine cluster, a shared
    folder (NFS) on a real one, or any URI ``pyarrow.fs`` opens (``s3://…``, ``gs://…``, ``hdfs://…``),
    copied to a local temporary folder first.  ``ref``: the folder's files shipped through Ray's object
    store (no shared storage needed; the files, never pickled objects, travel).
    """

    path: str | None = None
    ref: Any = None

    @classmethod
    def of(cls, folder: str | Path, *, via: str = "path") -> BundleSource:
        """``via="path"``: read ``folder`` in place; ``"object-store"``: ship its files; a URI: read there."""
        if via == "path":
            return cls(path=str(folder))
        if via == "object-store":
            ray = require_ray()
            root = Path(folder)
            files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
            return cls(ref=ray.put(files))
        return cls(path=via)

    @contextlib.contextmanager
    def local(self) -> Iterator[Path]:
        """A local folder holding the files (temporary unless the path is already local)."""
        if self.path is not None and "://" not in self.path:
            yield Path(self.path)
            return
        tmp = Path(tempfile.mkdtemp(prefix="recsys-ship-"))
        try:
            if self.ref is not None:
                files: Mapping[str, bytes] = require_ray().get(self.ref)
                for rel, data in files.items():
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / rel).write_bytes(data)
            else:
                import pyarrow.fs as pafs

                pafs.copy_files(str(self.path), str(tmp / "copy"), destination_filesystem=pafs.LocalFileSystem())
                tmp = tmp / "copy"
            yield tmp
        finally:
            shutil.rmtree(tmp if tmp.name != "copy" else tmp.parent, ignore_errors=True)

    def describe(self) -> str:
        """Where the workers read the files from, for the CLI's log line."""
        return "Ray's object store" if self.ref is not None else str(self.path)


def put_frames(frames: Mapping[str, pl.DataFrame]) -> Any:
    """Frames into the object store as Arrow IPC bytes (data, not pickled objects)."""
    ray = require_ray()
    out = {}
    for name, frame in frames.items():
        buf = io.BytesIO()
        frame.write_ipc(buf, compression="lz4")
        out[name] = buf.getvalue()
    return ray.put(out)


def get_frames(ref: Any) -> dict[str, pl.DataFrame]:
    """Frames stored by ``put_frames``, read back from their Arrow IPC bytes."""
    return {name: pl.read_ipc(io.BytesIO(data)) for name, data in require_ray().get(ref).items()}


class BlockWorker:
    """Base of the per-worker classes: ``__call__`` gets a batch of blocks (``BLOCK`` column + inputs),
    calls ``block(frame)`` once per block and returns the outputs with their block number."""

    def block(self, frame: pl.DataFrame) -> pl.DataFrame:  # pragma: no cover - abstract
        """One block's output frame; subclasses implement it."""
        raise NotImplementedError

    def __call__(self, batch: Any) -> Any:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        parts = [self.block(part.drop(BLOCK)).with_columns(pl.lit(key[0], pl.Int32).alias(BLOCK))
                 for key, part in frame.group_by(BLOCK, maintain_order=True)]
        return pl.concat(parts).to_arrow()


def run_blocks(blocks: Sequence[pl.DataFrame], worker: type[BlockWorker], *, workers: int,
               ctor_kwargs: Mapping[str, Any] | None = None) -> Iterator[tuple[int, pl.DataFrame]]:
    """Run every block through a pool of ``workers`` stateful ``worker`` instances (one CPU each);
    yield ``(block number, output)`` in block order (several pieces of one block follow each other).

    Raises
    ------
    EngineError
        A block came back after a later one, i.e. twice: the output would hold duplicates.
    """
    ray = require_ray()
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().execution_options.preserve_order = True
    tables = [b.with_columns(pl.lit(k, pl.Int32).alias(BLOCK)).to_arrow() for k, b in enumerate(blocks)]
    if not tables:
        return
    ds = ray.data.from_arrow(tables).map_batches(
        worker, batch_size=None, batch_format="pyarrow", compute=ActorPoolStrategy(size=workers), num_cpus=1,
        fn_constructor_kwargs=dict(ctor_kwargs or {}),
    )
    done: set[int] = set()
    current = -1
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        for key, part in frame.group_by(BLOCK, maintain_order=True):
            k = int(key[0])
            if k != current:
                if k in done or k < current:
                    raise EngineError(f"block {k} came back twice; refusing to write duplicate rows")
                done.add(current)
                current = k
            yield k, part.drop(BLOCK)
