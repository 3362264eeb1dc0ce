"""Benchmark the business-rules layer (kept out of the test suite: timed tests are flaky).

Why: rules run per request in the web service.  Target: one customer × 200 candidates in ≤ 1.5 ms
median with a prepared ``RuleSet``.  Also timed: a batch of 2,000 customers × 150 candidates (the
email path), the unprepared ``apply_rules`` wrapper (to show what preparing once saves) and the
``RuleSet`` preparation itself.  Uses the synthetic shop and, with ``--realdata``, the Complete
Journey catalogue (~90k items, 300 categories) as well.  Prints a table and writes
``bench/results/rules.json``.

Usage::

    python bench/rules.py [--single-runs 500] [--batch-runs 5] [--realdata]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from recsys.dataset import Dataset  # noqa: E402
from recsys.rules import RuleSet, apply_rules, load_placements  # noqa: E402


def timings(fn: Callable[[], object], runs: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    gc.collect()
    gc.disable()
    try:
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - started)
    finally:
        gc.enable()
    seconds.sort()
    return {
        "runs": runs,
        "median_ms": round(statistics.median(seconds) * 1e3, 4),
        "p95_ms": round(seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))] * 1e3, 4),
        "min_ms": round(seconds[0] * 1e3, 4),
    }


def candidates(ds: Dataset, customers: list[str], k: int, seed: int) -> pl.DataFrame:
    """Random candidates (k distinct catalogue items per customer) shaped like the ranker's output."""
    rng = np.random.default_rng(seed)
    item_ids = ds.items["item_id"].to_numpy()
    picks = np.concatenate([rng.choice(len(item_ids), k, replace=False) for _ in customers])
    n = len(picks)
    return pl.DataFrame(
        {
            "customer_id": np.repeat(np.asarray(customers, dtype=object), k),
            "item_id": item_ids[picks],
            "score": rng.random(n).astype(np.float32),
            "reason_type": np.where(rng.random(n) < 0.5, "bought_together", "similar_customers"),
            "source_item_id": item_ids[rng.integers(0, len(item_ids), n)],
            "source_ts": [datetime(2025, 6, 1)] * n,
        },
        schema={"customer_id": pl.String, "item_id": pl.String, "score": pl.Float32, "reason_type": pl.String,
                "source_item_id": pl.String, "source_ts": pl.Datetime("us")},
    )


def bench_dataset(ds: Dataset, placements: dict, args: argparse.Namespace) -> dict[str, dict]:
    purchases = ds.purchases
    now = purchases["ts"].max() + timedelta(seconds=1)  # type: ignore[operator]
    popular = (purchases.filter(pl.col("ts") >= now - timedelta(days=90)).group_by("item_id").len()
               .select("item_id", pl.col("len").cast(pl.Float64).alias("score")))
    by_count = purchases.group_by("customer_id").len().sort(["len", "customer_id"], descending=[True, False])
    customers = by_count["customer_id"].to_list()
    one = [customers[len(customers) // 10]]  # an active but not extreme customer
    batch = customers[: args.batch_customers]
    single = candidates(ds, one, args.single_candidates, seed=1)
    many = candidates(ds, batch, args.batch_candidates, seed=2)
    cols = ["customer_id", "item_id", "ts", "price"]
    hist_one = purchases.filter(pl.col("customer_id") == one[0]).select(cols)
    hist_many = purchases.filter(pl.col("customer_id").is_in(batch)).select(cols)

    results: dict[str, dict] = {}
    started = time.perf_counter()
    prepared = RuleSet.for_placements(placements, ds.items, popular)
    prepare_ms = round((time.perf_counter() - started) * 1e3, 2)
    results["prepare all placements"] = {"runs": 1, "median_ms": prepare_ms, "p95_ms": None, "min_ms": None}
    for placement in args.placements:
        rs = prepared[placement]
        out = rs.apply(single, n=12, now=now, history=hist_one)
        assert out.height == 12, (placement, out.height)
        results[f"1×{args.single_candidates} {placement}"] = timings(
            lambda rs=rs: rs.apply(single, n=12, now=now, history=hist_one), args.single_runs)
    rules = placements[args.placements[0]]
    results[f"1×{args.single_candidates} apply_rules (unprepared)"] = timings(
        lambda: apply_rules(single, n=12, rules=rules, catalogue=ds.items, history=hist_one, fallback=popular,
                            now=now), max(5, args.single_runs // 20))
    for placement in args.placements:
        rs = prepared[placement]
        out = rs.apply(many, n=12, now=now, history=hist_many)
        assert out.height == 12 * len(batch), (placement, out.height)
        results[f"{len(batch)}×{args.batch_candidates} {placement}"] = timings(
            lambda rs=rs: rs.apply(many, n=12, now=now, history=hist_many), args.batch_runs, warmup=1)
    return {"items": ds.items.height, "categories": ds.items["category"].n_unique(), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single-runs", type=int, default=500)
    parser.add_argument("--batch-runs", type=int, default=5)
    parser.add_argument("--single-candidates", type=int, default=200)
    parser.add_argument("--batch-customers", type=int, default=2000)
    parser.add_argument("--batch-candidates", type=int, default=150)
    parser.add_argument("--placements", nargs="+", default=["for_you", "email", "product_page"])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "placements.yaml")
    parser.add_argument("--realdata", action="store_true",
                        help="also run on Complete Journey (../shared/data)")
    args = parser.parse_args()
    placements = load_placements(args.config)

    from recsys.data.synthetic import generate_shop

    shop = generate_shop(seed=0).dataset
    datasets: dict[str, dict] = {"synthetic(seed=0)": bench_dataset(shop, placements, args)}
    if args.realdata:
        from recsys.data import load_dataset

        ds, _ = load_dataset(ROOT / "configs" / "datasets" / "completejourney.yaml")
        datasets["completejourney"] = bench_dataset(ds, placements, args)

    print(f"{'dataset':<18} {'case':<40} {'median ms':>10} {'p95 ms':>9} {'runs':>5}")
    for dname, d in datasets.items():
        for case, r in d["results"].items():
            p95 = f"{r['p95_ms']:>9.3f}" if r["p95_ms"] is not None else f"{'':>9}"
            print(f"{dname:<18} {case:<40} {r['median_ms']:>10.3f} {p95} {r['runs']:>5}")
    print("(target: 1 customer × 200 candidates ≤ 1.5 ms median with a prepared RuleSet)")

    out = ROOT / "bench" / "results" / "rules.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "business rules (recsys.rules.RuleSet.apply), n=12",
        "statistic": "median and p95 of wall time per call",
        "datasets": datasets,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "polars": pl.__version__,
                    "numpy": np.__version__, "platform": platform.platform()},
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(out)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
