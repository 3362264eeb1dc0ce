"""``read_experiment``: the read-out of a named experiment from the store, with the choices it was started with.

Why one function for both kinds: ``recsys kpis --experiment``, ``recsys models promote --online-evidence``
and the dashboard must agree on the units, the control arm, the primary metric and the level; they read
them from the experiment's registered config (``ExperimentLog.register``), overridable only explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recsys.exceptions import ConfigError
from recsys.experiments._log import ExperimentLog
from recsys.experiments._readout import Readout, readout
from recsys.store import Store

__all__ = ["ExperimentResult", "read_experiment"]


@dataclass
class ExperimentResult:
    """What ``read_experiment`` returns: the experiment's registered config and its read-out."""

    name: str
    kind: str  #: "service" | "campaign"
    config: dict[str, Any]
    readout: Readout
    impressions_are: str  #: what CTR's denominator counts
    started_at: Any = None


def read_experiment(store: Store, name: str, *, alpha: float | None = None, control: str | None = None,
                    primary_metric: str | None = None) -> ExperimentResult:
    """The read-out of experiment ``name`` (service: exposures and attributed events; campaign:
    assignments and purchases within its window).

    Raises
    ------
    ConfigError
        No experiment of that name in the store (the message lists the known ones).
    """
    log = ExperimentLog(store)
    info = log.experiment(name)
    if info is None:
        known = ", ".join(log.names()) or "none yet"
        raise ConfigError(f"The 'experiment' parameter must name an experiment in the store {store.uri}. "
                          f"Got {name!r} instead (known: {known}).")
    cfg = info["config"]
    if info["kind"] == "service":
        units, impressions = log.units(name)
        ctl = control or "control"
        arms = ["control", "challenger"]
    else:
        units = log.campaign_units(name, window_days=float(cfg.get("window_days", 14.0)))
        impressions = "impression events (source = campaign)"
        arms = [*cfg.get("arms", []), *(["holdout"] if cfg.get("holdout_share") else [])]
        ctl = control or cfg.get("control") or (arms[0] if arms else "control")
    if ctl not in arms:
        raise ConfigError(f"The 'control' parameter must be one of the arms {arms}. Got {ctl!r} instead.")
    out = readout(units, experiment=name, control=ctl, arms=[ctl, *[a for a in arms if a != ctl]],
                  primary_metric=primary_metric or cfg.get("primary_metric", "conversion"),
                  alpha=alpha if alpha is not None else float(cfg.get("alpha", 0.05)),
                  min_units=int(cfg.get("min_customers", 100)), min_events=int(cfg.get("min_events", 10)))
    return ExperimentResult(name, info["kind"], cfg, out, impressions, info["started_at"])
