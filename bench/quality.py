"""Quality benchmark: every baseline, generator and the served list on one temporal split, one run.

    python bench/quality.py [--config configs/train-completejourney.yaml] [--out bench/results/quality.json]

Prints one table (MAP@K for the all / new-to-customer / category variants, recall, hit rate, and the
ratio to buy-again-then-popular measured in the same run), the candidate recall that bounds the ranker,
the ranker's gain over the best single generator, the served list per website placement (after business
rules), and an independent brute-force MAP@K recomputed from ``recsys recommend``-shaped output.
Writes everything as JSON.  Complete Journey caveat (PROVENANCE.md): "real" is likely but unconfirmed.
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

import polars as pl  # noqa: E402

from pipelines._common import load  # noqa: E402
from recsys.config import load_train_config  # noqa: E402
from recsys.evaluation import evaluate  # noqa: E402
from recsys.rules import RuleSet, load_placements  # noqa: E402
from recsys.training import train  # noqa: E402


def brute_force_map(recs: pl.DataFrame, test: pl.DataFrame, k: int) -> float:
    """MAP@k in plain Python, independent of recsys.evaluation (the cross-check)."""
    truth: dict[str, set[str]] = {}
    for c, i in test.select("customer_id", "item_id").iter_rows():
        truth.setdefault(c, set()).add(i)
    lists: dict[str, list[str]] = {}
    for c, i in recs.sort("customer_id", "rank").select("customer_id", "item_id").iter_rows():
        lists.setdefault(c, []).append(i)
    total = 0.0
    for c, rel in truth.items():
        hits, s = 0, 0.0
        for r, item in enumerate(lists.get(c, [])[:k], start=1):
            if item in rel:
                hits += 1
                s += hits / r
        total += s / min(k, len(rel))
    return total / max(1, len(truth))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "train-completejourney.yaml"))
    ap.add_argument("--data-path", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "quality.json"))
    ap.add_argument("--save-bundle", default=None, help="Also save the trained bundle to this directory.")
    ap.add_argument("--seed", type=int, default=None, help="Override the config's seed (generators, samples, bags).")
    args = ap.parse_args()

    cfg = load_train_config(args.config, data_path=args.data_path, seed=args.seed)
    ds, _, load_s = load(cfg.dataset, cfg.data_path, cfg.lenient)
    t0 = time.perf_counter()
    result = train(ds, cfg, progress=True)
    k = cfg.k
    m = result.metrics
    if args.save_bundle:
        result.bundle.save(args.save_bundle)
    cutoff = result.info["split"]["cutoff"]
    test = ds.purchases.filter(pl.col("ts") >= cutoff)
    fit_data = ds.purchases.filter(pl.col("ts") < cutoff)

    # the served list per placement: ranked candidates → business rules of that placement
    hybrid = result.bundle.hybrid
    customers = test["customer_id"].unique().sort().to_list()
    ranked = hybrid.rank(customers, hybrid.as_of)
    pop = hybrid.generators["popularity"]
    ids, scores = pop.popular(500)  # type: ignore[attr-defined]
    fallback = pl.DataFrame({"item_id": ids.astype(str), "score": scores.astype(float)}).filter(pl.col("item_id") != "")
    placements = load_placements(ROOT / "configs" / "placements.yaml")
    per_placement = {}
    for name, rules in placements.items():
        rs = RuleSet(rules, result.bundle.catalogue, fallback=fallback)
        lists = hybrid.finalize(ranked, customers, k, now=hybrid.as_of, rules=rs)
        ev = evaluate(lists, test, train=fit_data, items=ds.items, k=k, variants=("all", "new"))
        per_placement[name] = {row["variant"]: row["map"] for row in ev.iter_rows(named=True)}

    # independent check on the served list, exactly as `recsys recommend` writes it
    served = hybrid.recommend(customers, k, fallback=fallback)
    brute = brute_force_map(served, test, k)
    reported = result.headline("all.map")

    def get(model: str, variant: str, col: str = "map") -> float | None:
        row = m.filter((pl.col("model") == model) & (pl.col("variant") == variant))
        return None if row.height == 0 else row[col][0]

    ref = get("baseline:buy_again_then_popular", "all")
    gens = [x for x in m["model"].unique().to_list() if x.startswith("generator:") and not x.endswith(":new_only")]
    best_gen = max(gens, key=lambda g: get(g, "all") or 0)
    implicit = [g for g in ("als", "bpr", "item_knn") if f"generator:{g}:new_only" in set(m["model"])]
    best_impl_new = max((get(f"generator:{g}:new_only", "new") or 0, g) for g in implicit) if implicit else (None, None)

    print(f"\nquality on {ds.source}: test = last {cfg.split.holdout_days} days from {cutoff}, "
          f"{result.info['split']['test_customers']:,} test customers, K={k}")
    print(f"{'model':<40}{'MAP all':>9}{'new':>9}{'category':>10}{'recall':>9}{'hit':>7}{'× b-a-t-p':>11}")
    order = sorted(set(m["model"]), key=lambda x: (not x.startswith("served"), not x.startswith("baseline"), x))
    rows = []
    for name in order:
        a, nw, cat = get(name, "all"), get(name, "new"), get(name, "category")
        rec, hit = get(name, "all", "recall"), get(name, "all", "hit_rate")
        ratio = (a / ref) if (a is not None and ref) else None
        rows.append({"model": name, "map_all": a, "map_new": nw, "map_category": cat, "recall_all": rec,
                     "hit_rate_all": hit, "ratio_vs_buy_again_then_popular": ratio})
        f = lambda v, w=9: f"{v:>{w}.4f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
        print(f"{name:<40}{f(a)}{f(nw)}{f(cat, 10)}{f(rec)}{f(hit, 7)}{f(ratio, 11)}")
    served_all, served_new = get("served", "all"), get("served_new_only", "new")
    print(f"\ncandidate recall (test purchases among ~{result.info['candidates_per_customer']:.0f} candidates/customer): "
          f"{result.info['candidate_recall']:.3f}")
    recall = result.info.get("candidate_recall_table", {})
    if recall:
        union = recall["union"]
        print(f"candidate recall per generator (depth: candidates / new_candidates of the config; "
              f"{union['test_pairs_all']:,} test pairs, {union['test_pairs_new']:,} new to the customer):")
        print(f"  {'generator':<22}{'depth':>7}{'all':>8}{'new depth':>11}{'new':>8}")
        for g, r in recall.items():
            spec = cfg.generators.get(g)
            depth = (str(spec.candidates), str(spec.new_candidates or spec.candidates)) if spec else (
                f"{union['candidates_per_customer_all']:.0f}", f"{union['candidates_per_customer_new']:.0f}")
            print(f"  {g:<22}{depth[0]:>7}{r['all']:>8.3f}{depth[1]:>11}{r['new']:>8.3f}")
    tuning = result.info.get("tifu_knn_tuning")
    tifu_all, tifu_new = get("baseline:tifu_knn", "all"), get("baseline:tifu_knn:new_only", "new")
    if tuning and tifu_all:
        lo, hi = tuning["window"]
        how = "cached" if tuning["cached"] else f"{tuning['seconds']:.0f}s"
        tuned = {k: v for k, v in tuning["params"].items()
                 if k in ("group_size", "within_decay", "group_decay", "n_neighbors", "alpha")}
        print(f"TIFU-KNN baseline: parameters searched on the validation window {lo} – {hi} "
              f"({tuning['customers']} customers, validation MAP {tuning['map']:.4f}, {how}): {tuned}")
        print(f"served all-items vs validation-tuned TIFU-KNN: {served_all / tifu_all:.3f}× "
              f"({served_all:.4f} vs {tifu_all:.4f}; target ≥ 1.05)")
        if tifu_new:
            print(f"served new-to-customer vs TIFU-KNN new-only: {served_new / tifu_new:.2f}× "
                  f"({served_new:.4f} vs {tifu_new:.4f})")
    print(f"ranker gain over the best single generator ({best_gen}): "
          f"{served_all / (get(best_gen, 'all') or 1):.2f}× ({served_all:.4f} vs {get(best_gen, 'all'):.4f})")
    print(f"served all-items vs buy-again-then-popular: {served_all / ref:.2f}× (target ≥ 1.10)")
    if best_impl_new[0]:
        print(f"served new-to-customer vs best implicit model new-only ({best_impl_new[1]}): "
              f"{served_new / best_impl_new[0]:.2f}× ({served_new:.4f} vs {best_impl_new[0]:.4f}; target ≥ 1.5)")
    print("served list per placement (after business rules), MAP@K all / new:")
    for name, v in per_placement.items():
        print(f"  {name:<14} {v.get('all', 0):.4f} / {v.get('new', 0):.4f}")
    print(f"independent brute-force MAP@{k} of the served list: {brute:.6f} (pipeline: {reported:.6f})")
    print(f"timings: load {load_s:.1f}s, train {result.info['train_seconds']:.1f}s; " +
          ", ".join(f"{a} {b:.1f}s" for a, b in result.info["timings"].items()))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = hybrid.generators.get("category_complements")
    if cc is not None:  # the learned category-complement table, for people to read
        name = Path(args.config).stem.replace("train-", "")
        for suffix in (".md", ".csv"):
            cc.export(out.parent / f"complements-{name}{suffix}", n=5)  # type: ignore[attr-defined]
        print(f"wrote {out.parent / f'complements-{name}.md'} (top complements per category)")
    payload = {
        "dataset": ds.source, "config": cfg.model_dump(mode="json"), "k": k, "split": result.info["split"],
        "models": rows, "candidate_recall": result.info["candidate_recall"],
        "best_single_generator": best_gen, "ranker_gain": served_all / (get(best_gen, "all") or 1),
        "served_vs_buy_again_then_popular": served_all / ref,
        "served_new_vs_best_implicit_new": (served_new / best_impl_new[0]) if best_impl_new[0] else None,
        "per_placement": per_placement, "brute_force_map": brute, "pipeline_map": reported,
        "timings": result.info["timings"], "train_seconds": result.info["train_seconds"], "load_seconds": load_s,
        "wall_seconds": time.perf_counter() - t0, "ranker": result.info["ranker"],
        "candidate_recall_table": result.info.get("candidate_recall_table"),
        "tifu_knn_tuning": result.info.get("tifu_knn_tuning"),
        "served_vs_tifu_knn": (served_all / tifu_all) if tifu_all else None,
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
