"""Smoke tests of ``bench/scale.py`` on tiny H&M-sized shops.

The bench runs each stage as its own process (and the http stage starts the real service), so these
drive the script itself, with its own data root, work folder and BentoML home under ``tmp_path``.
Every stage at 0.2 % took ~60 s on the loaded 2-core VM, so it is ``slow``; the default run checks
generate + train at 0.1 % (~10 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "scale.py"


def run_bench(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str, Path]:
    env = dict(os.environ, BENTOML_HOME=str(tmp_path / "bentoml-home"), BENTOML_DO_NOT_TRACK="True",
               OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    out = tmp_path / "results" / "scale.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data-root", str(tmp_path / "data"), "--work",
                           str(tmp_path / "work"), "--out", str(out), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "bentoml-home").exists()  # the bench used its own store under --work
    return json.loads(out.read_text()), proc.stdout, out.with_suffix(".png")


def check_measured(doc: dict[str, Any], size: str, stages: tuple[str, ...]) -> dict[str, Any]:
    assert doc["sizes"] == [float(size)] and doc["git_sha"] and doc["stages"] == list(stages)
    row = doc["results"][size]
    for stage in stages:
        s = row[stage]
        assert s["wall_s"] > 0 and s["peak_rss_gb"] > 0, stage
        assert len(s["load_avg_start"]) == 3 and len(s["load_avg_end"]) == 3, stage
        assert doc["growth_exponent_vs_lines"][stage] == {"wall_s": None, "peak_rss_gb": None}  # one size
        assert "stdout" not in s and "http_plan" not in s  # kept out of the JSON
    assert row["train"]["bundle_mb"] > 0 and row["train"]["tag"].startswith("crosssell:")
    return row


def test_generate_and_train_at_a_tenth_of_a_percent(tmp_path: Path) -> None:
    doc, stdout, png = run_bench(tmp_path, "--sizes", "0.001", "--stages", "generate,train")
    row = check_measured(doc, "0.001", ("generate", "train"))
    assert row["lines"] > 20_000 and row["customers"] > 1_000 and row["train"]["timings"]
    assert png.stat().st_size > 10_000 and "lines/s" in stdout


def test_growth_exponent_is_the_log_log_slope(load_bench: Any) -> None:
    exponent = load_bench("scale").exponent
    assert exponent([1_000, 10_000, 100_000], [2.0, 20.0, 200.0]) == pytest.approx(1.0)
    assert exponent([1_000, 10_000], [1.0, 100.0]) == pytest.approx(2.0)
    assert exponent([1_000], [1.0]) is None  # one size: no slope


@pytest.mark.slow
@pytest.mark.integration
def test_every_stage_end_to_end_at_a_tiny_size(tmp_path: Path) -> None:
    doc, stdout, png = run_bench(tmp_path, "--sizes", "0.002", "--precomputed-customers", "60",
                                 "--live-customers", "30", "--live-budget", "1")
    row = check_measured(doc, "0.002", ("generate", "train", "recommend", "serve", "http"))
    assert row["lines"] > 50_000 and doc["train_mode"] == "no-eval"
    assert row["recommend"]["customers"] == row["customers"] and row["recommend"]["customers_per_s"] > 0
    for stage in ("serve", "http"):
        s = row[stage]
        assert s["precomputed"]["n"] == 60 and s["live"]["n"] == 30, stage  # every customer answered
        assert 0 < s["precomputed"]["p50_ms"] <= s["precomputed"]["p99_ms"] <= s["precomputed"]["max_ms"]
        assert s["live"]["p99_ms"] > 0 and s["rss_end_gb"] > 0
    assert row["serve"]["bundle_load_s"] > 0 and row["serve"]["rss_after_load_gb"] > 0
    assert row["serve"]["precomputed_customers"] == row["customers"]
    assert png.stat().st_size > 10_000 and "p99 precomputed" in stdout
