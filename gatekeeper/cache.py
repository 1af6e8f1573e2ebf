"""Django's Redis cache backend, keeping one client per connection pool.

Django's ``RedisCacheClient`` wraps its pool in a new ``redis.Redis`` on every cache call, and
building one sets up its table of response callbacks each time. An API request makes several
cache calls (each throttle reads and writes its history), so those builds were a measurable part
of a request's CPU. A ``redis.Redis`` is safe to share: every command takes a connection from
the pool and gives it back.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class KeptRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        base: Any = self  # django-stubs leave out the private pool helpers of the base class
        pool = base._get_connection_pool(write)
        # By the pool's identity: the pools live as long as this client, in self._pools.
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = base._client(connection_pool=pool)
        return client


class KeptRedisCache(RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = KeptRedisCacheClient
