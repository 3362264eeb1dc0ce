"""Sticky, deterministic assignment of customers (or anonymous sessions) to arms.

Why a salted hash and not a random draw stored per customer: every worker, replica, campaign run and
re-run must put a customer in the same arm without asking anyone, and a new experiment must reshuffle
customers independently of the last one (else the same 20 % would see every challenger).  The salt
is the experiment's (its name unless set), so arms are stable for an experiment's whole life and
independent across experiments.  The hash is ``recsys.campaigns._hash.stable_hash`` (BLAKE2b): the
same value on every machine and Python version.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsys.campaigns._hash import stable_hash

__all__ = ["assign_arms", "session_subject"]

#: Prefix of an anonymous visitor's unit id, so a session id can never collide with a customer id.
SESSION_PREFIX = "session:"


def session_subject(customer_id: str | None, session_id: str | None) -> str | None:
    """The randomised unit of a request: the customer id, else ``session:<session id>``, else None."""
    if customer_id:
        return customer_id
    return f"{SESSION_PREFIX}{session_id}" if session_id else None


def assign_arms(subjects: Sequence[str], arms: Sequence[tuple[str, float]], *, salt: str) -> list[str]:
    """The arm of every subject: ``u = hash(salt, subject) / 2**64`` falls into the arm whose cumulative
    share interval holds it (shares are normalised to sum to 1).

    Examples
    --------
    >>> assign_arms(["C1", "C2"], [("control", 0.8), ("challenger", 0.2)], salt="exp") == \\
    ...     assign_arms(["C1", "C2"], [("control", 0.8), ("challenger", 0.2)], salt="exp")
    True
    """
    if not arms:
        raise ValueError("The 'arms' parameter must name at least one arm. Got none instead.")
    shares = np.array([s for _, s in arms], dtype=np.float64)
    if (shares < 0).any() or shares.sum() <= 0:
        raise ValueError(f"The 'arms' parameter must have non-negative shares with a positive sum. Got {list(arms)}.")
    edges = np.cumsum(shares / shares.sum())
    edges[-1] = 1.0
    if len(subjects) == 0:
        return []
    u = stable_hash(list(subjects), salt=salt).astype(np.float64) / 2.0**64
    idx = np.minimum(np.searchsorted(edges, u, side="right"), len(arms) - 1)
    names = [a for a, _ in arms]
    return [names[i] for i in idx]
