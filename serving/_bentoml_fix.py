"""A fix for BentoML 1.4's request-timeout middleware, applied when the service module is imported.

What it fixes (found with ``gc.callbacks`` timing every collection in the worker under wrk): BentoML's
``TimeoutMiddleware`` arms ``loop.call_later(timeout, …)`` for every request and never cancels it.  The
timer handle keeps the request's context alive for the whole timeout — its tracing span, futures,
locks, ~21 objects per request — so at 1,000 requests/s with a 30 s timeout some 600,000 objects
are alive at any time, all promoted to CPython's oldest generation.  Every full collection then walks
them: 25 → 70 → 600 ms pauses, growing with load, once a second or so — the "stalls of 100–170 ms about
once a second" of a stock BentoML service, and what ``gc.freeze()`` alone could not remove (these
objects are new, not start-up state).

The replacement behaves the same (504 when no response has started within the timeout) and cancels
its timer when the request is done, which releases the context at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["patch_timeout_middleware"]


def patch_timeout_middleware() -> bool:
    """Install the cancelling timeout middleware; False (and nothing changed) if BentoML moved it."""
    try:
        from bentoml._internal.server.http import traffic
    except ImportError:  # pragma: no cover - a BentoML without this module: nothing to fix
        return False
    original = getattr(traffic, "TimeoutMiddleware", None)
    if original is None or getattr(original, "_cancels_timer", False):
        return original is not None

    class CancellingTimeoutMiddleware(original):  # type: ignore[misc, valid-type]
        _cancels_timer = True

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] not in ("http", "websocket"):
                return await self.app(scope, receive, send)
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

            async def _send(message: Any) -> None:
                if not waiter.done():
                    waiter.set_result(None)
                await send(message)

            fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
            try:
                await waiter
            except asyncio.TimeoutError:
                if fut.cancel():
                    from starlette.responses import JSONResponse

                    resp = JSONResponse(
                        {"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504
                    )
                    await resp(scope, receive, send)
            else:
                await fut
            finally:
                timer.cancel()  # the fix: drop the handle (and the request's context it holds) now

    traffic.TimeoutMiddleware = CancellingTimeoutMiddleware
    return True
