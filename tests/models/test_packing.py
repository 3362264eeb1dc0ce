"""Lossless packing of integer arrays on disk: whatever goes in comes back, dtype included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.models._packing import MIN_PACKED_BYTES, pack, unpack

_BIG = MIN_PACKED_BYTES // 8 + 1  # elements of an int64 array large enough to be packed


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from([np.int64, np.int32, np.uint64, np.uint32, np.int16, np.float64, np.float32]),
    values=st.lists(st.integers(-(2**63), 2**64 - 1), min_size=1, max_size=8),
    scale=st.sampled_from([1, 10, 1_000_000]),
)
def test_every_array_comes_back_identical(dtype: type, values: list[int], scale: int) -> None:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        values = [min(max(v * scale, info.min), info.max) for v in values]
    array = np.resize(np.array(values, dtype=dtype), _BIG)
    stored, spec = pack(array)
    back = unpack(stored, spec)
    assert back.dtype == array.dtype and np.array_equal(back, array)
    assert stored.nbytes <= array.nbytes


def test_offsets_positions_and_whole_second_timestamps_shrink() -> None:
    rng = np.random.default_rng(0)
    indptr = np.cumsum(rng.integers(0, 50, _BIG)).astype(np.int64)  # CSR offsets
    items = rng.integers(0, 105_000, _BIG).astype(np.int64)  # positions in a 105k catalogue
    seconds = rng.integers(1_600_000_000, 1_660_000_000, _BIG)
    ts_us = seconds.astype(np.int64) * 1_000_000  # two years of whole-second timestamps in microseconds
    padded = np.where(rng.random(_BIG) < 0.1, -1, items)  # -1 padding
    for array, itemsize in ((indptr, 4), (items, 4), (ts_us, 4), (padded, 4)):
        stored, spec = pack(array)
        assert stored.dtype.itemsize == itemsize and spec is not None
        assert np.array_equal(unpack(stored, spec), array)


def test_whole_seconds_as_floats_and_ascii_ids_shrink() -> None:
    rng = np.random.default_rng(1)
    seconds = rng.integers(1_600_000_000, 1_660_000_000, _BIG).astype(np.float64)
    ids = np.array([f"C{i:08d}" for i in range(_BIG)])
    for array, itemsize in ((seconds, 4), (ids, 9)):
        stored, spec = pack(array)
        assert stored.dtype.itemsize == itemsize and spec is not None
        back = unpack(stored, spec)
        assert back.dtype == array.dtype and np.array_equal(back, array)


def test_what_would_not_come_back_stays_as_it_is() -> None:
    rng = np.random.default_rng(2)
    small = np.arange(10, dtype=np.int64)
    fractions = rng.random(_BIG)
    with_inf = np.where(rng.random(_BIG) < 0.5, -np.inf, 3.0)
    accents = np.array(["café"] * _BIG)
    octets = np.zeros(_BIG, np.uint8)
    for array in (small, fractions, with_inf, accents, octets):
        stored, spec = pack(array)
        assert spec is None and stored is array


def test_a_model_loads_its_packed_arrays_back(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from recsys.data.synthetic import generate_shop
    from recsys.models.copurchase import CoPurchase

    monkeypatch.setattr("recsys.models._packing.MIN_PACKED_BYTES", 0)  # pack even this small shop's arrays
    data = generate_shop(n_customers=300, n_items=60, seed=1).dataset
    model = CoPurchase().fit(data)
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["packed"]
    back = CoPurchase.load(tmp_path / "m")
    for name, array in model._state()[0].items():
        loaded = back._state()[0][name]
        assert loaded.dtype == array.dtype and np.array_equal(loaded, array), name
    ids = data.customers["customer_id"].head(20).to_list()
    assert back.recommend_frame(ids, 10).equals(model.recommend_frame(ids, 10))
