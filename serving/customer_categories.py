"""``GET /customers/{customer_id}/categories``: a customer's strongest categories, for the CRM (admin key).

Why an endpoint: category-targeted mails and call-centre screens ask "what does this customer buy?";
the answer is the served model's ``CategoryAffinity`` (decayed share of purchases per category, shrunk
toward the shop's share, and its lift over the shop) plus where those categories lead next (the
complement graph), reachable until now only from Python.  Admin only: it is a profile of one person.

A plain Starlette route (the request guard checks POST bodies only), so it checks the key itself, the
way ``/dashboard/api`` does, and answers 401/403, 404 for an unknown customer, 422 for a bad ``n``,
503 before a model is loaded — every error the service's one JSON shape naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from serving.errors import admin_refusal, detail, error_response, log_refusal

__all__ = ["PATH", "customer_routes"]

PATH = "/customers/{customer_id}/categories"
_MAX_N = 50


def customer_routes(state: Callable[[], Any]) -> list[BaseRoute]:
    """The route over the worker's ``ServingState`` (its settings and loaded ``OnlineRecommender``)."""

    def refuse(path: str, status: int, message: str, where: list[str | int], kind: str) -> JSONResponse:
        details = [detail(where, message, kind)]
        log_refusal("GET", path, status, message, details)
        return error_response(status, message, details)

    async def categories(request: Request) -> Response:
        s = state()
        refused = admin_refusal(request, getattr(s, "settings", None))
        if refused is not None:
            return refused
        path = request.url.path
        raw_n = request.query_params.get("n", "5")
        if not raw_n.isdigit() or not 1 <= int(raw_n) <= _MAX_N:
            return refuse(path, 422, f"must be an integer in [1, {_MAX_N}], got {raw_n!r}", ["query", "n"],
                          "out_of_range")
        online = getattr(s, "online", None)
        if online is None:
            return error_response(503, "no model loaded yet", [])
        customer_id = request.path_params["customer_id"]
        body = await run_in_threadpool(_answer, online, customer_id, int(raw_n))
        if body is None:
            return refuse(path, 404, "unknown customer (no purchases in the served model)",
                          ["path", "customer_id"], "not_found")
        return JSONResponse(body)

    return [Route(PATH, categories, methods=["GET"])]


def _answer(online: Any, customer_id: str, n: int) -> dict[str, Any] | None:
    """The JSON body, or ``None`` for a customer the model does not know."""
    with online.lock:  # fold-in changes the affinity tables
        aff = online.hybrid.category_affinity
        if aff is None:
            return {"model_version": online.version, "customer_id": customer_id, "level": None, "categories": []}
        if customer_id not in aff.customer_ids_:
            return None
        top = aff.top_categories(customer_id, n)
        cc = online.hybrid.category_complements
        graph = cc.graph_frame().filter(pl.col("rank") <= 3) if cc is not None and aff.level == "category" \
            else None
    leads: dict[str, list[str]] = {}
    if graph is not None:
        for source, target in graph.sort("source", "rank").select("source", "target").iter_rows():
            leads.setdefault(source, []).append(target)
    cats = [{"category": r[aff.level], "rank": r["rank"], "affinity": round(float(r["affinity"]), 6),
             "lift": round(float(r["lift"]), 4), "share": round(float(r["share"]), 6),
             "complements": leads.get(r[aff.level], [])}
            for r in top.iter_rows(named=True)]
    return {"model_version": online.version, "customer_id": customer_id, "level": aff.level, "categories": cats}
