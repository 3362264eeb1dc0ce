"""The small exception hierarchy every layer raises and the service maps to HTTP codes in one place.

Why a hierarchy: callers (CLI, HTTP service, tests) need to tell *bad input* (the user can fix
it: 4xx / CLI error naming the file, column and row) from *misuse* (a model used before fit) and
from bugs (everything else, a 5xx).  Each class subclasses the builtin it refines so that
``except ValueError`` still works for code that does not know ours.
"""

from __future__ import annotations

__all__ = [
    "RecsysError",
    "SchemaError",
    "ConfigError",
    "UnknownIdError",
    "NotFittedError",
    "ModelFitError",
    "BundleError",
    "PromotionRefusedError",
]


class RecsysError(Exception):
    """Base of every error this package raises on purpose."""


class SchemaError(RecsysError, ValueError):
    """Input data breaks the canonical schema: message names source, column, first bad row and count."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        column: str | None = None,
        row: int | None = None,
        count: int | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.column = column
        self.row = row
        self.count = count


class ConfigError(RecsysError, ValueError):
    """A YAML config or CLI option is invalid; the message names the file and field."""


class UnknownIdError(RecsysError, KeyError):
    """A customer or item id the model has never seen (and the caller asked for strictness)."""

    def __str__(self) -> str:  # KeyError would repr() the message; we want it readable
        return str(self.args[0]) if self.args else ""


class NotFittedError(RecsysError, RuntimeError):
    """An estimator was used before ``fit`` (or ``load``)."""


class ModelFitError(RecsysError, RuntimeError):
    """Fitting failed for a reason the data explains (e.g. no interactions left after filtering)."""


class BundleError(RecsysError, RuntimeError):
    """A saved model bundle is missing, corrupt or from an incompatible version."""


class PromotionRefusedError(RecsysError, RuntimeError):
    """Promotion refused because the candidate's holdout metric is worse than the serving one."""
