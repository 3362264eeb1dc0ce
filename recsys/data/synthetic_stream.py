"""An H&M-sized synthetic shop, generated block by block and streamed to files in bounded memory.

Why a second entry point: ``generate_shop`` builds the whole shop in memory, which is right for
tests (a 2,000-customer shop in well under a second) and wrong for scale benchmarks of the size of
H&M's public data (1.37M customers, 105k articles, 31.8M purchase lines over two years).  Here
customers come in blocks; each block is a small shop of its own over the *same* catalogue, drawn
by the very same vectorised helpers as ``generate_shop`` — so the planted structure (directional
category complements, same-order co-purchase, replenishment, seasonality, value and price tiers)
is the same — appended to the output files and dropped.  Peak memory is one block plus the
catalogue, whatever the number of customers.

Determinism: the catalogue is drawn from ``(seed, 0)`` and block ``b`` from ``(seed, 1, b)``, so a
block's rows depend on the seed, the config, the catalogue and the block size, never on how many
blocks come before or after it.  Customer ids have a fixed width (``C00000001``) and order ids
carry the block number (``O00003-0000042``) for the same reason.

What differs from ``generate_shop``:

* item popularity within a category is a power law (random rank ``r`` of ``n`` items → weight
  ``(r + offset·n)^-exponent``, Zipf–Mandelbrot) instead of log-normal noise, so a 105k-item
  catalogue has a long tail like a real fashion shop: at H&M's size the top 3,000 items carry
  ~60 % of the sales and the best seller ~0.25 % (H&M's own: ~50k of 31.8M lines).  The offset
  grows with the category, so the top x % of items carry about the same share at every scale;
* items get a third level in the category tree, ``product_type`` (department → category →
  product type, e.g. ``menswear → trousers → Chino trousers``); complements and replenishment
  stay on the category level, where the tests and models look for them;
* ``lines=`` sizes the number of orders (a multiplier of ``extra_orders_per_year``) from pilot
  blocks so that the shop has about that many purchase lines.

Writing is atomic: everything goes to a hidden temporary sibling folder that takes the place of
``folder`` only once complete, so a killed run leaves no dataset a loader would accept.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from recsys.data._writers import FileFormat, TableSink, _write_one, check_replaceable, staged_folder
from recsys.data.synthetic import (  # the in-memory generator's helpers: one copy of the planted world
    _CATALOGUE, _CO_PURCHASE, _COMPLEMENTS, _REPLENISHABLE, ShopConfig, _epoch_us, _frame_interactions,
    _GroupSampler, _item_sampler, _make_customers, _make_interactions, _make_items, _zfill_ids,
)
from recsys.exceptions import ConfigError

__all__ = ["Preset", "PRESETS", "StreamedShop", "preset_config", "size_for_lines", "generate_shop_files"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    """The size of a real shop to imitate; ``preset_config(scale=…)`` scales all sizes together."""

    name: str
    n_customers: int
    n_items: int
    lines: int
    days: int
    start: date


#: H&M Personalized Fashion Recommendations (Kaggle 2022): customers.csv, articles.csv and
#: transactions_train.csv, 2018-09-20 … 2020-09-22.
PRESETS: Final[dict[str, Preset]] = {
    "hm": Preset("hm", n_customers=1_371_980, n_items=105_542, lines=31_788_324, days=730,
                 start=date(2018, 9, 20)),
}

_CUSTOMER_ID_WIDTH: Final[int] = 8  # fixed, so block 0's ids do not depend on the shop's size
_MAX_CUSTOMERS: Final[int] = 10**_CUSTOMER_ID_WIDTH - 1
_MAX_ORDER_MULTIPLIER: Final[float] = 100.0


@dataclass(frozen=True)
class StreamedShop:
    """What ``generate_shop_files`` wrote: the folder, its files, the sizes and the time it took.

    ``config`` is the config the rows were drawn from: with ``lines=`` its
    ``extra_orders_per_year`` is the one the pilot blocks chose.
    """

    folder: Path
    files: dict[str, Path]
    config: ShopConfig
    block_size: int
    blocks: int
    n_customers: int
    n_items: int
    n_interactions: int  # purchases plus views (none unless ``views_per_purchase`` > 0)
    n_purchases: int
    n_orders: int
    seconds: float


def preset_config(name: str, *, scale: float = 1.0, seed: int = 0) -> tuple[ShopConfig, int]:
    """The config and target number of purchase lines of preset ``name`` at ``scale``.

    ``scale`` multiplies customers, items and lines together (``0.01`` = 1 % of H&M), so every
    fraction has about the same lines per customer and sales per item as the full shop.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if not 0 < scale <= 10:
        raise ConfigError(f"scale must be in (0, 10], got {scale}")
    p = PRESETS[name]
    cfg = ShopConfig(seed=seed, n_customers=max(1, round(p.n_customers * scale)),
                     n_items=max(20, round(p.n_items * scale)), days=p.days, start=p.start)
    return cfg, max(1, round(p.lines * scale))


# ------------------------------------------------------------------------------ catalogue, blocks


@dataclass(frozen=True)
class _Catalogue:
    frame: pl.DataFrame
    cat: np.ndarray
    price: np.ndarray
    sampler: _GroupSampler


def _catalogue(cfg: ShopConfig, exponent: float, offset: float) -> _Catalogue:
    """``_make_items`` with power-law popularity within each category and a product type column."""
    rng = np.random.default_rng([cfg.seed, 0])
    frame, cat, ptier, _, price = _make_items(cfg, rng)
    order = np.lexsort((rng.random(len(cat)), cat))  # a random popularity rank within each category
    sizes = np.bincount(cat)
    rank = np.empty(len(cat), np.int64)
    rank[order] = np.arange(len(cat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    popularity = (rank + 1.0 + offset * sizes[cat]) ** -exponent
    frame = frame.with_columns(product_type=pl.col("name").str.replace(r" \d+$", ""))
    return _Catalogue(frame, cat, price, _item_sampler(cat, ptier, popularity))


def _block(cfg: ShopConfig, catalogue: _Catalogue, b: int, block_size: int
           ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Interactions and customers of block ``b``: customers ``b * block_size + 1 …``."""
    first = b * block_size
    n = min(block_size, cfg.n_customers - first)
    bcfg = replace(cfg, n_customers=n)
    rng = np.random.default_rng([cfg.seed, 1, b])
    cust = _make_customers(bcfg, rng)
    lines = _make_interactions(bcfg, rng, cust, catalogue.cat, catalogue.price, catalogue.sampler)
    ids = _zfill_ids("C", np.arange(first + 1, first + n + 1), _CUSTOMER_ID_WIDTH)
    start_us = _epoch_us(cfg.start_datetime)
    interactions = _frame_interactions(lines, ids, catalogue.frame["item_id"], start_us).with_columns(
        order_id=pl.concat_str(pl.lit(f"O{b:05d}-"), pl.col("order_id").str.slice(1))
    )
    customers = pl.DataFrame({
        "customer_id": ids,
        "email_consent": cust["consent"],
        "created_at": pl.Series(start_us + cust["created"] * 1_000_000).cast(pl.Datetime("us")),
    })
    return interactions, customers


def _with_orders(cfg: ShopConfig, multiplier: float) -> ShopConfig:
    rates = tuple(x * multiplier for x in cfg.extra_orders_per_year)
    return replace(cfg, extra_orders_per_year=rates)  # type: ignore[arg-type]


def _size_for_lines(cfg: ShopConfig, catalogue: _Catalogue, lines: int, pilot: int) -> ShopConfig:
    """Scale ``extra_orders_per_year`` so that ``cfg.n_customers`` customers make ≈ ``lines`` lines.

    Purchase lines per customer grow about linearly with the order multiplier (plus a constant:
    the first order, follow-ups, replenishment), so a few secant steps on pilot blocks of
    ``pilot`` customers get close.  A pilot block is a fresh sample for every multiplier (the
    Poisson draws consume a varying number of random numbers), so on small pilots the secant
    meets noise; then multipliers next to the best one are tried.  When the whole shop fits in
    the pilot, the pilot *is* block 0 and the count is hit within 0.5 %.
    """
    target = lines / cfg.n_customers
    tried: dict[float, float] = {}

    def per_customer(m: float) -> float:
        m = min(max(m, 0.0), _MAX_ORDER_MULTIPLIER)
        if m not in tried:
            inter, _ = _block(replace(_with_orders(cfg, m), n_customers=pilot), catalogue, 0, pilot)
            tried[m] = int((inter["event"] == "purchase").sum()) / pilot
        return tried[m]

    def best() -> tuple[float, float]:
        m = min(tried, key=lambda k: abs(tried[k] - target))
        return m, tried[m]

    m0, f0 = 1.0, per_customer(1.0)
    m1 = min(target / f0, _MAX_ORDER_MULTIPLIER)
    f1 = per_customer(m1)
    for _ in range(6):
        if abs(f1 - target) <= 0.005 * target or f1 == f0:
            break
        m2 = min(max(m1 + (target - f1) * (m1 - m0) / (f1 - f0), 0.0), _MAX_ORDER_MULTIPLIER)
        m0, f0, m1, f1 = m1, f1, m2, per_customer(m2)
    centre = best()[0]
    for k in range(1, 11):
        if abs(best()[1] - target) <= 0.005 * target:
            break
        for step in (k * 0.01, -k * 0.01):
            per_customer(centre * (1 + step))
    m, f = best()
    if abs(f - target) > 0.03 * target:
        why = ("every customer orders at least once" if f > target
               else f"orders are capped at {_MAX_ORDER_MULTIPLIER:g}× the default rate")
        raise ConfigError(
            f"lines: cannot make ~{lines:,} purchase lines with {cfg.n_customers:,} customers ({why}); "
            f"the nearest is ~{round(f * cfg.n_customers):,}. Change the number of lines or of customers."
        )
    log.debug("order multiplier %.3f → %.2f lines per customer (target %.2f; %d pilots of %d customers)",
              m, f, target, len(tried), pilot)
    return _with_orders(cfg, m)


def size_for_lines(config: ShopConfig, lines: int, *, popularity_exponent: float = 1.2,
                   popularity_offset: float = 0.002, pilot_customers: int = 50_000) -> ShopConfig:
    """``config`` with ``extra_orders_per_year`` scaled so the streamed shop has ≈ ``lines`` lines.

    Raises ``ConfigError`` (naming ``lines``) when no order rate reaches it.
    """
    if lines < 1:
        raise ConfigError(f"lines must be ≥ 1, got {lines}")
    catalogue = _catalogue(config, popularity_exponent, popularity_offset)
    return _size_for_lines(config, catalogue, lines, min(pilot_customers, config.n_customers))


# ---------------------------------------------------------------------------------- writing


def _manifest(cfg: ShopConfig, lines: int | None, block_size: int, popularity: tuple[float, float],
              counts: dict[str, int]) -> dict[str, object]:
    """What a benchmark needs to know and reproduce: sizes, knobs and the planted structure."""
    return {
        "generator": __name__,
        "source": cfg.describe(),
        "config": {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(cfg).items()},
        "target_lines": lines,
        "block_size": block_size,
        "popularity_exponent_offset": popularity,
        "counts": counts,
        "planted": {
            "complements": _COMPLEMENTS,
            "co_purchase": _CO_PURCHASE,
            "replenishable_days": _REPLENISHABLE,
            "seasonality_peak_month": {c: v[2] for c, v in _CATALOGUE.items() if v[3] > 0},
            "departments": {c: v[0] for c, v in _CATALOGUE.items()},
        },
    }


def generate_shop_files(
    config: ShopConfig,
    folder: str | Path,
    *,
    lines: int | None = None,
    fmt: FileFormat = "parquet",
    block_size: int = 50_000,
    popularity_exponent: float = 1.2,
    popularity_offset: float = 0.002,
    pilot_customers: int = 50_000,
    progress: bool = False,
) -> StreamedShop:
    """Generate the synthetic shop of ``config`` block by block into ``folder``, in bounded memory.

    Parameters
    ----------
    config
        Sizes and knobs, as for ``generate_shop`` (see ``preset_config`` for H&M's sizes).
    folder
        Output folder: ``interactions``, ``items`` and ``customers`` files in canonical columns
        (items also carry ``product_type``) plus ``manifest.json``.  It is replaced as a whole;
        an existing folder holding anything else is refused.
    lines
        Target number of purchase lines; the order rate is sized for it from pilot blocks.
        ``None`` keeps ``config.extra_orders_per_year``.
    fmt
        ``"parquet"`` (one file per table; a row group per block), ``"csv"`` or ``"csv.gz"``.
    block_size
        Customers per block; peak memory grows with it, the result depends on it (not on the
        number of blocks).
    popularity_exponent, popularity_offset
        Item weight within its category of ``n`` items ∝ (rank + offset·n)^-exponent (exponent
        0 = uniform); the defaults give H&M's long tail.
    pilot_customers
        Customers per pilot block when sizing for ``lines``.
    progress
        Show a tqdm bar over customers (stderr).

    Returns
    -------
    StreamedShop
        The paths, sizes and seconds; the same counts end up in a final INFO log line.

    Examples
    --------
    >>> cfg, n = preset_config("hm", scale=0.001)            # doctest: +SKIP
    >>> generate_shop_files(cfg, "/tmp/hm-0.001", lines=n)    # doctest: +SKIP
    """
    started = time.perf_counter()
    if fmt not in ("csv", "csv.gz", "parquet"):
        raise ConfigError(f"format must be 'csv', 'csv.gz' or 'parquet', not {fmt!r}")
    if block_size < 1:
        raise ConfigError(f"block_size must be ≥ 1, got {block_size}")
    if config.n_customers > _MAX_CUSTOMERS:
        raise ConfigError(f"customers must be ≤ {_MAX_CUSTOMERS:,}, got {config.n_customers:,}")
    if popularity_exponent < 0 or popularity_offset < 0:
        raise ConfigError(f"popularity_exponent and popularity_offset must be ≥ 0, got "
                          f"{popularity_exponent} and {popularity_offset}")
    folder = Path(folder)
    check_replaceable(folder)
    catalogue = _catalogue(config, popularity_exponent, popularity_offset)
    cfg = config
    if lines is not None:
        if lines < 1:
            raise ConfigError(f"lines must be ≥ 1, got {lines}")
        cfg = _size_for_lines(config, catalogue, lines, min(pilot_customers, config.n_customers))

    n_blocks = math.ceil(cfg.n_customers / block_size)
    counts = {"customers": 0, "items": catalogue.frame.height, "interactions": 0, "purchases": 0, "orders": 0}
    names = {name: f"{name}.{fmt}" for name in ("interactions", "items", "customers")}
    with staged_folder(folder) as tmp:
        _write_one(catalogue.frame, tmp / names["items"], fmt)
        with TableSink(tmp / names["interactions"], fmt) as inter_sink, \
                TableSink(tmp / names["customers"], fmt) as cust_sink, \
                tqdm(total=cfg.n_customers, desc="generate", unit="customer", unit_scale=True,
                     disable=not progress) as bar:
            for b in range(n_blocks):
                interactions, customers = _block(cfg, catalogue, b, block_size)
                inter_sink.write(interactions)
                cust_sink.write(customers)
                purchases = interactions.filter(pl.col("event") == "purchase")
                counts["customers"] += customers.height
                counts["interactions"] += interactions.height
                counts["purchases"] += purchases.height
                counts["orders"] += purchases["order_id"].n_unique()
                bar.update(customers.height)
                bar.set_postfix(lines=f"{counts['purchases']:,}", refresh=False)
                del interactions, customers, purchases
        manifest = _manifest(cfg, lines, block_size, (popularity_exponent, popularity_offset), counts)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    seconds = time.perf_counter() - started
    log.info("synthetic shop written: %s customers, %s items, %s purchase lines in %s orders, %d blocks, "
             "%.1fs → %s", f"{counts['customers']:,}", f"{counts['items']:,}", f"{counts['purchases']:,}",
             f"{counts['orders']:,}", n_blocks, seconds, folder)
    return StreamedShop(
        folder=folder, files={name: folder / file for name, file in names.items()}, config=cfg,
        block_size=block_size, blocks=n_blocks, n_customers=counts["customers"], n_items=counts["items"],
        n_interactions=counts["interactions"], n_purchases=counts["purchases"], n_orders=counts["orders"],
        seconds=seconds,
    )
