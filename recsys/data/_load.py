"""Load a dataset config into a validated ``Dataset``: the one entry point pipelines call."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import polars as pl

from recsys.data._config import DatasetConfig, FilesSource, SqlSource, SyntheticSource, load_dataset_config
from recsys.data._read import ROW, read_table
from recsys.data._validate import Checker, ValidationReport, to_canonical
from recsys.dataset import Dataset
from recsys.exceptions import SchemaError

__all__ = ["load_dataset"]

log = logging.getLogger(__name__)


def load_dataset(
    config: DatasetConfig | str | Path,
    *,
    location: str | Path | None = None,
    lenient: bool = False,
) -> tuple[Dataset, ValidationReport]:
    """Load, map and validate the three tables of ``config``.

    Parameters
    ----------
    config
        A ``DatasetConfig`` or the path of its YAML file.
    location
        Overrides the folder (files source) or URI (sql source) of the config.
    lenient
        Report and drop bad rows instead of raising ``SchemaError`` on the first broken rule.

    Returns
    -------
    (Dataset, ValidationReport)
        The report lists every issue and drop (empty in strict mode, which raises instead).
    """
    if not isinstance(config, DatasetConfig):
        config = load_dataset_config(config)
    report = ValidationReport()
    started = time.perf_counter()
    consent_default = config.consent_default == "granted"

    if isinstance(config.source, SyntheticSource):
        from recsys.data.synthetic import generate_shop

        kwargs = {k: v for k, v in config.source.model_dump(exclude={"kind"}).items() if v is not None}
        shop = generate_shop(**kwargs)
        ds = shop.dataset
        return Dataset(ds.interactions, ds.items, ds.customers, ds.source, consent_default), report

    tables: dict[str, pl.DataFrame] = {}
    origins: dict[str, str] = {}
    for name in ("items", "interactions", "customers"):
        spec = getattr(config, name)
        if spec is None:
            continue
        raw = read_table(config.source, spec, name, location=location)
        origins[name] = raw.origin
        check = Checker(raw, name, lenient=lenient, report=report)
        tables[name] = to_canonical(raw, spec, name, check)

    items, interactions = tables["items"], tables["interactions"]
    unknown = ~interactions["item_id"].is_in(items["item_id"].implode())
    n_unknown = int(unknown.sum())
    if n_unknown:
        policy = config.interactions.unknown_items
        missing = interactions.filter(unknown)
        n_ids = missing["item_id"].n_unique()
        if policy == "placeholder":
            report.notes.append(
                f"{origins['interactions']}: {n_unknown:,} interactions of {n_ids} items missing from the catalogue;"
                " added as placeholder items without category (dataset policy)"
            )
            extra = missing.select("item_id").unique(maintain_order=True).with_columns(pl.lit(0, pl.UInt32).alias(ROW))
            items = pl.concat([items, extra], how="diagonal_relaxed")
        elif policy == "drop" or lenient:
            first = int(missing[ROW][0])
            report.notes.append(
                f"{origins['interactions']}: dropped {n_unknown:,} interactions whose item is not in the catalogue"
                f" ({n_ids} item ids; first at row {first}, item {missing['item_id'][0]!r})"
            )
            report.dropped["interactions"] = report.dropped.get("interactions", 0) + n_unknown
            interactions = interactions.filter(~unknown)
        else:
            col = config.interactions.columns.get("item_id", "item_id")
            raise SchemaError(
                f"{origins['interactions']}: column '{col}': {n_unknown} rows refer to an item not in the "
                f"catalogue ({origins['items']}); first at row {int(missing[ROW][0])} "
                f"(value {missing['item_id'][0]!r}); {n_ids} distinct unknown ids",
                source=origins["interactions"], column=col, row=int(missing[ROW][0]), count=n_unknown,
            )
    if interactions.height == 0:
        raise SchemaError(f"{origins['interactions']}: no valid interactions left", source=origins["interactions"])

    customers = tables.get("customers")
    ds = Dataset(
        interactions=interactions.drop(ROW),
        items=items.drop(ROW),
        customers=customers.drop(ROW) if customers is not None else pl.DataFrame(),
        source=_describe(config, location),
        consent_default=consent_default,
    )
    log.info("loaded %s: %d interactions, %d items in %.2fs", ds.source, ds.interactions.height,
             ds.items.height, time.perf_counter() - started)
    return ds, report


def _describe(config: DatasetConfig, location: str | Path | None) -> str:
    if isinstance(config.source, FilesSource):
        return f"{config.name}:{config.source.resolved_path(location)}"
    from recsys.data._read import redact_uri

    if isinstance(config.source, SqlSource):
        return f"{config.name}:{redact_uri(config.source.resolved_uri(str(location) if location else None))}"
    return f"{config.name}:synthetic"
