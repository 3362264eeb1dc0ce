"""Erasure ("forget me") across every place the engine keeps a customer's data.

Why one module: an erasure is only real if it reaches the event store, the send log, consent and
suppression records, every stored model version (histories, factors, per-customer state) and any
running service — and if the next training run excludes the customer even when the untouched source
data still contains them.  The store keeps only a hash of the id and the time, so the erasure record is
not itself personal data.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

from recsys.bundle import Bundle
from recsys.dataset import Dataset
from recsys.models.base import atomic_dir
from recsys.registry import Registry, restamp_files
from recsys.store import Store, erasure_hash

__all__ = ["ErasureReport", "erase_everywhere", "drop_erased", "forget_in_bundle"]

log = logging.getLogger(__name__)


@dataclass
class ErasureReport:
    """What ``erase_everywhere`` did: store rows deleted per table, versions rewritten, history rows
    removed, and the requested ids found nowhere."""

    requested: int
    store_rows: dict[str, int] = field(default_factory=dict)
    bundles_rewritten: list[str] = field(default_factory=list)
    history_rows_removed: int = 0
    unknown: list[str] = field(default_factory=list)


def forget_in_bundle(bundle: Bundle, customer_ids: Sequence[str]) -> int:
    """Remove customers from a bundle's history and every generator's per-customer state."""
    removed = bundle.hybrid.history.forget(customer_ids)
    for gen in bundle.hybrid.generators.values():
        try:
            gen.forget(customer_ids)
        except NotImplementedError:
            continue
    return removed


def erase_everywhere(customer_ids: Sequence[str], store: Store, registry: Registry | None = None) -> ErasureReport:
    """Erase from the store and rewrite every stored model version without the customers (idempotent).

    Each version directory is rewritten atomically in place (same tag): a running service notices the
    erasure through the store's erasure records and forgets the customers in memory at once.
    """
    ids = list(dict.fromkeys(customer_ids))
    report = ErasureReport(requested=len(ids))
    in_store = {c for c in ids if any(store.count(t, c) for t in ("events", "send_log", "consent", "suppression"))}
    report.store_rows = store.erase(ids)
    from recsys.experiments import ExperimentLog  # exposures, outcomes, campaign arms (their own tables)

    experiments = ExperimentLog(store)
    in_store |= experiments.holds(ids)
    report.store_rows.update(experiments.erase(ids))
    known_anywhere: set[str] = set()
    for version in (registry.versions() if registry is not None else []):
        try:
            bundle = Bundle.load(version.path)
        except Exception as exc:  # noqa: BLE001 - a corrupt old version cannot hold readable data; say so
            log.warning("version %s not readable, not rewritten: %s", version.tag, exc)
            continue
        present = [c for c in ids if c in bundle.hybrid.history]
        known_anywhere.update(present)
        if not present:
            continue
        report.history_rows_removed += forget_in_bundle(bundle, present)
        with atomic_dir(version.path) as tmp:
            bundle.write_into(tmp)
            for extra in version.path.iterdir():  # keep BentoML's own files (model.yaml …)
                if not (tmp / extra.name).exists():
                    if extra.is_dir():
                        shutil.copytree(extra, tmp / extra.name)
                    else:
                        shutil.copy2(extra, tmp / extra.name)
            restamp_files(tmp)
        report.bundles_rewritten.append(version.tag)
    report.unknown = [c for c in ids if c not in known_anywhere and c not in in_store]
    return report


def drop_erased(data: Dataset, hashes: set[str]) -> tuple[Dataset, int]:
    """The dataset without customers whose erasure is recorded (the source may still contain them)."""
    if not hashes:
        return data, 0
    customers = data.interactions["customer_id"].unique().to_list()
    erased = [c for c in customers if erasure_hash(c) in hashes]
    if not erased:
        return data, 0
    return data.without_customers(erased), len(erased)


def erased_ids_among(ids: Sequence[str], hashes: set[str]) -> list[str]:
    """The ``ids`` whose erasure hash is in ``hashes`` (``Store.erased_hashes``): how a running service
    finds, among the customers it holds, those erased elsewhere."""
    return [c for c in ids if erasure_hash(c) in hashes]
