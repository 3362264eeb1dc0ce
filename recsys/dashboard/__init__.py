"""The marketer's dashboard data: segments, lifecycle flow, campaigns, KPI trends, experiments, complements.

Why in the library: the page (serving/dashboard.py, ``GET /dashboard``) only draws; what it shows is
computed here from the served bundle, the store and the shop's configs with the same functions the CLI
uses (``recsys segments``, ``recsys campaign run --dry-run``, ``recsys kpis --experiment``), so a number
on the page is the number a command prints.

    >>> board = Dashboard(campaigns=sorted(Path("configs/campaigns").glob("*.yaml")),
    ...                   overrides="configs/complements_overrides.yaml")  # doctest: +SKIP
    >>> board.panel("segments", bundle=bundle, model_version="crosssell:v1", store=store,
    ...             placements=placements)["value_segments"]  # doctest: +SKIP
"""

from __future__ import annotations

from recsys.dashboard._board import PANELS, Dashboard, Panel, dataset_from_bundle
from recsys.dashboard._outcomes import campaigns_panel, experiments_panel, kpi_trends
from recsys.dashboard._panels import NOT_YET, complements_panel, lifecycle_panel, segments_panel

__all__ = [
    "NOT_YET",
    "PANELS",
    "Dashboard",
    "Panel",
    "campaigns_panel",
    "complements_panel",
    "dataset_from_bundle",
    "experiments_panel",
    "kpi_trends",
    "lifecycle_panel",
    "segments_panel",
]
