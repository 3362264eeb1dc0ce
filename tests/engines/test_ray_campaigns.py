"""``run_campaigns`` with the Ray picker gives the local run's picks files, control groups, exclusions,
summaries and send log, row for row — with a frequency cap spanning the campaigns of the call and a
folding strategy (winback) before another campaign, the two global steps that must stay on the driver."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from recsys.bundle import Bundle
from recsys.campaigns import CampaignRun, campaign_from_dict, default_now, load_campaign, run_campaigns
from recsys.data.synthetic import generate_shop
from recsys.dataset import Dataset
from recsys.rules import load_placements
from recsys.store import Store

ROOT = Path(__file__).resolve().parents[2]
PLACEMENTS = load_placements(ROOT / "configs" / "placements.yaml")
#: Run-dependent summary fields: timings, and where the picks ran.
_VOLATILE = {"timings", "seconds", "workers", "clock", "customers_per_second"}


@pytest.fixture(scope="module")
def data() -> Dataset:
    return generate_shop(seed=0).dataset


def _series(names: list[str]) -> list:
    made = {
        "capped_upsell": campaign_from_dict({
            "name": "capped_upsell", "audience": {"all_customers": True}, "strategy": "upsell", "n_picks": 4,
            "frequency_cap": {"max_emails": 1, "per_days": 7}, "resend_window_days": 30, "holdout_share": 0.1,
        }, source="test.yaml"),
    }
    return [made[n] if n in made else load_campaign(ROOT / "configs" / "campaigns" / f"{n}.yaml") for n in names]


def _run(names: list[str], bundle_dir: Path, data: Dataset, now: datetime, tmp: Path,
         picker: object = None) -> tuple[list[CampaignRun], pl.DataFrame]:
    store = Store(f"sqlite:///{tmp / 'state.db'}")
    try:
        runs = list(run_campaigns(_series(names), Bundle.load(bundle_dir), data, placements=PLACEMENTS,
                                  store=store, now=now, out=tmp / "{campaign}.parquet", run_id="w49",
                                  model_version="m1", batch_size=150, picker=picker))
        log = store.sends().drop("sent_at").sort("run_id", "customer_id", "rank")
    finally:
        store.close()
    return runs, log


def _same(names: list[str], ray_local, synthetic_bundle_dir: Path, data: Dataset, tmp_path: Path) -> None:
    from recsys.engines import BundleSource
    from recsys.engines.campaigns import RayPicker

    now = default_now(data)
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    local, log_local = _run(names, synthetic_bundle_dir, data, now, tmp_path / "local")
    picker = RayPicker(ray_local, BundleSource.of(synthetic_bundle_dir), data)
    ray, log_ray = _run(names, synthetic_bundle_dir, data, now, tmp_path / "ray", picker)
    assert picker.blocks >= 2 * len(names)  # the picks really ran in blocks on the cluster
    assert log_local.height and log_local.equals(log_ray)  # the send log, one transaction per campaign
    for a, b in zip(local, ray, strict=True):
        assert a.picks.height and a.picks.equals(b.picks), a.campaign.name
        assert a.controls.equals(b.controls) and a.excluded.equals(b.excluded)
        assert pl.read_parquet(a.out).equals(pl.read_parquet(b.out))  # type: ignore[arg-type]
        strip = lambda s: {k: v for k, v in s.items() if k not in _VOLATILE}  # noqa: E731
        assert strip(a.summary) == strip(b.summary)


def test_capped_campaign_on_ray_equals_local(ray_local, synthetic_bundle_dir: Path, data: Dataset,
                                             tmp_path: Path) -> None:
    """One Ray job (~10 s here): frequency cap, re-send window and holdout on the driver."""
    _same(["capped_upsell"], ray_local, synthetic_bundle_dir, data, tmp_path)


@pytest.mark.slow
def test_campaign_series_on_ray_equals_local(ray_local, synthetic_bundle_dir: Path, data: Dataset,
                                             tmp_path: Path) -> None:
    """A folding strategy, then a campaign capped by its sends (27 s here: two Ray jobs)."""
    _same(["winback_valuable_at_risk", "capped_upsell"], ray_local, synthetic_bundle_dir, data, tmp_path)


@pytest.mark.slow
def test_every_shipped_campaign_on_ray_equals_local(ray_local, synthetic_bundle_dir: Path, data: Dataset,
                                                    tmp_path: Path) -> None:
    _same(["trousers_to_belts_shoes", "replenishment_reminder", "welcome_series", "winback_valuable_at_risk",
           "capped_upsell"], ray_local, synthetic_bundle_dir, data, tmp_path)
