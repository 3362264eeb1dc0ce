"""A/B test in the service: two model versions side by side, customers split by a sticky hash.

Why a second ``ServingState`` and not a second model inside the first: the challenger needs exactly
what the control has — a bundle loaded beside the serving one, the stored events folded in in log order,
erasures applied, a watcher that swaps versions — so it gets the same class with ``model`` set to the
challenger's tag.  Both follow the one event log, so both arms see every customer's latest events.

Per ``/recommend`` with an experiment running: the customer (or, anonymous, the ``session_id``) is
hashed to an arm (``recsys.experiments.assign_arms``: the same arm on every worker and restart), the
arm's model answers, the response carries ``experiment``, ``arm``, ``model_version`` and a
``recommendation_id``, and the list is logged as exposures.  Per ``POST /events``: impressions, clicks
and purchases are attributed to the exposure that showed their item (``ExperimentLog.attribute``).
Requests with neither a customer nor a session id, and the other read endpoints, are served by the
control model and carry ``arm: null`` (they are not part of the experiment).  If the challenger's
version cannot be loaded, its customers get the control's answer, ``arm: null``, and nothing is logged:
an experiment never degrades the site and never records an arm that did not answer.

Configuration (environment, so every worker agrees; ``recsys serve`` sets it from flags):
``RECSYS_EXPERIMENT_CONFIG`` (a YAML file, ``configs/experiments/*.yaml``), or ``RECSYS_CHALLENGER``
with ``RECSYS_CHALLENGER_SHARE``, ``RECSYS_EXPERIMENT`` and ``RECSYS_ATTRIBUTION_HOURS``, which also
override the file's fields.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl

from recsys.experiments import ExperimentLog, ServiceExperiment, assign_arms, experiment_from_dict, load_experiment
from recsys.experiments._assign import session_subject
from recsys.online import Filters, OnlineRecommender
from serving.state import ServingState

__all__ = ["ServiceExperimentState"]

log = logging.getLogger("crosssell.service")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _default_name(control: str, challenger: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.:-]+", "-", f"{control}-vs-{challenger}").strip("-.:_")
    return (name or "experiment")[:100]


def config_from_env(control_model: str, env: dict[str, str] | None = None) -> ServiceExperiment | None:
    """The experiment the environment asks for, or None (no ``RECSYS_EXPERIMENT_CONFIG``/``RECSYS_CHALLENGER``)."""
    env = dict(os.environ if env is None else env)
    path = env.get("RECSYS_EXPERIMENT_CONFIG")
    raw: dict[str, Any] = load_experiment(path).model_dump(exclude_unset=True) if path else {}
    if not path and not env.get("RECSYS_CHALLENGER"):
        return None
    for var, key, cast in (("RECSYS_CHALLENGER", "challenger", str), ("RECSYS_CHALLENGER_SHARE", "share", float),
                           ("RECSYS_EXPERIMENT", "name", str), ("RECSYS_ATTRIBUTION_HOURS", "attribution_hours", float)):
        if env.get(var):
            raw[key] = cast(env[var])
    raw["control"] = control_model  # the control arm is whatever the service serves (--model / RECSYS_MODEL)
    if "challenger" in raw:
        raw.setdefault("name", _default_name(raw["control"], raw["challenger"]))
    return experiment_from_dict(raw, source=path or "RECSYS_CHALLENGER/RECSYS_EXPERIMENT environment")


class ServiceExperimentState:
    """The challenger's serving state, the assignment rule and the experiment log of one service."""

    def __init__(self, config: ServiceExperiment, control: ServingState) -> None:
        self.config = config
        self.control = control
        self.challenger = ServingState(dataclasses.replace(control.settings, model=config.challenger))
        self.log = ExperimentLog(control.store)
        self.window = timedelta(hours=config.attribution_hours)
        self._warned = False

    @classmethod
    def from_env(cls, control: ServingState) -> ServiceExperimentState | None:
        config = config_from_env(control.settings.model)
        return None if config is None else cls(config, control)

    def start(self) -> None:
        self.challenger.start()
        control = self.control.online.version if self.control.online else self.control.settings.model
        challenger = self.challenger.online.version if self.challenger.online else self.config.challenger
        self.log.register(self.config.name, kind="service", config={
            **self.config.model_dump(mode="json"), "control_model": control, "challenger_model": challenger})
        log.info("experiment %s: %s (control) vs %s (challenger, %.0f %% of customers), attribution window %gh",
                 self.config.name, control, challenger, 100 * self.config.share, self.config.attribution_hours)

    def stop(self) -> None:
        self.challenger.stop()

    # ------------------------------------------------------------ serving
    def arm_of(self, customer_id: str | None, session_id: str | None) -> tuple[str | None, str | None]:
        """``(arm, subject)``: the request's arm and randomised unit, ``(None, None)`` without either id."""
        subject = session_subject(customer_id, session_id)
        if subject is None:
            return None, None
        return assign_arms([subject], self.config.arms, salt=self.config.hash_salt)[0], subject

    def recommend(self, req: Any, control: OnlineRecommender, filters: Filters,
                  items_of: Callable[[pl.DataFrame, OnlineRecommender], list[Any]],
                  body_of: Callable[..., bytes]) -> bytes:
        """Answer one ``RecommendRequest`` from its arm's model, stamped and logged as exposures."""
        arm, subject = self.arm_of(req.customer_id, req.session_id)
        online = control
        if arm == "challenger":
            challenger = self.challenger.online
            if challenger is None:
                if not self._warned:
                    log.warning("experiment %s: challenger %s not loaded (%s); its customers get the control's "
                                "answer, unlogged", self.config.name, self.config.challenger,
                                self.challenger.last_error or "starting")
                    self._warned = True
                arm = None
            else:
                online = challenger
        items, ids = online.recommend(
            req.customer_id, placement=req.placement, n=req.n, context_item_ids=req.context_item_ids,
            filters=filters, render=(f"exp:{req.explain}", lambda frame: (items_of(frame, online),
                                                                          frame["item_id"].to_list())))
        if arm is None or subject is None:
            return body_of(online, items)
        rec_id = uuid.uuid4().hex
        self.log.log_exposure(experiment=self.config.name, rec_id=rec_id, arm=arm, model_version=online.version,
                              customer_id=req.customer_id, session_id=req.session_id, subject=subject,
                              placement=req.placement, item_ids=ids, shown_at=_utcnow())
        return body_of(online, items, experiment=self.config.name, arm=arm, recommendation_id=rec_id)

    # ------------------------------------------------------------- events
    def after_events(self, events: Sequence[Any]) -> int:
        """Attribute posted events to the arm that showed their item; the challenger folds them in now."""
        frame = pl.DataFrame(
            [{"customer_id": e.customer_id, "session_id": e.session_id, "recommendation_id": e.recommendation_id,
              "item_id": e.item_id, "event": e.event, "quantity": e.quantity, "price": e.price,
              "order_id": e.order_id, "ts": e.ts} for e in events],
            schema={"customer_id": pl.String, "session_id": pl.String, "recommendation_id": pl.String,
                    "item_id": pl.String, "event": pl.String, "quantity": pl.Float64, "price": pl.Float64,
                    "order_id": pl.String, "ts": pl.Datetime("us")})
        attributed = self.log.attribute(frame, window=self.window, received_at=_utcnow())
        self.challenger.catch_up()
        return attributed
