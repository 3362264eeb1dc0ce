"""The storefront demo page (``GET /demo``): the widgets working on a served model, in a browser.

Why a page served by the service itself: people judge a recommender by looking at it, and a developer
integrating the widgets wants to see real requests and answers.  The page (``serving/static/``, plain
HTML/CSS/JS) calls the real public endpoints — ``/recommend`` (for_you, product_page, cart),
``/complements`` and ``/events`` — exactly as a shop's front end would.  What the public API does not
offer and a real shop has on its own side (sample customers, a customer's purchase history, product names
and prices) comes from the small JSON helpers here.

Why off by default: these helpers expose purchase history, so every route answers 404 unless
``RECSYS_DEMO=1`` is set in the service's environment (``recsys demo`` and the browser test set it).
Never set it on a public deployment.  The page carries only the *public* key (reads and storefront
events, serving/auth.py), never the admin key that can erase customers.

Wire it into the service's extra Starlette app::

    extra.routes.extend(demo_routes(lambda: _state))
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["demo_routes", "demo_enabled", "STATIC_DIR"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
_ASSETS = {"demo.css": "text/css; charset=utf-8", "demo.js": "text/javascript; charset=utf-8"}
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")  # the public API's id rule (serving/schemas.py)
_MAX_LIMIT = 50
_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",  # the page carries the public key and answers carry purchase history
}
# The page's only script is demo.js; the config is inert JSON read by that script, so no inline code runs.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def demo_enabled() -> bool:
    """True when ``RECSYS_DEMO`` is ``1``/``true``/``yes`` (read per request, so tests can flip it)."""
    return os.environ.get("RECSYS_DEMO", "").strip().lower() in ("1", "true", "yes")


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404)  # the same answer as a route that does not exist


def _bad(field: str, rule: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["query", field], "msg": rule}]}, status_code=400,
                        headers=_HEADERS)


def _limit(request: Request, default: int) -> int | JSONResponse:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return _bad("limit", f"must be an integer in [1, {_MAX_LIMIT}]")
    if not 1 <= value <= _MAX_LIMIT:
        return _bad("limit", f"must be an integer in [1, {_MAX_LIMIT}]")
    return value


def _script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>`` or HTML comment breakout."""
    return (json.dumps(value, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


class _Views:
    """The demo endpoints over whatever ``ServingState`` ``get_state`` returns at request time (the
    served model can be swapped under the page; every answer names the version it came from)."""

    def __init__(self, get_state: Callable[[], Any], enabled: Callable[[], bool]) -> None:
        self.get_state = get_state
        self.enabled = enabled
        self._customers_cache: tuple[tuple[Any, ...], pl.DataFrame] | None = None

    # ------------------------------------------------------------ helpers
    def _online(self) -> Any | None:
        state = self.get_state()
        return None if state is None else state.online

    def _loaded(self) -> Any:
        """The serving recommender, or the 503 answer while no model is loaded (as ``_limit`` does)."""
        online = self._online()
        if online is None:
            return JSONResponse({"detail": "no model loaded yet"}, status_code=503, headers=_HEADERS)
        return online

    def _item(self, online: Any, item_id: str) -> dict[str, Any]:
        price = online.item_price.get(item_id)
        return {"item_id": item_id, "name": online.item_name.get(item_id) or item_id,
                "category": online.item_category.get(item_id),
                "price": float(price) if price is not None else None}

    def _last_orders(self, online: Any) -> pl.DataFrame:
        """Per customer: latest purchase time, the categories of that latest order, orders and lines.
        Cached per (model, history size): recomputed after a model swap or a folded-in purchase."""
        history = online.hybrid.history
        with online.lock:  # a purchase event replaces the frame; read one consistent reference
            frame = history.frame
        key = (id(online), online.version, frame.height)
        if self._customers_cache is not None and self._customers_cache[0] == key:
            return self._customers_cache[1]
        cats = frame.with_columns(
            pl.col("item_id").replace_strict(online.item_category, default=None, return_dtype=pl.String)
            .alias("category"))
        last = (
            cats.filter(pl.col("ts") == pl.col("ts").max().over("customer_id"))
            .group_by("customer_id")
            .agg(pl.col("ts").max().alias("last_ts"), pl.col("category").drop_nulls().unique().sort()
                 .alias("last_categories"))
        )
        sizes = cats.group_by("customer_id").agg(
            pl.col("order_id").n_unique().alias("orders"), pl.len().alias("lines"))
        out = last.join(sizes, on="customer_id").sort(["last_ts", "customer_id"], descending=[True, False])
        self._customers_cache = (key, out)
        return out

    # ------------------------------------------------------------ endpoints
    def page(self, request: Request) -> Response:
        if not self.enabled():
            return _not_found()
        state = self.get_state()
        online = None if state is None else state.online
        categories: list[str] = sorted({c for c in online.item_category.values() if c}) if online else []
        config = {
            # The public key only (RECSYS_PUBLIC_KEY): the page posts cart and purchase events to /events,
            # which needs a key, and anything in a page is public.  Never the admin key (/admin/erase).
            "apiKey": getattr(getattr(state, "settings", None), "public_key", None),
            "modelVersion": online.version if online else None,
            "categories": categories,
            "defaultCategory": "trousers" if "trousers" in categories else next(iter(categories), None),
        }
        html = (STATIC_DIR / "demo.html").read_text(encoding="utf-8")
        html = html.replace("{{CONFIG_JSON}}", _script_json(config))
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={**_HEADERS, "content-security-policy": _CSP})

    def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not self.enabled() or name not in _ASSETS:  # a fixed list: no paths, no directory listing
            return _not_found()
        return FileResponse(STATIC_DIR / name, media_type=_ASSETS[name],
                            headers={"x-content-type-options": "nosniff", "cache-control": "no-cache"})

    def customers(self, request: Request) -> Response:
        """``?category=trousers&limit=12``: customers whose latest order has that category, newest first."""
        if not self.enabled():
            return _not_found()
        online = self._loaded()
        if isinstance(online, JSONResponse):
            return online
        limit = _limit(request, 12)
        if isinstance(limit, JSONResponse):
            return limit
        category = request.query_params.get("category") or None
        if category is not None and len(category) > 100:
            return _bad("category", "at most 100 characters")
        last = self._last_orders(online)
        if category is not None:
            last = last.filter(pl.col("last_categories").list.contains(category))
        rows = [
            {"customer_id": r["customer_id"], "last_purchase": r["last_ts"].date().isoformat(),
             "last_categories": r["last_categories"], "orders": r["orders"], "lines": r["lines"]}
            for r in last.head(limit).iter_rows(named=True)
        ]
        return JSONResponse({"model_version": online.version, "category": category, "customers": rows},
                            headers=_HEADERS)

    def history(self, request: Request) -> Response:
        """A customer's purchases, newest first (date, item name, category, price, quantity, order), and the
        cart the service holds for them from earlier cart events, so a reloaded page shows the same cart
        the recommendations use."""
        if not self.enabled():
            return _not_found()
        cid = request.path_params["customer_id"]
        if not _ID.match(cid):
            return JSONResponse({"detail": [{"loc": ["path", "customer_id"],
                                             "msg": "1-64 letters, digits, '_', '.', ':' or '-'"}]},
                                status_code=400, headers=_HEADERS)
        online = self._loaded()
        if isinstance(online, JSONResponse):
            return online
        limit = _limit(request, _MAX_LIMIT)
        if isinstance(limit, JSONResponse):
            return limit
        with online.lock:
            rows = online.hybrid.history.of(cid)
            cart = list(online.carts.get(cid, ()))
        newest = rows.sort(["ts", "item_id"], descending=[True, False])
        purchases = []
        for r in newest.head(limit).iter_rows(named=True):
            item = self._item(online, r["item_id"])
            price = r["price"] if r["price"] is not None else item["price"]
            purchases.append({**item, "date": r["ts"].date().isoformat(), "ts": r["ts"].isoformat(),
                              "price": float(price) if price is not None else None,
                              "quantity": float(r["quantity"]) if r["quantity"] is not None else None,
                              "order_id": r["order_id"]})
        return JSONResponse({"model_version": online.version, "customer_id": cid,
                             "known": online.knows_customer(cid), "total_lines": rows.height,
                             "purchases": purchases, "cart": cart}, headers=_HEADERS)

    def items(self, request: Request) -> Response:
        """``?q=belt`` (name, id or category contains q), ``?ids=I1,I2`` (exact look-up, the page's names
        and prices for recommended ids), or neither: bestsellers."""
        if not self.enabled():
            return _not_found()
        online = self._loaded()
        if isinstance(online, JSONResponse):
            return online
        limit = _limit(request, 12)
        if isinstance(limit, JSONResponse):
            return limit
        q = (request.query_params.get("q") or "").strip()
        ids_raw = request.query_params.get("ids")
        if len(q) > 100:
            return _bad("q", "at most 100 characters")
        if ids_raw is not None:
            ids = [i for i in ids_raw.split(",") if i]
            if len(ids) > 100 or not all(_ID.match(i) for i in ids):
                return _bad("ids", "at most 100 comma-separated ids of 1-64 letters, digits, "
                                   "'_', '.', ':' or '-'")
            found = [self._item(online, i) for i in dict.fromkeys(ids) if online.knows_item(i)]
            return JSONResponse({"model_version": online.version, "items": found}, headers=_HEADERS)
        if q:
            cat = online.bundle.catalogue.select("item_id", "name", "category")
            needle = q.lower()
            hits = cat.filter(
                pl.col("name").fill_null("").str.to_lowercase().str.contains(needle, literal=True)
                | pl.col("item_id").str.to_lowercase().str.contains(needle, literal=True)
                | pl.col("category").fill_null("").str.to_lowercase().str.contains(needle, literal=True)
            )
            # Bestsellers first among the matches, then catalogue order.
            rank = {i: r for r, i in enumerate(online.popular_frame["item_id"].to_list())}
            ordered = sorted(hits["item_id"].to_list(), key=lambda i: (rank.get(i, len(rank)), i))
            found = [self._item(online, i) for i in ordered[:limit]]
        else:
            found = [self._item(online, i) for i in online.popular_frame["item_id"].head(limit).to_list()]
        return JSONResponse({"model_version": online.version, "q": q, "items": found}, headers=_HEADERS)


def demo_routes(
    get_state: Callable[[], Any], *, enabled: Callable[[], bool] = demo_enabled
) -> list[BaseRoute]:
    """The demo page, its static assets and its JSON helpers (all 404 unless ``enabled()``).

    Parameters
    ----------
    get_state
        Returns the service's current ``serving.state.ServingState`` (or ``None`` before start-up); called
        per request, so a model swap shows on the next request.
    enabled
        Whether the demo is on; defaults to ``RECSYS_DEMO=1`` in the environment, read per request.

    Returns
    -------
    list of starlette routes: ``GET /demo``, ``/demo/static/{name}``, ``/demo/customers``,
    ``/demo/customers/{customer_id}/history``, ``/demo/items``.
    """
    views = _Views(get_state, enabled)
    return [
        Route("/demo", views.page, methods=["GET"]),
        Route("/demo/static/{name}", views.asset, methods=["GET"]),
        Route("/demo/customers", views.customers, methods=["GET"]),
        Route("/demo/customers/{customer_id}/history", views.history, methods=["GET"]),
        Route("/demo/items", views.items, methods=["GET"]),
    ]
