"""What one purchase event costs to fold in, per generator, and how that grows with the shop.

    python bench/foldin.py --data /tmp/hm-0.01 /tmp/hm-0.1 [-c configs/train-hm.yaml] [--events 40]
                           [--out bench/results/foldin.json]

Why: the service folds every purchase into the served model at once (``OnlineRecommender.ingest``),
under its lock, so a fold-in that costs time proportional to the *shop* (rebuilding a generator's
customer arrays, re-indexing the history, extending an id map by copying it) blocks every request
of that worker, and grows 100× from the 1 % to the full H&M-sized shop.  A fold-in should cost
time proportional to the *event*: the same at every size.

How, per shop folder (canonical files, e.g. ``recsys data generate --preset hm --scale F``): fit
the config's generators and the purchase history once (as ``recsys train`` does, without the
ranker), then fold in ``--events`` single purchases one at a time — half for existing customers
(an item they never bought), half for new customers — and time each generator's ``partial_fit``,
``PurchaseHistory.append`` and the whole event (median, p90, max, ms).  Prints a table with the
growth ratio between the smallest and the largest shop (≈ 1 means independent of shop size), the
purchase lines of each, and the load average; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from recsys.config import load_train_config  # noqa: E402
from recsys.data import load_dataset  # noqa: E402
from recsys.history import PurchaseHistory  # noqa: E402
from recsys.training import fit_generators  # noqa: E402


def _events(data: Any, n: int, seed: int) -> list[pl.DataFrame]:
    """``n`` one-row purchase frames: half known customers buying an item new to them, half new customers."""
    rng = random.Random(seed)
    p = data.purchases
    when = p["ts"].max() + timedelta(hours=1)
    customers = p["customer_id"].unique().sort().to_list()
    items = data.items["item_id"].to_list()
    out = []
    for k in range(n):
        cid = rng.choice(customers) if k % 2 == 0 else f"NEW{seed}-{k:05d}"
        out.append(pl.DataFrame({"customer_id": [cid], "item_id": [rng.choice(items)],
                                 "ts": [when + timedelta(seconds=k)], "quantity": [1.0], "price": [None],
                                 "order_id": [f"bench-{k}"], "event": ["purchase"]},
                                schema_overrides={"price": pl.Float64, "quantity": pl.Float32}))
    return out


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "max_ms": round(float(a.max()), 3)}


def run_one(path: Path, config: Path, n_events: int, seed: int) -> dict[str, Any]:
    cfg = load_train_config(config)
    data, _ = load_dataset(ROOT / "configs" / "datasets" / "canonical-files.yaml", location=path)
    t0 = time.perf_counter()
    gens, _ = fit_generators(data, cfg, progress=False)
    fit_s = time.perf_counter() - t0
    history = PurchaseHistory(data.interactions)
    timings: dict[str, list[float]] = {name: [] for name in [*gens, "history", "event"]}
    for ev in _events(data, n_events, seed):
        t_ev = time.perf_counter()
        t = time.perf_counter()
        history.append(ev)
        timings["history"].append((time.perf_counter() - t) * 1000)
        for name, gen in gens.items():
            t = time.perf_counter()
            gen.partial_fit(ev)
            timings[name].append((time.perf_counter() - t) * 1000)
        timings["event"].append((time.perf_counter() - t_ev) * 1000)
    return {"data": str(path), "lines": data.purchases.height, "customers": data.purchases["customer_id"].n_unique(),
            "fit_generators_s": round(fit_s, 1), "events": n_events,
            "per_part": {k: _stats(v) for k, v in timings.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", type=Path, required=True, help="shop folders, smallest first")
    ap.add_argument("-c", "--config", type=Path, default=ROOT / "configs" / "train-hm.yaml")
    ap.add_argument("--events", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "foldin.json")
    args = ap.parse_args(argv)
    load = [os.getloadavg()]
    runs = [run_one(p, args.config, args.events, args.seed) for p in args.data]
    load.append(os.getloadavg())
    parts = list(runs[0]["per_part"])
    head = f"{'part':<22}" + "".join(f"{Path(r['data']).name + ' (' + format(r['lines'], ',') + ')':>28}"
                                        for r in runs)
    print(head + (f"{'growth':>9}" if len(runs) > 1 else ""))
    for part in parts:
        cells = "".join(f"{r['per_part'][part]['median_ms']:>12.2f} ms (p90 {r['per_part'][part]['p90_ms']:>7.1f})"
                        for r in runs)
        growth = (runs[-1]["per_part"][part]["median_ms"] / max(runs[0]["per_part"][part]["median_ms"], 1e-3)
                  if len(runs) > 1 else None)
        print(f"{part:<22}{cells}" + (f"{growth:>8.1f}×" if growth is not None else ""))
    print(f"load average {load[0][0]:.1f} → {load[1][0]:.1f} (1 min), 2 cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "loadavg": load, "config": str(args.config)}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
