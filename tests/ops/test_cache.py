"""The Redis cache backend keeps one client per pool instead of building one per call."""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCacheClient

from gatekeeper.cache import KeptRedisCache


def test_the_configured_cache_is_the_kept_client_backend_on_real_redis():
    cache = caches["default"]
    assert isinstance(cache, KeptRedisCache)
    cache.set("kept-client-probe", {"n": 1}, 30)
    assert cache.get("kept-client-probe") == {"n": 1}
    cache.set("kept-client-counter", 0, 30)
    assert cache.incr("kept-client-counter") == 1
    cache.delete_many(["kept-client-probe", "kept-client-counter"])
    assert cache.get("kept-client-probe") is None


def test_every_call_reuses_one_client_where_django_builds_a_new_one():
    cache: Any = caches["default"]
    ours = cache._cache
    assert ours.get_client() is ours.get_client(write=True)
    # What the subclass saves: Django's own client wraps the same pool anew on every call.
    django_client = RedisCacheClient(ours._servers)
    assert django_client.get_client() is not django_client.get_client()


def test_threads_share_the_client_safely():
    cache = caches["default"]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.set(f"kept-client-{n}-{i}", i, 30)
                assert cache.get(f"kept-client-{n}-{i}") == i
        except BaseException as exc:  # surfaced below: a thread's assert would be lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cache.delete_many([f"kept-client-{n}-{i}" for n in range(4) for i in range(50)])
