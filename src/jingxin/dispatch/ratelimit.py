"""Token buckets for per-channel TPS: in-process, or in Redis when many workers share a link.

Both implement :class:`RateLimiter`: ``await acquire(key, rate=..., tokens=n)`` returns
once ``n`` tokens were taken from bucket ``key`` that refills at ``rate`` per second (burst:
one second's worth). The Redis bucket keeps its state in one hash per key, updated by a Lua
script, so every worker on every host draws from the same bucket.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, key: str, *, rate: float, tokens: int = 1) -> None:
        """Wait until ``tokens`` can be taken from bucket ``key`` (``rate`` <= 0: no limit)."""


class LocalTokenBucket:
    """Buckets in this process (one worker)."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}

    def wait_for(self, key: str, *, rate: float, tokens: int, now: float) -> float:
        """Take ``tokens`` (possibly into debt); seconds to wait before sending."""
        burst = max(rate, float(tokens))
        level, last = self._state.get(key, (burst, now))
        level = min(burst, level + (now - last) * rate) - tokens
        self._state[key] = (level, now)
        return 0.0 if level >= 0 else -level / rate

    async def acquire(self, key: str, *, rate: float, tokens: int = 1) -> None:
        if rate <= 0:
            return
        delay = self.wait_for(key, rate=rate, tokens=tokens, now=time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)


# KEYS[1] bucket; ARGV rate, burst, tokens. Time comes from Redis so hosts need no clock sync.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst, take = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'level', 'at')
local level, at = tonumber(b[1]) or burst, tonumber(b[2]) or now
level = math.min(burst, level + (now - at) * rate) - take
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if level >= 0 then return 0 end
return math.ceil(-level / rate * 1e6)
"""


class RedisTokenBucket:
    """Buckets in Redis, shared by every worker using the same ``prefix``."""

    def __init__(self, url: str, *, prefix: str = "jingxin:tps:") -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(url)
        self._take = self._client.register_script(_TAKE)
        self.prefix = prefix

    async def acquire(self, key: str, *, rate: float, tokens: int = 1) -> None:
        if rate <= 0:
            return
        from redis.exceptions import RedisError

        from jingxin.errors import Retry

        burst = max(rate, float(tokens))
        try:
            wait_us = await self._take(
                keys=[self.prefix + key], args=[rate, burst, tokens]
            )
        except RedisError as exc:
            raise Retry(f"rate limiter: Redis unavailable ({exc})", delay=1.0) from exc
        if wait_us:
            await asyncio.sleep(int(wait_us) / 1e6)

    async def close(self) -> None:
        await self._client.aclose()
