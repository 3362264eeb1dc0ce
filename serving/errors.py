"""One error body for every refusal the service writes: ``{"error": str, "detail": [{loc, msg, type}]}``.

Why one shape: a client handles every 4xx with the same code, and the OpenAPI schema can describe it
truthfully (``ErrorResponse`` in serving/schemas.py).  ``loc`` names where the problem is — ``["body",
"events", 0, "ts"]``, ``["header", "x-api-key"]`` — and ``msg`` says the rule; neither quotes the
request's values (they can be personal data).

Refusals are logged at INFO, one line each (method, path, status, the fields): a bad request is the
client's problem, not an incident.  Server errors are logged by the caller with their traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse

__all__ = ["admin_refusal", "detail", "error_json", "error_response", "log_refusal", "pydantic_details", "send_error"]

log = logging.getLogger("crosssell.service")

Detail = dict[str, Any]


def detail(loc: Sequence[str | int], msg: str, type_: str) -> Detail:
    return {"loc": list(loc), "msg": msg, "type": type_}


def pydantic_details(exc: ValidationError, prefix: Sequence[str | int] = ("body",)) -> list[Detail]:
    """Pydantic's errors without the offending input values or documentation URLs."""
    return [detail([*prefix, *e["loc"]], e["msg"], e["type"])
            for e in exc.errors(include_url=False, include_context=False, include_input=False)]


def error_json(message: str, details: Sequence[Detail]) -> bytes:
    return json.dumps({"error": message, "detail": list(details)}, separators=(",", ":")).encode()


def log_refusal(method: str, path: str, status: int, message: str, details: Sequence[Detail]) -> None:
    fields = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:5])
    log.info("%s %s -> %d %s%s", method, path, status, message, f" ({fields})" if fields else "")


def error_response(status: int, message: str, details: Sequence[Detail] = (), *,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": list(details)}, status_code=status, headers=headers)


async def send_error(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, message: str,
                     details: Sequence[Detail] = (), headers: dict[str, str] | None = None) -> None:
    """Write an error response on a raw ASGI ``send`` (the middleware answers without the app)."""
    body = error_json(message, details)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def admin_refusal(request: Any, settings: Any, *, headers: dict[str, str] | None = None) -> JSONResponse | None:
    """The 401/403 answer when ``request`` does not carry the admin key, else ``None``.

    For plain Starlette routes (the request guard checks POST routes only): the dashboard's JSON and
    ``GET /customers/{id}/categories`` check the key here, one rule and one error shape for both.
    """
    from serving.auth import API_KEY_HEADER, access_for

    access = access_for("admin", request.headers.get(API_KEY_HEADER), admin_key=getattr(settings, "api_key", None),
                        public_key=getattr(settings, "public_key", None), open_reads=False)
    if access.allowed:
        return None
    kind = "missing" if access.status == 401 else "forbidden"
    details = [detail(["header", API_KEY_HEADER], access.message, kind)]
    log_refusal(request.method, request.url.path, access.status, access.message, details)
    extra = {"www-authenticate": f'ApiKey header="{API_KEY_HEADER}"'} if access.status == 401 else {}
    return error_response(access.status, access.message, details, headers={**(headers or {}), **extra})
