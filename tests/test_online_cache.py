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
