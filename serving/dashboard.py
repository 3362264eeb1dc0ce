"""The marketer's dashboard (``GET /dashboard``): segments, lifecycle flow, campaigns, KPI trends,
experiments and the category-complement map of the served model, drawn with Chart.js.

Why admin scope: the panels show audiences, purchase-based segments and campaign previews naming
customers.  The page itself is static and holds no key and no data: it asks for the admin key in a small
form, keeps it in the tab's ``sessionStorage`` (gone when the tab closes; never a cookie, so no other
site can make the browser send it) and sends it as ``x-api-key`` to the JSON endpoints
``GET /dashboard/api/{panel}``, which answer 401 without it and 403 with the public key (serving/auth.py,
the same rule as ``/admin/*``).

Thin: ``recsys.dashboard.Dashboard`` computes every panel (and caches it); this module resolves the
configuration from the environment, checks the key and serves the files in ``serving/static/``
(``dashboard.html``/``.js``/``.css`` and the vendored ``chart.umd.min.js``, Chart.js 4.6.2, MIT, its
licence in ``chart.js-LICENSE.md``: no CDN, the page works offline).

Environment (every worker reads the same): ``RECSYS_DASHBOARD_DATASET`` (a dataset name of
``configs/datasets`` or a YAML path: customers' consent comes from it; unset → the bundle's own purchase
history, consent from the store only), ``RECSYS_DASHBOARD_CAMPAIGNS`` (a folder of campaign YAML files,
default ``configs/campaigns``), ``RECSYS_COMPLEMENT_OVERRIDES`` (default
``configs/complements_overrides.yaml``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from recsys.dashboard import PANELS, Dashboard
from recsys.dataset import Dataset
from recsys.exceptions import RecsysError
from serving.errors import admin_refusal, detail, error_response
from serving.settings import PROJECT_ROOT

__all__ = ["dashboard_from_env", "dashboard_routes", "STATIC_DIR"]

log = logging.getLogger("crosssell.service")

STATIC_DIR = Path(__file__).resolve().parent / "static"
_ASSETS = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8",
           "chart.umd.min.js": "text/javascript; charset=utf-8"}
_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-store"}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _dataset_loader(name: str) -> Callable[[], Dataset | None]:
    def load() -> Dataset:
        from recsys.data import load_dataset, load_dataset_config

        path = Path(name) if name.endswith((".yaml", ".yml")) else PROJECT_ROOT / "configs" / "datasets" / f"{name}.yaml"
        data, _ = load_dataset(load_dataset_config(path))
        return data

    return load


def dashboard_from_env(env: dict[str, str] | None = None) -> Dashboard:
    """The ``Dashboard`` the environment describes (see the module docstring)."""
    env = dict(os.environ if env is None else env)
    folder = Path(env.get("RECSYS_DASHBOARD_CAMPAIGNS") or PROJECT_ROOT / "configs" / "campaigns")
    campaigns = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    default_overrides = PROJECT_ROOT / "configs" / "complements_overrides.yaml"
    overrides = env.get("RECSYS_COMPLEMENT_OVERRIDES") or (str(default_overrides) if default_overrides.exists()
                                                           else None)
    dataset = env.get("RECSYS_DASHBOARD_DATASET")
    return Dashboard(campaigns=campaigns, overrides=overrides, data=_dataset_loader(dataset) if dataset else None)


def dashboard_routes(get_state: Callable[[], Any], *, board: Dashboard | None = None) -> list[BaseRoute]:
    """``GET /dashboard`` (the page), ``/dashboard/static/{name}`` and ``/dashboard/api/{panel}`` (admin key).

    Parameters
    ----------
    get_state
        Returns the worker's ``serving.state.ServingState`` (or ``None`` before start-up), per request.
    board
        The ``Dashboard`` (default: ``dashboard_from_env()``, built on the first API request).
    """
    boards: list[Dashboard] = [board] if board is not None else []

    def page(request: Request) -> Response:
        html = (STATIC_DIR / "dashboard.html").read_text(encoding="utf-8")
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={**_HEADERS, "content-security-policy": _CSP})

    def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:  # a fixed list: no paths, no directory listing
            return PlainTextResponse("Not Found", status_code=404)
        return FileResponse(STATIC_DIR / name, media_type=_ASSETS[name],
                            headers={"x-content-type-options": "nosniff", "cache-control": "no-cache"})

    async def api(request: Request) -> Response:
        state = get_state()
        refused = admin_refusal(request, getattr(state, "settings", None), headers=_HEADERS)
        if refused is not None:
            return refused
        name = request.path_params["panel"]
        if name not in PANELS:
            msg = f"must be one of {', '.join(PANELS)}"
            return error_response(404, "unknown dashboard panel", [detail(["path", "panel"], msg, "not_found")],
                                  headers=_HEADERS)
        online = state.online if state is not None else None
        if online is None:
            return error_response(503, "no model loaded yet", [], headers=_HEADERS)
        if not boards:
            boards.append(dashboard_from_env())

        def compute() -> dict[str, Any]:
            # Under the served model's lock: planning a campaign reads the bundle's purchase history, which a
            # folded-in event would otherwise change mid-read.  Cached (recsys.dashboard), so rarely held long.
            with online.lock:
                return boards[0].panel(name, bundle=online.bundle, model_version=online.version,
                                       store=state.store, placements=state.placements)

        try:
            body = await run_in_threadpool(compute)
        except RecsysError as exc:  # a broken config (overrides file, data set): the operator's to fix
            log.error("dashboard panel %s: %s", name, exc)
            return error_response(500, f"the {name} panel could not be computed: {exc}", [], headers=_HEADERS)
        return JSONResponse(body, headers=_HEADERS)

    return [
        Route("/dashboard", page, methods=["GET"]),
        Route("/dashboard/static/{name}", asset, methods=["GET"]),
        Route("/dashboard/api/{panel}", api, methods=["GET"]),
    ]
