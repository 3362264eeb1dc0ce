"""Typed per-placement business rules, validated from ``configs/placements.yaml``.

Why pydantic with ``extra="forbid"``: these rules are edited by merchandisers and marketers, not
only engineers.  A typo such as ``max_per_categroy: 2`` must stop the deployment with the file and
the field named, instead of silently serving lists without the cap.  Every rule is optional and its
default is "rule off" (except ``in_stock_only``), so an empty placement is a valid placement.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recsys._yaml import read_yaml
from recsys.exceptions import ConfigError

__all__ = [
    "Diversity",
    "FallbackStep",
    "UpsellBand",
    "Boost",
    "Pin",
    "Block",
    "PlacementRules",
    "load_placements",
    "as_naive_utc",
]

Diversity = Literal["none", "round_robin", "mmr"]
FallbackStep = Literal["category_trending", "popular"]
_DEFAULT_FALLBACK: list[FallbackStep] = ["category_trending", "popular"]


def as_naive_utc(ts: datetime | date) -> datetime:
    """A naive datetime in UTC: the canonical ``ts`` columns are naive, so every comparison uses naive."""
    if not isinstance(ts, datetime):
        return datetime(ts.year, ts.month, ts.day)
    if ts.tzinfo is not None:
        return ts.astimezone(timezone.utc).replace(tzinfo=None)
    return ts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Validity(_Strict):
    """A campaign window.  Both ends are inclusive; a bare date as ``valid_to`` covers that whole day.

    Missing ends are open: no ``valid_from`` means "since always", no ``valid_to`` means "forever".
    """

    valid_from: datetime | date | None = None
    valid_to: datetime | date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _Validity:
        lo, hi = self._bounds()
        if lo is not None and hi is not None and hi <= lo:
            raise ValueError(f"valid_to ({self.valid_to}) must not be before valid_from ({self.valid_from})")
        return self

    def _bounds(self) -> tuple[datetime | None, datetime | None]:
        """``[lo, hi)`` as naive UTC datetimes (``hi`` exclusive after expanding a bare date to its day)."""
        lo = as_naive_utc(self.valid_from) if self.valid_from is not None else None
        hi: datetime | None = None
        if self.valid_to is not None:
            if isinstance(self.valid_to, datetime):
                hi = as_naive_utc(self.valid_to) + timedelta(microseconds=1)
            else:
                hi = as_naive_utc(self.valid_to) + timedelta(days=1)
        return lo, hi

    def active(self, now: datetime) -> bool:
        """Whether this entry applies at ``now`` (naive or aware; aware is converted to UTC)."""
        lo, hi = self._bounds()
        now = as_naive_utc(now)
        return (lo is None or lo <= now) and (hi is None or now < hi)


class _Targets(_Validity):
    """Entries aimed at items and/or whole categories; at least one target is required."""

    item_ids: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_target(self) -> _Targets:
        if not self.item_ids and not self.categories:
            raise ValueError("needs at least one of item_ids or categories")
        return self


class Boost(_Targets):
    """Multiply the ranker score of matching candidates by ``factor`` while valid.

    Negative scores are divided instead, so a factor above 1 always moves an item up whatever the
    ranker's score scale.  Boosts reorder candidates; they do not inject items (use ``pin`` for that).
    Several matching boosts multiply.
    """

    factor: float = Field(gt=0)


class Block(_Targets):
    """Never show matching items while valid (a hard rule: never relaxed by the fallback chain)."""


class Pin(_Validity):
    """Place ``item_id`` at ``position`` (1-based) with reason ``"pinned"`` while valid.

    Hard rules still apply (an out-of-stock, blocked or already bought pin is skipped).  When two pins
    ask for the same position, the first listed wins and the next one takes the next free slot; a pin
    whose slot falls beyond ``n`` is not shown.  Pins bypass the soft rules but count toward
    ``max_per_category``.
    """

    item_id: str
    position: int = Field(ge=1)


class UpsellBand(_Strict):
    """Keep only items priced within ``[min_ratio, max_ratio] ×`` a reference price of the same category.

    The reference is the context item's price (product page, cart) for the context items' categories;
    without context items, the price the customer last paid in each category they bought.  A customer
    with no reference at all (no context, no history) is not filtered.  A soft rule.
    """

    enabled: bool = False
    min_ratio: float = Field(default=1.0, ge=0)
    max_ratio: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> UpsellBand:
        if self.max_ratio < self.min_ratio:
            raise ValueError(f"max_ratio ({self.max_ratio}) must be >= min_ratio ({self.min_ratio})")
        return self


class PlacementRules(_Strict):
    """The business rules of one placement (a website widget or an email).

    Hard rules (never relaxed): ``in_stock_only``, ``block``, ``exclude_categories``,
    ``exclude_bought_days``, context items and no duplicates.  Soft rules, relaxed one at a time in
    this order only when the list would otherwise be short: ``upsell``, ``max_per_category``,
    ``include_categories``.  See ``recsys.rules.RuleSet`` for the order in which they act.
    """

    #: Exclude what the customer bought in the last N days, except replenishable items that are due.
    #: ``None``: no exclusion; ``0``: exclude everything ever bought.
    exclude_bought_days: int | None = Field(default=None, ge=0)
    in_stock_only: bool = True
    #: At most this many items per category in the final list (items without category are not capped).
    max_per_category: int | None = Field(default=None, ge=1)
    diversity: Diversity = "none"
    #: MMR trade-off: 1 = pure relevance, 0 = pure category novelty.
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0)
    upsell: UpsellBand = Field(default_factory=UpsellBand)
    include_categories: list[str] = Field(default_factory=list)
    exclude_categories: list[str] = Field(default_factory=list)
    boost: list[Boost] = Field(default_factory=list)
    pin: list[Pin] = Field(default_factory=list)
    block: list[Block] = Field(default_factory=list)
    #: How to fill a short list, in order.  Without ``popular`` a list can end up shorter than ``n``.
    fallback: list[FallbackStep] = Field(default_factory=lambda: _DEFAULT_FALLBACK.copy())

    @field_validator("fallback")
    @classmethod
    def _unique_steps(cls, steps: list[str]) -> list[str]:
        if len(set(steps)) != len(steps):
            raise ValueError(f"fallback steps must not repeat, got {steps}")
        return steps

    @model_validator(mode="after")
    def _include_exclude_disjoint(self) -> PlacementRules:
        both = sorted(set(self.include_categories) & set(self.exclude_categories))
        if both:
            raise ValueError(f"categories both included and excluded: {both}")
        return self


def _got(err: Mapping[str, Any]) -> str:
    """`` (got 'shuffle')`` for scalar inputs; nothing for missing fields or whole mappings."""
    if err["type"] == "missing" or isinstance(err["input"], dict):
        return ""
    return f" (got {err['input']!r})"


class _PlacementsFile(_Strict):
    placements: dict[str, PlacementRules]


def load_placements(path: str | Path) -> dict[str, PlacementRules]:
    """Read ``placements:`` from a YAML file into ``{placement name: PlacementRules}``.

    Top-level keys starting with ``x-`` are ignored, so they can hold YAML anchors shared by several
    placements (``<<: *shop_wide``).

    Raises
    ------
    ConfigError
        The file is missing or not YAML, or a field is unknown or invalid; the message names the file
        and the dotted field path (``placements.for_you.max_per_category``).
    """
    path = Path(path)
    raw = read_yaml(path, "placements config")
    if isinstance(raw, dict):  # top-level ``x-…`` keys only hold YAML anchors (docker-compose style)
        raw = {k: v for k, v in raw.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        return dict(_PlacementsFile.model_validate(raw).placements)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" + _got(err)
            for err in exc.errors()
        ]
        raise ConfigError(f"{path}: invalid placements config:\n" + "\n".join(lines)) from None
