"""Erasure reaches every store and model version, the service forgets at once, and retraining from the
untouched source still excludes the customer."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.config import GENERATORS, TrainConfig
from recsys.data.synthetic import generate_shop
from recsys.online import OnlineRecommender
from recsys.privacy import drop_erased, erase_everywhere
from recsys.registry import Registry
from recsys.rules import load_placements
from recsys.store import Store
from recsys.training import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def setup(synthetic_bundle_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    reg = Registry()
    tag = reg.save(lambda p: shutil.copytree(synthetic_bundle_dir, p, dirs_exist_ok=True),  # type: ignore[func-returns-value]
                   metadata={"headline": {}}, version=f"privacy-{tmp_path.name[-12:].replace('_', '-').lower()}")
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    bundle = Bundle.load(reg.get(tag).path)
    victim = bundle.hybrid.history.customers.ids[7]
    store.add_events(pl.DataFrame({"customer_id": [victim], "item_id": ["I00001"], "event": ["click"],
                                   "ts": [datetime(2025, 12, 30)]}))
    store.log_sends(pl.DataFrame({"customer_id": [victim], "item_id": ["I00002"], "rank": [1]}),
                    run_id="r", campaign="c", model_version=tag)
    store.set_consent({victim: True})
    store.suppress([victim])
    return reg, tag, store, victim


def _online(path: Path, tag: str) -> OnlineRecommender:
    return OnlineRecommender(Bundle.load(path), load_placements(ROOT / "configs" / "placements.yaml"), version=tag)


def test_erasure_everywhere_then_cold_start(setup) -> None:  # type: ignore[no-untyped-def]
    reg, tag, store, victim = setup
    report = erase_everywhere([victim, "nobody-at-all"], store, reg)
    assert report.unknown == ["nobody-at-all"]
    assert tag in report.bundles_rewritten and report.history_rows_removed > 0
    for table in ("events", "send_log", "consent", "suppression"):
        assert store.count(table, victim) == 0
    assert store.is_erased([victim]) == [True]
    # the rewritten version no longer holds the customer anywhere
    online = _online(reg.get(tag).path, tag)
    assert victim not in online.hybrid.history
    for name, gen in online.hybrid.generators.items():
        cmap = getattr(gen, "customer_ids_", None)
        assert cmap is None or victim not in cmap, name
    cold = online.recommend("someone-never-seen", n=8)
    assert online.recommend(victim, n=8)["item_id"].to_list() == cold["item_id"].to_list()
    # the raw files hold no trace of the id either
    blob = b"".join(f.read_bytes() for f in reg.get(tag).path.rglob("*") if f.is_file())
    assert victim.encode() not in blob
    # a second erasure is a no-op
    again = erase_everywhere([victim], store, reg)
    assert again.bundles_rewritten == [] and not any(again.store_rows.values())


def test_retrain_from_untouched_source_excludes_erased(setup) -> None:  # type: ignore[no-untyped-def]
    reg, tag, store, victim = setup
    erase_everywhere([victim], store, reg)
    source = generate_shop(seed=0).dataset  # the source data still contains the customer
    assert victim in set(source.interactions["customer_id"])
    clean, n = drop_erased(source, store.erased_hashes())
    assert n == 1 and victim not in set(clean.interactions["customer_id"])
    cfg = TrainConfig.model_validate({"ranker": {"max_iter": 10},
                                      "generators": {g: {"candidates": 10} for g in GENERATORS if g != "bpr"}})
    result = train(clean, cfg, progress=False)
    assert victim not in result.bundle.hybrid.history
