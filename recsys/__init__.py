"""crosssell: a recommendation and cross-sell engine (library).

Importing ``recsys`` has no side effects: no I/O, no environment reads or writes, no heavy imports.
Subpackages are imported where they are used (``recsys.data``, ``recsys.models``, ``recsys.campaigns``,
…); ``README.md`` has the architecture.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("crosssell")
except PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0+unknown"
