"""A campaign split into arms — by strategy or by model — plus a holdout: one run, one send log, every arm recorded.

Why built on ``plan_campaign`` (once per arm) and not beside it: audience, consent, suppression, erasure,
frequency cap, re-send window and business rules must be exactly those of a plain run, or the arms
would differ by more than their strategy.  Each arm's run sees the whole audience and the same
exclusions, but picks only for its own customers (its ``picker`` is narrowed to them), so every customer
is picked for once, by their arm's strategy and model.

Assignment is sticky per *experiment*, not per run (unlike the plain holdout, drawn per run id): a
customer stays in their arm for every weekly run of the experiment, so the arms accumulate comparable
histories.  ``u = hash(salt, customer)``: the holdout takes ``holdout_share`` first, the arms split the
rest by their weights (``recsys.experiments.assign_arms``).  Holdout customers are logged with
``control = true`` and the picks the first arm would have sent them.

What is recorded (``ArmedCampaignRun.log``): the send log as usual, each arm's rows under its own model
version; and ``exp_assignments`` (``recsys.experiments.ExperimentLog``): the arm, strategy, model and
whether emailed, for *every eligible customer* — also those their arm found no picks for — so the
read-out is intention-to-treat and a strategy that reaches fewer customers is not flattered by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from recsys.bundle import Bundle
from recsys.campaigns._batches import pick
from recsys.campaigns._config import Campaign, CampaignArm
from recsys.campaigns._pressure import EXCLUSION_REASONS
from recsys.campaigns._run import CampaignRun
from recsys.store import Store

__all__ = ["ArmedCampaignRun", "plan_arms", "HOLDOUT"]

HOLDOUT = "holdout"


@dataclass
class ArmedCampaignRun(CampaignRun):
    """A ``CampaignRun`` whose customers are split into arms; ``log`` also records the arms."""

    #: Each group's own run (arms and ``holdout``), in assignment order.
    arm_runs: dict[str, CampaignRun] = field(default_factory=dict)
    #: ``customer_id, arm, strategy, model_version, emailed`` for every eligible customer.
    assignments: pl.DataFrame = field(default_factory=pl.DataFrame)

    def log(self, store: Store) -> int:
        """Record every arm's picks (the holdout's as ``control``) in the send log, register the experiment
        and log the arm assignments; returns send-log rows newly written (0 on a re-run of the run id)."""
        from recsys.experiments import ExperimentLog

        exp = self.campaign.experiment
        assert exp is not None  # an ArmedCampaignRun exists only for campaigns with an experiment
        written = total = 0
        for name, run in self.arm_runs.items():
            rows = run.picks.select("customer_id", "item_id", "rank", pl.lit(name == HOLDOUT).alias("control"))
            written += store.log_sends(rows, run_id=self.run_id, campaign=self.campaign.name,
                                       model_version=run.model_version)
            total += rows.height
        log = ExperimentLog(store)
        log.register(exp.name, kind="campaign", config={
            **exp.model_dump(mode="json"), "campaign": self.campaign.name, "holdout_share": self.campaign.holdout_share,
            "arms": [a.name for a in exp.arms], "control": exp.control or exp.arms[0].name})
        self.summary["assignments_logged"] = log.log_assignments(
            self.assignments, experiment=exp.name, campaign=self.campaign.name, run_id=self.run_id)
        self.summary["logged_rows"] = written
        self.summary["already_logged_rows"] = total - written
        return written


def _groups(campaign: Campaign) -> list[tuple[str, float]]:
    exp = campaign.experiment
    assert exp is not None
    weight = sum(a.share for a in exp.arms)
    rest = 1.0 - campaign.holdout_share
    groups = [(HOLDOUT, campaign.holdout_share)] if campaign.holdout_share > 0 else []
    return groups + [(a.name, rest * a.share / weight) for a in exp.arms]


def plan_arms(campaign: Campaign, bundle: Bundle, data: Any, *, bundles: Mapping[str, tuple[str, Bundle]] | None = None,
              **options: Any) -> ArmedCampaignRun:
    """Plan every arm of ``campaign.experiment`` (see the module docstring); nothing is written.

    Parameters
    ----------
    bundles
        ``model tag → (resolved tag, Bundle)`` for arms with their own ``model``; loaded from the
        registry (``recsys.bundle.load_bundle``) when missing.
    options
        ``plan_campaign``'s keyword options (``placements``, ``store``, ``now``, ``run_id``, ``shard``,
        ``model_version``, ``picker``, …), applied to every arm.
    """
    from recsys.campaigns._run import plan_campaign
    from recsys.experiments import assign_arms

    exp = campaign.experiment
    if exp is None:
        raise ValueError("plan_arms needs a campaign with an 'experiment' section")
    groups = _groups(campaign)
    salt = exp.salt or exp.name
    by_name: dict[str, CampaignArm] = {a.name: a for a in exp.arms}
    by_name[HOLDOUT] = exp.arms[0]  # the holdout is logged with what the first arm would have sent
    base_picker = options.pop("picker", None) or pick
    index = options.pop("index", None)
    base_version = options.pop("model_version", None)
    loaded = dict(bundles or {})
    if options.get("clock") is None:  # one send-log clock for every arm
        from recsys.campaigns._run import _clock

        options["clock"] = _clock()
    arm_of: dict[str, str] = {}
    runs: dict[str, CampaignRun] = {}
    for group, _ in groups:
        arm = by_name[group]
        variant = campaign.model_copy(update={"experiment": None, "holdout_share": 0.0,
                                              "strategy": arm.strategy or campaign.strategy})
        if arm.model is None:
            version, arm_bundle = base_version, bundle
        else:
            if arm.model not in loaded:
                from recsys.bundle import load_bundle

                tag, b = load_bundle(arm.model)
                loaded[arm.model] = (tag.tag, b)
            version, arm_bundle = loaded[arm.model]

        def narrowed(ctx: Any, ruleset: Any, camp: Any, eligible: list[str], *rest: Any, _group: str = group) -> Any:
            arms = assign_arms(eligible, groups, salt=salt)
            arm_of.update(zip(eligible, arms, strict=True))
            return base_picker(ctx, ruleset, camp, [c for c, a in zip(eligible, arms, strict=True) if a == _group],
                               *rest)

        run = plan_campaign(variant, arm_bundle, data, picker=narrowed, model_version=version,
                            index=index if arm_bundle is bundle else None, **options)
        options["run_id"] = run.run_id  # one run id for every arm (the default is derived once)
        runs[group] = run
    return _combine(campaign, runs, arm_of, by_name)


def _combine(campaign: Campaign, runs: dict[str, CampaignRun], arm_of: dict[str, str],
             by_name: Mapping[str, CampaignArm]) -> ArmedCampaignRun:
    first = next(iter(runs.values()))
    treated = {g: r for g, r in runs.items() if g != HOLDOUT}
    picks = pl.concat([r.picks for r in treated.values()]) if treated else first.picks.clear()
    controls = runs[HOLDOUT].picks if HOLDOUT in runs else first.picks.clear()
    emailed = set(picks["customer_id"].to_list())
    held = set(controls["customer_id"].to_list())
    base = first.excluded.filter(~pl.col("customer_id").is_in(list(arm_of)))
    no_picks = [c for c in arm_of if c not in emailed and c not in held]
    excluded = pl.concat([base, pl.DataFrame({"customer_id": no_picks, "reason": ["no_picks"] * len(no_picks)}),
                          pl.DataFrame({"customer_id": sorted(held), "reason": [HOLDOUT] * len(held)})],
                         how="vertical_relaxed")
    strategy = {g: (by_name[g].strategy or campaign.strategy).kind for g in runs}
    assignments = pl.DataFrame(
        {"customer_id": list(arm_of), "arm": list(arm_of.values()),
         "strategy": [strategy[a] for a in arm_of.values()],
         "model_version": [runs[a].model_version for a in arm_of.values()],
         "emailed": [c in emailed for c in arm_of]},
        schema={"customer_id": pl.String, "arm": pl.String, "strategy": pl.String, "model_version": pl.String,
                "emailed": pl.Boolean}).sort("customer_id")
    summary = dict(first.summary)
    counts = excluded.group_by("reason").len()
    summary["excluded"] = {r: 0 for r in EXCLUSION_REASONS} | dict(counts.iter_rows())
    summary["recipients"] = len(emailed)
    summary["controls"] = len(held)
    summary["picks"] = picks.height
    per = picks.group_by("customer_id").len()["len"]
    summary["picks_per_customer"] = {
        "mean": round(picks.height / len(emailed), 3) if emailed else 0.0,
        "min": int(per.min()) if emailed else 0, "max": int(per.max()) if emailed else 0,  # type: ignore[arg-type]
        "distribution": {str(k): int(v) for k, v in per.value_counts().sort("len").iter_rows()}}
    for key in ("category_mix", "reason_mix"):  # each arm's run counted its own customers' picks
        merged: dict[str, int] = {}
        for r in treated.values():
            for k, v in r.summary.get(key, {}).items():
                merged[k] = merged.get(k, 0) + v
        summary[key] = dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))
    summary["seconds"] = round(sum(r.summary.get("seconds", 0.0) for r in runs.values()), 3)
    summary["experiment"] = {
        "name": campaign.experiment.name if campaign.experiment else None,
        "arms": {g: {"assigned": sum(1 for a in arm_of.values() if a == g), "emailed": r.picks["customer_id"].n_unique()
                     if g != HOLDOUT else 0, "strategy": strategy[g], "model_version": r.model_version}
                 for g, r in runs.items()}}
    return ArmedCampaignRun(campaign, first.run_id, first.model_version, first.now, picks, controls, excluded,
                            summary, arm_runs=runs, assignments=assignments)
