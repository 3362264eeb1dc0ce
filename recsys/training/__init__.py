"""Training: evaluate on a temporal holdout, refit on everything, bundle (see ``_pipeline``)."""

from __future__ import annotations

from recsys.training._pipeline import TrainResult, fit_generators, train
from recsys.training._rankers import LabelWindow, candidate_recall, label_windows

__all__ = ["LabelWindow", "TrainResult", "candidate_recall", "fit_generators", "label_windows", "train"]
