"""Per-key request limits: a token bucket per API key, in this process.

A key may make ``rate_per_second`` requests a second on average and burst up to
``rate × [api] key_burst_seconds`` (at least one). Over the limit: 429 with
``Retry-After``. The buckets live in the serving process; with several processes behind a
balancer, give each key a share of its rate (documented in docs/api.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class KeyLimiter:
    def __init__(self, *, burst_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst_seconds = burst_seconds
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key_id: int, rate: float, cost: float = 1.0) -> float:
        """0 if the request may go now, else the seconds to wait before trying again."""
        capacity = max(1.0, rate * self.burst_seconds)
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens >= cost:
                self._buckets[key_id] = (tokens - cost, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (cost - tokens) / rate
