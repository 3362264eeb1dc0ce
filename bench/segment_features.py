"""Do the customer's value segment and lifecycle stage, as ranker features, lift the served MAP? (issue #19)

    python bench/segment_features.py [--shops synthetic completejourney] [--seeds 0 1 2] [--verify]
                                     [--out bench/results/segment_features.json]

For each shop and seed this runs the evaluated part of ``recsys train`` (ranker on the label windows
before the test cut-off, generators refitted on everything before it, the served lists on the test
window) once, and fits the rankers twice on the same candidate frames: WITHOUT (the shipped feature
set) and WITH two more customer columns,

* ``c_value_segment`` — the RFM value segment as an ordinal (low_value 0, potential 1, most_valuable 2),
* ``c_lifecycle`` — the lifecycle stage as an ordinal (new 0, one_time 1, repeat 2, loyal 3, at_risk 4,
  lapsed 5: ``recsys.segments.LIFECYCLE_STAGES`` order),

both from ``recsys.segments.segments`` with its default thresholds, computed on the purchases before each
label window (for the ranker's training rows) and before the test cut-off (for the served lists), as of
the same "now" the other features use: no label or test purchase reaches them.  Everything else (the
generators, the candidates, the negative samples, the seeds) is shared, so the per-seed difference is
paired.  Nothing is chosen on the test window.

How the features get in: the batch path only, in this script.  ``HybridRecommender`` is subclassed so its
``candidate_frame`` joins the two columns and its feature list names them; the library is unchanged
(the per-request path, the bundle and ``recsys train`` know nothing of them).  The WITHOUT variant is the
library's own ``HybridRecommender``; ``--verify`` checks that it reproduces ``recsys.training.train`` on
the first seed (same served metrics), i.e. that this script's copy of the pipeline is the pipeline.

Prints one table and writes JSON (per seed and mean / min / max / std, with the paired differences).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from pipelines._common import load  # noqa: E402
from recsys.config import TrainConfig, load_train_config  # noqa: E402
from recsys.dataset import Dataset  # noqa: E402
from recsys.history import PurchaseHistory  # noqa: E402
from recsys.ranking._cascade import Cascade  # noqa: E402
from recsys.ranking._features import ItemStats  # noqa: E402
from recsys.ranking.hybrid import HybridRecommender, fit_ranker, label_candidates  # noqa: E402
from recsys.segments import LIFECYCLE_STAGES, segments  # noqa: E402
from recsys.split import temporal_split  # noqa: E402
from recsys.training import train  # noqa: E402
from recsys.training._pipeline import fit_generators  # noqa: E402
from recsys.training._rankers import _sample, label_windows  # noqa: E402

CONFIGS = {"synthetic": ROOT / "configs" / "train.yaml",
           "completejourney": ROOT / "configs" / "train-completejourney.yaml"}
SEGMENT_FEATURES = ("c_value_segment", "c_lifecycle")
VALUE_ORDER = {"low_value": 0.0, "potential": 1.0, "most_valuable": 2.0}
STAGE_ORDER = {s: float(i) for i, s in enumerate(LIFECYCLE_STAGES)}
METRICS = (("served", "all"), ("served_new_only", "new"))


def segment_ordinals(data: Dataset, now: datetime) -> pl.DataFrame:
    """``customer_id, c_value_segment, c_lifecycle`` of every customer with a purchase in ``data`` up to
    ``now`` (RFM quantiles over all of them; default lifecycle thresholds)."""
    table = segments(data, now=now)
    return table.select(
        "customer_id",
        pl.col("value_segment").replace_strict(VALUE_ORDER, return_dtype=pl.Float32).alias(SEGMENT_FEATURES[0]),
        pl.col("lifecycle").replace_strict(STAGE_ORDER, return_dtype=pl.Float32).alias(SEGMENT_FEATURES[1]),
    )


class SegmentHybrid(HybridRecommender):
    """``HybridRecommender`` whose candidate rows also carry the customer's segment ordinals (batch path)."""

    def __init__(self, *args: Any, customer_segments: pl.DataFrame, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.customer_segments = customer_segments
        self.features = [*self.features, *SEGMENT_FEATURES]

    def candidate_frame(self, customer_ids: Any, now: datetime, *, new_only: bool = False) -> pl.DataFrame:
        frame = super().candidate_frame(customer_ids, now, new_only=new_only)
        return frame.join(self.customer_segments, on="customer_id", how="left", maintain_order="left")


def _no_timer(name: str) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


def _counts(cfg: TrainConfig, gens: dict[str, Any]) -> dict[str, dict[str, int]]:
    specs = cfg.enabled_generators()
    return {
        "candidates": {k: v.candidates for k, v in specs.items() if k in gens},
        "new_candidates": {k: v.new_candidates if v.new_candidates is not None else v.candidates
                           for k, v in specs.items() if k in gens},
    }


def run_seed(ds: Dataset, cfg: TrainConfig) -> dict[str, Any]:
    """One seed: shared generators and candidates, rankers WITHOUT and WITH the segment columns, both
    evaluated on the test window.  Mirrors ``recsys.training.train(evaluate=True)``'s evaluated part."""
    t0 = time.perf_counter()
    split = temporal_split(ds, cutoff=cfg.split.cutoff, holdout_days=cfg.split.holdout_days,
                           validation_days=cfg.split.validation_days)
    assert split.validation is not None
    fit_data = split.train.with_interactions(pl.concat([split.train.interactions, split.validation.interactions]))
    frames: list[pl.DataFrame] = []
    frames_new: list[pl.DataFrame] = []
    names_with: list[str] = []
    seg_share: list[dict[str, Any]] = []
    for win in label_windows(fit_data, split.cutoff, cfg.split.validation_days, cfg.ranker.windows):
        gens = fit_generators(win.before, cfg, progress=False, sample=True)[0]
        known = frozenset(win.before.interactions["customer_id"].unique().to_list())
        active = [c for c in win.inside.purchases["customer_id"].unique().sort().to_list() if c in known]
        sample = _sample(active, cfg.ranker.max_customers, cfg.seed + win.index)
        mine = win.before.interactions.filter(pl.col("customer_id").is_in(pl.Series(sample, dtype=pl.String).implode()))
        stats = ItemStats().fit(win.before)
        seg = segment_ordinals(win.before, stats.reference_time_)  # "now" of the features: hybrid.as_of
        hybrid = SegmentHybrid(gens, stats, PurchaseHistory(mine), customer_segments=seg, **_counts(cfg, gens))
        frame = hybrid.candidate_frame(sample, now=hybrid.as_of)
        frame_new = hybrid.candidate_frame(sample, now=hybrid.as_of, new_only=True).filter(pl.col("ci_count") == 0)
        names_with = names_with or hybrid.features
        suffix = pl.col("customer_id") + f"#w{win.index}"
        keep = ["customer_id", *(c for c in names_with if c in frame.columns), "_y"]  # ids, strings: not needed
        frames.append(frame.with_columns(pl.Series("_y", label_candidates(frame, win.inside.purchases)))
                      .with_columns(suffix).select(keep))
        frames_new.append(frame_new.with_columns(
            pl.Series("_y", label_candidates(frame_new, win.inside.purchases))).with_columns(suffix).select(keep))
        seg_share.append({"window_start": str(win.start), "customers_with_segments": seg.height,
                          "sampled_rows_without_segment": int(frame[SEGMENT_FEATURES[0]].null_count())})
        del hybrid, gens, frame, frame_new, mine, win
    names_without = [n for n in names_with if n not in SEGMENT_FEATURES]
    kw = dict(max_iter=cfg.ranker.max_iter, learning_rate=cfg.ranker.learning_rate,
              max_leaf_nodes=cfg.ranker.max_leaf_nodes, negatives_per_positive=cfg.ranker.negatives_per_positive,
              random_state=cfg.seed, backend=cfg.ranker.backend, objective=cfg.ranker.objective)
    stacked = pl.concat(frames, how="diagonal_relaxed")
    stacked_new = pl.concat(frames_new, how="diagonal_relaxed")
    del frames, frames_new
    rankers: dict[str, tuple[Any, Any]] = {}
    for variant, names in (("without", names_without), ("with", names_with)):
        main, _ = fit_ranker(stacked.drop("_y"), stacked["_y"].to_numpy(), names, bags=cfg.ranker.bags, **kw)
        new, _ = fit_ranker(stacked_new.drop("_y"), stacked_new["_y"].to_numpy(), names,
                            bags=cfg.ranker.new_bags or cfg.ranker.bags, **kw)
        rankers[variant] = (main, new)
    del stacked, stacked_new
    gens, _ = fit_generators(fit_data, cfg, progress=False, sample=True)  # as train(): asked about test customers
    stats = ItemStats().fit(fit_data)
    history = PurchaseHistory(fit_data.interactions)
    cascade = Cascade(cfg.ranker.cascade_trees, cfg.ranker.cascade_keep) if cfg.ranker.cascade_trees else None
    seg = segment_ordinals(fit_data, stats.reference_time_)
    from recsys.training._holdout import evaluate_holdout

    out: dict[str, Any] = {"seed": cfg.seed, "windows": seg_share}
    for variant, (main, new) in rankers.items():
        common = dict(ranker=main, ranker_new=new, cascade=cascade, **_counts(cfg, gens))
        hybrid = (HybridRecommender(gens, stats, history, **common) if variant == "without"
                  else SegmentHybrid(gens, stats, history, customer_segments=seg, **common))
        assert list(hybrid.features) == (names_without if variant == "without" else names_with)
        hold = evaluate_holdout(hybrid, fit_data, split.test, ds.items, k=cfg.k, baselines=[],
                                batch=cfg.batch_customers, progress=False, timer=_no_timer)
        m = hold.metrics
        for model, v in METRICS:
            out[f"{variant}:{model}"] = m.filter((pl.col("model") == model) & (pl.col("variant") == v))["map"][0]
        out["buy_again_then_popular"] = m.filter((pl.col("model") == "baseline:buy_again_then_popular")
                                                 & (pl.col("variant") == "all"))["map"][0]
        if variant == "with":
            out["importance_hint"] = _split_counts(main, names_with), _split_counts(new, names_with)
        del hybrid, hold
    out["cutoff"] = str(split.cutoff)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    return out


def _split_counts(ensemble: Any, names: list[str]) -> dict[str, int]:
    """How many tree splits use each segment column (a rough sign of whether the ranker uses it)."""
    import numpy as np

    feat = np.asarray(ensemble.feature)[~np.asarray(ensemble.is_leaf)]
    return {n: int((feat == names.index(n)).sum()) for n in SEGMENT_FEATURES}


def _verify(ds: Dataset, cfg: TrainConfig, got: dict[str, Any]) -> dict[str, Any]:
    """``recsys.training.train`` on the same seed must give the WITHOUT variant's numbers."""
    result = train(ds, cfg, progress=False, refit=False)
    ref = {model: result.headline(f"{v}.map", model) for model, v in METRICS}
    ours = {model: got[f"without:{model}"] for model, _ in METRICS}
    ok = all(abs((ref[k] or 0.0) - ours[k]) < 1e-9 for k in ref)
    print(f"  verify seed {cfg.seed}: train() {ref} vs this script {ours}: {'same' if ok else 'DIFFERENT'}")
    return {"train": ref, "script": ours, "same": ok}


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--verify", action="store_true", help="Check the WITHOUT variant against train() (first seed).")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "segment_features.json"))
    args = ap.parse_args()

    out_path = Path(args.out)
    payload: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    for shop in args.shops:
        base = load_train_config(CONFIGS[shop])
        ds, _, _ = load(base.dataset, base.data_path, base.lenient)
        runs: list[dict[str, Any]] = []
        for seed in args.seeds:
            cfg = load_train_config(CONFIGS[shop], seed=seed)
            r = run_seed(ds, cfg)
            runs.append(r)
            print(f"{shop} seed {seed}: served {r['without:served']:.4f} -> {r['with:served']:.4f}, "
                  f"new-only {r['without:served_new_only']:.4f} -> {r['with:served_new_only']:.4f} "
                  f"({r['seconds']:.0f}s, peak RSS {r['peak_rss_gb']:.2f} GB; splits on the segment columns {r['importance_hint']})", flush=True)
            if args.verify and seed == args.seeds[0]:
                r["verify"] = _verify(ds, cfg, r)
        summary: dict[str, Any] = {}
        for model, _ in METRICS:
            w = [r[f"without:{model}"] for r in runs]
            x = [r[f"with:{model}"] for r in runs]
            summary[model] = {"without": _summary(w), "with": _summary(x),
                              "difference": _summary([b - a for a, b in zip(w, x, strict=True)])}
        payload[shop] = {"config": str(CONFIGS[shop].relative_to(ROOT)), "seeds": args.seeds, "runs": runs,
                         "summary": summary, "features": list(SEGMENT_FEATURES),
                         "path": "batch only (HybridRecommender subclass in this script)"}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        tmp.replace(out_path)
        del ds

    print(f"\nMAP@12 of the served lists, WITHOUT vs WITH the value-segment and lifecycle ranker features")
    print(f"{'shop':<16}{'list':<17}{'seeds':>6}{'without mean (min-max)':>28}{'with mean (min-max)':>28}"
          f"{'paired diff mean (min..max)':>32}")
    for shop, res in payload.items():
        for model, _ in METRICS:
            s = res["summary"][model]
            f = lambda d: f"{d['mean']:.4f} ({d['min']:.4f}-{d['max']:.4f})"  # noqa: E731
            d = s["difference"]
            print(f"{shop:<16}{model:<17}{len(res['seeds']):>6}{f(s['without']):>28}{f(s['with']):>28}"
                  f"{d['mean']:>+12.4f} ({d['min']:+.4f}..{d['max']:+.4f})")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
