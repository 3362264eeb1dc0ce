"""An online experiment's configuration (``configs/experiments/*.yaml`` or ``recsys serve --challenger``).

Why fixed up front and stored with the experiment: the primary metric, the level and the attribution
window must be chosen before looking at the outcome (choosing them afterwards is how null experiments
become "wins"), and the read-out (``recsys kpis --experiment``) and the promotion gate must read the
same choices the service used.  The service records its config in the store when it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsys._yaml import read_yaml
from recsys.exceptions import ConfigError

__all__ = ["ServiceExperiment", "PrimaryMetric", "experiment_from_dict", "load_experiment"]

PrimaryMetric = Literal["ctr", "conversion", "revenue_per_customer", "aov"]
Name = str


class ServiceExperiment(BaseModel):
    """A two-arm experiment of the website service: ``control`` model vs ``challenger`` model.

    ``share`` of the customers (and anonymous sessions) go to the challenger, chosen by a hash of
    (``salt`` or ``name``, customer id): sticky across requests, workers and restarts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)
    control: str = Field("promoted", min_length=1, description="Model tag, 'promoted' or 'latest'.")
    challenger: str = Field(min_length=1, description="Model tag of the challenger.")
    share: float = Field(0.2, gt=0.0, lt=1.0, description="Share of customers served by the challenger.")
    salt: str | None = Field(None, description="Hash salt (default: the name); change it to reshuffle.")
    #: A click or purchase counts for the arm that showed the item when it comes this soon after.
    attribution_hours: float = Field(24.0, gt=0.0)
    primary_metric: PrimaryMetric = "conversion"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    #: Below this many customers (or ``min_events`` counted events) per arm: "too small to call".
    min_customers: int = Field(100, ge=2)
    min_events: int = Field(10, ge=1)

    @property
    def hash_salt(self) -> str:
        """The salt of the arm hash: ``salt`` if set, else the experiment's name."""
        return self.salt or self.name

    @property
    def arms(self) -> list[tuple[str, float]]:
        """``(arm, share)`` pairs for ``assign_arms``: control gets ``1 - share``, challenger ``share``."""
        return [("control", 1.0 - self.share), ("challenger", self.share)]


def _errors(exc: ValidationError) -> str:
    return "\n".join(f"  {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())


def experiment_from_dict(raw: Any, *, source: str | Path = "experiment config") -> ServiceExperiment:
    """Validate a mapping; errors name ``source`` and the field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: an experiment config must be a mapping, got {type(raw).__name__}")
    try:
        return ServiceExperiment.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid experiment config:\n{_errors(exc)}") from None


def load_experiment(path: str | Path) -> ServiceExperiment:
    """Read and validate ``configs/experiments/NAME.yaml``."""
    return experiment_from_dict(read_yaml(Path(path), "experiment config"), source=Path(path))
