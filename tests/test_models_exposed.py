"""The models, exposed: ``recsys complements export`` (md, csv, png; overrides marked), the train
config's overrides file resolved beside the config, and ``recsys audience --item``."""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from recsys.bundle import Bundle
from recsys.campaigns import category_propensity, item_propensity
from recsys.config import GENERATORS, load_train_config
from recsys.data.synthetic import generate_shop
from recsys.registry import Registry
from recsys.training import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Bundle]:
    """A small bundle trained with the shipped overrides file, named as configs/train.yaml names it."""
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "overrides.yaml").write_text((ROOT / "configs" / "complements_overrides.yaml").read_text())
    gens = {name: {"candidates": 20} for name in GENERATORS if name not in ("bpr", "als")}
    gens["category_complements"]["params"] = {"overrides": "overrides.yaml"}  # relative to the config
    import yaml

    (folder / "train.yaml").write_text(yaml.safe_dump({"ranker": {"max_iter": 20}, "generators": gens}))
    cfg = load_train_config(folder / "train.yaml")
    assert cfg.generators["category_complements"].params["overrides"] == str(folder / "overrides.yaml")
    bundle = train(generate_shop(seed=0).dataset, cfg, progress=False).bundle
    registry = Registry()
    tag = registry.save(bundle.write_into, metadata={}, version=f"exposed-{uuid.uuid4().hex[:8]}")
    return tag, Bundle.load(registry.get(tag).path)


def test_shipped_train_config_names_its_overrides_file() -> None:
    cfg = load_train_config(ROOT / "configs" / "train.yaml")
    path = Path(cfg.generators["category_complements"].params["overrides"])
    assert path == (ROOT / "configs" / "complements_overrides.yaml").resolve() and path.exists()


def test_complements_export_marks_overrides_in_every_format(saved: tuple[str, Bundle], tmp_path: Path) -> None:
    tag, _ = saved
    runner = CliRunner()
    for fmt in ("md", "csv", "png"):
        out = tmp_path / f"c.{fmt}"
        r = runner.invoke(app, ["complements", "export", "--model", tag, "--format", fmt, "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert "from overrides" in r.output and "pinned" in r.output
    table = pl.read_csv(tmp_path / "c.csv")
    pins = table.filter(pl.col("pinned")).select("source", "rank", "target").rows()
    assert ("trousers", 1, "belts") in pins and ("shirts", 1, "ties") in pins  # pins first
    assert table.filter((pl.col("source") == "trousers") & (pl.col("target") == "socks"))["origin"].to_list() \
        == ["override"]
    assert table.filter((pl.col("source") == "trousers") & (pl.col("target") == "jeans")).height == 0  # removed
    md = (tmp_path / "c.md").read_text()
    assert "| trousers | 1 | belts |" in md and "override, pinned |" in md
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = runner.invoke(app, ["complements", "export", "--model", tag, "--format", "png", "--out",
                              str(tmp_path / "c.md")])
    assert bad.exit_code != 0 and "--out" in bad.output


def test_item_audience_leaves_out_buyers_and_favours_who_bought_its_neighbours(saved: tuple[str, Bundle]) -> None:
    _, bundle = saved
    cp = bundle.hybrid.copurchase
    import numpy as np

    degree = np.diff(cp.nb_indptr_)
    item = str(cp.item_ids_.ids[int(np.argmax(degree))])  # the item with most co-purchase neighbours
    category = bundle.catalogue.filter(pl.col("item_id") == item)["category"][0]
    ranked = item_propensity(bundle, item)
    buyers = set(bundle.hybrid.history.frame.filter(pl.col("item_id") == item)["customer_id"].to_list())
    assert not buyers & set(ranked["customer_id"].to_list())
    assert ranked["rank"].to_list() == list(range(1, ranked.height + 1))
    assert ranked["score"].is_sorted(descending=True)
    linked = ranked.filter(pl.col("bought_with") > 0)
    assert linked.height > 0 and linked["bought_with_item_id"].null_count() == 0
    base = dict(category_propensity(bundle, category).select("customer_id", "score").iter_rows())
    for cid, score, bw in ranked.select("customer_id", "score", "bought_with").head(50).iter_rows():
        assert score == pytest.approx(base[cid] * (1 + bw))
    r = CliRunner().invoke(app, ["audience", "--model", "latest", "--item", item, "--category", category])
    assert r.exit_code != 0 and "exactly one" in r.output
