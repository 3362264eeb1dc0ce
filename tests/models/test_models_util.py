"""``recsys.models._util``: the generators' shared helpers on tiny inputs with known answers."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from recsys.dataset import Dataset
from recsys.exceptions import UnknownIdError
from recsys.idmap import IdMap
from recsys.models import _util as u
from recsys.models.popularity import Popularity


def test_shared_helpers_give_the_known_answers(tiny: Dataset) -> None:
    frame = pl.DataFrame({"customer_id": ["c2", "c1", "c1"], "item_id": ["b", "a", "b"],
                          "ts": [datetime(2025, 1, 2), datetime(2025, 1, 1), datetime(2025, 1, 3)],
                          "event": ["purchase", "view", "purchase"]})
    # purchases only (a frame without ``event`` is all purchases), in the models' columns
    assert u.purchases_only(frame).height == 2 and u.purchases_only(frame.drop("event")).height == 3
    p = u.purchases_of(frame)
    assert p.columns == ["customer_id", "item_id", "ts", "order_id"] and p["order_id"].null_count() == 2
    # time: µs and float seconds since the epoch, both ways
    t = datetime(2025, 1, 2, 3, 4, 5, 6)
    assert u.to_us(t) == 1_735_787_045_000_006 and u.epoch_second(t) == u.to_us(t) / 1e6
    secs = u.epoch_seconds(pl.Series([t]))
    assert secs[0] == pytest.approx(u.epoch_second(t)) and u.to_datetime(secs).to_list() == [t]
    # ids: sorted distinct ids, vectorised look-up (-1 unknown), rows as recommend resolves them
    ids = u.sorted_ids(p["customer_id"], pl.Series(["c3", None]))
    assert ids.ids.tolist() == ["c1", "c2", "c3"]
    assert u.index_of(pl.Series(["c3", "zz", "c1"]), ids).tolist() == [2, -1, 0]
    model = Popularity().fit(tiny)
    known = tiny.purchases["customer_id"][0]
    assert u.resolve_rows(model, [known, "nobody"], "empty")[1][1] == -1
    with pytest.raises(UnknownIdError, match="1 unknown customer id"):
        u.resolve_rows(model, [known, "nobody"], "raise")
    group, names = u.group_index(pl.DataFrame({"item_id": ["a", "b"], "category": ["x", None]}),
                                 IdMap(np.array(["a", "b"], dtype=object)), "category")
    assert group.tolist() == [0, -1] and names.tolist() == ["x"]
    # array passes
    assert u.expand_ranges(np.array([5, 0]), np.array([2, 1]))[1].tolist() == [5, 6, 0]
    assert u.rank_within(np.array([1, 1, 2, 3, 3, 3])).tolist() == [0, 1, 0, 0, 1, 2]
    local, pos = u.gather_rows(np.array([0, 2, 2, 5]), np.array([2, -1, 0]))
    assert local.tolist() == [0, 0, 0, 2, 2] and pos.tolist() == [2, 3, 4, 0, 1]
    assert u.csr_from_coo(np.array([0, 0, 2]), 3).tolist() == [0, 2, 2, 3]
    idx, score = u.top_n_triples(np.array([0, 0, 0, 1]), np.array([4, 2, 3, 1]),
                                 np.array([1.0, 2.0, 2.0, -np.inf]), 2, 2)
    assert idx.tolist() == [[2, 3], [-1, -1]] and score[0].tolist() == [2.0, 2.0]  # ties: smaller column
    sel, rank = u.top_per_position(np.array([0, 0, 1]), np.array([7, 8, 9]), np.array([0.5, 0.9, 0.1]), 1)
    assert sel.tolist() == [1, 2] and rank.tolist() == [0, 0]
    out_i, out_s = u.pack(2, 2, np.array([1]), np.array([0]), np.array([7]), np.array([0.5]))
    assert out_i.tolist() == [[-1, -1], [7, -1]] and out_s[1, 0] == np.float32(0.5)
    # bestsellers of a group as candidates, never re-proposing what the customer bought
    item_group = np.array([0, 0, 0, 1])
    ranked = u.ranked_group_items(item_group, np.array([1.0, 3.0, 2.0, 1.0]), 2)
    assert ranked[1].tolist() == [1, 2, 0, 3] and ranked[2].tolist() == [1 / 3, 1.0, 2 / 3, 1.0]
    bought = u.binary_matrix(pl.DataFrame({"c": [0, 0], "i": [1, 1]}), (1, 4))
    assert bought.nnz == 1 and u.merge_bought(bought, u.binary_matrix(
        pl.DataFrame({"c": [1], "i": [0]}), (2, 4))).nnz == 2
    owner, item, cand_score = u.group_candidates(np.array([0]), np.array([0]), np.array([2.0]), ranked,
                                                 item_group, 2, u.bought_keys(bought, np.array([0])))
    assert item.tolist() == [2, 0] and cand_score.tolist() == pytest.approx([4 / 3, 2 / 3])
    assert u.remove_rows(u.merge_bought(bought, bought), np.array([0])).shape == (0, 4)
