"""The sliding window: at most W requests awaiting their response (PROTOCOLS.md §3.13).

Like :class:`asyncio.Semaphore`, except that :meth:`Window.fail` wakes every waiter with
an error, so submits queued behind a dead link are reported at once instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Window:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size {size} must be at least 1")
        self.size = size
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._error: Callable[[], BaseException] | None = None

    async def acquire(self) -> None:
        if self._error is not None:
            raise self._error()
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # Granted a slot just as we were cancelled: hand it on, do not leak it.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free = min(self._free + 1, self.size)

    def fail(self, error: Callable[[], BaseException]) -> None:
        """Refuse every current and future acquire with a fresh ``error()``."""
        self._error = error
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error())

    @property
    def in_use(self) -> int:
        return self.size - self._free
