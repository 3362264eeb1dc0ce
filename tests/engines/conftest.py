"""A local Ray cluster of 2 CPUs for the whole session (started once: ~7 s), stopped at the end.

Every test here skips, saying why, when Ray is not installed (``pip install -e ".[test,ray]"``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    pytest.importorskip("ray.data", reason="Ray is not installed: pip install -e '.[test,ray]' to run the "
                                           "engine tests")
    from recsys.engines import ray_cluster

    with ray_cluster(cpus=2, workers=2) as info:
        yield info
