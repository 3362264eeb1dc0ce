"""Data layer: load any source into the canonical ``Dataset``, strictly validated.

Sources: a folder of CSV / CSV.gz / Parquet files, a SQL database (SQLite file or PostgreSQL URI),
or the seeded synthetic shop.  See ``configs/datasets/*.yaml`` for column mappings.
"""

from __future__ import annotations

from recsys.data._config import DatasetConfig, load_dataset_config
from recsys.data._load import load_dataset
from recsys.data._stats import describe
from recsys.data._validate import Issue, ValidationReport
from recsys.dataset import Dataset

__all__ = ["Dataset", "describe", "DatasetConfig", "Issue", "ValidationReport", "load_dataset", "load_dataset_config"]
