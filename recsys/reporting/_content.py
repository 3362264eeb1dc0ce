"""Everything the report shows, extracted from a bundle into plain values once.

Why a separate step: the HTML and Markdown renderers (and the plots) must tell the same story, so
the choices — which rows, in which order, what counts as "best", what the ratio is relative to,
which caveat applies — are made here, in one place, from the bundle's manifest and evaluation
tables.  Renderers only lay the result out.

A bundle that lacks a table (older bundles, a training run without categories) still yields a
report: the section says what is missing instead of failing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from recsys.reporting import _format as fmt

__all__ = ["BASELINE", "Column", "Headline", "ReportContent", "build_content", "version_of"]

#: The reference every ratio is relative to: the strong, simple baseline a model must beat.
BASELINE = "baseline:buy_again_then_popular"
BASELINE_LABEL = "buy-again-then-popular"
#: Models the segment and curve plots compare, in legend order.
COMPARED = ("served", BASELINE, "baseline:popularity_global")
#: Sources shown in the complements section, and targets per source.
TOP_SOURCES = 15
TOP_TARGETS = 3

CAVEAT_COMPLETE_JOURNEY = (
    "Data caveat: this model was trained on The Complete Journey (84.51°). The original release and its R "
    "package present it as real, anonymised purchases of 2,469 households, but the README of the Python port "
    "it was taken from calls it simulated data based on real shopping patterns. Treat “real” as likely but "
    "unconfirmed (see PROVENANCE.md beside the data)."
)

_VARIANT_TEXT = {
    "all": "every item bought in the test window counts as a hit",
    "new": "only items the customer had never bought before count",
    "category": "a hit is a category bought for the first time in the test window",
}


@dataclass(frozen=True)
class Column:
    """One column of the metrics table."""

    key: str
    label: str
    kind: Literal["metric", "ratio"]
    #: Highlight the best (largest) value of this column.
    highlight: bool
    help: str = ""


@dataclass(frozen=True)
class Headline:
    """One headline number: the served list's MAP@K on a variant and its ratio to the baseline."""

    variant: str
    label: str
    model: str
    value: float | None
    baseline: float | None
    explanation: str

    @property
    def ratio(self) -> float | None:
        """``value / baseline``; ``None`` when either is missing or the baseline is zero."""
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


@dataclass
class ReportContent:
    """The report's facts, ready to lay out (no I/O, no formatting decisions left but layout)."""

    tag: str
    version: str
    created: str
    source: str
    k: int
    headlines: list[Headline]
    columns: list[Column]
    #: One row per model, ordered (served, baselines, single generators); a ``section`` column.
    metrics: pl.DataFrame
    #: Best value per highlighted column.
    best: dict[str, float]
    customers_per_variant: dict[str, int]
    #: ``(grouping, group, order, variant, model, map, n_customers)`` or None when not recorded.
    segments: pl.DataFrame | None
    #: ``(model, k, precision, recall)`` or None.
    curve: pl.DataFrame | None
    #: ``(source, rank, target, lift, support, origin)`` for the strongest sources, or None.
    complements: pl.DataFrame | None
    complements_note: str
    #: ``(category, lines)``.
    top_categories: pl.DataFrame
    data_facts: list[tuple[str, str]]
    split_facts: list[tuple[str, str]]
    ranker_facts: list[tuple[str, str]]
    timings: list[tuple[str, str]]
    provenance: list[tuple[str, str]]
    caveat: str | None
    config_json: str
    notes: list[str] = field(default_factory=list)
    #: ``(grouping, segment, period, <KPI_COLUMNS>)`` per month (``recsys.segments.relationship_tables``).
    relationship: pl.DataFrame | None = None
    #: ``(cohort, offset, cohort_size, active, retention)``.
    cohorts: pl.DataFrame | None = None

    @property
    def title(self) -> str:
        """The report's title, naming the model tag."""
        return f"Cross-sell model report · {self.tag}"


def version_of(tag: str) -> str:
    """``crosssell:v2025…`` → ``v2025…`` (a safe directory name)."""
    version = tag.split(":", 1)[1] if ":" in tag else tag
    return re.sub(r"[^A-Za-z0-9._-]", "_", version) or "report"


def _get(mapping: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return mapping


# ---------------------------------------------------------------------------- metrics table
def _columns(k: int, has_baseline: bool) -> list[Column]:
    cols = [
        Column("map_all", f"MAP@{k} all", "metric", True, _VARIANT_TEXT["all"]),
        Column("map_new", f"MAP@{k} new", "metric", True, _VARIANT_TEXT["new"]),
        Column("map_category", f"MAP@{k} category", "metric", True, _VARIANT_TEXT["category"]),
    ]
    if has_baseline:
        cols += [
            Column("ratio_all", "÷ buy-again, all", "ratio", False, f"MAP@{k} all ÷ {BASELINE_LABEL}'s"),
            Column("ratio_new", "÷ buy-again, new", "ratio", False, f"MAP@{k} new ÷ {BASELINE_LABEL}'s"),
        ]
    cols += [
        Column("ndcg_all", f"NDCG@{k}", "metric", True, "all purchases"),
        Column("recall_all", f"Recall@{k}", "metric", True, "all purchases"),
        Column("hit_rate_all", f"Hit rate@{k}", "metric", True, "share of customers with at least one hit"),
        Column("coverage", "Coverage", "metric", True, "distinct recommended items / catalogue"),
        Column("diversity", "Diversity", "metric", True, "distinct categories per list / list length"),
        Column("novelty", "Novelty", "metric", True, "mean self-information of recommended items (bits)"),
    ]
    return cols


def _section(model: str) -> tuple[int, str]:
    if model in ("served", "served_new_only"):
        return 0, "Served lists"
    if model.startswith("baseline:"):
        return 1, "Baselines"
    if model.startswith("generator:"):
        return 2, "Single generators"
    return 3, "Other"


def _wide_metrics(metrics: pl.DataFrame) -> pl.DataFrame:
    """One row per model: MAP per variant, ratios to the baseline, the rest on the ``all`` variant."""
    models = metrics["model"].unique(maintain_order=True).to_list()
    wide = pl.DataFrame({"model": models, "_seen": list(range(len(models)))},
                        schema={"model": pl.String, "_seen": pl.Int64})
    present = set(metrics.columns)
    all_cols = [c for c in ("map", "ndcg", "recall", "hit_rate") if c in present]
    list_cols = [c for c in ("coverage", "diversity", "novelty") if c in present]
    on_all = metrics.filter(pl.col("variant") == "all").unique("model", keep="first", maintain_order=True)
    wide = wide.join(
        on_all.select("model", *[pl.col(c).alias(f"{c}_all") for c in all_cols], *list_cols),
        on="model", how="left",
    )
    for variant in ("new", "category"):
        part = metrics.filter(pl.col("variant") == variant).unique("model", keep="first", maintain_order=True)
        wide = wide.join(part.select("model", pl.col("map").alias(f"map_{variant}")), on="model", how="left")
    for name in ("map_all", "ndcg_all", "recall_all", "hit_rate_all", "map_new", "map_category",
                 "coverage", "diversity", "novelty"):
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Float64).alias(name))
    base = wide.filter(pl.col("model") == BASELINE)
    for variant in ("all", "new"):
        ref = base[f"map_{variant}"][0] if base.height else None
        ratio = pl.col(f"map_{variant}") / ref if ref else pl.lit(None, pl.Float64)
        wide = wide.with_columns(ratio.cast(pl.Float64).alias(f"ratio_{variant}"))
    order = [_section(m) for m in wide["model"]]
    wide = wide.with_columns(
        pl.Series("_section", [o[0] for o in order], dtype=pl.Int64),
        pl.Series("section", [o[1] for o in order], dtype=pl.String),
    )
    return wide.sort("_section", "_seen").drop("_section", "_seen")


def _best(wide: pl.DataFrame, columns: list[Column]) -> dict[str, float]:
    best: dict[str, float] = {}
    for col in columns:
        if col.highlight and col.key in wide.columns:
            value = wide[col.key].drop_nulls().drop_nans().max() if wide[col.key].dtype.is_float() else None
            if value is not None:
                best[col.key] = float(value)  # type: ignore[arg-type]
    return best


def _headlines(wide: pl.DataFrame, headline: dict[str, Any], k: int) -> list[Headline]:
    def value(model: str, variant: str) -> float | None:
        row = wide.filter(pl.col("model") == model)
        return None if row.height == 0 else row[f"map_{variant}"][0]

    out = []
    for variant, label, model in (
        ("all", "all purchases", "served"),
        ("new", "new items only", "served_new_only"),
        ("category", "new categories", "served"),
    ):
        served = headline.get(f"{variant}.map")
        if served is None:
            served = value(model, variant)
        out.append(Headline(variant, f"MAP@{k} · {label}", model, served, value(BASELINE, variant),
                            _VARIANT_TEXT[variant]))
    return out


# ---------------------------------------------------------------------------- segments & curve
def _segments(frame: pl.DataFrame | None) -> pl.DataFrame | None:
    needed = {"model", "grouping", "group", "variant", "map"}
    if frame is None or frame.height == 0 or not needed <= set(frame.columns):
        return None
    frame = frame.filter(pl.col("model").is_in(list(COMPARED)))
    if frame.height == 0:
        return None
    lead = pl.col("group").str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False)
    label = (
        pl.when(pl.col("group").is_null() & pl.col("grouping").is_in(["activity", "value_segment", "lifecycle"]))
        .then(pl.lit("no history"))
        .otherwise(pl.col("group").fill_null("unknown"))
    )
    from recsys.segments import LIFECYCLE_STAGES, VALUE_SEGMENTS

    named = {g: i for i, g in enumerate((*VALUE_SEGMENTS, *LIFECYCLE_STAGES))}  # their own order, not a-z
    order = (
        pl.when(pl.col("group").is_null()).then(pl.lit(-1))
        .when(pl.col("group") == "cold").then(pl.lit(0))
        .when(pl.col("group") == "known").then(pl.lit(1))
        .when(pl.col("group").is_in(list(named))).then(
            pl.col("group").replace_strict(named, default=None, return_dtype=pl.Int64))
        .otherwise(lead.fill_null(10_000))
    )
    model_order = pl.col("model").replace_strict({m: i for i, m in enumerate(COMPARED)}, default=99,
                                                 return_dtype=pl.Int64)
    n = pl.col("n_customers") if "n_customers" in frame.columns else pl.lit(None, pl.Int64)
    return (
        frame.select("grouping", label.alias("group"), order.alias("order"), "variant", "model",
                     pl.col("map").cast(pl.Float64), n.alias("n_customers"), model_order.alias("_m"))
        .sort("grouping", "order", "group", "variant", "_m")
        .drop("_m")
    )


def _curve(frame: pl.DataFrame | None) -> pl.DataFrame | None:
    if frame is None or frame.height == 0 or not {"k", "precision", "recall", "model"} <= set(frame.columns):
        return None
    return frame.select("model", "k", "precision", "recall").sort("model", "k")


# ---------------------------------------------------------------------------- complements
def _category_model(bundle: Any) -> Any:
    generators = getattr(getattr(bundle, "hybrid", None), "generators", None) or {}
    return generators.get("category_complements")


def _complements(
    bundle: Any, summary: dict[str, Any], skipped: dict[str, str]
) -> tuple[pl.DataFrame | None, str]:
    model = _category_model(bundle)
    if model is None:
        reason = skipped.get("category_complements")
        no_categories = reason is not None and "categor" in reason.lower() and "no " in reason.lower()
        if summary.get("categories") == 0 or no_categories:
            return None, "No categories in this dataset, so there is no category-complement model."
        if reason:
            return None, f"The category-complement model was skipped in this run: {reason}"
        return None, "The category-complement model was not enabled in this training run."
    graph: pl.DataFrame = model.graph_frame()
    if graph.height == 0:
        return None, "The category-complement model found no pair that beats its controls."
    if "rank" not in graph.columns:
        graph = graph.with_columns(
            pl.col("lift").rank("ordinal", descending=True).over("source").cast(pl.Int32).alias("rank"))
    if "origin" not in graph.columns:
        graph = graph.with_columns(pl.lit("learned").alias("origin"))
    strength = graph.group_by("source").agg(pl.col("lift").max().alias("_strength"))
    sources = strength.sort(["_strength", "source"], descending=[True, False]).head(TOP_SOURCES)
    top = (
        graph.join(sources, on="source", how="inner")
        .filter(pl.col("rank") <= TOP_TARGETS)
        .sort(["_strength", "source", "rank"], descending=[True, False, False])
        .select("source", "rank", "target", "lift", "support", "origin")
    )
    n_sources = graph["source"].n_unique()
    note = (
        f"Top {TOP_TARGETS} complements of the {min(TOP_SOURCES, n_sources)} source categories with the "
        f"strongest lift ({graph.height:,} directional edges over {n_sources:,} sources in total). "
        "Read “A → B” as: after buying A, customers buy B within the window more often than the "
        "date-matched base rate and than before A; lift is that ratio, support the number of A purchases "
        "followed by B."
    )
    return top, note


# ---------------------------------------------------------------------------- facts
_RANKER_LABELS = {
    "kind": "Ranker",
    "rows": "Training rows (sampled)",
    "positives": "Positive rows",
    "candidates": "Candidates in the label window",
    "validation_candidate_recall": "Candidate recall, validation window",
    "candidates_per_customer": "Candidates per customer, validation window",
    "seconds": "Fit time",
    "error": "Not trained because",
}


def _ranker_facts(ranker: dict[str, Any], cfg: dict[str, Any]) -> list[tuple[str, str]]:
    facts = []
    for key, value in ranker.items():
        label = _RANKER_LABELS.get(key, key.replace("_", " ").capitalize())
        if key == "seconds":
            text = fmt.seconds(value)
        elif key == "kind":
            text = {"gbdt": "gradient-boosted trees (learned)", "rrf": "reciprocal-rank blend (fixed)"}.get(
                str(value), str(value))
        elif "recall" in key:
            text = fmt.share(value)
        else:
            text = fmt.plain(value)
        facts.append((label, text))
    for key in ("max_iter", "learning_rate", "max_leaf_nodes"):
        if key in cfg and ranker.get("kind") == "gbdt":
            facts.append((key.replace("_", " ").capitalize() + " (config)", fmt.plain(cfg[key])))
    return facts


def _data_facts(summary: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, str]]:
    def pick(*keys: str) -> Any:
        for key in keys:
            for src in (summary, data):
                if src.get(key) is not None:
                    return src[key]
        return None

    lo, hi = pick("date_min"), pick("date_max")
    facts = [
        ("Source", fmt.plain(pick("source"))),
        ("Customers", fmt.count(pick("customers"))),
        ("Items in the catalogue", fmt.count(pick("items_in_catalogue", "items"))),
        ("Items bought", fmt.count(pick("items_bought"))),
        ("Categories", fmt.count(pick("categories"))),
        ("Purchase lines", fmt.count(pick("purchases", "interactions"))),
        ("Interactions (all events)", fmt.count(pick("interactions"))),
        ("Orders", fmt.count(pick("orders"))),
        ("Date range", f"{str(lo)[:10]} → {str(hi)[:10]}" if lo and hi else fmt.DASH),
        ("Repeat buyers (more than one visit)", fmt.share(pick("repeat_buyer_share"))),
    ]
    if data.get("sha256"):
        facts.append(("Data fingerprint (sha256)", str(data["sha256"])[:16] + "…"))
    return facts


def _split_facts(info: dict[str, Any], cfg: dict[str, Any]) -> list[tuple[str, str]]:
    split = info.get("split") or {}
    spec = cfg.get("split") or {}
    facts = []
    if split.get("validation_cutoff"):
        facts.append(("Validation window starts (ranker labels)", str(split["validation_cutoff"])[:16]))
    if split.get("cutoff"):
        facts.append(("Test window starts", str(split["cutoff"])[:16]))
    if spec.get("holdout_days"):
        facts.append(("Test window length", f"{fmt.plain(spec['holdout_days'])} days"))
    if spec.get("validation_days"):
        facts.append(("Validation window length", f"{fmt.plain(spec['validation_days'])} days"))
    for key, label in (
        ("train_rows", "Rows before the test window"),
        ("test_rows", "Rows in the test window"),
        ("test_customers", "Test customers (bought in the test window)"),
    ):
        if key in split:
            facts.append((label, fmt.count(split[key])))
    if "known_test_customers" in split and split.get("test_customers"):
        known = split["known_test_customers"]
        facts.append(("…of whom known before the cut-off",
                      f"{known:,} ({fmt.share(known / split['test_customers'])})"))
    if info.get("candidate_recall") is not None:
        facts.append(("Candidate recall, test window (ranker's ceiling)",
                      fmt.share(info["candidate_recall"])))
    if info.get("candidates_per_customer") is not None:
        facts.append(("Candidates per customer, test window", fmt.plain(info["candidates_per_customer"])))
    for name, reason in (info.get("skipped_generators") or {}).items():
        facts.append((f"Skipped generator {name}", str(reason)))
    return facts


def _caveat(source: str) -> str | None:
    flat = re.sub(r"[\s_-]", "", source.lower())
    return CAVEAT_COMPLETE_JOURNEY if "completejourney" in flat else None


def build_content(bundle: Any, *, tag: str) -> ReportContent:
    """Collect what the report shows from ``bundle`` (a ``recsys.bundle.Bundle`` or look-alike).

    Parameters
    ----------
    bundle
        Needs ``manifest`` (dict) and ``tables`` (dict of polars frames: ``metrics``, optionally
        ``segments`` and ``curve``); ``hybrid.generators["category_complements"]`` is used when present.
    tag
        The model tag shown in the title (``crosssell:<version>``).
    """
    manifest: dict[str, Any] = dict(getattr(bundle, "manifest", {}) or {})
    tables: dict[str, pl.DataFrame] = dict(getattr(bundle, "tables", {}) or {})
    cfg = manifest.get("config") or {}
    info = manifest.get("info") or {}
    summary = manifest.get("data_summary") or {}
    data = manifest.get("data") or {}
    notes: list[str] = []

    metrics = tables.get("metrics")
    if metrics is None and manifest.get("metrics"):
        metrics = pl.DataFrame(manifest["metrics"])
    if metrics is None or metrics.height == 0:
        metrics = pl.DataFrame(
            schema={"model": pl.String, "variant": pl.String, "k": pl.Int64, "map": pl.Float64})
        notes.append("This bundle has no evaluation metrics.")
    k = int(cfg.get("k") or (metrics["k"][0] if "k" in metrics.columns and metrics.height else 0) or 0)
    wide = _wide_metrics(metrics)
    has_baseline = BASELINE in set(wide["model"])
    if not has_baseline:
        notes.append(f"The {BASELINE_LABEL} baseline was not evaluated, so there are no ratios.")
    columns = _columns(k, has_baseline)
    served_rows = metrics.filter(pl.col("model") == "served")
    customers = {}
    if "n_customers" in metrics.columns:
        customers = {r["variant"]: int(r["n_customers"])
                     for r in served_rows.iter_rows(named=True) if r.get("n_customers") is not None}
    complements, complements_note = _complements(bundle, summary, info.get("skipped_generators") or {})
    top_cats = summary.get("top_categories") or []
    top_categories = pl.DataFrame(
        {"category": [c.get("category") or "(no category)" for c in top_cats],
         "lines": [int(c.get("lines") or 0) for c in top_cats]},
        schema={"category": pl.String, "lines": pl.Int64},
    )
    timings = [(stage, fmt.seconds(secs)) for stage, secs in (info.get("timings") or {}).items()]
    if info.get("train_seconds") is not None:
        timings.append(("total training", fmt.seconds(info["train_seconds"])))
    provenance = [("Model tag", tag), ("Created", str(manifest.get("created", fmt.DASH))),
                  ("Git SHA", str(manifest.get("git_sha") or "not recorded (not a git checkout)"))]
    provenance += [(lib, str(ver)) for lib, ver in (manifest.get("versions") or {}).items()]
    if manifest.get("bundle_format") is not None:
        provenance.append(("Bundle format", str(manifest["bundle_format"])))
    source = str(summary.get("source") or data.get("source") or "unknown source")
    return ReportContent(
        tag=tag,
        version=version_of(tag),
        created=str(manifest.get("created") or fmt.DASH),
        source=source,
        k=k,
        headlines=_headlines(wide, manifest.get("headline") or {}, k),
        columns=columns,
        metrics=wide,
        best=_best(wide, columns),
        customers_per_variant=customers,
        segments=_segments(tables.get("segments")),
        curve=_curve(tables.get("curve")),
        complements=complements,
        complements_note=complements_note,
        top_categories=top_categories,
        data_facts=_data_facts(summary, data),
        split_facts=_split_facts(info, cfg),
        ranker_facts=_ranker_facts(info.get("ranker") or {}, cfg.get("ranker") or {}),
        timings=timings,
        provenance=provenance,
        caveat=_caveat(source),
        config_json=json.dumps(cfg, indent=2, sort_keys=False, default=str),
        notes=notes,
        relationship=tables.get("relationship"),
        cohorts=tables.get("cohorts"),
    )
