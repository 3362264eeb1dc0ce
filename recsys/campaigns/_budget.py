"""A campaign with a budget: mail the N customers whose mail is worth most, not the first or a random N.

Why: an email costs (provider fees, the customer's attention — every mail raises the unsubscribe risk),
so a shop often sends only N.  The expected value of mailing a customer is *probability to buy × value*:
``p_buy`` = 1 − ``churn_risk`` (``ChurnModel``: P(no order in the next 30 days), fitted on the purchases
before the run's ``now``) and ``value`` = the customer's average order value (RFM monetary ÷ frequency).
``budget_recipients`` walks the eligible customers with picks from the highest expected value down,
drawing the holdout among them as usual, until ``budget`` recipients are found: the controls come from
the same value band, so the uplift read-out still compares like with like.

``budget_backtest`` is the offline check: at a past cut-off, how much did the top-N by expected value
actually spend in the following window, against random N.  It measures targeting (who buys anyway),
not the mail's causal uplift — that needs the holdout of real sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from recsys.campaigns._audience import segment_frame
from recsys.dataset import Dataset

__all__ = ["budget_backtest", "budget_recipients", "expected_value"]


def expected_value(data: Dataset, *, now: datetime) -> pl.DataFrame:
    """``customer_id, p_buy, value, expected_value`` for every customer with an order before ``now``."""
    seg = segment_frame(data, now=now, churn=True)
    return seg.select(
        "customer_id",
        (1.0 - pl.col("churn_risk").fill_null(1.0)).alias("p_buy"),
        (pl.col("monetary") / pl.col("frequency").clip(lower_bound=1)).fill_null(0.0).alias("value"),
    ).with_columns((pl.col("p_buy") * pl.col("value")).alias("expected_value"))


def _order(candidates: Sequence[str], ev: pl.DataFrame) -> list[str]:
    """``candidates`` by expected value, highest first (unknown customers: 0; ties by id)."""
    frame = (pl.DataFrame({"customer_id": pl.Series(list(candidates), dtype=pl.String)})
             .join(ev.select("customer_id", "expected_value"), on="customer_id", how="left")
             .with_columns(pl.col("expected_value").fill_null(0.0))
             .sort(["expected_value", "customer_id"], descending=[True, False]))
    return frame["customer_id"].to_list()


def budget_recipients(candidates: Sequence[str], control: set[str], ev: pl.DataFrame,
                      budget: int) -> tuple[set[str], set[str]]:
    """``(recipients, controls)``: walking ``candidates`` by expected value, each is a control when in
    ``control`` (the holdout draw), a recipient otherwise, until ``budget`` recipients; the rest are out."""
    recipients: set[str] = set()
    controls: set[str] = set()
    for c in _order(candidates, ev):
        if len(recipients) >= budget:
            break
        (controls if c in control else recipients).add(c)
    return recipients, controls


def budget_backtest(data: Dataset, *, cutoff: datetime, n: int, horizon_days: float = 30.0, draws: int = 200,
                    seed: int = 0) -> dict[str, float]:
    """Top-``n`` by expected value at ``cutoff`` vs random ``n`` (``draws`` draws) among customers with an
    order before it: buyers and revenue in the ``horizon_days`` after.

    Returns ``customers``, ``n``, ``ev_buyers``, ``ev_revenue``, ``random_buyers``, ``random_revenue``
    (means over the draws), ``random_revenue_p95`` and ``revenue_ratio`` (EV ÷ random).
    """
    ev = expected_value(data, now=cutoff)
    end = cutoff + timedelta(days=horizon_days)
    future = data.purchases.filter((pl.col("ts") >= cutoff) & (pl.col("ts") < end))
    price = pl.col("price").fill_null(0.0) * (pl.col("quantity").fill_null(1.0) if "quantity" in future.columns
                                              else pl.lit(1.0))
    spent = future.group_by("customer_id").agg(price.sum().alias("revenue"))
    base = ev.join(spent, on="customer_id", how="left").with_columns(pl.col("revenue").fill_null(0.0))
    revenue = base["revenue"].to_numpy()
    top = base.sort(["expected_value", "customer_id"], descending=[True, False]).head(n)["revenue"].to_numpy()
    rng = np.random.default_rng(seed)
    rand = np.array([revenue[rng.choice(len(revenue), size=min(n, len(revenue)), replace=False)]
                     for _ in range(draws)])
    rand_rev = rand.sum(axis=1)
    return {
        "customers": float(base.height), "n": float(n), "horizon_days": horizon_days,
        "ev_buyers": float((top > 0).sum()), "ev_revenue": float(top.sum()),
        "random_buyers": float((rand > 0).sum(axis=1).mean()), "random_revenue": float(rand_rev.mean()),
        "random_revenue_p95": float(np.quantile(rand_rev, 0.95)),
        "revenue_ratio": float(top.sum() / max(rand_rev.mean(), 1e-9)),
    }
