"""Shared CLI plumbing: dataset resolution, error reporting, logging, timing lines."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import typer

from recsys.data import Dataset, ValidationReport, load_dataset, load_dataset_config
from recsys.exceptions import RecsysError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATASETS = PROJECT_ROOT / "configs" / "datasets"

log = logging.getLogger("recsys")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def dataset_config_path(dataset: str) -> Path:
    """A dataset name (``completejourney``) or a path to a YAML file."""
    p = Path(dataset)
    if p.suffix in (".yaml", ".yml"):
        return p
    candidate = DATASETS / f"{dataset}.yaml"
    if not candidate.exists():
        known = ", ".join(sorted(f.stem for f in DATASETS.glob("*.yaml")))
        raise typer.BadParameter(f"unknown dataset {dataset!r}; known: {known} (or give a YAML path)",
                                 param_hint="--dataset")
    return candidate


def load(dataset: str, data_path: str | None, lenient: bool) -> tuple[Dataset, ValidationReport, float]:
    cfg = load_dataset_config(dataset_config_path(dataset))
    t0 = time.perf_counter()
    ds, report = load_dataset(cfg, location=data_path, lenient=lenient)
    return ds, report, time.perf_counter() - t0


def echo_report(report: ValidationReport) -> None:
    for line in report.lines():
        typer.echo(f"  note: {line}", err=True)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Log one timing line per pipeline stage."""
    t0 = time.perf_counter()
    yield
    log.info("stage %-12s %7.2fs", name, time.perf_counter() - t0)


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def run_guarded(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Turn our own errors into a one-line message and exit code 2 (no traceback for bad input)."""
    try:
        return fn(*args, **kwargs)
    except RecsysError as exc:
        raise fail(str(exc)) from None
