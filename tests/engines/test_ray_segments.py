"""``segments_ray`` (churn and CLV scored in blocks of customers on Ray) gives the local segment table,
row for row; the RFM quantiles, which need every customer, come from the driver either way."""

from __future__ import annotations

import pytest

from recsys.data.synthetic import generate_shop
from recsys.segments import CLVModel, ChurnModel, segments


@pytest.mark.slow
def test_segment_table_on_ray_equals_local(ray_local) -> None:
    """32 s here under load (two model fits and one Ray job), hence slow."""
    from recsys.engines.segments import segments_ray

    data = generate_shop(seed=0).dataset
    churn, clv = ChurnModel(max_iter=30).fit(data), CLVModel(max_iter=30).fit(data)
    local = segments(data, churn=churn, clv=clv)
    ray = segments_ray(ray_local, data, churn=churn, clv=clv, block_customers=300)  # 7 blocks
    assert local.height > 1000 and local["churn_risk"].null_count() == 0
    assert local.equals(ray)
