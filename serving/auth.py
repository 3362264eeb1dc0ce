"""API keys with scopes: which key may call which route.

Why two keys: a web page that posts cart events must hold a key, and anything in a page is public.  That
**public** key may read recommendations and post storefront events; the **admin** key (erase, consent,
model actions: everything under ``/admin/``) stays on servers.  Both travel in the ``x-api-key`` header
and are compared in constant time, so response timing does not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

__all__ = ["API_KEY_HEADER", "Access", "Scope", "RouteAccess", "access_for", "scope_of"]

API_KEY_HEADER = "x-api-key"
Scope = Literal["public", "admin"]
#: What a route asks of the caller: ``read`` (open while reads are open, else any key), ``events``
#: (public or admin key), ``admin`` (admin key only).
RouteAccess = Literal["read", "events", "admin"]


@dataclass(frozen=True)
class Access:
    """The outcome of checking a request's key against a route: allowed, or a status and a message."""

    scope: Scope | None
    status: int = 200
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


def _same(given: bytes, expected: str | None) -> bool:
    # compare_digest runs in time independent of where the first difference is; an unset key never matches
    return expected is not None and hmac.compare_digest(given, expected.encode())


def scope_of(given: str | None, *, admin_key: str | None, public_key: str | None) -> Scope | None:
    """The scope the given key grants, or None.  Both comparisons always run (no early exit)."""
    raw = (given or "").encode()
    is_admin = _same(raw, admin_key)
    is_public = _same(raw, public_key)
    if is_admin:
        return "admin"
    return "public" if is_public else None


def access_for(route: RouteAccess, given: str | None, *, admin_key: str | None, public_key: str | None,
               open_reads: bool) -> Access:
    """Whether a request with key ``given`` may call a route of kind ``route``.

    Missing or unknown key where one is needed: 401.  The public key on an admin route: 403 (the key is
    valid, the route is not for it).
    """
    scope = scope_of(given, admin_key=admin_key, public_key=public_key)
    if route == "read" and (open_reads or scope is not None):
        return Access(scope)
    if route == "events" and scope is not None:
        return Access(scope)
    if route == "admin" and scope == "admin":
        return Access(scope)
    if scope is None:
        which = "the admin key" if route == "admin" else "the public or the admin key"
        return Access(None, 401, f"missing or wrong {API_KEY_HEADER} header: this route needs {which}")
    return Access(scope, 403, "the public key may not call admin routes: use the admin key")
