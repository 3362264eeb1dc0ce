"""The website's recommendation service (BentoML 1.4 ``@bentoml.service``).

Thin by design: ``RequestGuard`` (serving/guard.py) checks the key, media type, size and shape of every
request before BentoML parses it (401/403/413/415/400/422, one JSON error shape, serving/errors.py);
each endpoint then calls ``recsys.online.OnlineRecommender`` through ``ServingState`` and shapes the
answer.  Every answer carries ``model_version``; unknown customers and items get cold-start answers,
never a 5xx.  The OpenAPI document at ``/docs.json`` and the Swagger UI at ``/docs`` describe exactly
this (serving/openapi.py).

Start it with ``recsys serve`` (``bentoml serve serving.service:CrossSell`` underneath).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import os
from datetime import datetime
from typing import Any

import bentoml
import polars as pl
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from recsys.online import Filters as OnlineFilters
from recsys.online import OnlineRecommender
from recsys.reasons import reason_text
from serving._bentoml_fix import patch_timeout_middleware
from serving.consent import CONSENT_ROUTES, consent_routes
from serving.customer_categories import customer_routes
from serving.dashboard import dashboard_routes
from serving.demo import demo_routes
from serving.errors import Detail, error_response, log_refusal
from serving.experiment import ServiceExperimentState
from serving.guard import ApiRoute, RequestGuard
from serving.openapi import build_spec, docs_routes
from serving.schemas import (
    ComplementsRequest,
    ConsentRequest,
    ConsentResponse,
    EraseRequest,
    EraseResponse,
    EventsRequest,
    EventsResponse,
    Item,
    PopularRequest,
    Reason,
    RecommendRequest,
    RecommendResponse,
    ReloadRequest,
    ReloadResponse,
    SimilarRequest,
    StatusResponse,
)
from serving.state import ServingState, Settings

log = logging.getLogger("crosssell.service")

_state: ServingState | None = None  # one per worker process; set in CrossSell.__init__


class _NoBodies(logging.Filter):
    """A pydantic error's traceback quotes the offending input values: personal data in logs.  The
    guard validates bodies before BentoML does, so BentoML should never log one; if it does, keep the
    one line and drop the traceback.  Every other error keeps its traceback (a 5xx must be debuggable)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ValidationError):
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


#: Every POST route: (request model and who may call it, response model, operation id, summary).  The
#: guard enforces it and the OpenAPI document is built from it, so the two cannot disagree.
ROUTES: dict[str, tuple[ApiRoute, type[BaseModel], str, str]] = {
    "/recommend": (ApiRoute(RecommendRequest, "read"), RecommendResponse, "recommend",
                   "Personalised items for a widget (product page, cart, home, for you, email)."),
    "/complements": (ApiRoute(ComplementsRequest, "read"), RecommendResponse, "complements",
                     "Goes well with a product (one id) or a cart (several ids)."),
    "/similar": (ApiRoute(SimilarRequest, "read"), RecommendResponse, "similar", "Items similar to one item."),
    "/popular": (ApiRoute(PopularRequest, "read"), RecommendResponse, "popular",
                 "Bestsellers overall or in one category."),
    "/events": (ApiRoute(EventsRequest, "events"), EventsResponse, "events",
                "Purchases, carts, clicks, impressions: stored, then folded into the next answer of every worker."),
    "/admin/erase": (ApiRoute(EraseRequest, "admin"), EraseResponse, "erase",
                     "Forget customers everywhere: store, every model version, every worker."),
    "/admin/consent": (ApiRoute(ConsentRequest, "admin"), ConsentResponse, "consent",
                       "Record customers' email consent (overrides the dataset's for campaigns)."),
    "/admin/reload": (ApiRoute(ReloadRequest, "admin"), ReloadResponse, "reload",
                      "Load the promoted (or configured) model version now instead of at the next poll."),
}
ROUTES.update(CONSENT_ROUTES)  # POST /consent, /unsubscribe (serving/consent.py)
_env_settings: Settings | None = None


def _settings() -> Settings:
    """The worker's settings (its state's once started; the environment's before)."""
    global _env_settings
    if _state is not None:
        return _state.settings
    if _env_settings is None:
        _env_settings = Settings.from_env()
    return _env_settings


def _version() -> str:
    try:
        return importlib.metadata.version("crosssell")
    except importlib.metadata.PackageNotFoundError:  # a Bento (or its image) carries the code, not the install
        return "0+unknown"


def openapi_spec() -> dict[str, Any]:
    return build_spec(ROUTES, _settings(), version=_version())


#: The alias bentofile.yaml gives the model a Bento carries.
BENTO_MODEL_ALIAS = "crosssell"


def _packaged_model(settings: Settings) -> Settings:
    """Served from a built Bento with ``RECSYS_MODEL`` unset: serve the model the Bento carries.

    Why: a Bento packages its model (bentofile.yaml ``models:``, alias ``crosssell``) but not the
    registry's promotion file, so the default ``promoted`` would leave ``bentoml serve crosssell-service:…``
    and its container never ready.  BentoML records the aliases of the Bento it loads; outside a Bento
    there are none and the settings stay as they are.  ``RECSYS_MODEL`` set to anything wins.
    """
    if os.environ.get("RECSYS_MODEL"):
        return settings
    from bentoml._internal.configuration.containers import BentoMLContainer

    tag = BentoMLContainer.model_aliases.get().get(BENTO_MODEL_ALIAS)
    return dataclasses.replace(settings, model=str(tag)) if tag else settings


async def _status(request: Request) -> JSONResponse:
    """Which version is served and why not, if not ready (BentoML serves /healthz, /livez, /readyz itself)."""
    s = _state
    body = StatusResponse(status="ok", ready=bool(s and s.ready),
                          model_version=s.online.version if s is not None and s.online else None,
                          last_error=s.last_error if s is not None else None, worker=os.getpid(),
                          events_seen=s.watermark if s is not None else 0)
    return JSONResponse(body.model_dump())


extra = Starlette(routes=[Route("/status", _status, methods=["GET"]), *docs_routes()])
extra.routes.extend(demo_routes(lambda: _state))  # /demo storefront page: off unless RECSYS_DEMO=1
extra.routes.extend(consent_routes(lambda: _state))  # POST /consent, /unsubscribe (admin key)
extra.routes.extend(customer_routes(lambda: _state))  # GET /customers/{id}/categories (admin key)
extra.routes.extend(dashboard_routes(lambda: _state))  # GET /dashboard page; its JSON under /dashboard/api (admin key)


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
                text=reason_text(kind, source, when, online.item_name),
            )
        out.append(Item.model_construct(item_id=item_id, score=float(score) if score is not None else 0.0,
                                        category=category, reason=reason))
    return out


def _body(online: OnlineRecommender, items: list[Item], **experiment: Any) -> bytes:
    """The ``RecommendResponse`` JSON of an answer (the declared response model: OpenAPI documents it);
    ``experiment``: its ``experiment``, ``arm`` and ``recommendation_id`` (serving/experiment.py)."""
    return RecommendResponse.model_construct(model_version=online.version, items=items,
                                             **experiment).model_dump_json().encode()


def _json(body: bytes) -> Response:
    """A finished JSON response.  Why not return the pydantic object: BentoML then streams it (start,
    body, empty end: three sends, each through the tracing and metrics middleware) and serialises it on
    every request; one body, serialised once per cached answer, is what /livez costs plus the lookup."""
    return Response(body, media_type="application/json")


def _refuse(ctx: bentoml.Context, route: str, status: int, message: str, details: list[Detail]) -> JSONResponse:
    """An endpoint's own refusal (what only the served model can judge): logged at INFO, one line.
    BentoML copies ``ctx.response.status_code`` onto the returned response, so both are set."""
    if status < 500:
        log_refusal("POST", route, status, message, details)
    else:
        log.warning("POST %s -> %d %s", route, status, message)
    ctx.response.status_code = status
    return error_response(status, message, details)


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
        self.settings = _packaged_model(Settings.from_env())
        self.state = ServingState(self.settings)
        self.state.start()
        _state = self.state
        self.experiment = ServiceExperimentState.from_env(self.state)  # A/B: None unless configured
        if self.experiment is not None:
            self.experiment.start()
        quiet_gc()

    def __is_ready__(self) -> bool:
        return self.state.ready

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        """Stop the watcher and the log follower (their threads would outlive the app in tests)."""
        self.state.stop()
        if self.experiment is not None:
            self.experiment.stop()

    # ------------------------------------------------------------- helpers
    def _unavailable(self, ctx: bentoml.Context, route: str) -> JSONResponse:
        return _refuse(ctx, route, 503, f"no model loaded yet ({self.state.last_error or 'starting'})", [])

    # ----------------------------------------------------------- endpoints
    @bentoml.api(route="/recommend")
    async def recommend(self, req: RecommendRequest, /, ctx: bentoml.Context) -> RecommendResponse:
        """Personalised items for a widget (product page, cart, home, for you, email)."""
        online = self.state.online  # one read: this request uses this version throughout
        if online is None:
            return self._unavailable(ctx, "/recommend")  # type: ignore[return-value]
        f = req.filters
        filters = OnlineFilters(tuple(f.categories), tuple(f.exclude_item_ids), f.price_min, f.price_max)
        explain = req.explain
        if self.experiment is not None:
            return _json(self.experiment.recommend(req, online, filters, lambda frame, o: _items(frame, o, explain),
                                                   _body))  # type: ignore[return-value]
        body = online.recommend(req.customer_id, placement=req.placement, n=req.n,
                                context_item_ids=req.context_item_ids, filters=filters,
                                render=(f"json:{explain}", lambda frame: _body(online, _items(frame, online, explain))))
        return _json(body)  # type: ignore[return-value]

    @bentoml.api(route="/complements")
    async def complements(self, req: ComplementsRequest, /, ctx: bentoml.Context) -> RecommendResponse:
        """"Goes well with" a product (one id) or a cart (several ids)."""
        online = self.state.online
        if online is None:
            return self._unavailable(ctx, "/complements")  # type: ignore[return-value]
        return _json(_body(online, _items(online.complements(req.item_ids, req.n), online, True)))  # type: ignore[return-value]

    @bentoml.api(route="/similar")
    async def similar(self, req: SimilarRequest, /, ctx: bentoml.Context) -> RecommendResponse:
        """Items similar to one item."""
        online = self.state.online
        if online is None:
            return self._unavailable(ctx, "/similar")  # type: ignore[return-value]
        return _json(_body(online, _items(online.similar(req.item_id, req.n), online, True)))  # type: ignore[return-value]

    @bentoml.api(route="/popular")
    async def popular(self, req: PopularRequest, /, ctx: bentoml.Context) -> RecommendResponse:
        """Bestsellers overall or in one category."""
        online = self.state.online
        if online is None:
            return self._unavailable(ctx, "/popular")  # type: ignore[return-value]
        return _json(_body(online, _items(online.popular(req.category, req.n), online, True)))  # type: ignore[return-value]

    @bentoml.api(route="/events")
    def events(self, req: EventsRequest, /, ctx: bentoml.Context) -> EventsResponse:
        """Purchases, carts, clicks, impressions (one or a batch): stored, then folded in by every worker."""
        online = self.state.online
        if online is None:
            return self._unavailable(ctx, "/events")  # type: ignore[return-value]
        refused = self.state.check_events(req.events, online)
        if refused:
            return _refuse(ctx, "/events", 422, "events refused", refused)  # type: ignore[return-value]
        rows = [e.model_dump() for e in req.events]
        for r in rows:
            if r["ts"] is None:
                # The data clock, not the wall clock: a bundle trained on last year's data would otherwise
                # see every new event as a year after the customer's last purchase.
                r["ts"] = online.clock
        frame = pl.DataFrame(rows, schema={
            "customer_id": pl.String, "item_id": pl.String, "event": pl.String, "ts": pl.Datetime("us"),
            "quantity": pl.Float32, "price": pl.Float64, "order_id": pl.String, "source": pl.String,
            "category": pl.String})
        stored = self.state.ingest(frame, online=online)
        if self.experiment is not None:
            self.experiment.after_events(req.events)
        known = [e.item_id is None or online.knows_item(e.item_id) for e in req.events]  # None: a category
        kinds = [e.event for e, k in zip(req.events, known, strict=True) if k]
        return EventsResponse(model_version=online.version, stored=stored, purchases=kinds.count("purchase"),
                              carts=kinds.count("cart"), unknown_items=known.count(False))

    @bentoml.api(route="/admin/erase")
    def erase(self, req: EraseRequest, /, ctx: bentoml.Context) -> EraseResponse:
        """Forget customers everywhere this service holds them (admin key)."""
        report = self.state.erase(req.customer_ids)
        return EraseResponse(erased=report.requested - len(report.unknown), unknown=report.unknown)

    @bentoml.api(route="/admin/consent")
    def consent(self, req: ConsentRequest, /, ctx: bentoml.Context) -> ConsentResponse:
        """Record email consent per customer (admin key); campaigns read it from the store."""
        consents = {c.customer_id: c.email_consent for c in req.consents}
        self.state.store.set_consent(consents)
        return ConsentResponse(updated=len(consents))

    @bentoml.api(route="/admin/reload")
    def reload(self, req: ReloadRequest, /, ctx: bentoml.Context) -> ReloadResponse:
        """Check the registry now and swap in the wanted version if it changed (admin key)."""
        swapped = self.state.refresh()
        online = self.state.online
        return ReloadResponse(model_version=online.version if online else None, swapped=swapped,
                              last_error=self.state.last_error)


# (the decorators made CrossSell a bentoml Service; mypy still sees the class)
CrossSell.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGuard, routes={path: r[0] for path, r in ROUTES.items()}, settings=_settings, spec=openapi_spec)
