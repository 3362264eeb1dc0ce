"""Where batch jobs run: ``local`` (this process, today's path) or ``ray`` (a Ray cluster).

Why a package of its own: the batch jobs (all customers' picks, campaigns, segments) must give the same
rows whichever engine runs them, so the engines hold no modelling code.  The Ray engine cuts the
customers into blocks, runs the *library's own* per-batch function on each block in a worker that
loaded the bundle once (a stateful class, Ray Data's pattern for offline batch inference), and leaves
every step that needs a global view (quantile scores, caps, the send log, the atomic rename of the
output) to the driver.

Ray is an optional extra (``pip install -e ".[ray]"``) imported only when ``engine="ray"`` is asked.

    >>> with ray_cluster(workers=2) as cluster:  # doctest: +SKIP
    ...     summary = recommend_ray(cluster, bundle_dir, ids, 12, out="picks/")
"""

from __future__ import annotations

from typing import Literal

from recsys.engines._ray import (
    BundleSource,
    ClusterInfo,
    EngineError,
    RayUnavailableError,
    check_engine,
    ray_cluster,
    require_ray,
)

#: The engines a batch job accepts (``--engine``).
Engine = Literal["local", "ray"]

__all__ = [
    "BundleSource",
    "ClusterInfo",
    "Engine",
    "EngineError",
    "RayUnavailableError",
    "check_engine",
    "ray_cluster",
    "require_ray",
]
