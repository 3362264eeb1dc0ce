"""Online experiments: assign customers to arms, log what each arm showed and what came of it, read the outcome.

Why a package of its own: offline MAP decides which model *might* be better; only customers' clicks
and purchases decide which one *is*.  The service (two models, serving/experiment.py) and campaigns
(strategies or models plus a holdout, ``recsys.campaigns``) randomise customers with the same sticky
hash (``assign_arms``), record exposures, outcomes and assignments in the store (``ExperimentLog``), and
read them with the same statistics (``readout``: per-arm 95 % intervals, a stated test per metric, "too
small to call"), which ``recsys kpis --experiment`` prints and ``recsys models promote --online-evidence``
obeys.

    >>> result = read_experiment(Store("sqlite:///data/state.db"), "als-vs-ranker")  # doctest: +SKIP
    >>> result.readout.decide("challenger")  # doctest: +SKIP
    Decision(arm='challenger', wins=True, reason='conversion: challenger better than control by …')
"""

from __future__ import annotations

from recsys.experiments._assign import assign_arms, session_subject
from recsys.experiments._config import ServiceExperiment, experiment_from_dict, load_experiment
from recsys.experiments._log import ATTRIBUTED_EVENTS, ExperimentLog
from recsys.experiments._read import ExperimentResult, read_experiment
from recsys.experiments._readout import METRICS, UNIT_SCHEMA, Decision, Readout, readout, simulate_units
from recsys.experiments._stats import (
    METRIC_TESTS,
    Comparison,
    Estimate,
    compare_means,
    compare_proportions,
    compare_ratios,
)

__all__ = [
    "ATTRIBUTED_EVENTS",
    "Comparison",
    "Decision",
    "Estimate",
    "ExperimentLog",
    "ExperimentResult",
    "METRICS",
    "METRIC_TESTS",
    "Readout",
    "ServiceExperiment",
    "UNIT_SCHEMA",
    "assign_arms",
    "compare_means",
    "compare_proportions",
    "compare_ratios",
    "experiment_from_dict",
    "load_experiment",
    "read_experiment",
    "readout",
    "session_subject",
    "simulate_units",
]
