"""In-process cost of one recommendation: ranking (+ rules) for a single customer, stage by stage.

    python bench/latency.py [--bundle-dir DIR | --tag TAG] [--customers 300]

Without a bundle it trains one on the synthetic shop first.  Prints a table of medians and p95 (ms)
for each stage and for the whole served path (``OnlineRecommender.recommend`` with the cache off), next
to the cost of the popularity generator alone measured in the same run (the floor), and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from recsys.bundle import Bundle  # noqa: E402
from recsys.online import Filters, OnlineRecommender  # noqa: E402
from recsys.ranking._candidates import collect_candidates, widen  # noqa: E402
from recsys.ranking._features import build_features  # noqa: E402
from recsys.ranking._single import single_candidates, single_features  # noqa: E402
from recsys.rules import load_placements  # noqa: E402


def timed(fn, items):  # type: ignore[no-untyped-def]
    out = []
    for x in items:
        t0 = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t0) * 1000)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle-dir")
    ap.add_argument("--tag")
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latency.json"))
    args = ap.parse_args()
    if args.tag:
        from recsys.registry import Registry

        path = Registry().resolve(args.tag).path
    elif args.bundle_dir:
        path = Path(args.bundle_dir)
    else:
        from recsys.config import load_train_config
        from recsys.data.synthetic import generate_shop
        from recsys.training import train

        path = ROOT / "bench" / "results" / "latency-bundle"
        print("training a synthetic-shop bundle …")
        train(generate_shop(seed=0).dataset, load_train_config(ROOT / "configs" / "train.yaml"),
              progress=False).bundle.save(path)
    bundle = Bundle.load(path)
    online = OnlineRecommender(bundle, load_placements(ROOT / "configs" / "placements.yaml"), version="bench")
    online.cache.size = 0  # every call does the work
    h = online.hybrid
    rng = np.random.default_rng(0)
    ids = h.history.customers.ids
    customers = [str(c) for c in rng.choice(ids, size=min(args.customers, len(ids)), replace=False)]
    now = h.as_of
    for c in customers[:20]:  # warm-up
        online.recommend(c, n=12)
    stages: dict[str, np.ndarray] = {}
    pop = h.generators["popularity"]
    stages["floor: popularity generator alone"] = timed(lambda c: pop.recommend([c], 12), customers)
    stages["candidates (all generators)"] = timed(lambda c: collect_candidates(h.generators, [c], h.candidates), customers)
    long = {c: collect_candidates(h.generators, [c], h.candidates) for c in customers}
    stages["widen"] = timed(lambda c: widen(long[c], list(h.generators), h.reasons), customers)
    wide = {c: widen(long[c], list(h.generators), h.reasons) for c in customers}
    stages["features"] = timed(lambda c: build_features(wide[c], h.history.of(c), h.stats, now), customers)
    feats = {c: build_features(wide[c], h.history.of(c), h.stats, now) for c in customers}
    stages["ranker score"] = timed(lambda c: h.score(feats[c]), customers)
    stages["rank, batch path for one customer (all of the above)"] = timed(lambda c: h.rank([c], now), customers)
    stages["per-request path: candidates (dicts + arrays)"] = timed(lambda c: single_candidates(h, c), customers)
    cand = {c: single_candidates(h, c) for c in customers}
    stages["per-request path: features"] = timed(
        lambda c: single_features(cand[c], h.history.of(c), h.item_lookup, now), customers)
    stages["per-request path: rank_one (candidates → features → score)"] = timed(
        lambda c: h.rank_one(c, now), customers)
    ranked = {c: h.rank_one(c, now) for c in customers}
    rules = online.rules["for_you"]
    cols = ["customer_id", "item_id", "score", "reason_type", "source_item_id", "source_ts"]
    stages["business rules (for_you)"] = timed(
        lambda c: rules.apply(ranked[c].select(cols), n=12, now=now, history=h.history.of(c), customer_ids=[c]),
        customers)
    stages["served, live ranking: OnlineRecommender.recommend"] = timed(
        lambda c: online._recommend(c, "for_you", 12, (), Filters(), now), customers)
    t0 = time.perf_counter()
    online.precompute()
    precompute_s = time.perf_counter() - t0
    stages["served, precomputed ranking (as the service does)"] = timed(
        lambda c: online._recommend(c, "for_you", 12, (), Filters(), now), customers)
    print(f"\nper-customer latency, {len(customers)} customers, bundle {path.name} "
          f"({len(h.generators)} generators, {len(h.features)} features)")
    print(f"{'stage':<52}{'median ms':>11}{'p95 ms':>9}")
    rows = {}
    for name, v in stages.items():
        rows[name] = {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95))}
        print(f"{name:<52}{np.median(v):>11.2f}{np.percentile(v, 95):>9.2f}")
    live = rows["served, live ranking: OnlineRecommender.recommend"]["median_ms"]
    pre = rows["served, precomputed ranking (as the service does)"]["median_ms"]
    print(f"precomputing all {len(h.history.customers):,} customers took {precompute_s:.1f}s "
          f"({precompute_s / max(1, len(h.history.customers)) * 1000:.2f} ms/customer in batch)")
    print(f"target ≤ 5 ms median for ranking + rules: live {live:.2f} ms ({'met' if live <= 5 else 'NOT met'}), "
          f"served from precomputed ranking {pre:.2f} ms ({'met' if pre <= 5 else 'NOT met'})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bundle": str(path), "customers": len(customers), "stages": rows,
                               "precompute_seconds": precompute_s,
                               "load_average": os.getloadavg()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
