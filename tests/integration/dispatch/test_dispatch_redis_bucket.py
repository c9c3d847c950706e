"""The Redis token bucket shares one rate between many limiters (workers)."""

from __future__ import annotations

import asyncio
import time

from jingxin.dispatch.ratelimit import RedisTokenBucket


async def test_two_limiters_share_one_bucket(redis_url: str) -> None:
    # Given two workers' limiters on the same Redis, 50 tokens/s (burst 50)
    first, second = RedisTokenBucket(redis_url), RedisTokenBucket(redis_url)
    try:
        started = time.monotonic()
        # When they take 100 tokens between them
        await asyncio.gather(
            *(lim.acquire("ch", rate=50) for lim in (first, second) for _ in range(50))
        )
        elapsed = time.monotonic() - started
    finally:
        await first.close()
        await second.close()
    # Then the second 50 had to wait for the refill: about one second, not zero
    assert 0.8 <= elapsed < 2.5
