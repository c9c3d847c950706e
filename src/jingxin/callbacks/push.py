"""Pushing due deliveries to the endpoints: signed POSTs, a few in flight, results recorded.

One :meth:`Pump.push` pass claims up to ``[api] callback_batch`` due deliveries
(:func:`~jingxin.callbacks.queue.claim`), groups them by tenant and sends each tenant's in
order on a lane of its own (``workers`` lanes at once), so one slow endpoint holds one
lane, not the others. A lane that gets no answer at all (timeout, refused connection)
stops there: the rest of its deliveries wait for that one's retry, not counted as
attempts. A lane starts no POST that could end after its lease, and records what it got
every :data:`RECORD_EVERY` results and at its end.

Crash safety: a delivery is marked ``delivered`` only after its 2xx, in a commit after
the POST. A crash between the two sends it again once the lease runs out: delivery is
*at least once*, and ``X-Jingxin-Delivery`` (the delivery's id, the same on every
retry) lets the receiver drop a repeat. Once marked delivered it is never sent again.

The body is ``{"id", "event", "created_at", "data"}`` as compact UTF-8 JSON, signed as
:mod:`jingxin.callbacks.sign` says. Logs name the delivery, tenant and host: never the
secret, the payload or a whole number.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import httpx

from jingxin.callbacks.collect import collect
from jingxin.callbacks.queue import Attempt, Backoff, Due, claim, record, release
from jingxin.callbacks.sign import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    signature,
)
from jingxin.data.store.engine import Store
from jingxin.data.store.models import utc_now

log = logging.getLogger(__name__)

RECORD_EVERY = 20  # results a lane keeps before writing them
LEASE_MARGIN = 10.0  # seconds a lane leaves between its last POST and the lease's end
USER_AGENT = "jingxin-callbacks/1"


class Poster(Protocol):
    """Sends one signed body; never raises for what the endpoint does."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Attempt: ...


class HttpPoster:
    """:class:`Poster` over httpx: no redirects followed, the answer's body not read."""

    def __init__(self, *, timeout: float, client: httpx.Client | None = None) -> None:
        self.timeout = timeout
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False,
                                             headers={"User-Agent": USER_AGENT})  # fmt: skip

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Attempt:
        started = time.monotonic()
        try:
            with self.client.stream("POST", url, content=body, headers=dict(headers)) as answer:
                status = answer.status_code
        except httpx.TimeoutException:
            return Attempt(None, f"no answer within {self.timeout:g} s", self.timeout)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # ValueError: IDNA
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:500], time.monotonic() - started)
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return Attempt(status, error, time.monotonic() - started)

    def close(self) -> None:
        self.client.close()


def body_of(delivery_id: int | str, event: str, created_at: datetime,
            data: Mapping[str, Any]) -> bytes:  # fmt: skip
    """The bytes POSTed (and signed)."""
    envelope = {"id": delivery_id, "event": event, "created_at": created_at.isoformat(),
                "data": data}  # fmt: skip
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def headers_of(secret: str, body: bytes, delivery_id: int | str, event: str) -> dict[str, str]:
    return {"Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: signature(secret, body), DELIVERY_HEADER: str(delivery_id),
            EVENT_HEADER: event}  # fmt: skip


def send(poster: Poster, due: Due) -> Attempt:
    body = body_of(due.id, due.kind, due.created_at, due.payload)
    return poster.post(due.url, body, headers_of(due.secret, body, due.id, due.kind))


def send_test(poster: Poster, *, url: str, secret: str, tenant_id: str,
              now: datetime | None = None) -> tuple[str, Attempt]:  # fmt: skip
    """POST a ``test`` event to ``url`` now, outside the queue; its delivery id and what
    it got."""
    now = now or utc_now()
    delivery_id = f"test-{secrets.token_hex(8)}"
    body = body_of(delivery_id, "test", now, {"tenant_id": tenant_id, "sent_at": now.isoformat()})
    return delivery_id, poster.post(url, body, headers_of(secret, body, delivery_id, "test"))


@dataclass
class PushReport:
    """What one pass did: deliveries per resulting state, and those handed back unsent."""

    states: Counter[str] = field(default_factory=Counter)
    deferred: int = 0
    claimed: int = 0


@dataclass
class Pump:
    """Collects and pushes (``jingxin callbacks run``, the scheduler's callback duty)."""

    store: Store
    api: Any  # ApiSettings: the callback_* settings
    poster: Poster | None = None
    workers: int = 8
    clock: Callable[[], datetime] = utc_now
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._owned = self.poster is None
        if self.poster is None:
            self.poster = HttpPoster(timeout=self.api.callback_timeout_seconds)
        self.backoff = Backoff.from_settings(self.api)
        self._pool = ThreadPoolExecutor(max_workers=self.workers,
                                        thread_name_prefix="callback-lane")  # fmt: skip

    @property
    def lease(self) -> timedelta:
        """How long a claim holds its rows: long enough for a lane's POSTs, short enough
        that a crashed pump's rows are soon due again."""
        return timedelta(seconds=max(60.0, 4 * self.api.callback_timeout_seconds + LEASE_MARGIN))

    def run_once(self) -> tuple[Counter[str], PushReport]:
        """Collect what is new, then push one batch of what is due."""
        return collect(self.store, now=self.clock()), self.push()

    def push(self) -> PushReport:
        """One pass: claim a batch, send it lane by lane, record the results."""
        now = self.clock()
        claimed = claim(self.store, now=now, limit=self.api.callback_batch, lease=self.lease)
        report = PushReport(claimed=len(claimed))
        if not claimed:
            return report
        lanes: dict[str, list[Due]] = {}
        for due in claimed:
            lanes.setdefault(due.tenant_id, []).append(due)
        deadline = time.monotonic() + self.lease.total_seconds() - LEASE_MARGIN
        for states, deferred in self._pool.map(lambda lane: self._lane(lane, deadline),
                                               lanes.values()):  # fmt: skip
            report.states.update(states)
            report.deferred += deferred
        return report

    def _lane(self, lane: list[Due], deadline: float) -> tuple[Counter[str], int]:
        """Send one tenant's deliveries in order; (states recorded, how many handed back)."""
        assert self.poster is not None
        states: Counter[str] = Counter()
        results: list[tuple[Due, Attempt]] = []
        timeout = self.api.callback_timeout_seconds
        for index, due in enumerate(lane):
            if time.monotonic() + timeout > deadline:
                self._flush(results, states)
                release(self.store, deliveries=lane[index:], at=self.clock())
                return states, len(lane) - index
            attempt = send(self.poster, due)
            results.append((due, attempt))
            self._log(due, attempt)
            if attempt.unreachable:
                self._flush(results, states)
                rest = lane[index + 1:]
                retry_at = self.clock() + timedelta(
                    seconds=self.backoff.delay(due.attempts + 1, self.rng))  # fmt: skip
                release(self.store, deliveries=rest, at=retry_at)
                return states, len(rest)
            if len(results) >= RECORD_EVERY:
                self._flush(results, states)
        self._flush(results, states)
        return states, 0

    def _flush(self, results: list[tuple[Due, Attempt]], states: Counter[str]) -> None:
        if results:
            done = record(self.store, results=results, now=self.clock(), backoff=self.backoff,
                          rng=self.rng)  # fmt: skip
            states.update(state for _, state in done)
            results.clear()

    @staticmethod
    def _log(due: Due, attempt: Attempt) -> None:
        if attempt.ok:
            log.debug("callback %d (%s) to tenant %s: HTTP %s in %.3f s", due.id, due.kind,
                      due.tenant_id, attempt.status, attempt.seconds)  # fmt: skip
            return
        log.info("callback %d (%s) to tenant %s at %s failed (attempt %d): %s", due.id,
                 due.kind, due.tenant_id, urlsplit(due.url).hostname, due.attempts + 1,
                 attempt.error)  # fmt: skip

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._owned and isinstance(self.poster, HttpPoster):
            self.poster.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class CallbackDuties:
    """The scheduler's part that pushes callbacks (``jingxin scheduler``): each tick, one
    :meth:`Pump.run_once`, in a thread."""

    settings: Any
    store: Store
    keep: Callable[[], bool] | None = None
    pump: Pump | None = None

    async def __call__(self, n: int) -> PushReport | None:
        import asyncio

        return await asyncio.to_thread(self.run, n)

    def run(self, n: int = 0) -> PushReport | None:
        if self.keep is not None and not self.keep():
            return None
        try:
            if self.pump is None:
                self.pump = Pump(store=self.store, api=self.settings.api)
            collected, report = self.pump.run_once()
        except Exception:  # a scheduler alerts in the log, never stops
            log.exception("pushing callbacks failed")
            return None
        if collected or report.claimed:
            log.info("callbacks: %d collected, %s", sum(collected.values()),
                     ", ".join(f"{n} {s}" for s, n in sorted(report.states.items())) or "none sent")
        return report

    def close(self) -> None:
        if self.pump is not None:
            self.pump.close()
