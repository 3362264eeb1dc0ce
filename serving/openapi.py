"""The service's OpenAPI 3.1 document (``/docs.json``) and its Swagger UI page (``/docs``).

Why our own document instead of BentoML's: BentoML's said every body was optional, had no security
scheme, listed 400/404/500 with ``detail`` as a string (it is a list), dropped ``null`` from optional
fields (so a client generated from it could not send ``"customer_id": null``, which the service accepts)
and knew nothing of the guard's 401/403/413/415/422 (serving/guard.py).  This one is built from the same
pydantic models the service validates with and the same route table the guard enforces, and a
schemathesis run in the test suite holds the service to it.

Swagger UI's files come from the BentoML package (no download, no third-party requests from the page).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from serving.auth import API_KEY_HEADER
from serving.guard import ApiRoute
from serving.schemas import ErrorResponse, ServerError, StatusResponse
from serving.settings import Settings

__all__ = ["build_spec", "docs_routes"]

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "The body is not JSON.",
    401: f"Missing or wrong `{API_KEY_HEADER}` header.",
    403: "The public key on a route or event type reserved for the admin key.",
    413: "The body is larger than the limit (1 MB by default); refused before it is read.",
    415: "The body is not `application/json`.",
    422: "The body does not match the request model, or names a time or an item the service refuses; "
         "`detail` names each field.",
    503: "No model is loaded yet.",
}
_ERROR_ORDER = ("Checks run in this order: key (401/403), media type (415), size (413), JSON (400), "
                "fields (422). Every 4xx body is an `ErrorResponse`: `error` says what went wrong, `detail` "
                "lists `{loc, msg, type}` per field and never quotes the values sent.")


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _links(route: str) -> dict[str, Any]:
    """OpenAPI links: real ids from one answer feed the next request (schemathesis' stateful phase)."""
    first = "$response.body#/items/0/item_id"
    if route in ("/recommend", "/popular", "/similar", "/complements"):
        return {
            "SimilarToFirst": {"operationId": "similar", "requestBody": {"item_id": first, "n": 4}},
            "ComplementsOfFirst": {"operationId": "complements", "requestBody": {"item_ids": [first], "n": 4}},
            "CartEventForFirst": {"operationId": "events", "requestBody": {
                "events": [{"customer_id": "stateful-visitor", "item_id": first, "event": "cart"}]}},
        }
    if route == "/events":
        who = "$request.body#/events/0/customer_id"
        return {
            "RecommendForCustomer": {"operationId": "recommend", "requestBody": {"customer_id": who, "n": 4}},
            "EraseCustomer": {"operationId": "erase", "requestBody": {"customer_ids": [who]}},
        }
    return {}


def build_spec(routes: dict[str, tuple[ApiRoute, type[BaseModel], str, str]], settings: Settings,
               *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document.

    Parameters
    ----------
    routes
        ``path -> (ApiRoute, response model, operation id, summary)`` for every POST endpoint.
    settings
        Whether reads are open, which events the public key may post (the document says what *this*
        service does).
    version
        The package version (``info.version``).
    """
    models: list[tuple[type[BaseModel], Any]] = []
    for api, response, _, _ in routes.values():
        models += [(api.model, "validation"), (response, "serialization")]
    models += [(ErrorResponse, "serialization"), (ServerError, "serialization"), (StatusResponse, "serialization")]
    refs, defs = models_json_schema(models, ref_template=_REF)
    paths: dict[str, Any] = {}
    for path, (api, response, op_id, summary) in routes.items():
        open_route = api.access == "read" and settings.open_reads
        codes = [400, 413, 415, 422, 503] + ([] if open_route else [401])
        if api.access in ("events", "admin"):
            codes.append(403)
        responses: dict[str, Any] = {"200": _json(refs[(response, "serialization")], "OK")}
        if _links(path):
            responses["200"]["links"] = _links(path)
        for code in sorted(codes):
            schema = refs[(ServerError if code >= 500 else ErrorResponse, "serialization")]
            responses[str(code)] = _json(schema, _STATUS_TEXT[code])
        scope = {"read": "No key while reads are open; otherwise the public or the admin key.",
                 "events": "The public or the admin key; the public key may post "
                           f"{', '.join(settings.public_events)} events.",
                 "admin": "The admin key."}[api.access]
        paths[path] = {"post": {
            "operationId": op_id, "summary": summary, "description": f"{scope}\n\n{_ERROR_ORDER}",
            "tags": ["admin" if api.access == "admin" else "widgets"],
            "security": [] if open_route else [{"ApiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": refs[(api.model, "validation")]}}},
            "responses": responses,
        }}
    text = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    paths["/livez"] = {"get": {"operationId": "livez", "summary": "The process answers.", "tags": ["infra"],
                               "security": [], "responses": {"200": text}}}
    paths["/healthz"] = {"get": {"operationId": "healthz", "summary": "Same as /livez (older name).",
                                 "tags": ["infra"], "security": [], "responses": {"200": text}}}
    paths["/readyz"] = {"get": {"operationId": "readyz", "summary": "A model is loaded.", "tags": ["infra"],
                                "security": [], "responses": {
                                    "200": text, "503": {**text, "description": "No model loaded yet."}}}}
    paths["/status"] = {"get": {"operationId": "status", "summary": "Which model version is served, and "
                                "why none is (last load error).", "tags": ["infra"], "security": [],
                                "responses": {"200": _json(refs[(StatusResponse, "serialization")], "OK")}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "crosssell", "version": version, "description": (
            "Recommendations for a shop's widgets, folded-in events, erasure.\n\n"
            f"**Keys** travel in the `{API_KEY_HEADER}` header. The *public* key (the one a web page may "
            "hold) reads and posts storefront events; the *admin* key may call everything, `/admin/*` "
            f"included.\n\n{_ERROR_ORDER}")},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                                           "description": "The public or the admin key (see each route)."}},
        },
    }


_SWAGGER = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>crosssell API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js"></script>
<script src="/docs/static/docs.js"></script></body></html>
"""
_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
};
"""


def _swagger_dir() -> Path:
    from bentoml._internal import server

    return Path(server.__file__).parent / "static_content"


async def _page(request: Request) -> Response:
    return HTMLResponse(_PAGE, headers={"x-content-type-options": "nosniff"})


async def _asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name == "docs.js":
        return Response(_INIT, media_type="text/javascript; charset=utf-8")
    if name not in _SWAGGER or not (_swagger_dir() / name).exists():  # a fixed list: no paths
        return PlainTextResponse("Not Found", status_code=404)
    kind = "text/css; charset=utf-8" if name.endswith(".css") else "text/javascript; charset=utf-8"
    return FileResponse(_swagger_dir() / name, media_type=kind, headers={"cache-control": "max-age=3600"})


def docs_routes() -> list[BaseRoute]:
    """``GET /docs`` (Swagger UI over ``/docs.json``) and its static files."""
    return [Route("/docs", _page, methods=["GET"]), Route("/docs/static/{name}", _asset, methods=["GET"])]
