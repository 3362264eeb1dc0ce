"""Segments benchmark: churn AUC and expected-value error on a time split, Complete Journey and the synthetic shop.

    python bench/segments.py [--dataset completejourney] [--horizon-days 30] [--clv-horizon-days 90]
                             [--out bench/results/segments.json]

For each dataset: the churn model is fitted at end − 2·horizon (stacking earlier windows) and
evaluated on features at end − horizon with labels from the last ``horizon`` days; the expected-value
model the same with its own horizon, next to two naive forecasts (last period's spend, lifetime run
rate).  Prints one table per dataset plus the value-segment and lifecycle mix, and writes JSON.
Complete Journey caveat (PROVENANCE.md): "real" is likely but unconfirmed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines._common import load  # noqa: E402
from recsys.segments import (  # noqa: E402
    CLVModel,
    ChurnModel,
    holdout_cutoffs,
    purchase_lines,
    segments,
    summarize,
)


def run(dataset: str, horizon: float, clv_horizon: float) -> dict:
    ds, _, load_secs = load(dataset, None, False)
    lines = purchase_lines(ds)
    out: dict = {"dataset": ds.source, "load_seconds": load_secs, "customers": lines["customer_id"].n_unique()}

    t0 = time.perf_counter()
    fit_at, eval_at = holdout_cutoffs(lines, horizon)
    churn = ChurnModel(horizon_days=horizon).fit(ds, cutoff=fit_at)
    out["churn_fit_seconds"] = time.perf_counter() - t0
    out["churn"] = churn.evaluate(ds, cutoff=eval_at) | {"trained_on": [w.isoformat() for w in churn.windows_]}

    t0 = time.perf_counter()
    fit_at, eval_at = holdout_cutoffs(lines, clv_horizon)
    clv = CLVModel(horizon_days=clv_horizon).fit(ds, cutoff=fit_at)
    out["clv_fit_seconds"] = time.perf_counter() - t0
    out["clv"] = clv.evaluate(ds, cutoff=eval_at) | {"trained_on": [w.isoformat() for w in clv.windows_]}

    t0 = time.perf_counter()
    table = segments(ds, churn=ChurnModel(horizon_days=horizon).fit(ds), clv=CLVModel(horizon_days=clv_horizon).fit(ds))
    out["segments_seconds"] = time.perf_counter() - t0
    out["value_segments"] = summarize(table, "value_segment").to_dicts()
    out["lifecycle"] = summarize(table, "lifecycle").to_dicts()
    return out


def show(r: dict) -> None:
    c, v = r["churn"], r["clv"]
    print(f"\n== {r['dataset']}  ({r['customers']:,} customers)")
    print(f"churn (no order in {c['horizon_days']:g} d), features at {c['cutoff'][:10]}: AUC {c['auc']:.3f}  "
          f"recency-only AUC {c['auc_recency']:.3f}  Brier {c['brier']:.4f} "
          f"(base-rate Brier {c['base_rate'] * (1 - c['base_rate']):.4f})  base rate {100 * c['base_rate']:.1f} %  "
          f"n={c['n']:,}  fit {r['churn_fit_seconds']:.1f}s")
    print(f"expected value (spend in {v['horizon_days']:g} d), features at {v['cutoff'][:10]}  fit {r['clv_fit_seconds']:.1f}s")
    print(f"  {'forecast':<22} {'MAE':>9} {'RMSE':>9} {'total err':>10} {'top-10% share':>14}")
    print(f"  {'model':<22} {v['mae']:>9.1f} {v['rmse']:>9.1f} {100 * v['rel_error_total']:>+9.1f}% "
          f"{100 * v['top_decile_share']:>13.1f}%")
    print(f"  {'naive: last period':<22} {v['mae_naive']:>9.1f} {v['rmse_naive']:>9.1f} "
          f"{100 * v['rel_error_total_naive']:>+9.1f}% {100 * v['top_decile_share_naive']:>13.1f}%")
    print(f"  {'naive: run rate':<22} {v['mae_run_rate']:>9.1f} {v['rmse_run_rate']:>9.1f} "
          f"{100 * v['rel_error_total_run_rate']:>+9.1f}% {'':>14}")
    for key, by in (("value_segments", "value_segment"), ("lifecycle", "lifecycle")):
        mix = ", ".join(f"{g[by]} {100 * g['customer_share']:.0f}%/{100 * g['revenue_share']:.0f}%" for g in r[key])
        print(f"  {by} (customers/revenue): {mix}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", help="Dataset name(s); default completejourney and synthetic.")
    ap.add_argument("--horizon-days", type=float, default=30.0)
    ap.add_argument("--clv-horizon-days", type=float, default=90.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "segments.json"))
    args = ap.parse_args()
    results = []
    for name in args.dataset or ["completejourney", "synthetic"]:
        r = run(name, args.horizon_days, args.clv_horizon_days)
        show(r)
        results.append(r)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps({"results": results}, indent=2, default=str))
    tmp.replace(out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
