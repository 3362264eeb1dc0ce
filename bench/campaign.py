"""Campaign throughput: customers per second for full-customer-base email-pick runs on Complete Journey.

    python bench/campaign.py [--model TAG] [--repeats 5] [--out bench/results/campaign.json]

Why: a campaign run is a batch job over the whole customer base (consent, pressure, picks, business
rules, send log); the target is ≥ 5,000 customers/s on 2 cores.  Scenarios (bundle and data loaded
once, excluded from the timings):

* ``full base · complements`` — every household, complements of what it bought in the last 28 days
  (``cj_complements_top_category.yaml`` with ``audience: all_customers``);
* ``top category · complements`` — ``configs/campaigns/cj_complements_top_category.yaml`` as shipped
  (buyers of SOFT DRINKS in the last 28 days);
* ``full base · upsell`` — every household, pricier bestsellers of the categories it buys.

Each is planned ``--repeats`` times without a store (best time reported, every stage timed), then run
once more against a fresh SQLite store to time logging the sends.  The bundle is the latest
Complete Journey version in the model store (``--model`` to choose; trained with
``configs/train-completejourney.yaml`` when there is none).  Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from pipelines._common import load  # noqa: E402
from recsys.bundle import Bundle, library_versions  # noqa: E402
from recsys.campaigns import campaign_from_dict, load_campaign, plan_campaign  # noqa: E402
from recsys.registry import Registry  # noqa: E402
from recsys.rules import load_placements  # noqa: E402
from recsys.store import Store  # noqa: E402

SHIPPED = ROOT / "configs" / "campaigns" / "cj_complements_top_category.yaml"


def find_bundle(tag: str | None) -> tuple[str, Bundle]:
    registry = Registry()
    if tag is None:
        cj = [v for v in registry.versions()
              if str(v.metadata.get("dataset", "")).startswith("completejourney")]
        if cj:
            tag = cj[0].tag
        else:
            from recsys.config import load_train_config
            from recsys.training import train

            print("no Complete Journey bundle in the model store: training one (several minutes)…",
                  flush=True)
            cfg = load_train_config(ROOT / "configs" / "train-completejourney.yaml")
            ds, _, _ = load(cfg.dataset, cfg.data_path, cfg.lenient)
            result = train(ds, cfg, progress=False)
            meta = {"dataset": ds.source, "headline": result.bundle.manifest["headline"]}
            tag = registry.save(result.bundle.write_into, metadata=meta)
    version = registry.resolve(tag)
    return version.tag, Bundle.load(version.path)


def scenarios() -> dict[str, Any]:
    shipped = load_campaign(SHIPPED)
    raw = shipped.model_dump(mode="json", exclude_unset=True)
    strategy = {**shipped.strategy.model_dump(mode="json", exclude_unset=True), "lookback_days": 28}
    full = campaign_from_dict({**raw, "name": "cj_full_base_complements", "audience": {"all_customers": True},
                               "strategy": strategy}, source="bench:full base · complements")
    upsell = campaign_from_dict({**raw, "name": "cj_full_base_upsell", "audience": {"all_customers": True},
                                 "strategy": {"kind": "upsell", "lookback_days": 90}},
                                source="bench:full base · upsell")
    return {"full base · complements": full, "top category · complements": shipped,
            "full base · upsell": upsell}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="Bundle tag (default: the latest Complete Journey one).")
    ap.add_argument("--data-path", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=4000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "campaign.json"))
    args = ap.parse_args()

    load_before = os.getloadavg()
    tag, bundle = find_bundle(args.model)
    data, _, load_s = load("completejourney", args.data_path, False)
    placements = load_placements(ROOT / "configs" / "placements.yaml")
    print(f"bundle {tag} · {data.interactions.height:,} interactions "
          f"(loaded in {load_s:.1f}s) · load average {load_before[0]:.1f} on {os.cpu_count()} cores\n")

    results: dict[str, Any] = {}
    for name, campaign in scenarios().items():
        best: dict[str, Any] | None = None
        for _ in range(args.repeats):
            run = plan_campaign(campaign, bundle, data, placements=placements, batch_size=args.batch_size)
            if best is None or run.summary["seconds"] < best["seconds"]:
                best = run.summary
        assert best is not None
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{Path(tmp) / 'state.db'}")
            run = plan_campaign(campaign, bundle, data, placements=placements, store=store,
                                batch_size=args.batch_size, run_id="bench")
            t0 = time.perf_counter()
            logged = run.log(store)
            log_s = time.perf_counter() - t0
            store.close()
        results[name] = {
            "campaign": campaign.name,
            "audience": best["audience"],
            "recipients": best["recipients"],
            "controls": best["controls"],
            "picks": best["picks"],
            "excluded": best["excluded"],
            "picks_per_customer": best["picks_per_customer"]["mean"],
            "best_seconds": best["seconds"],
            "customers_per_second": round(best["audience"] / best["seconds"], 1),
            "stage_seconds": best["timings"],
            "log_seconds": round(log_s, 3),
            "logged_rows": logged,
            "category_mix_top10": dict(list(best["category_mix"].items())[:10]),
            "reason_mix": best["reason_mix"],
        }

    head = (f"{'scenario':<28} {'audience':>8} {'recip.':>7} {'picks':>7} {'best s':>7} {'cust/s':>8} "
            f"{'prepare':>8} {'picks s':>8} {'log s':>6}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        st = r["stage_seconds"]
        print(f"{name:<28} {r['audience']:>8,} {r['recipients']:>7,} {r['picks']:>7,} "
              f"{r['best_seconds']:>7.2f} {r['customers_per_second']:>8,.0f} {st['prepare']:>8.2f} "
              f"{st['picks']:>8.2f} {r['log_seconds']:>6.2f}")
    print(f"\n(best of {args.repeats} plans; bundle and data loading excluded; "
          "log = SQLite send log, one run)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bundle": tag,
        "dataset": data.source,
        "interactions": data.interactions.height,
        "customers": data.interactions["customer_id"].n_unique(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "polars_threads": pl.thread_pool_size(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "target_customers_per_second": 5000,
        "scenarios": results,
        "versions": library_versions(),
    }, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
