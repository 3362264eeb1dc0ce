"""Campaign throughput: customers per second for full-customer-base email-pick runs on Complete Journey.

    python bench/campaign.py [--model TAG] [--repeats 5] [--workers N] [--out bench/results/campaign.json]

Why: a campaign run is a batch job over the whole customer base (consent, pressure, picks, business
rules, send log); the target is ≥ 5,000 customers/s on 2 cores.  Scenarios:

* ``full base · complements`` — every household, complements of what it bought in the last 28 days
  (``cj_complements_top_category.yaml`` with ``audience: all_customers``);
* ``top category · complements`` — ``configs/campaigns/cj_complements_top_category.yaml`` as shipped
  (buyers of SOFT DRINKS in the last 28 days);
* ``full base · upsell`` — every household, pricier bestsellers of the categories it buys.

What is timed, per repeat (medians reported; a repeat runs every measurement back to back, so they
see the same machine load):

* ``cold`` — ``plan_campaign`` as a lone run: it builds its own ``CampaignIndex`` (item and customer
  codes of 1.5 M purchase lines, paid-price medians, catalogue tables, the rules' catalogue index)
  and uses ``--workers`` threads.  What one ``recsys campaign run`` with one campaign file costs after
  loading the bundle and the data.
* ``warm`` — ``plan_campaign`` with the index built once for the bundle and data (as ``recsys
  campaign run`` shares it between the campaign files of one invocation) and ``--workers`` threads
  (default: the CLI's, the machine's cores up to 4).  **The headline customers/s is audience ÷
  median warm time**; the one-off index build is reported beside it.
* ``run`` — ``run_campaign`` like the CLI, warm, against a fresh SQLite store: the plan plus store
  reads (consent, suppression, erasures, send log), the picks file and the send log write.
* ``read`` — the baseline: reading the audience's purchases before ``now`` out of the loaded data (a
  semi-join on the audience's ids, found beforehand), the least any run must do; ``warm ÷ read``.

Not timed: loading the bundle and the data (once, before everything), opening the store.  The runs'
own per-batch progress bars are off; the bench shows its own bar over all runs.  The bundle is the
latest Complete Journey version in the model store (``--model`` to choose; trained with
``configs/train-completejourney.yaml`` when there is none).  Prints a table with the load average;
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from tqdm.auto import tqdm  # noqa: E402

from pipelines._common import load  # noqa: E402
from recsys.bundle import Bundle, library_versions  # noqa: E402
from recsys.campaigns import (  # noqa: E402
    CampaignIndex,
    build_audience,
    campaign_from_dict,
    default_now,
    load_campaign,
    plan_campaign,
    run_campaign,
)
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


def read_audience_purchases(ids: pl.Series, data: Any, now: Any) -> int:
    """The baseline: the audience's purchases before ``now`` (rows), as the simplest run would read them."""
    rows = data.purchases.filter((pl.col("ts") < now) & pl.col("customer_id").is_in(ids.implode()))
    return rows.height


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="Bundle tag (default: the latest Complete Journey one).")
    ap.add_argument("--data-path", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                    help="Threads for the warm runs (default: as recsys campaign run).")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "campaign.json"))
    args = ap.parse_args()

    load_before = os.getloadavg()
    tag, bundle = find_bundle(args.model)
    data, _, load_s = load("completejourney", args.data_path, False)
    placements = load_placements(ROOT / "configs" / "placements.yaml")
    t0 = time.perf_counter()
    index = CampaignIndex(bundle, data)
    index_s = time.perf_counter() - t0
    print(f"bundle {tag} · {data.interactions.height:,} interactions (loaded in {load_s:.1f}s, indexed in "
          f"{index_s:.2f}s) · load average {load_before[0]:.1f} on {os.cpu_count()} cores · "
          f"{args.workers} worker thread(s)\n")

    todo = scenarios()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            tqdm(total=len(todo) * args.repeats, desc="campaign runs", unit="run") as bar:
        for name, campaign in todo.items():
            times: dict[str, list[float]] = {"read": [], "cold": [], "warm": [], "run": []}
            summaries, logged = [], []
            now = default_now(data)
            ids = build_audience(campaign, data, now=now)["customer_id"]
            for r in range(args.repeats):
                read_s, _ = timed(lambda: read_audience_purchases(ids, data, now))
                cold_s, cold = timed(lambda: plan_campaign(campaign, bundle, data, placements=placements,
                                                           batch_size=args.batch_size, workers=args.workers))
                warm_s, plan = timed(lambda: plan_campaign(campaign, bundle, data, placements=placements,
                                                           batch_size=args.batch_size, index=index,
                                                           workers=args.workers))
                store = Store(f"sqlite:///{Path(tmp) / f'state-{len(results)}-{r}.db'}")
                run_s, run = timed(lambda: run_campaign(campaign, bundle, data, placements=placements,
                                                        store=store, out=Path(tmp) / "picks.parquet",
                                                        run_id="bench", batch_size=args.batch_size,
                                                        index=index, workers=args.workers))
                store.close()
                if not cold.picks.equals(plan.picks):  # the index and the threads change nothing
                    raise SystemExit(f"{name}: the warm run's picks differ from the cold run's")
                for key, value in (("read", read_s), ("cold", cold_s), ("warm", warm_s), ("run", run_s)):
                    times[key].append(value)
                summaries.append(plan.summary)
                logged.append(run.summary.get("logged_rows"))
                bar.set_postfix_str(f"{name}: {plan.summary['audience'] / warm_s:,.0f} customers/s")
                bar.update()
            first = summaries[0]
            med = {k: statistics.median(v) for k, v in times.items()}
            stages = {k: round(statistics.median(s["timings"][k] for s in summaries), 3)
                      for k in first["timings"]}
            audience = first["audience"]
            results[name] = {
                "campaign": campaign.name,
                "audience": audience,
                "recipients": first["recipients"],
                "controls": first["controls"],
                "picks": first["picks"],
                "excluded": first["excluded"],
                "picks_per_customer": first["picks_per_customer"]["mean"],
                **{f"median_{k}_seconds": round(v, 4) for k, v in med.items()},
                **{f"{k}_seconds": [round(x, 4) for x in v] for k, v in times.items()},
                "customers_per_second": round(audience / med["warm"], 1),
                "cold_customers_per_second": round(audience / med["cold"], 1),
                "run_customers_per_second": round(audience / med["run"], 1),
                "warm_over_read": round(med["warm"] / med["read"], 2),
                "median_warm_stage_seconds": stages,
                "logged_rows": logged[0],
                "category_mix_top10": dict(list(first["category_mix"].items())[:10]),
                "reason_mix": first["reason_mix"],
            }
    load_after = os.getloadavg()

    head = (f"{'scenario':<28} {'audience':>8} {'recip.':>7} {'picks':>7} {'cold s':>7} {'cold c/s':>8} "
            f"{'warm s':>7} {'warm c/s':>8} {'run s':>6} {'run c/s':>8} {'read s':>7} {'warm÷read':>9}")
    print("\n" + head)
    print("-" * len(head))
    for name, r in results.items():
        print(f"{name:<28} {r['audience']:>8,} {r['recipients']:>7,} {r['picks']:>7,} "
              f"{r['median_cold_seconds']:>7.3f} {r['cold_customers_per_second']:>8,.0f} "
              f"{r['median_warm_seconds']:>7.3f} {r['customers_per_second']:>8,.0f} "
              f"{r['median_run_seconds']:>6.3f} {r['run_customers_per_second']:>8,.0f} "
              f"{r['median_read_seconds']:>7.3f} {r['warm_over_read']:>9.1f}")
    print(f"\n(medians of {args.repeats} repeats; cold = plan_campaign building its own index; "
          f"warm = plan_campaign with the index built once ({index_s:.2f}s) and {args.workers} thread(s); "
          "run = warm run_campaign with a fresh SQLite store, picks file and send log; read = the "
          "audience's purchases alone; bundle and data loading excluded) · load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after on {os.cpu_count()} cores")

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
                    "load_average_after": [round(x, 2) for x in load_after]},
        "repeats": args.repeats,
        "statistic": "median",
        "batch_size": args.batch_size,
        "workers": args.workers,
        "index_seconds": round(index_s, 4),
        "target_customers_per_second": 5000,
        "scenarios": results,
        "versions": library_versions(),
    }, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
