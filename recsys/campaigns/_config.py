"""Typed campaign configuration (``configs/campaigns/*.yaml``), validated once at the edge.

Why pydantic with ``extra="forbid"``: campaign files are written by marketers.  A typo such as
``holdout_shar: 0.1`` must stop the run with the file and the field named — silently emailing the
whole audience without a control group (or without a frequency cap) cannot be undone.

Safety defaults: a frequency cap of 2 emails per 7 days across campaigns and a 30-day re-send window
apply unless a file switches them off explicitly (``frequency_cap: null``, ``resend_window_days: null``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from recsys._yaml import read_yaml
from recsys.exceptions import ConfigError

__all__ = [
    "Audience",
    "BoughtCategory",
    "Campaign",
    "CampaignArm",
    "CampaignExperiment",
    "ChurnBand",
    "Exclusions",
    "FrequencyCap",
    "Lifecycle",
    "Strategy",
    "StrategyKind",
    "ValueSegment",
    "campaign_from_dict",
    "load_campaign",
    "STRATEGY_KINDS",
]

ValueSegment = Literal["most_valuable", "potential", "low_value"]
Lifecycle = Literal["new", "one_time", "repeat", "loyal", "at_risk", "lapsed"]
ChurnBand = Literal["low", "medium", "high"]
StrategyKind = Literal["complements", "replenishment", "upsell", "new_in_category", "welcome", "winback",
                       "abandoned_cart"]
STRATEGY_KINDS: tuple[str, ...] = get_args(StrategyKind)

#: Strategy options and the strategies that read them (setting one for another strategy is an error).
_OPTION_USERS: dict[str, tuple[str, ...]] = {
    "source_categories": ("complements",),
    "top_complements": ("complements", "abandoned_cart"),
    "bought_with": ("complements",),
    "lookback_days": ("complements", "upsell"),
    "price_ratio": ("upsell",),
    "new_within_days": ("new_in_category",),
    "top_categories": ("new_in_category",),
    "due_ratio": ("replenishment",),
    "due_within_days": ("replenishment",),
    "per_category": ("complements", "upsell", "new_in_category", "welcome", "abandoned_cart"),
    "cart_age_hours": ("abandoned_cart",),
    "cart_max_age_days": ("abandoned_cart",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BoughtCategory(_Strict):
    """Everyone who bought ``category`` in the ``within_days`` days before the run's ``now``."""

    category: str = Field(min_length=1)
    within_days: int = Field(ge=1)


class Audience(_Strict):
    """Who the campaign is for: every given filter must hold (they are AND-ed).

    ``segment`` / ``lifecycle`` / ``churn_band`` read the columns of ``recsys.segments.segments``;
    ``customers_file`` (a text file with one id per line, or CSV/Parquet with ``customer_id``) is
    resolved relative to the campaign file.  ``all_customers: true`` starts from every customer of the
    data set (still narrowed by the other filters); an audience with no filter at all is refused, so
    "everyone" is always a deliberate choice.
    """

    all_customers: bool = False
    bought_category: BoughtCategory | None = None
    segment: list[ValueSegment] = Field(default_factory=list)
    lifecycle: list[Lifecycle] = Field(default_factory=list)
    churn_band: list[ChurnBand] = Field(default_factory=list)
    customers_file: Path | None = None

    @model_validator(mode="after")
    def _has_filter(self) -> Audience:
        if not (self.all_customers or self.bought_category or self.segment or self.lifecycle
                or self.churn_band or self.customers_file):
            raise ValueError("needs at least one of all_customers, bought_category, segment, lifecycle, "
                             "churn_band, customers_file")
        return self

    @property
    def needs_segments(self) -> bool:
        """True when a filter reads the segment table, so it is computed only for audiences that use it."""
        return bool(self.segment or self.lifecycle or self.churn_band)


class Strategy(_Strict):
    """How picks are chosen.  ``strategy: complements`` is shorthand for ``strategy: {kind: complements}``.

    * ``complements`` — bestsellers of the complement categories (learned graph) of what the customer
      bought in the last ``lookback_days``, plus items bought with those very purchases (item co-purchase);
      reason names the purchase.
    * ``replenishment`` — items the buy-again model finds due (days since last purchase within
      ``due_ratio`` × the expected interval, or the predicted next purchase within ``due_within_days``
      of ``now``) in replenishable categories (``categories`` overrides which).
    * ``upsell`` — bestsellers of categories the customer bought, priced ``price_ratio`` × what they paid.
    * ``new_in_category`` — items first sold in the last ``new_within_days`` in the customer's
      ``top_categories`` favourite categories.
    * ``welcome`` — bestsellers of the category of the customer's first purchase.
    * ``winback`` — the customer's personal hybrid ranking, items new to them only.
    * ``abandoned_cart`` — customers whose cart (store events) holds items not bought since, the newest
      at least ``cart_age_hours`` old: those items first, then their complements (``_abandoned``).
    """

    kind: StrategyKind
    #: Only pick items of these categories (any strategy).
    categories: list[str] = Field(default_factory=list)
    #: complements: trigger purchases come from these categories (default: the audience's bought_category).
    source_categories: list[str] = Field(default_factory=list)
    #: complements: complement categories used per source category (best lift first).
    top_complements: int = Field(3, ge=1, le=50)
    #: complements: co-purchase neighbours in the complement categories only, in any other category, or off.
    bought_with: Literal["complement_categories", "any", "off"] = "complement_categories"
    #: complements/upsell: purchases this recent count (default: the audience's within_days, else 90).
    lookback_days: int | None = Field(None, ge=1)
    #: upsell: [low, high] multiple of the price last paid in the category.
    price_ratio: tuple[float, float] = (1.2, 3.0)
    #: new_in_category: an item is new when its first sale is at most this many days old.
    new_within_days: int = Field(60, ge=1)
    #: new_in_category: how many of the customer's favourite categories are used.
    top_categories: int = Field(3, ge=1, le=50)
    #: replenishment: [low, high] of days-since-last-purchase ÷ expected interval.
    due_ratio: tuple[float, float] = (0.8, 2.5)
    #: replenishment: [before, after] — send only when the predicted next purchase (``due_date``) is at most
    #: ``before`` days ahead of ``now`` and at most ``after`` days past it (replaces ``due_ratio`` when set).
    due_within_days: tuple[float, float] | None = None
    #: Bestsellers considered per target category.
    per_category: int = Field(10, ge=1, le=500)
    #: abandoned_cart: the cart's newest open item went in at least this many hours before ``now``.
    cart_age_hours: float = Field(4.0, ge=0)
    #: abandoned_cart: cart events older than this many days are forgotten.
    cart_max_age_days: float = Field(7.0, gt=0)

    @model_validator(mode="after")
    def _options_fit_kind(self) -> Strategy:
        wrong = sorted(k for k in self.model_fields_set
                       if k in _OPTION_USERS and self.kind not in _OPTION_USERS[k])
        if wrong:
            users = {k: "/".join(_OPTION_USERS[k]) for k in wrong}
            raise ValueError("option(s) not used by strategy " + repr(self.kind) + ": "
                             + ", ".join(f"{k} (only {u})" for k, u in users.items()))
        if self.due_within_days is not None and min(self.due_within_days) < 0:
            raise ValueError(f"due_within_days must be [before, after] in days, both >= 0, "
                             f"got {list(self.due_within_days)}")
        for name in ("price_ratio", "due_ratio"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi) or hi <= 0:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high and high > 0, "
                                 f"got [{lo}, {hi}]")
        return self


class Exclusions(_Strict):
    """Never pick these categories or items in this campaign (hard rules, added to the placement's)."""

    categories: list[str] = Field(default_factory=list)
    items: list[str] = Field(default_factory=list)


class FrequencyCap(_Strict):
    """Skip customers who already got ``max_emails`` emails (any campaign) in the last ``per_days`` days."""

    max_emails: int = Field(ge=1)
    per_days: int = Field(ge=1)


class CampaignArm(_Strict):
    """One arm of a campaign experiment: the campaign's strategy or its own, the campaign's model or another."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=50)
    #: Relative weight among the arms (the holdout, ``holdout_share``, is taken first).
    share: float = Field(1.0, gt=0.0)
    #: This arm's strategy (default: the campaign's ``strategy``).
    strategy: Strategy | None = None
    #: This arm's model tag (default: the run's ``--model``).
    model: str | None = Field(None, min_length=1)

    @field_validator("strategy", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


class CampaignExperiment(_Strict):
    """Split the campaign's eligible audience into arms (plus the holdout), sticky per experiment.

    Customers are assigned by a hash of (``salt`` or ``name``, customer id): the holdout first
    (``holdout_share`` of the campaign), the rest by the arms' weights.  Every eligible customer's arm is
    recorded (``recsys kpis --experiment NAME`` reads them all: intention to treat).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)
    arms: list[CampaignArm] = Field(min_length=1)
    #: The arm the others are compared with (default: the first; ``holdout`` for uplift read-outs).
    control: str | None = None
    salt: str | None = None
    #: Purchases within this many days after the send count.
    window_days: float = Field(14.0, gt=0.0)
    primary_metric: Literal["ctr", "conversion", "revenue_per_customer", "aov"] = "conversion"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    min_customers: int = Field(100, ge=2)
    min_events: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _arms_unique(self) -> CampaignExperiment:
        names = [a.name for a in self.arms]
        if len(set(names)) < len(names) or "holdout" in names:
            raise ValueError(f"arm names must be unique and not 'holdout', got {names}")
        if self.control is not None and self.control not in (*names, "holdout"):
            raise ValueError(f"control must name an arm ({', '.join(names)}) or 'holdout', got {self.control!r}")
        return self


class Campaign(_Strict):
    """One campaign file.  See ``configs/campaigns/*.yaml`` for commented examples."""

    #: Campaign id: the send log's ``campaign``, the events' ``source`` and the default run id prefix.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)
    description: str = ""
    audience: Audience
    strategy: Strategy
    n_picks: int = Field(4, ge=1, le=50)
    #: Customers ending up with fewer picks than this are left out (counted as "no picks").
    min_picks: int = Field(1, ge=1)
    #: Business rules from configs/placements.yaml.
    placement: str = "email"
    #: Pad short lists with the placement's fallback chain (popular items).  Off: a campaign stays on theme.
    fill: bool = False
    exclude: Exclusions = Field(default_factory=Exclusions)
    #: Share of the (eligible, with picks) audience kept as a control group: logged, not emailed.
    holdout_share: float = Field(0.0, ge=0.0, lt=1.0)
    frequency_cap: FrequencyCap | None = Field(default_factory=lambda: FrequencyCap(max_emails=2, per_days=7))
    #: Never re-send an item sent to the same customer within this many days (null: off).
    resend_window_days: int | None = Field(30, ge=1)
    #: A customer's "not interested" (an item, or a category) keeps it out of their picks this many days
    #: (null: for ever; recsys.feedback).
    not_interested_days: float | None = Field(90.0, gt=0)
    #: Split the audience into arms by strategy or model (plus the holdout): ``recsys.campaigns._arms``.
    experiment: CampaignExperiment | None = None
    #: Send to at most this many customers: those with the highest expected value of the mail
    #: (P(order in 30 days) × average order value, ``recsys.campaigns._budget``); the rest "over budget".
    budget: int | None = Field(None, ge=1)

    _source: str = PrivateAttr(default="campaign config")

    @field_validator("strategy", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        if self.min_picks > self.n_picks:
            raise ValueError(f"min_picks ({self.min_picks}) must not exceed n_picks ({self.n_picks})")
        if self.experiment is not None and self.budget is not None:
            raise ValueError("budget and experiment cannot be combined yet (arms are drawn over the whole audience)")
        if self.experiment is not None:
            if len(self.experiment.arms) < 2 and self.holdout_share == 0:
                raise ValueError("experiment: needs two arms, or one arm and a holdout_share")
            if self.experiment.control == "holdout" and self.holdout_share == 0:
                raise ValueError("experiment.control: 'holdout' needs a holdout_share above 0")
        return self

    @property
    def source(self) -> str:
        """The file this campaign came from (for error messages)."""
        return self._source

    def error(self, field: str, message: str) -> ConfigError:
        """A ``ConfigError`` naming this campaign's file and ``field``."""
        return ConfigError(f"{self._source}: invalid campaign config:\n  {field}: {message}")


def _format_errors(exc: ValidationError) -> str:
    """One line per invalid field as a dotted path (like ``validation_message``), plus the value got."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        got = "" if err["type"] == "missing" or isinstance(err["input"], dict) else f" (got {err['input']!r})"
        lines.append(f"  {loc}: {err['msg']}{got}")
    return "\n".join(lines)


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign YAML file.

    Raises
    ------
    ConfigError
        Missing file, invalid YAML, or an unknown/invalid field; the message names the file and the
        dotted field path (``audience.bought_category.within_days``).
    """
    path = Path(path)
    return campaign_from_dict(read_yaml(path, "campaign config"), source=path)


def campaign_from_dict(raw: Any, *, source: str | Path = "campaign config") -> Campaign:
    """Validate an already-parsed mapping; ``source`` names it in errors and anchors relative paths."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a campaign config must be a mapping, got {type(raw).__name__}")
    try:
        campaign = Campaign.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid campaign config:\n" + _format_errors(exc)) from None
    file = campaign.audience.customers_file
    if file is not None and not file.is_absolute() and isinstance(source, Path):
        audience = campaign.audience.model_copy(update={"customers_file": source.parent / file})
        campaign = campaign.model_copy(update={"audience": audience})
    campaign._source = str(source)
    return campaign
