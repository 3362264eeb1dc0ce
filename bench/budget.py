"""Campaign budget: does sending to the N customers with the highest expected value beat a random N?

Offline, on the synthetic shop: at each cut-off, score every customer with an order before it
(``recsys.campaigns._budget.expected_value``: P(order in 30 days) × average order value, models fitted on
the purchases before the cut-off only), then count who actually bought and what they spent in the next
30 days among the top N, against 200 random draws of N.  Targeting only: it says who buys anyway, not
what the mail adds (that is the holdout's job in real sends).

    python bench/budget.py [--seed 0]      # prints a Markdown table; JSON in bench/results/budget.json
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from pathlib import Path

from recsys._io import atomic_write_text
from recsys.campaigns._budget import budget_backtest
from recsys.data.synthetic import generate_shop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = generate_shop(seed=args.seed).dataset
    last = data.purchases["ts"].max()
    assert isinstance(last, datetime)
    end = datetime(last.year, last.month, last.day) + timedelta(days=1)
    rows: list[dict[str, object]] = []
    for back in (30, 60, 90):
        for n in (200, 500):
            result = budget_backtest(data, cutoff=end - timedelta(days=back), n=n, draws=200, seed=args.seed)
            rows.append({"cutoff": f"{end - timedelta(days=back):%Y-%m-%d}", **result})
    print("| cut-off | N of customers | buyers: top-N EV | random N (mean) | revenue: top-N EV | random N (mean, p95) | × |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['cutoff']} | {r['n']:.0f} of {r['customers']:,.0f} | {r['ev_buyers']:.0f} | "
              f"{r['random_buyers']:.1f} | {r['ev_revenue']:,.0f} | {r['random_revenue']:,.0f} "
              f"({r['random_revenue_p95']:,.0f}) | {r['revenue_ratio']:.2f} |")
    out = Path(__file__).parent / "results" / "budget.json"
    out.parent.mkdir(exist_ok=True)
    atomic_write_text(out, json.dumps({"seed": args.seed, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
