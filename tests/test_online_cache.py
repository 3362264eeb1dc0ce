"""The service's answer cache: LRU by entries, a customer's answers dropped without scanning the cache."""

from __future__ import annotations

from recsys.online import _Cache


def test_drop_customer_removes_only_that_customers_answers_and_eviction_keeps_the_index() -> None:
    cache = _Cache(size=5)
    for cid in ("a", "b", "c"):
        cache.put((cid, "for_you", 12), [cid])
        cache.put((cid, "for_you", 12, "json"), b"x")
    assert len(cache.data) == 5 and ("a", "for_you", 12) not in cache.data  # oldest evicted
    assert cache.by_customer["a"] == {("a", "for_you", 12, "json")}
    cache.drop_customer("b")
    assert [k[0] for k in cache.data] == ["a", "c", "c"] and "b" not in cache.by_customer
    assert cache.get(("c", "for_you", 12)) == ["c"]
    cache.drop_customer("nobody")
    cache.clear()
    assert not cache.data and not cache.by_customer


def test_a_zero_size_cache_keeps_nothing() -> None:
    cache = _Cache(size=0)
    cache.put(("a", 1), 1)
    assert cache.get(("a", 1)) is None and not cache.by_customer


def test_an_explicit_now_is_part_of_the_cached_question(synthetic_bundle_dir) -> None:  # type: ignore[no-untyped-def]
    """The same customer asked about two moments gets each moment's answer, not the first one cached
    (issue 16: the cache key left ``now`` out)."""
    from datetime import timedelta
    from pathlib import Path

    from recsys.bundle import Bundle
    from recsys.online import OnlineRecommender
    from recsys.rules import load_placements

    placements = load_placements(Path(__file__).resolve().parents[1] / "configs" / "placements.yaml")
    bundle = Bundle.load(synthetic_bundle_dir)
    soon, later = bundle.hybrid.as_of, bundle.hybrid.as_of + timedelta(days=75)

    def fresh(c: str, now):  # type: ignore[no-untyped-def]
        return OnlineRecommender(bundle, placements, version="fresh").recommend(c, now=now)

    customers = [str(c) for c in bundle.hybrid.history.customers.ids[:40]]
    changing = next(c for c in customers if not fresh(c, soon).equals(fresh(c, later)))
    online = OnlineRecommender(bundle, placements, version="t")
    assert online.recommend(changing, now=soon).equals(fresh(changing, soon))
    assert online.recommend(changing, now=later).equals(fresh(changing, later))
