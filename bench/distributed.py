"""The same picks job on the local engine and on Ray with 1 and 2 workers: customers/s and Ray's overhead.

    python bench/distributed.py [--model TAG] [--customers 20000] [--repeats 3] [--workers 1 2]
                                [--out bench/results/distributed.json]

Why: ``--engine ray`` exists to spread the nightly picks over machines; before anyone does that we
want to know what Ray costs on one box — starting the cluster, starting the workers (each loads the
bundle), shipping ids and rows — against what it buys (one more CPU per worker).

How: one local Ray cluster with this machine's CPUs is started once (its start-up is reported on its
own); per repeat, the local engine (``recommend_batches`` → one Parquet file, as ``recsys recommend``)
and then ``recommend_ray`` with each worker count write the first ``--customers`` customers of the
bundle.  Reported per engine: the median wall time and customers/s over the repeats, the wall time of
a job on 200 customers (≈ the fixed cost: worker start-up and the bundle load), and the overhead
against local.  Every Ray output is checked equal to the local file.  The machine is shared: the
1-minute load average is sampled before and after every run and printed beside the numbers.

The bundle: ``--model`` in the BentoML home (default ``latest``).  For the 10 %-of-H&M shop:

    recsys data generate --preset hm --scale 0.1 --format parquet --out /tmp/hm-0.1
    recsys train -c configs/train-hm.yaml -d canonical-files --data-path /tmp/hm-0.1 --no-eval --save
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def timed(fn: Any) -> dict[str, Any]:
    before = load1()
    t0 = time.perf_counter()
    fn()
    return {"seconds": time.perf_counter() - t0, "load_before": before, "load_after": load1()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="latest")
    ap.add_argument("--customers", type=int, default=20_000, help="First N customers of the bundle (0: all).")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=2_000, help="Customers per batch / block.")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "distributed.json")
    args = ap.parse_args()

    from recsys.batch import recommend_batches, write_recommendations
    from recsys.bundle import Bundle
    from recsys.engines import BundleSource, ray_cluster
    from recsys.engines.picks import bundle_customer_ids, read_parts, recommend_ray
    from recsys.registry import Registry

    version = Registry().resolve(args.model)
    ids = bundle_customer_ids(version.path)
    ids = ids[: args.customers] if args.customers else ids
    t0 = time.perf_counter()
    bundle = Bundle.load(version.path)
    load_s = time.perf_counter() - t0
    print(f"{version.tag}: {len(ids):,} customers, bundle load {load_s:.1f}s, load avg {load1()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    runs: dict[str, list[dict[str, Any]]] = {}
    fixed: dict[str, dict[str, Any]] = {}

    def local() -> None:
        write_recommendations(recommend_batches(bundle.hybrid, ids, 12, batch=args.batch, progress=False),
                              tmp / "local.parquet", customers=len(ids))

    t0 = time.perf_counter()
    with ray_cluster(workers=max(args.workers)) as cluster:
        start_s = time.perf_counter() - t0
        print(f"ray cluster: {cluster.cpus} CPUs, started in {start_s:.1f}s", flush=True)
        source = BundleSource.of(version.path)
        for w in args.workers:
            c = type(cluster)(cluster.address, cluster.dashboard, cluster.cpus, w, cluster.started)
            fixed[f"ray-{w}"] = timed(lambda c=c: recommend_ray(c, source, ids[:200], 12, tmp / "small",
                                                                batch=args.batch))
        for r in range(args.repeats):
            runs.setdefault("local", []).append(timed(local))
            want = pl.read_parquet(tmp / "local.parquet")
            for w in args.workers:
                c = type(cluster)(cluster.address, cluster.dashboard, cluster.cpus, w, cluster.started)
                out = tmp / f"ray-{w}"
                runs.setdefault(f"ray-{w}", []).append(timed(lambda c=c, out=out: recommend_ray(
                    c, source, ids, 12, out, batch=args.batch)))
                assert read_parts(out).equals(want), f"ray-{w} differs from local"
            print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]['seconds']:.1f}s (load {v[-1]['load_before']})"
                                                  for k, v in runs.items()), flush=True)

    base = statistics.median(x["seconds"] for x in runs["local"])
    rows = []
    for name, xs in runs.items():
        med = statistics.median(x["seconds"] for x in xs)
        loads = [x["load_before"] for x in xs] + [x["load_after"] for x in xs]
        rows.append({
            "engine": name, "median_s": round(med, 2), "customers_per_s": round(len(ids) / med, 1),
            "vs_local": round(med / base, 2), "fixed_200_s": round(fixed[name]["seconds"], 1) if name in fixed
            else None, "load_min": min(loads), "load_max": max(loads), "runs_s": [round(x["seconds"], 2) for x in xs],
        })
    print(f"\n| engine | median wall | customers/s | × local | 200-customer job | load avg (1 min) |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        small = "-" if r["fixed_200_s"] is None else f"{r['fixed_200_s']:.1f} s"
        print(f"| {r['engine']} | {r['median_s']:.1f} s | {r['customers_per_s']:,.0f} | {r['vs_local']:.2f} | "
              f"{small} | {r['load_min']}–{r['load_max']} |")
    result = {"model": version.tag, "customers": len(ids), "repeats": args.repeats, "batch": args.batch,
              "bundle_load_s": round(load_s, 2), "ray_start_s": round(start_s, 2), "cpus": os.cpu_count(),
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
