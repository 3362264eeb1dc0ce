"""``Registry(home)``: a given BentoML home is used without touching the environment."""

from __future__ import annotations

import os
from pathlib import Path

from recsys.registry import Registry


def test_a_given_home_has_its_own_store_and_leaves_the_environment_alone(tmp_path: Path) -> None:
    before = os.environ.get("BENTOML_HOME")
    default = Registry()
    n_default = len(default.versions())
    a, b = Registry(tmp_path / "a"), Registry(tmp_path / "b")
    tag = a.save(lambda path: (path / "weights.txt").write_text("1"), metadata={"headline": {"all.map": 0.5}},
                 version="home-a")
    assert os.environ.get("BENTOML_HOME") == before
    assert (tmp_path / "a" / "models" / "crosssell" / "home-a").is_dir()
    assert [v.tag for v in a.versions()] == [tag] and a.get("home-a").metric("all.map") == 0.5
    assert b.versions() == [] and len(default.versions()) == n_default
    a.promote(tag, metric="all.map")
    assert a.state_file == tmp_path / "a" / "crosssell-registry.json" and a.state_file.exists()
    assert Registry(tmp_path / "a").resolve("promoted").tag == tag
    assert b.promoted() is None
