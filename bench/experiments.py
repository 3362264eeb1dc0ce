"""Online-experiment statistics by simulation: false-positive rate of A/A experiments, power against a planted
lift, and one read-out table through the real store (the table in docs/experiments.md).

    python bench/experiments.py [--reps 2000] [--customers 2000] [--seed 0]

Seeded; array-level for the replications (cheap: ~10 s for 2,000), the store (SQLite in memory) for the table.
Writes bench/results/experiments.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from recsys.experiments import (
    ExperimentLog,
    assign_arms,
    compare_means,
    compare_proportions,
    compare_ratios,
    read_experiment,
)
from recsys.store import Store

METRICS = ("conversion", "revenue_per_customer", "ctr", "aov")


def customers(rng: np.random.Generator, n: int, *, p: float, ctr: float = 0.05, value: float = 40.0) -> dict:
    imp = rng.poisson(8.0, n)
    clicks = rng.binomial(imp, rng.beta(ctr, 1 - ctr, n))  # beta(ctr·1, (1-ctr)·1): one taste per customer
    conv = rng.random(n) < p
    orders = np.where(conv, rng.integers(1, 4, n), 0)
    revenue = np.where(orders > 0, rng.gamma(2.0 * np.maximum(orders, 1), value / 2.0), 0.0)
    return {"imp": imp, "clicks": clicks, "conv": conv, "orders": orders, "revenue": revenue}


def tests(c: dict, t: dict) -> dict:
    return {
        "conversion": compare_proportions(int(c["conv"].sum()), c["conv"].size, int(t["conv"].sum()), t["conv"].size),
        "revenue_per_customer": compare_means(c["revenue"], t["revenue"]),
        "ctr": compare_ratios(c["clicks"], c["imp"], t["clicks"], t["imp"], metric="ctr"),
        "aov": compare_ratios(c["revenue"], c["orders"], t["revenue"], t["orders"], metric="aov", events_are="orders"),
        "ctr_naive_impressions": compare_proportions(int(c["clicks"].sum()), int(c["imp"].sum()),
                                                     int(t["clicks"].sum()), int(t["imp"].sum())),
    }


def rates(rng: np.random.Generator, reps: int, n: int, treatment: dict) -> dict[str, float]:
    hits: dict[str, int] = {}
    for _ in range(reps):
        c = customers(rng, n, p=0.10)
        t = customers(rng, n, **{"p": 0.10, **treatment})
        for k, cmp in tests(c, t).items():
            hits[k] = hits.get(k, 0) + int(cmp.significant)
    return {k: v / reps for k, v in hits.items()}


def store_readout(seed: int, n: int) -> list[str]:
    from pipelines.experiment import readout_lines

    store = Store("sqlite:///:memory:")
    log = ExperimentLog(store)
    log.register("sim", kind="service", config={"control_model": "crosssell:A", "challenger_model": "crosssell:B",
                                                 "share": 0.5, "attribution_hours": 24})
    rng = np.random.default_rng(seed)
    t0 = datetime(2025, 3, 1)
    ids = [f"C{i:05d}" for i in range(n)]
    events = []
    for k, (cid, arm) in enumerate(zip(ids, assign_arms(ids, [("control", .5), ("challenger", .5)], salt="sim"),
                                       strict=True)):
        items = [f"I{(k * 7 + j) % 500:03d}" for j in range(6)]
        log.log_exposure(experiment="sim", rec_id=f"r{k}", arm=arm, model_version=f"crosssell:{'B' if arm == 'challenger' else 'A'}",
                         customer_id=cid, session_id=None, subject=cid, placement="for_you", item_ids=items, shown_at=t0)
        ctr, p = (0.06, 0.12) if arm == "challenger" else (0.05, 0.10)
        taste = rng.beta(ctr * 4, (1 - ctr) * 4)
        for item in items:
            events.append({"customer_id": cid, "item_id": item, "event": "impression"})
            if rng.random() < taste:
                events.append({"customer_id": cid, "item_id": item, "event": "click"})
        if rng.random() < p:
            for o in range(int(rng.integers(1, 3))):
                events.append({"customer_id": cid, "item_id": items[o], "event": "purchase",
                               "price": float(rng.gamma(2.0, 20.0)), "order_id": f"o{k}-{o}"})
    frame = pl.DataFrame(events, schema={"customer_id": pl.String, "item_id": pl.String, "event": pl.String,
                                         "price": pl.Float64, "order_id": pl.String})
    frame = frame.with_columns(pl.lit(1.0).alias("quantity"), pl.lit(None, pl.Datetime("us")).alias("ts"))
    log.attribute(frame, window=timedelta(hours=24), received_at=t0 + timedelta(hours=2))
    return readout_lines(read_experiment(store, "sim"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--customers", type=int, default=2000, help="per arm, for the replications")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table-customers", type=int, default=8000)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    null = rates(rng, args.reps, args.customers, {})
    lift = rates(rng, args.reps // 4, args.customers, {"p": 0.13, "ctr": 0.065, "value": 52.0})
    secs = time.perf_counter() - t
    se = math.sqrt(0.05 * 0.95 / args.reps)
    print(f"A/A: {args.reps} replications × {args.customers:,} customers per arm (α = 0.05, 1 SE = {se:.4f}):")
    for k, v in null.items():
        print(f"  {k:<24} false-positive rate {v:.4f}")
    print(f"planted +30 % conversion, CTR and order value: {args.reps // 4} replications, power:")
    for k, v in lift.items():
        print(f"  {k:<24} detected {v:.3f}")
    print(f"({secs:.1f}s)\n")
    lines = store_readout(args.seed, args.table_customers)
    print("\n".join(lines))
    out = Path(__file__).parent / "results" / "experiments.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "customers_per_arm": args.customers, "seed": args.seed,
                               "false_positive_rate": null, "power": lift, "readout": lines}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
