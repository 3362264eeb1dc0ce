"""Merchandisers' corrections of the learned category-complement graph: parse them, apply them.

The format, per source category (``configs/complements_overrides.yaml``)::

    trousers:
      pin: [belts]          # always first, in this order
      add: {socks: 1.5}     # add (or re-weight) with this lift
      remove: [jeans]       # never suggest

Overrides always win over what was learned.  ``load_overrides`` checks the structure (and names the
file and the field); ``apply_overrides`` checks the category names against the catalogue at fit time.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recsys.exceptions import ConfigError
from recsys.models._complement_graph import Edges

__all__ = ["CategoryOverride", "apply_overrides", "load_overrides"]

#: Pinned complements get a lift just above the source's best other complement, this factor apart.
_PIN_STEP = 1.05


@dataclass(frozen=True)
class CategoryOverride:
    """A merchandiser's correction of one source category's complements."""

    pin: tuple[str, ...] = ()
    add: tuple[tuple[str, float], ...] = ()
    remove: tuple[str, ...] = ()
    names: tuple[str, ...] = field(default=(), compare=False)

    def categories(self) -> list[tuple[str, str]]:
        """Every category named, with where (``pin``/``add``/``remove``), for validation."""
        return (
            [(c, "pin") for c in self.pin]
            + [(c, "add") for c, _ in self.add]
            + [(c, "remove") for c in self.remove]
        )


def _str_list(value: Any, origin: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{origin}: '{where}' must be a list of category names, got {value!r}")
    return tuple(value)


def load_overrides(source: str | Path | Mapping[str, Any] | None) -> tuple[dict[str, CategoryOverride], str]:
    """Parse an override file (or an already-loaded mapping) into ``{source category: CategoryOverride}``.

    The format, per source category::

        trousers:
          pin: [belts]          # always first, in this order
          add: {socks: 1.5}     # add (or re-weight) with this lift
          remove: [jeans]       # never suggest

    Returns the overrides and a label for messages (the file path, or ``"overrides dict"``).
    Structural mistakes raise ``ConfigError`` naming the file and the field; category names are
    checked against the catalogue at ``fit`` time.
    """
    if source is None:
        return {}, "no overrides"
    if isinstance(source, Mapping):
        raw: Any = source
        origin = "overrides dict"
    else:
        path = Path(source)
        origin = str(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(
                f"{origin}: cannot read the complements override file: {exc.strerror or exc}"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
        if raw is None:
            raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{origin}: must map source category → {{pin, add, remove}}, got {type(raw).__name__}"
        )
    out: dict[str, CategoryOverride] = {}
    for src, spec in raw.items():
        if not isinstance(src, str):
            raise ConfigError(f"{origin}: source category names must be strings, got {src!r}")
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{origin}: '{src}' must map to {{pin, add, remove}}, got {spec!r}")
        unknown = sorted(set(spec) - {"pin", "add", "remove"})
        if unknown:
            raise ConfigError(
                f"{origin}: '{src}.{unknown[0]}' is not a known key (allowed: pin, add, remove)"
            )
        pin = _str_list(spec.get("pin"), origin, f"{src}.pin")
        remove = _str_list(spec.get("remove"), origin, f"{src}.remove")
        add_raw = spec.get("add") or {}
        if not isinstance(add_raw, Mapping):
            raise ConfigError(f"{origin}: '{src}.add' must map category → lift, got {add_raw!r}")
        add: list[tuple[str, float]] = []
        for tgt, lift in add_raw.items():
            ok = (
                isinstance(lift, (int, float))
                and not isinstance(lift, bool)
                and math.isfinite(lift)
                and lift > 0
            )
            if not isinstance(tgt, str) or not ok:
                raise ConfigError(
                    f"{origin}: '{src}.add.{tgt}' must be a positive number (the lift), got {lift!r}"
                )
            add.append((tgt, float(lift)))
        if src in set(pin) | set(remove) | {t for t, _ in add}:
            raise ConfigError(f"{origin}: '{src}' lists itself; a category is not its own complement")
        clash = (set(pin) | {t for t, _ in add}) & set(remove)
        if clash:
            raise ConfigError(f"{origin}: '{src}' both adds/pins and removes {sorted(clash)[0]!r}")
        if len(set(pin)) != len(pin):
            raise ConfigError(f"{origin}: '{src}.pin' lists a category twice")
        out[src] = CategoryOverride(pin=pin, add=tuple(add), remove=remove)
    return out, origin


def apply_overrides(edges: Edges, categories: np.ndarray, overrides: Mapping[str, CategoryOverride],
                    origin: str) -> Edges:
    """``edges`` corrected by ``overrides`` (from ``load_overrides``; ``origin`` names their file).

    ``remove`` drops an edge, ``add`` sets its lift (marking it an override), ``pin`` puts targets first
    in the order given (each just above the next, the last just above the best other edge).  The result
    is sorted by (source, lift descending, target).  ``categories`` are the names of the category codes.

    Raises
    ------
    ConfigError
        A category the catalogue does not have, with the closest names.
    """
    if not overrides:
        return edges
    index = {str(c): k for k, c in enumerate(categories)}
    for src, ov in overrides.items():
        for name, where in [(src, "source")] + [(c, f"{src}.{w}") for c, w in ov.categories()]:
            if name not in index:
                close = difflib.get_close_matches(name, list(index), n=3) or sorted(index)[:3]
                raise ConfigError(
                    f"{origin}: unknown category {name!r} ({where}); it is not in the catalogue "
                    f"({len(index)} categories; closest: {', '.join(map(repr, close))})"
                )
    table: dict[tuple[int, int], list[Any]] = {
        (int(a), int(b)): [int(s), float(c), float(bs), float(li), 0, False]
        for a, b, s, c, bs, li in zip(
            edges.src,
            edges.dst,
            edges.support,
            edges.confidence,
            edges.base,
            edges.lift,
            strict=True,
        )
    }
    nan = float("nan")
    for src, ov in overrides.items():
        a = index[src]
        for tgt in ov.remove:
            table.pop((a, index[tgt]), None)
        for tgt, value in ov.add:
            e = table.setdefault((a, index[tgt]), [0, nan, nan, value, 1, False])
            e[3], e[4] = value, 1
        pins = [index[t] for t in ov.pin]
        others = [e[3] for (s_, b), e in table.items() if s_ == a and b not in pins]
        floor = max(others, default=1.0)
        for b in reversed(pins):  # last pin just above the best other, each earlier pin above it
            e = table.setdefault((a, b), [0, nan, nan, 0.0, 1, True])
            e[3], e[4], e[5] = max(e[3], floor * _PIN_STEP), 1, True
            floor = e[3]
    keys = sorted(table, key=lambda k: (k[0], -table[k][3], k[1]))
    cols: list[Sequence[Any]] = list(zip(*[table[k] for k in keys], strict=True)) if keys else [[]] * 6
    return Edges(
        src=np.array([k[0] for k in keys], dtype=np.int64),
        dst=np.array([k[1] for k in keys], dtype=np.int64),
        support=np.array(cols[0], dtype=np.int64),
        confidence=np.array(cols[1], dtype=np.float64),
        base=np.array(cols[2], dtype=np.float64),
        lift=np.array(cols[3], dtype=np.float64),
        origin=np.array(cols[4], dtype=np.int8),
        pinned=np.array(cols[5], dtype=bool),
    )
