"""Temporal train / validation / test splits of a ``Dataset`` by cut-off dates.

Why temporal and why here: a recommender is judged on what customers bought *after* it was trained,
so every evaluation in the project must cut by time, never at random (a random split leaks the
future into training and inflates every metric).  Doing the cut in one small module, with the
boundary rule written down once, makes every model's numbers comparable and leak-free by
construction:

* ``train``      = interactions with ``ts <  validation_cutoff`` (or ``< cutoff`` without validation);
* ``validation`` = interactions with ``validation_cutoff <= ts < cutoff``;
* ``test``       = interactions with ``cutoff <= ts`` (and ``< test_end`` for rolling folds).

**The boundary is inclusive on the later side:** an interaction stamped exactly at a cut-off belongs
to the later window (test, or validation).  All events (views, carts, …) are split, not only
purchases; the emptiness checks and ``known_customers`` look at purchases, because purchases are
what models learn from and what the metrics score.

``known_customers`` are the customers with at least one purchase in ``train``: the only customers a
model can be expected to personalise for.  Everybody else active in the test window is *cold*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from recsys.dataset import Dataset
from recsys.exceptions import ConfigError

__all__ = ["Split", "rolling_folds", "temporal_split"]


@dataclass(frozen=True, repr=False)
class Split:
    """One temporal split: three ``Dataset`` views sharing the catalogue, and the dates that made them.

    Attributes
    ----------
    train
        Interactions strictly before ``validation_cutoff`` (or before ``cutoff`` without validation).
    validation
        Interactions in ``[validation_cutoff, cutoff)``, or ``None``.
    test
        Interactions in ``[cutoff, test_end)`` (``test_end=None``: up to and including the data's end).
    cutoff
        Start of the test window (inclusive).
    validation_cutoff
        Start of the validation window (inclusive), or ``None``.
    test_end
        End of the test window (exclusive), or ``None`` for "to the end of the data".
    known_customers
        Customers with at least one purchase in ``train``.
    """

    train: Dataset
    validation: Dataset | None
    test: Dataset
    cutoff: datetime
    validation_cutoff: datetime | None
    known_customers: frozenset[str]
    test_end: datetime | None = None

    def __repr__(self) -> str:  # the default repr would print three data frames
        val = (
            f", validation={self.validation.interactions.height} rows from {self.validation_cutoff}"
            if self.validation is not None
            else ""
        )
        end = f" until {self.test_end}" if self.test_end is not None else ""
        return (
            f"Split(train={self.train.interactions.height} rows{val}, "
            f"test={self.test.interactions.height} rows from {self.cutoff}{end}, "
            f"known_customers={len(self.known_customers)})"
        )


# --------------------------------------------------------------------------- helpers
def _as_datetime(name: str, value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ConfigError(
                f"The '{name}' parameter must be a naive datetime (interaction timestamps are naive). "
                f"Got {value!r} instead."
            )
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise ConfigError(f"The '{name}' parameter must be a datetime or date. Got {value!r} instead.")


def _check_days(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    ok = (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )
    if not ok:
        raise ConfigError(
            f"The '{name}' parameter must be a number of days in (0, inf). Got {value!r} instead."
        )


def _data_range(data: Dataset) -> tuple[datetime, datetime]:
    lo, hi = data.date_range
    if lo is None or hi is None:
        raise ConfigError(f"Cannot split dataset {data.source!r}: it has no interactions.")
    return lo, hi


def _n_purchases(frame: pl.DataFrame) -> int:
    return frame.filter(pl.col("event") == "purchase").height


def _make_split(
    data: Dataset,
    *,
    cutoff: datetime,
    validation_cutoff: datetime | None,
    test_end: datetime | None,
    what: str = "split",
) -> Split:
    """Cut ``data`` at the given dates and check that every window has purchases."""
    lo, hi = _data_range(data)
    inter = data.interactions
    ts = pl.col("ts")
    train_end = validation_cutoff if validation_cutoff is not None else cutoff
    train = inter.filter(ts < train_end)
    validation = (
        inter.filter((ts >= validation_cutoff) & (ts < cutoff)) if validation_cutoff is not None else None
    )
    test = inter.filter(ts >= cutoff) if test_end is None else inter.filter((ts >= cutoff) & (ts < test_end))

    span = f"the data {data.source!r} runs from {lo} to {hi}"
    if _n_purchases(train) == 0:
        raise ConfigError(
            f"The {what} leaves train empty: no purchases before {train_end} ({span}); move the cut-off later."
        )
    if validation is not None and _n_purchases(validation) == 0:
        raise ConfigError(
            f"The {what} leaves validation empty: no purchases in [{validation_cutoff}, {cutoff}) ({span})."
        )
    if _n_purchases(test) == 0:
        window = f"at or after {cutoff}" if test_end is None else f"in [{cutoff}, {test_end})"
        raise ConfigError(
            f"The {what} leaves test empty: no purchases {window} ({span}); move the cut-off earlier."
        )

    known = frozenset(train.filter(pl.col("event") == "purchase")["customer_id"].unique().to_list())
    return Split(
        train=data.with_interactions(train),
        validation=data.with_interactions(validation) if validation is not None else None,
        test=data.with_interactions(test),
        cutoff=cutoff,
        validation_cutoff=validation_cutoff,
        known_customers=known,
        test_end=test_end,
    )


# --------------------------------------------------------------------------- public API
def temporal_split(
    data: Dataset,
    *,
    cutoff: datetime | date | None = None,
    holdout_days: float | None = None,
    validation_days: float | None = None,
) -> Split:
    """Split ``data`` by time into train, optional validation, and test.

    Parameters
    ----------
    data
        The full dataset.
    cutoff
        Start of the test window; interactions *at* the cut-off belong to test.  A ``date`` means
        midnight of that day.
    holdout_days
        Alternative to ``cutoff``: ``cutoff = max(ts) - holdout_days`` (exact, not rounded to a day),
        so the test window is the closed interval ``[max(ts) - holdout_days, max(ts)]``.
    validation_days
        If given, the ``validation_days`` before the cut-off become the validation window and train
        ends at ``cutoff - validation_days``.

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        Unless exactly one of ``cutoff`` / ``holdout_days`` is given; on non-positive day counts; when
        the data has no interactions; when a window ends up without purchases (the message names
        the cut-off dates and the data's date range).

    Examples
    --------
    >>> split = temporal_split(dataset, holdout_days=14)          # doctest: +SKIP
    >>> model.fit(split.train)                                    # doctest: +SKIP
    """
    if (cutoff is None) == (holdout_days is None):
        raise ConfigError(
            "temporal_split needs exactly one of 'cutoff' or 'holdout_days'. "
            f"Got cutoff={cutoff!r}, holdout_days={holdout_days!r} instead."
        )
    _check_days("holdout_days", holdout_days)
    _check_days("validation_days", validation_days)
    _, hi = _data_range(data)
    cut = _as_datetime("cutoff", cutoff) if cutoff is not None else hi - timedelta(days=float(holdout_days))  # type: ignore[arg-type]
    vcut = cut - timedelta(days=float(validation_days)) if validation_days is not None else None
    return _make_split(data, cutoff=cut, validation_cutoff=vcut, test_end=None)


def rolling_folds(
    data: Dataset,
    *,
    n_folds: int = 4,
    fold_days: float = 7,
    validation_days: float | None = None,
    end: datetime | date | None = None,
) -> list[Split]:
    """Rolling (expanding-window) folds whose test windows tile the last ``n_folds * fold_days`` days.

    Fold ``i`` (``i = 0`` oldest) tests on ``[end - (n_folds - i) * fold_days, + fold_days)`` and trains
    on everything before it, so test windows are disjoint and consecutive and the last one ends at
    the data's end.  Interactions after a fold's test window are not part of that fold.  Without an
    explicit ``end`` the last fold's test window is open-ended (``test_end=None``) so the very last
    interaction is tested; an explicit ``end`` is exclusive like every other window end.

    Parameters
    ----------
    data
        The full dataset.
    n_folds
        Number of folds, ``>= 1``.
    fold_days
        Length of each test window in days.
    validation_days
        Optional validation window before each fold's cut-off (see ``temporal_split``).
    end
        Where the last window ends; default: the last interaction's timestamp.

    Returns
    -------
    list[Split]
        Oldest fold first.

    Raises
    ------
    ConfigError
        On invalid parameters, or when a fold's train, validation or test window has no purchases
        (the message names the fold and its dates).
    """
    if not isinstance(n_folds, int) or isinstance(n_folds, bool) or n_folds < 1:
        raise ConfigError(
            f"The 'n_folds' parameter of rolling_folds must be an int in [1, inf). Got {n_folds!r} instead."
        )
    _check_days("fold_days", fold_days, allow_none=False)
    _check_days("validation_days", validation_days)
    _, hi = _data_range(data)
    stop = _as_datetime("end", end) if end is not None else hi
    step = timedelta(days=float(fold_days))
    folds = []
    for i in range(n_folds):
        cut = stop - (n_folds - i) * step
        last = i == n_folds - 1
        test_end = None if last and end is None else cut + step
        vcut = cut - timedelta(days=float(validation_days)) if validation_days is not None else None
        folds.append(
            _make_split(
                data, cutoff=cut, validation_cutoff=vcut, test_end=test_end, what=f"fold {i + 1}/{n_folds}"
            )
        )
    return folds
