"""``POST /consent`` and ``POST /unsubscribe``: consent records and unsubscribes from the CRM or the
email provider, straight into the store (admin key).

Why beside ``/admin/consent``: that endpoint (kept as it was) sets one email flag per customer, stamped
with the time it arrives.  A CRM sends *records* — a channel, granted or withdrawn, the time the customer
said so, where it came from — and an unsubscribe link must work even when the CRM's nightly export
still says "granted": the store keeps every record (``consent_history``, for audit) and the latest
``ts`` wins, exactly as ``recsys consent import`` does.  ``suppress: true`` also puts the customer on
the suppression list (a complaint, a hard bounce): no campaign mails them, whatever consent says.

The routes live in ``ROUTES`` beside the service's own (``CONSENT_ROUTES``), so the request guard
checks key, media type, size and fields first and the OpenAPI document describes them; the handlers
are plain Starlette routes (the store needs no model: they answer even before one is loaded).
Records of erased customers are not stored (that would bring the id back) and are counted instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from serving.errors import detail, error_response, log_refusal
from serving.guard import ApiRoute
from serving.schemas import Id, Text, _Strict

__all__ = ["CONSENT_ROUTES", "ConsentRecord", "ConsentRecordsRequest", "UnsubscribeRequest", "consent_routes"]

Channel = Literal["email", "sms", "push"]
Source = Annotated[Text, Field(min_length=1, max_length=100)]


def _naive_utc(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is not None:
        try:
            v = v.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+14:00 has no UTC time
            raise ValueError("must be a date-time between years 1 and 9999 in UTC") from None
    return v


class ConsentRecord(_Strict):
    customer_id: Id
    channel: Channel = "email"
    granted: bool
    ts: datetime | None = Field(None, description=(
        "When the customer gave or withdrew consent (default: now). The latest ts per customer and channel "
        "wins; it may not lie after now plus the clock skew."))
    source: Source | None = Field(None, description="Where the record comes from (default 'api').")

    _utc = field_validator("ts")(_naive_utc)


class ConsentRecordsRequest(_Strict):
    records: list[ConsentRecord] = Field(min_length=1, max_length=1000, description="One or a batch (≤ 1000).")


class ConsentRecordsResponse(BaseModel):
    recorded: int
    skipped_erased: int = Field(0, description="Records of erased customers: not stored.")


class UnsubscribeRequest(_Strict):
    customer_id: Id
    channel: Channel = "email"
    ts: datetime | None = Field(None, description="When the customer unsubscribed (default: now).")
    source: Source | None = Field(None, description="Where it comes from (default 'unsubscribe').")
    suppress: bool = Field(False, description="Also put the customer on the suppression list (no campaign "
                                              "mails them, whatever their consent).")
    reason: Annotated[Text, Field(max_length=100)] | None = Field(None, description="Why (suppression list).")

    _utc = field_validator("ts")(_naive_utc)


class UnsubscribeResponse(BaseModel):
    recorded: int
    suppressed: bool
    skipped_erased: int = 0


CONSENT_ROUTES: dict[str, tuple[ApiRoute, type[BaseModel], str, str]] = {
    "/consent": (ApiRoute(ConsentRecordsRequest, "admin"), ConsentRecordsResponse, "record_consent",
                 "Record consent per customer and channel (latest ts wins; every record kept for audit)."),
    "/unsubscribe": (ApiRoute(UnsubscribeRequest, "admin"), UnsubscribeResponse, "unsubscribe",
                     "Withdraw a customer's consent on a channel, optionally suppressing them everywhere."),
}


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _frame(rows: list[tuple[str, str, bool, datetime, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"customer_id": pl.String, "channel": pl.String, "granted": pl.Boolean,
                                      "ts": pl.Datetime("us"), "source": pl.String}, orient="row")


def _future(ts: list[datetime | None], skew: float, where: Callable[[int], list[str | int]]) -> list[dict[str, Any]]:
    limit = _now() + timedelta(seconds=skew)
    return [detail(where(i), f"must not lie after now plus {skew:g}s of clock skew", "ts_in_future")
            for i, t in enumerate(ts) if t is not None and t > limit]


def consent_routes(state: Callable[[], Any]) -> list[BaseRoute]:
    """The two routes over the worker's ``ServingState`` (its store and settings)."""

    def refuse(route: str, details: list[dict[str, Any]]) -> JSONResponse:
        log_refusal("POST", route, 422, "consent refused", details)
        return error_response(422, "consent refused", details)

    async def record(request: Request) -> Response:
        s = state()
        if s is None:
            return error_response(503, "starting", [])
        req = ConsentRecordsRequest.model_validate_json(await request.body())  # (the guard checked it)
        bad = _future([r.ts for r in req.records], s.settings.clock_skew_seconds,
                      lambda i: ["body", "records", i, "ts"])
        if bad:
            return refuse("/consent", bad)
        now = _now()

        def write() -> ConsentRecordsResponse:  # (the store blocks: off the event loop)
            erased = s.store.is_erased([r.customer_id for r in req.records])
            rows = [(r.customer_id, r.channel, r.granted, r.ts or now, r.source or "api")
                    for r, gone in zip(req.records, erased, strict=True) if not gone]
            s.store.record_consent(_frame(rows), batch=f"api-{now:%Y%m%dT%H%M%S%f}")
            return ConsentRecordsResponse(recorded=len(rows), skipped_erased=sum(erased))

        return JSONResponse((await run_in_threadpool(write)).model_dump())

    async def unsubscribe(request: Request) -> Response:
        s = state()
        if s is None:
            return error_response(503, "starting", [])
        req = UnsubscribeRequest.model_validate_json(await request.body())
        bad = _future([req.ts], s.settings.clock_skew_seconds, lambda i: ["body", "ts"])
        if bad:
            return refuse("/unsubscribe", bad)
        now = _now()

        def write() -> UnsubscribeResponse:
            if s.store.is_erased([req.customer_id])[0]:
                return UnsubscribeResponse(recorded=0, suppressed=False, skipped_erased=1)
            s.store.record_consent(_frame([(req.customer_id, req.channel, False, req.ts or now,
                                            req.source or "unsubscribe")]), batch=f"api-{now:%Y%m%dT%H%M%S%f}")
            if req.suppress:
                s.store.suppress([req.customer_id], reason=req.reason or "unsubscribe")
            return UnsubscribeResponse(recorded=1, suppressed=req.suppress)

        return JSONResponse((await run_in_threadpool(write)).model_dump())

    return [Route("/consent", record, methods=["POST"]), Route("/unsubscribe", unsubscribe, methods=["POST"])]
