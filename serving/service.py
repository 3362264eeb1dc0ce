"""The website's recommendation service (BentoML 1.4 ``@bentoml.service``).

Thin by design: each endpoint validates its request (pydantic: a 400 names the field), checks the API
key where needed, calls ``recsys.online.OnlineRecommender`` and shapes the answer.  Every answer carries
``model_version``; unknown customers and items get cold-start answers, never a 5xx.

Start it with ``recsys serve`` (``bentoml serve serving.service:CrossSell`` underneath).
"""

from __future__ import annotations

import hmac
import os
import logging
from datetime import datetime
from typing import Any

import bentoml
import polars as pl
from bentoml.exceptions import BentoMLException, ServiceUnavailable
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from recsys.online import Filters as OnlineFilters
from recsys.online import OnlineRecommender
from serving._bentoml_fix import patch_timeout_middleware
from serving.demo import demo_routes
from serving.schemas import (
    ComplementsRequest,
    EraseRequest,
    EraseResponse,
    EventsRequest,
    EventsResponse,
    Item,
    PopularRequest,
    Reason,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
)
from serving.state import ServingState, Settings

log = logging.getLogger("crosssell.service")

_state: ServingState | None = None  # one per worker process; set in CrossSell.__init__


class _NoBodies(logging.Filter):
    """BentoML logs every rejected request with its traceback, whose pydantic message quotes the
    offending input values: personal data in logs, and a traceback per bad request.  Keep the one-line
    "Exception on /route [POST]" and drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


logging.getLogger("bentoml._internal.server.http_app").addFilter(_NoBodies())
patch_timeout_middleware()  # before BentoML builds the app: see serving/_bentoml_fix.py


def quiet_gc() -> None:
    """Keep CPython's full garbage collections short: they stop every request while they run.

    Two causes were measured (``gc.callbacks`` timing each collection in the worker under wrk):
    full collections walking every live object — BentoML's and starlette's modules plus the loaded
    bundle (id maps, catalogue dicts, precomputed rankings): 100–190 ms, fixed here by freezing all
    start-up state out of the collector's reach (``gc.freeze``, again after each model swap in
    serving/state.py); and BentoML's timeout middleware keeping every request's objects alive for the
    whole timeout, 600k objects at 1k requests/s and collections of up to 600 ms, fixed in
    serving/_bentoml_fix.py.  With both, collections in the worker stay ≤ ~5 ms under load.
    """
    import gc

    gc.collect()
    gc.freeze()


class Unauthorized(BentoMLException):
    from http import HTTPStatus

    error_code = HTTPStatus.UNAUTHORIZED


async def _status(request: Request) -> JSONResponse:
    """Which version is served and why not, if not ready (BentoML serves /healthz, /livez, /readyz itself)."""
    s = _state
    body: dict[str, Any] = {"status": "ok", "ready": bool(s and s.ready)}
    if s is not None:
        body["model_version"] = s.online.version if s.online else None
        if s.last_error:
            body["last_error"] = s.last_error
    return JSONResponse(body)


extra = Starlette(routes=[Route("/status", _status, methods=["GET"])])
extra.routes.extend(demo_routes(lambda: _state))  # /demo storefront page: off unless RECSYS_DEMO=1


def _reason_text(reason: str, source: str | None, when: datetime | None, names: dict[str, Any]) -> str | None:
    name = names.get(source) if source else None
    label = f"{name} ({source})" if name else source
    if reason in ("complements_category", "bought_with", "buy_again") and source:
        day = f" on {when:%Y-%m-%d}" if when else ""
        verb = {"buy_again": "Buy again: you bought", "bought_with": "Often bought with"}.get(reason)
        if reason == "bought_with":
            return f"{verb} {label}"
        if reason == "buy_again":
            return f"{verb} {label}{day}"
        return f"Because you bought {label}{day}" if when else f"Goes well with {label}"
    return {"similar_customers": "Customers like you bought this", "trending_in_category": "Trending in your categories",
            "popular": "Popular right now", "pinned": "Featured", "similar_items": "Similar item"}.get(reason)


def _items(frame: pl.DataFrame, online: OnlineRecommender, explain: bool) -> list[Item]:
    """Response items from a final list.  ``model_construct``: every value comes from our own model
    and catalogue, already typed, so re-validating it would only cost time on every answer."""
    out = []
    for item_id, score, category, reason_type, source, when in frame.select(
        "item_id", "score", pl.col("category") if "category" in frame.columns else pl.lit(None, pl.String),
        "reason_type", "source_item_id", "source_ts",
    ).iter_rows():
        reason = None
        if explain:
            kind = reason_type or "popular"
            reason = Reason.model_construct(
                type=kind, source_item_id=source,
                source_date=when.date() if isinstance(when, datetime) else None,
                text=_reason_text(kind, source, when, online.item_name),
            )
        out.append(Item.model_construct(item_id=item_id, score=float(score) if score is not None else 0.0,
                                        category=category, reason=reason))
    return out


def _body(online: OnlineRecommender, items: list[Item]) -> bytes:
    """The ``RecommendResponse`` JSON of an answer (the declared response model: OpenAPI documents it)."""
    return RecommendResponse.model_construct(model_version=online.version, items=items).model_dump_json().encode()


def _json(body: bytes) -> Response:
    """A finished JSON response.  Why not return the pydantic object: BentoML then streams it (start,
    body, empty end: three sends, each through the tracing and metrics middleware) and serialises it on
    every request; one body, serialised once per cached answer, is what /livez costs plus the lookup."""
    return Response(body, media_type="application/json")


@bentoml.asgi_app(extra, path="/")
@bentoml.service(
    name="crosssell",
    workers=int(os.environ.get("RECSYS_WORKERS", "1")),
    threads=1,  # requests of one worker run one at a time: the fold-in state needs no finer locking
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},  # see bench/serve.py notes: per-request log lines cost latency
)
class CrossSell:
    """Recommendation endpoints for website widgets; events fold into the next answer."""

    def __init__(self) -> None:
        global _state
        self.settings = Settings.from_env()
        self.state = ServingState(self.settings)
        self.state.start()
        _state = self.state
        quiet_gc()

    def __is_ready__(self) -> bool:
        return self.state.ready

    # ------------------------------------------------------------- helpers
    def _online(self) -> OnlineRecommender:
        online = self.state.online  # one read: this request uses this version throughout
        if online is None:
            raise ServiceUnavailable(f"no model loaded yet ({self.state.last_error or 'starting'})")
        return online

    def _check_key(self, ctx: bentoml.Context, *, write: bool) -> None:
        if not write and self.settings.open_reads:
            return
        expected = self.settings.api_key
        given = ctx.request.headers.get("x-api-key", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("missing or wrong x-api-key header")

    # ----------------------------------------------------------- endpoints
    @bentoml.api(route="/recommend")
    async def recommend(self, req: RecommendRequest, /, ctx: bentoml.Context) -> RecommendResponse:
        """Personalised items for a widget (product page, cart, home, for you, email)."""
        self._check_key(ctx, write=False)
        online = self._online()
        f = req.filters
        filters = OnlineFilters(tuple(f.categories), tuple(f.exclude_item_ids), f.price_min, f.price_max)
        explain = req.explain
        body = online.recommend(req.customer_id, placement=req.placement, n=req.n,
                                context_item_ids=req.context_item_ids, filters=filters,
                                render=(f"json:{explain}", lambda frame: _body(online, _items(frame, online, explain))))
        return _json(body)

    @bentoml.api(route="/complements")
    async def complements(self, req: ComplementsRequest, /, ctx: bentoml.Context) -> RecommendResponse:
        """"Goes well with" a product (one id) or a cart (several ids)."""
        self._check_key(ctx, write=False)
        online = self._online()
        return _json(_body(online, _items(online.complements(req.item_ids, req.n), online, True)))

    @bentoml.api(route="/similar")
    async def similar(self, req: SimilarRequest, /, ctx: bentoml.Context) -> RecommendResponse:
        """Items similar to one item."""
        self._check_key(ctx, write=False)
        online = self._online()
        return _json(_body(online, _items(online.similar(req.item_id, req.n), online, True)))

    @bentoml.api(route="/popular")
    async def popular(self, req: PopularRequest, /, ctx: bentoml.Context) -> RecommendResponse:
        """Bestsellers overall or in one category."""
        self._check_key(ctx, write=False)
        online = self._online()
        return _json(_body(online, _items(online.popular(req.category, req.n), online, True)))

    @bentoml.api(route="/events")
    def events(self, req: EventsRequest, /, ctx: bentoml.Context) -> EventsResponse:
        """Purchases, carts, clicks, impressions (one or a batch): stored, then folded in (needs the API key)."""
        self._check_key(ctx, write=True)
        online = self._online()
        rows = [e.model_dump() for e in req.events]
        for r in rows:
            if r["ts"] is None:
                # The data clock, not the wall clock: a bundle trained on last year's data would otherwise
                # see every new event as a year after the customer's last purchase.
                r["ts"] = online.clock
        frame = pl.DataFrame(rows, schema={
            "customer_id": pl.String, "item_id": pl.String, "event": pl.String, "ts": pl.Datetime("us"),
            "quantity": pl.Float32, "price": pl.Float64, "order_id": pl.String, "source": pl.String})
        stored, counts = self.state.ingest(frame, model_version=online.version)
        return EventsResponse(model_version=online.version, stored=stored, purchases=counts.get("purchase", 0),
                              carts=counts.get("cart", 0))

    @bentoml.api(route="/admin/erase")
    def erase(self, req: EraseRequest, /, ctx: bentoml.Context) -> EraseResponse:
        """Forget customers everywhere this service holds them (needs the API key)."""
        self._check_key(ctx, write=True)
        report = self.state.erase(req.customer_ids)
        return EraseResponse(erased=report.requested - len(report.unknown), unknown=report.unknown)


