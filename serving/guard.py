"""``RequestGuard``: the ASGI middleware in front of BentoML's endpoints.  Every request to an API route
gets a 2xx or a 4xx JSON error (serving/errors.py), never a 5xx for something the client sent.

Why a middleware and not checks inside each endpoint: BentoML parses the body *before* the endpoint
runs, so a ``multipart/form-data`` body without a boundary was a 500, an unauthenticated caller could
make the service read and parse a body of any size, and every rejected body was logged at ERROR with a
traceback.  The guard answers, in this order, before BentoML sees the request:

1. **401 / 403** — the key (``x-api-key``) against the route's scope (serving/auth.py): nothing of an
   unauthorised request's body is read;
2. **415** — the body must be ``application/json`` (a missing content type is taken as JSON);
3. **413** — a ``content-length`` above the limit (default 1 MB) is refused before reading; a chunked
   body is refused as soon as it passes the limit;
4. **400** — the body is not JSON; **422** — it is JSON but not the route's request model (strict
   pydantic: a string ``n`` is a wrong type), or no body at all;
5. **403** — ``POST /events`` with the public key and an event type the public key may not post.

It also serves the service's own OpenAPI document at ``/docs.json`` (and ``/openapi.json``), which
describes these answers (serving/openapi.py).  A request that passes is replayed to BentoML unchanged.
An exception below the guard becomes a logged traceback and a JSON 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers

from serving.auth import API_KEY_HEADER, RouteAccess, access_for
from serving.errors import detail, log_refusal, pydantic_details, send_error
from serving.settings import Settings

__all__ = ["ApiRoute", "RequestGuard"]

log = logging.getLogger("crosssell.service")


@dataclass(frozen=True)
class ApiRoute:
    """One POST route: its request model and who may call it."""

    model: type[BaseModel]
    access: RouteAccess


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class RequestGuard:
    """ASGI middleware; ``CrossSell.add_asgi_middleware(RequestGuard, routes=…, settings=…, spec=…)``.

    Parameters
    ----------
    app
        The ASGI app behind the guard (BentoML's).
    routes
        ``path -> ApiRoute`` for every POST endpoint; other paths pass through untouched.
    settings
        Returns the current ``Settings`` (keys, limits), read per request.
    spec
        Returns the OpenAPI document (a dict) served at ``/docs.json``.
    """

    def __init__(self, app: Any, *, routes: dict[str, ApiRoute], settings: Callable[[], Settings],
                 spec: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.routes = routes
        self.settings = settings
        self.spec = spec
        self._spec_body: bytes | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path in ("/docs.json", "/openapi.json") and method in ("GET", "HEAD"):
            return await self._send_spec(send, head=method == "HEAD")
        route = self.routes.get(path)
        if route is None or method != "POST":
            return await self._call_app(scope, receive, send)
        try:
            body = await self._check(route, scope, receive, send)
        except _Disconnected:
            return None
        if body is None:
            return None  # refused: the answer is sent
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self._call_app(scope, replay, send)

    async def _call_app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = False

        async def watch(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 500 and message["status"] != 503:
                    log.error("%s %s -> %d", scope["method"], scope["path"], message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:
                await send_error(send, 500, "an unexpected error occurred; it is logged on the server")

    async def _refuse(self, scope: dict[str, Any], send: Any, status: int, message: str,
                      details: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        log_refusal(scope["method"], scope["path"], status, message, details)
        await send_error(send, status, message, details, headers)

    async def _check(self, route: ApiRoute, scope: dict[str, Any], receive: Any, send: Any) -> bytes | None:
        """The body if the request may go on; None after sending the refusal."""
        settings = self.settings()
        headers = Headers(scope=scope)
        access = access_for(route.access, headers.get(API_KEY_HEADER), admin_key=settings.api_key,
                            public_key=settings.public_key, open_reads=settings.open_reads)
        if not access.allowed:
            extra = {"www-authenticate": f'ApiKey header="{API_KEY_HEADER}"'} if access.status == 401 else None
            kind = "missing" if access.status == 401 else "forbidden"
            await self._refuse(scope, send, access.status, access.message,
                               [detail(["header", API_KEY_HEADER], access.message, kind)], extra)
            return None
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ("", "application/json"):
            msg = "the body must be JSON: send content-type: application/json"
            await self._refuse(scope, send, 415, "unsupported media type",
                               [detail(["header", "content-type"], msg, "unsupported_media_type")])
            return None
        limit = settings.max_body_bytes
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            status, msg = (413, f"at most {limit} bytes") if length.isdigit() else (400, "not a byte count")
            where = ["body"] if status == 413 else ["header", "content-length"]
            await self._refuse(scope, send, status, "request body too large" if status == 413 else "bad header",
                               [detail(where, msg, "too_large" if status == 413 else "invalid")])
            return None
        try:
            body = await _read(receive, limit)
        except _TooLarge:
            await self._refuse(scope, send, 413, "request body too large",
                               [detail(["body"], f"at most {limit} bytes", "too_large")])
            return None
        if not body.strip():
            await self._refuse(scope, send, 422, "a JSON object body is required",
                               [detail(["body"], "a JSON object is required", "missing")])
            return None
        try:
            request = route.model.model_validate_json(body)
        except ValidationError as exc:
            details = pydantic_details(exc)
            bad_json = any(d["type"] == "json_invalid" for d in details)
            await self._refuse(scope, send, 400 if bad_json else 422,
                               "the body is not valid JSON" if bad_json else "invalid request body", details)
            return None
        if route.access == "events" and access.scope == "public":
            refused = _public_event_refusals(request, settings.public_events)
            if refused:
                await self._refuse(scope, send, 403, "the public key may not post these events", refused)
                return None
        return body

    async def _send_spec(self, send: Any, *, head: bool) -> None:
        if self._spec_body is None:
            self._spec_body = json.dumps(self.spec(), separators=(",", ":")).encode()
        body = self._spec_body
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if head else body})


async def _read(receive: Any, limit: int) -> bytes:
    """The whole body, refusing as soon as it passes ``limit`` bytes (chunked bodies have no length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _public_event_refusals(request: Any, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    msg = f"the public key may post {', '.join(allowed) or 'no'} events; use the admin key for others"
    return [detail(["body", "events", i, "event"], msg, "forbidden")
            for i, event in enumerate(request.events) if event.event not in allowed]
