"""An in-memory token bucket: the per-bind submit rate limit (TPS), shared by the SMPP and
CMPP clients and the simulator.

``rate`` tokens per second, at most ``burst`` saved up. :meth:`delay` takes a token and
says how long the caller must wait before using it (0.0 when one was available), so a
sender can sleep exactly that long instead of polling. A rate of 0 means unlimited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("rate", "burst", "_tokens", "_stamp", "_clock")

    def __init__(
        self, rate: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self.rate = rate
        # A burst of ~1/10 s of traffic keeps the short-term rate close to the limit.
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.burst
        self._clock = clock
        self._stamp = clock()

    def delay(self) -> float:
        """Take one token; return the seconds to wait until it is really ours."""
        if not self.rate:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    def try_take(self) -> bool:
        """Take a token if one is available now (a server refusing excess traffic)."""
        if not self.rate:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def take(self) -> None:
        """Wait until a token is available and take it."""
        wait = self.delay()
        if wait > 0:
            await asyncio.sleep(wait)
