"""Several campaigns in one call: all checked first, then run in order against one bundle, data set
and index, each logging its sends before the next starts (so the frequency cap applies across them).

What ``recsys campaign run a.yaml b.yaml c.yaml`` does; the weekly batch of a shop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import polars as pl

from recsys.bundle import Bundle
from recsys.campaigns._audience import segment_frame
from recsys.campaigns._config import Campaign
from recsys.campaigns._index import CampaignIndex
from recsys.campaigns._run import CampaignRun, Picker, check_campaign, default_now, run_campaign
from recsys.dataset import Dataset
from recsys.exceptions import ConfigError
from recsys.rules import PlacementRules
from recsys.store import Store

__all__ = ["run_campaigns"]

#: Placeholder in ``out`` replaced by each campaign's name.
CAMPAIGN_FIELD = "{campaign}"


def run_campaigns(
    campaigns: Sequence[Campaign],
    bundle: Bundle,
    data: Dataset,
    *,
    placements: Mapping[str, PlacementRules],
    out: str | Path,
    store: Store | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
    shard: tuple[int, int] | str | None = None,
    now: datetime | None = None,
    model_version: str | None = None,
    batch_size: int = 4000,
    progress: bool = False,
    workers: int = 1,
    notify: Callable[[str], None] | None = None,
    picker: Picker | None = None,
) -> Iterator[CampaignRun]:
    """Run ``campaigns`` in order (``run_campaign`` each), yielding each run once its picks file is
    written and its sends are logged.

    Before the first run (on the first ``next()``): the names must differ, ``out`` must contain
    ``{campaign}`` when there are several, and every campaign is checked against the data
    (``check_campaign``), so a typo in the third file leaves nothing sent.  Then one ``CampaignIndex``
    serves every run, and when more than one campaign has a segment / lifecycle / churn audience, one
    segment table as of ``now`` serves them all.

    Parameters
    ----------
    out
        Picks file of each run, ``{campaign}`` replaced by its name (the summary JSON goes beside it).
    run_id
        With several campaigns, run ``k`` gets ``<run_id>:<campaign name>``; alone, ``run_id`` itself.
    notify
        Called with one line per shared step (index built, segments computed): progress for a person
        watching (the CLI prints them to stderr).
    picker
        Where the picks run (``plan_campaign``'s ``picker``); one for the whole call.

    The other parameters are ``run_campaign``'s.

    Raises
    ------
    ConfigError
        A repeated name, an ``out`` without ``{campaign}``, or a campaign the data contradicts.
    """
    several = len(campaigns) > 1
    names = [c.name for c in campaigns]
    if len(set(names)) < len(names):
        raise ConfigError(f"campaign names must differ when run together; got {', '.join(names)}")
    if several and CAMPAIGN_FIELD not in str(out):
        raise ConfigError(f"The 'out' parameter of run_campaigns must contain {CAMPAIGN_FIELD} with "
                          f"{len(campaigns)} campaigns. Got {str(out)!r} instead.")
    for campaign in campaigns:  # every campaign is checked against the data before the first one runs
        check_campaign(campaign, data, placements=placements)
    say = notify or (lambda line: None)
    index = CampaignIndex(bundle, data)
    say(f"indexed {index.purchases.height:,} purchase lines and {index.n_items:,} items in "
        f"{index.seconds:.2f}s")
    segments: pl.DataFrame | None = None
    by_segment = [c for c in campaigns if c.audience.needs_segments]
    if len(by_segment) > 1:  # one segment table for every segment/lifecycle/churn audience of the call
        t0 = time.perf_counter()
        segments = segment_frame(data, now=now or default_now(data),
                                 churn=any(c.audience.churn_band for c in by_segment))
        say(f"segmented {segments.height:,} customers once for {len(by_segment)} campaigns in "
            f"{time.perf_counter() - t0:.1f}s")
    for campaign in campaigns:
        yield run_campaign(
            campaign, bundle, data, placements=placements, store=store,
            out=Path(str(out).replace(CAMPAIGN_FIELD, campaign.name)), dry_run=dry_run,
            run_id=f"{run_id}:{campaign.name}" if (run_id and several) else run_id, shard=shard, now=now,
            model_version=model_version, batch_size=batch_size, progress=progress, index=index,
            workers=workers, segments=segments, picker=picker)
