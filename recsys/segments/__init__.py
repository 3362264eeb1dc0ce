"""Customer segments for relationship marketing: RFM value segments, lifecycle stage, churn risk, CLV.

Why this package: campaigns target *segments* — turn one-time buyers into repeat buyers, keep loyal
ones, win back the at-risk — and ranking and business rules use the same labels.  Everything is
computed "as of" a reference time from purchases only, so a segment table for a past date is
reproducible and the learned parts (``ChurnModel``, ``CLVModel``) are validated on a time split.

>>> from recsys.data.synthetic import generate_shop
>>> from recsys.segments import segments, summarize
>>> table = segments(generate_shop(seed=0).dataset)
>>> summarize(table, "lifecycle")["lifecycle"].to_list()
['new', 'one_time', 'repeat', 'loyal', 'at_risk', 'lapsed']
"""

from recsys.segments._churn import ChurnModel
from recsys.segments._clv import CLVModel
from recsys.segments._features import FEATURES, customer_features, holdout_cutoffs
from recsys.segments._lifecycle import LIFECYCLE_STAGES, lifecycle
from recsys.segments._lines import purchase_lines
from recsys.segments._relationship import KPI_COLUMNS, cohort_retention, relationship_kpis, relationship_tables
from recsys.segments._rfm import VALUE_SEGMENTS, quantile_score, rfm
from recsys.segments._table import CHURN_BANDS, SEGMENT_COLUMNS, segments, summarize

__all__ = [
    "CHURN_BANDS",
    "FEATURES",
    "KPI_COLUMNS",
    "LIFECYCLE_STAGES",
    "SEGMENT_COLUMNS",
    "VALUE_SEGMENTS",
    "CLVModel",
    "ChurnModel",
    "cohort_retention",
    "customer_features",
    "holdout_cutoffs",
    "lifecycle",
    "purchase_lines",
    "quantile_score",
    "relationship_kpis",
    "relationship_tables",
    "rfm",
    "segments",
    "summarize",
]
