"""Request and response models: the OpenAPI page documents every field from these.

Why strict pydantic models at the edge: the website and the data team call this service from code we
do not control; a wrong type, an unknown placement or an absurd ``n`` must come back as a 422 naming the
field, never reach the recommender and never become a 500.  Strict mode: ``"n": "5"`` or
``"explain": "yes"`` is a wrong type, not something to guess at (the OpenAPI schema says integer and
boolean, and the service must not accept what its schema rejects).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

#: Free text that is stored or compared: no control characters (PostgreSQL refuses NUL in text, and
#: nobody's order id or widget name contains a newline).
Text = Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f]*$")]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$",
                          description="A customer or item id: 1–64 letters, digits, '_', '.', ':' or '-'.")]
Placement = Literal["product_page", "cart", "home", "for_you", "email"]
ReasonType = Literal["bought_with", "complements_category", "buy_again", "similar_customers",
                     "trending_in_category", "popular", "pinned", "similar_items", "ranked"]


def _integral(v: object) -> object:
    """JSON Schema counts ``5.0`` as an integer, so the service does too; ``5.5`` and ``"5"`` stay wrong types."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


N = Annotated[int, Field(ge=1, le=100, description="How many items to return (1–100)."), BeforeValidator(_integral)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Filters(_Strict):
    categories: list[Annotated[Text, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50, description="Only items of these categories.")
    exclude_item_ids: list[Id] = Field(default_factory=list, max_length=200, description="Never return these.")
    price_min: float | None = Field(None, ge=0, description="Lowest item price.")
    price_max: float | None = Field(None, ge=0, description="Highest item price.")

    @model_validator(mode="after")
    def _band(self) -> Filters:
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise ValueError("filters.price_min must not exceed filters.price_max")
        return self


class RecommendRequest(_Strict):
    customer_id: Id | None = Field(None, description="Omit for anonymous visitors (cold start).")
    session_id: Id | None = Field(None, description=(
        "An anonymous visitor's session id: with an experiment running, it chooses the visitor's arm."))
    context_item_ids: list[Id] = Field(default_factory=list, max_length=50,
                                       description="Items on the page or in the cart.")
    placement: Placement = Field("for_you", description="Which widget asks; selects the business rules.")
    n: N = 12
    filters: Filters = Field(default_factory=Filters)
    explain: bool = Field(True, description="Include the reason for each item.")


class Reason(BaseModel):
    type: str = Field(description="bought_with | complements_category | buy_again | similar_customers | "
                                  "trending_in_category | popular | pinned | similar_items")
    source_item_id: str | None = Field(None, description="The item of the customer's history or context it comes from.")
    source_date: date | None = Field(None, description="When the customer bought the source item.")
    text: str | None = Field(None, description="A sentence for the widget, e.g. 'Because you bought …'.")


class Item(BaseModel):
    item_id: str
    score: float
    category: str | None = None
    reason: Reason | None = None


class RecommendResponse(BaseModel):
    model_version: str
    items: list[Item]
    experiment: str | None = Field(None, description="The experiment this answer is part of (null: none).")
    arm: str | None = Field(None, description="The experiment arm that answered: 'control' or 'challenger'.")
    recommendation_id: str | None = Field(None, description=(
        "Echo it in the events this list leads to (impressions, clicks, purchases) to attribute them exactly."))


class ComplementsRequest(_Strict):
    item_ids: list[Id] = Field(min_length=1, max_length=50, description="A product, or the items of a cart.")
    n: N = 12


class SimilarRequest(_Strict):
    item_id: Id
    n: N = 12


class PopularRequest(_Strict):
    category: Annotated[Text, Field(min_length=1, max_length=100)] | None = None
    n: N = 12


class Event(_Strict):
    customer_id: Id
    item_id: Id | None = Field(None, description="Required, except for a not_interested event about a category.")
    event: Literal["purchase", "cart", "view", "click", "impression", "not_interested"] = "purchase"
    category: Annotated[Text, Field(min_length=1, max_length=100)] | None = Field(None, description=(
        "not_interested only: the customer dismisses this whole category (then no item_id)."))
    ts: datetime | None = Field(None, description=(
        "When it happened (default: the service clock). Must lie between the first purchase of the served "
        "model's data (less the backfill policy) and now plus a small clock skew (5 minutes by default): "
        "otherwise 422 naming this field."))
    quantity: float = Field(1.0, gt=0, le=10_000)
    price: float | None = Field(None, ge=0)
    order_id: Annotated[Text, Field(max_length=64)] | None = None
    source: Annotated[Text, Field(max_length=100)] | None = Field(
        None, description="Widget or campaign id the event came from (for KPIs).")
    session_id: Id | None = Field(None, description="The visitor's session id (experiments: anonymous visitors).")
    recommendation_id: Id | None = Field(None, description=(
        "The recommendation_id of the answer that showed this item (experiments: exact attribution)."))

    @model_validator(mode="after")
    def _item_or_category(self) -> Event:
        if self.category is not None and self.event != "not_interested":
            raise ValueError("category is only for not_interested events")
        if self.category is not None and self.item_id is not None:
            raise ValueError("not_interested names an item_id or a category, not both")
        if self.item_id is None and self.category is None:
            raise ValueError("item_id is required" + (" (or category, for not_interested)"
                                                      if self.event == "not_interested" else ""))
        return self

    @field_validator("ts")
    @classmethod
    def _naive_utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is not None:
            from datetime import timezone

            try:
                v = v.astimezone(timezone.utc).replace(tzinfo=None)
            except OverflowError:  # 0001-01-01T00:00+14:00 has no UTC time
                raise ValueError("must be a date-time between years 1 and 9999 in UTC") from None
        return v


class EventsRequest(_Strict):
    events: list[Event] = Field(min_length=1, max_length=1000, description="One or a batch (≤ 1000).")


class EventsResponse(BaseModel):
    model_version: str
    stored: int
    purchases: int
    carts: int
    unknown_items: int = Field(0, description="Events stored but not folded in: their item is not in the "
                                              "catalogue (only when the unknown-items policy is 'accept').")


class EraseRequest(_Strict):
    customer_ids: list[Id] = Field(min_length=1, max_length=1000)


class EraseResponse(BaseModel):
    erased: int
    unknown: list[str]


class Consent(_Strict):
    customer_id: Id
    email_consent: bool


class ConsentRequest(_Strict):
    consents: list[Consent] = Field(min_length=1, max_length=1000)


class ConsentResponse(BaseModel):
    updated: int


class ReloadRequest(_Strict):
    """No fields: ``{}`` asks the service to load the promoted (or configured) version now."""


class ReloadResponse(BaseModel):
    model_version: str | None
    swapped: bool
    last_error: str | None = None


class StatusResponse(BaseModel):
    status: str
    ready: bool
    model_version: str | None = None
    last_error: str | None = None
    worker: int = Field(description="The answering worker's process id (which of several workers answered).")
    events_seen: int = Field(0, description="The newest stored event this worker has folded in (log seq).")


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="Where: ['body', 'events', 0, 'ts'], ['header', 'x-api-key'], …")
    msg: str = Field(description="The rule that was broken (never the value sent).")
    type: str = Field(description="A stable machine-readable code, e.g. 'missing', 'int_type', 'unknown_item'.")


class ErrorResponse(BaseModel):
    """Every 4xx: what went wrong, and one entry per field."""

    error: str
    detail: list[ErrorDetail]


class ServerError(BaseModel):
    """503 (no model loaded yet), 504 (timeout) and, should one ever happen, 500."""

    error: str
    detail: list[ErrorDetail] = Field(default_factory=list)
