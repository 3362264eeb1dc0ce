"""Benchmark the synthetic shop generator (kept out of the test suite: timed tests are flaky).

Why: the generator must stay fast enough to feed million-interaction benchmarks (target: ~1M
interactions in ≤ 10 s on a 2-core machine).  Prints a table and writes
``bench/results/synthetic.json`` (median of 3 runs per size).

Usage::

    python bench/synthetic.py [--runs 3] [--target 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from recsys.data.synthetic import ShopConfig, generate_shop  # noqa: E402


def bench(cfg: ShopConfig, runs: int) -> dict[str, float | int]:
    seconds = []
    rows = 0
    for _ in range(runs):
        started = time.perf_counter()
        shop = generate_shop(cfg)
        seconds.append(time.perf_counter() - started)
        rows = shop.dataset.interactions.height
    median = statistics.median(seconds)
    return {
        "n_customers": cfg.n_customers,
        "n_items": cfg.n_items,
        "interactions": rows,
        "seconds": round(median, 4),
        "seconds_all": [round(s, 4) for s in seconds],
        "interactions_per_s": round(rows / median),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target", type=int, default=1_000_000, help="interactions of the large run")
    args = parser.parse_args()

    started = time.perf_counter()
    big = ShopConfig.for_interactions(args.target)
    sizing_s = time.perf_counter() - started
    configs = {"default": ShopConfig(), "100k": ShopConfig.for_interactions(100_000), "1M": big}
    results = {name: bench(cfg, args.runs) for name, cfg in configs.items()}

    print(f"{'run':<8} {'customers':>10} {'interactions':>13} {'seconds':>9} {'interactions/s':>15}")
    for name, r in results.items():
        print(f"{name:<8} {r['n_customers']:>10,} {r['interactions']:>13,} {r['seconds']:>9.3f} "
              f"{r['interactions_per_s']:>15,}")
    print(f"(for_interactions sizing pilot: {sizing_s:.3f} s; median of {args.runs} runs)")

    out = ROOT / "bench" / "results" / "synthetic.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "synthetic shop generation (generate_shop)",
        "runs": args.runs,
        "statistic": "median",
        "results": results,
        "for_interactions_pilot_seconds": round(sizing_s, 4),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "polars": pl.__version__,
                    "numpy": np.__version__, "platform": platform.platform()},
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
