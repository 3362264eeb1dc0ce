"""Run ``bentoml serve`` so that stopping ``recsys serve`` / ``recsys demo`` stops every process it started.

Why: ``bentoml serve`` is a supervisor with worker processes under it.  ``recsys serve`` used to wait on
it with ``subprocess.call``: a SIGTERM (a scheduler, ``kill``, systemd) killed ``recsys`` and left the
supervisor and its workers serving, holding the port, until someone found them.  Here the service runs
in its own process group; SIGTERM or SIGINT (Ctrl+C) to ``recsys`` is forwarded to the whole group, and
whatever has not exited after a grace period is killed, so the port is free within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

__all__ = ["alive", "bentoml_serve_cmd", "descendants", "start_service", "stop_service", "stop_on_signals"]

GRACE_SECONDS = 6.0  # BentoML's workers finish in-flight requests; the 10 s promise leaves room for the kill


def bentoml_serve_cmd(*, host: str, port: int, working_dir: Path) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", "serving.service:CrossSell", "--host", host,
            "--port", str(port), "--working-dir", str(working_dir)]


def start_service(cmd: list[str], *, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start the service in a new process group (its own session), so one signal reaches all of it."""
    return subprocess.Popen(cmd, env=dict(env), cwd=cwd, start_new_session=True)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_service(proc: subprocess.Popen[bytes], *, grace: float = GRACE_SECONDS) -> int:
    """SIGTERM to the service's process group, SIGKILL to what is left after ``grace`` seconds.

    The group is signalled even when the supervisor has already exited: its workers may outlive it.
    """
    _signal_group(proc, signal.SIGTERM)
    try:
        code = proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        code = proc.wait(timeout=5)
    _signal_group(proc, signal.SIGKILL)  # stragglers of an exited supervisor (no-op when none are left)
    return code


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT, already) into ``KeyboardInterrupt`` in the main thread, so the caller's
    ``finally`` runs and stops the service; the previous handlers come back afterwards."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, grandchildren …), read from ``/proc`` (Linux).

    Why here: the supervisor's workers are what must be gone after a stop, and what the tests and the
    serving bench inspect; one reader of the process tree serves all of them.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
