"""The dispatch worker: claim → route → rate-limit → submit, receipts → states.

One asyncio task per message in flight (at most ``max_in_flight``); the claim asks for
exactly the free slots, so a newly queued OTP waits for one slot, never for a backlog held
in memory; ``reserve`` of those slots only the first lane (OTP) may claim, and lower lanes
wait for a channel's ``window`` in the worker, not inside the channel, so an OTP is not
queued behind everything in flight. Outcomes and receipts are buffered and written by one
flusher, one transaction every ``flush_interval`` - the per-message path does no database
round trip of its own. Database calls run in background threads (claims in their own on
PostgreSQL) so the event loop keeps the binds alive.

Crash safety: a claimed message is ``submitting`` in the database before it is sent. A
worker that starts (or restarts under the same name) first resolves every ``submitting``
row it left behind by the unresolved rule (:mod:`jingxin.dispatch.retry`); rows of a
worker that never came back are resolved by any worker once older than ``stale_after``.
A receipt is acknowledged to the SMSC only after the transaction that wrote it commits
(:mod:`jingxin.dispatch.inbox`): one the worker dies holding is delivered again. MO
parts follow the same rule (:mod:`jingxin.dispatch.mo_inbox`): stored, reassembled when
whole and only then acknowledged; the MO handlers (``on_mo_stored``, i.e.
``handlers.run_pending``) run right after that commit, at least once (a sweep re-runs
whatever a crash left without an outcome).

MO have a lane of their own (:mod:`jingxin.dispatch.mo_lane`): on PostgreSQL their own thread
and connection, woken by each arriving part, storing what arrived - so an MO never waits
behind a claim or a write-back of campaign outcomes. Their handlers have a lane beside it
(on PostgreSQL a second thread and connection) woken by
each commit and running bounded batches, so storing and acknowledging never waits behind
a handler backlog and the two overlap (p99 PDU → reply enqueued is the goal, not
throughput alone).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jingxin.channels.base import Channel
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import CLAIM_ORDER, URGENT_LANES, utc_now
from jingxin.dispatch import claim as claims
from jingxin.dispatch import outbox
from jingxin.dispatch.inbox import MoInbox, ReceiptInbox
from jingxin.dispatch.invalid import record_outcomes
from jingxin.dispatch.metrics import DispatchMetrics
from jingxin.dispatch.mo_inbox import InboxRules, MoTally, store_parts
from jingxin.dispatch.mo_lane import MoLane
from jingxin.dispatch.ratelimit import LocalTokenBucket, RateLimiter
from jingxin.dispatch.receipts import apply_receipts, reconcile
from jingxin.dispatch.retry import Failure, RetryPolicy, classify, error_code
from jingxin.dispatch.routing import Router
from jingxin.domain.sms import OutboundSms, SubmitResult
from jingxin.errors import JingxinError
from jingxin.logs import mask

log = logging.getLogger(__name__)
__all__ = ["ReceiptInbox", "Tally", "Worker", "WorkerConfig", "mask"]

CLAIM_RETRY_S = 0.5  # pause between claims while the database cannot be reached


@dataclass(frozen=True)
class WorkerConfig:
    name: str = field(default_factory=socket.gethostname)
    max_in_flight: int = 200
    lanes: tuple[int, ...] = CLAIM_ORDER
    flush_interval: float = 0.05
    idle_sleep: float = 0.05
    stale_after: timedelta = timedelta(seconds=120)
    no_receipt_grace: timedelta = timedelta(minutes=10)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tps: Mapping[str, float] = field(default_factory=dict)
    tariffs: Mapping[str, float] = field(default_factory=dict)
    invalid_after: int = 3
    invalid_statuses: tuple[str, ...] = ("undeliverable",)
    # Slots of max_in_flight only the first lane (OTP) may claim.
    reserve: int = 20
    # Channel -> its window: at most this many lower-lane submits wait inside a channel at
    # once, so an OTP queues behind a window of marketing, never behind all max_in_flight.
    windows: Mapping[str, int] = field(default_factory=dict)
    inbox_rules: InboxRules = field(default_factory=InboxRules)  # MO part timeout, duplicates
    # How often a sweep marks campaigns whose messages are all final as finished.
    finish_every: timedelta = timedelta(seconds=60)
    # While the way back is behind (MO waiting to be stored or handled), new claims fill
    # at most this share of max_in_flight: a subscriber waiting for an answer outranks a
    # bulk send for the worker's CPU (1.0: no yielding).
    mo_first_share: float = 0.25


@dataclass
class Tally:
    """What one worker did (``jingxin worker --once`` prints it)."""

    claimed: int = 0
    submitted: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    unresolved: int = 0
    receipts: int = 0
    unmatched: int = 0
    finished: int = 0
    invalid_marked: int = 0
    mo_parts: int = 0  # MO PDUs stored (each once)
    mo_duplicates: int = 0  # MO PDUs delivered again and not stored twice
    mo_messages: int = 0  # whole MO written to mo_messages
    mo_incomplete: int = 0  # of which written after the part timeout, parts missing
    mo_undecodable: int = 0
    mo_handler_errors: int = 0  # run_pending calls that raised (retried on the next sweep)
    cancelled: int = 0  # claimed, then stopped by a refusal recorded since the decision
    campaigns_finished: int = 0  # running campaigns the sweep found drained


class Worker(MoLane):
    def __init__(
        self, *, store: Store, channels: Mapping[str, Channel], router: Router,
        inbox: ReceiptInbox, config: WorkerConfig | None = None,
        mo_inbox: MoInbox | None = None, on_mo_stored: Callable[[], Any] | None = None,
        limiter: RateLimiter | None = None, metrics: DispatchMetrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:  # fmt: skip
        self.store = store
        self.channels = dict(channels)
        self.router = router
        self.inbox = inbox
        self.mo_inbox = mo_inbox or MoInbox()
        self.on_mo_stored = on_mo_stored  # runs the MO handlers (db thread, after commit)
        self._mo_behind = False  # the last handler run stopped at its limit: run again
        self._pruned_at: float | None = None  # when mo_unacked was last pruned (monotonic)
        self.mo_latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self.config = config or WorkerConfig()
        self.limiter = limiter or LocalTokenBucket()
        self.metrics = metrics or DispatchMetrics()
        self.clock = clock
        self.tally = Tally()
        self._campaigns_checked: datetime | None = None  # the last finish_campaigns sweep
        self._submitted: list[outbox.Submitted] = []
        self._moved: list[outbox.Moved] = []
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jingxin-db")
        postgres = store.engine.dialect.name == "postgresql"
        # PostgreSQL: claims get their own thread (and connection), so an OTP's claim never
        # queues behind a write-back. SQLite has one writer anyway: one thread for both.
        self._claim_db = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="jingxin-claim")
            if postgres
            else self._db
        )
        # PostgreSQL: the MO lane too (store parts → commit → ack → handlers), so an MO never
        # queues behind the campaign's write-backs. SQLite: the one writer thread.
        self._mo_db = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="jingxin-mo")
            if postgres
            else self._db
        )
        # PostgreSQL: the MO handlers a thread (and connection) of their own beside the MO
        # store, so storing and acknowledging never waits behind a handler batch and the
        # two overlap. They read only committed rows, so this keeps "handled after stored".
        self._handler_db = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="jingxin-mo-handlers")
            if postgres
            else self._db
        )
        # MO stored since the handlers last took them: the MO lane's thread appends after
        # its commit, the handler lane's thread takes them (a deque: both ends thread-safe)
        self._mo_unhandled: collections.deque = collections.deque()
        self._handlers_due = False  # a store round swept, or stored MO: run the handlers
        self._handlers_sweep = True  # the next handler run reads every pending MO
        self._writing = 0  # rows taken out of the buffers and being written back
        self._in_flight: set[asyncio.Task] = set()
        self._untariffed: set[str] = set()
        self._outage_since: float | None = None  # monotonic time no channel was bound from
        self._claim_failures = 0  # claims failed in a row (the database is away)
        self._gates = {name: asyncio.Semaphore(size) for name, size in self.config.windows.items()
                       if size > 0}  # fmt: skip
        self._submits_ok: dict[str, Any] = {}
        self._reserve = min(self.config.reserve, self.config.max_in_flight // 2)
        # Free slots worth a claim when busy: the reserve plus a tenth of max_in_flight.
        self._batch = self._reserve + max(1, self.config.max_in_flight // 10)

    async def _call(self, fn: Callable[..., Any], /, _pool=None, **kwargs: Any) -> Any:
        pool = _pool or self._db
        return await asyncio.get_running_loop().run_in_executor(
            pool, lambda: fn(**kwargs)
        )

    # ------------------------------------------------------------------ main loop

    async def run(self, *, stop: asyncio.Event | None = None, once: bool = False,
                  linger: float = 10.0) -> Tally:  # fmt: skip
        """Work until ``stop`` is set; with ``once``, until nothing is due, in flight or
        awaiting a receipt (waiting at most ``linger`` seconds without progress)."""
        stop = stop or asyncio.Event()
        await self._call(self.recover, own=True)
        flusher = asyncio.create_task(self._flush_loop(stop))
        mo_lane = asyncio.create_task(self._mo_loop(stop))
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                got = await self._fill()
                if got:
                    idle_since = None
                elif once and not self._in_flight:
                    idle_since = idle_since or loop.time()
                    if await self._settled(linger) or loop.time() - idle_since > linger:
                        break
                await self._wait(got)
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            stop.set()
            await flusher
            await mo_lane
            self._db.shutdown(wait=True)
            self._claim_db.shutdown(wait=True)
            self._mo_db.shutdown(wait=True)
            self._handler_db.shutdown(wait=True)
        return self.tally

    def _free(self) -> int:
        # Answered but not yet written counts as in flight: at most max_in_flight rows are
        # ever 'submitting', which bounds the duplicates a kill -9 can cause.
        used = (
            len(self._in_flight)
            + len(self._submitted)
            + len(self._moved)
            + self._writing
        )
        return self.config.max_in_flight - used

    def _claim_reserve(self, free: int) -> int:
        """Of ``free`` slots, those only the urgent lanes (OTPs and the way back's replies,
        ``models.URGENT_LANES``) and the first lane claimed may take: ``reserve``; while MO
        wait to be stored or handled, all but what keeps the other lanes within
        ``mo_first_share`` of max_in_flight - a subscriber waiting for an answer gets the
        worker before a campaign does, and the answer itself is not held back with the
        campaign (it was: a hall reply submitted 12.5 s after its MO at 1,000 MO/s;
        BENCHMARKS.md, "The way back, a sixth time")."""
        if not self._mo_pressed():
            return self._reserve
        return max(self._reserve, free - max(self._share_room(free), 0))

    def _claim_limit(self, free: int) -> int:
        """How many to claim of ``free``: all of them - unless MO wait and the worker
        claims no urgent lane (``--lanes notification,marketing``). The first lane it
        claims may take the reserved slots (``claim``), so :meth:`_claim_reserve` cannot
        hold it back: the whole claim keeps within ``mo_first_share`` instead."""
        lanes = self.config.lanes
        if not self._mo_pressed() or (lanes and lanes[0] in URGENT_LANES):
            return free
        return max(0, min(free, self._share_room(free)))

    def _share_room(self, free: int) -> int:
        """Slots the non-urgent lanes may still fill while MO wait: ``mo_first_share`` of
        max_in_flight less what is in flight (negative when over it)."""
        used = self.config.max_in_flight - free
        return int(self.config.max_in_flight * self.config.mo_first_share) - used

    def _mo_pressed(self) -> bool:
        """MO wait to be stored, or stored MO wait for their handlers."""
        return bool(self.mo_inbox.items or self._mo_unhandled or self._handlers_due
                    or self._mo_behind)  # fmt: skip

    async def _fill(self) -> int:
        free = self._free()
        limit = self._claim_limit(free)
        if limit <= 0 or not self._any_bound():
            return 0
        try:
            batch = await self._call(
                claims.claim_batch, _pool=self._claim_db, store=self.store,
                worker=self.config.name, limit=limit, now=self.clock(), lanes=self.config.lanes,
                reserve=self._claim_reserve(free) if limit == free else self._reserve,
            )  # fmt: skip
        except JingxinError as exc:
            # The database went away (a restart, a failover): what is in flight goes on,
            # the flusher keeps its buffers, and claiming resumes when it is back. A claim
            # that failed moved nothing (its transaction rolled back).
            self._claim_failures += 1
            if self._claim_failures == 1:
                log.error("claiming failed, retrying every %.1f s: %s", CLAIM_RETRY_S, exc)
            await asyncio.sleep(CLAIM_RETRY_S)
            return 0
        if self._claim_failures:
            log.warning("claiming again after %d failed attempts", self._claim_failures)
            self._claim_failures = 0
        got = batch.messages
        self.tally.claimed += len(got)
        # Cancelled rows are already final (send-time re-check): progress, nothing to send.
        self.tally.cancelled += len(batch.cancelled)
        for message in got:
            task = asyncio.create_task(self._send(message))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(got) + len(batch.cancelled)

    def _any_bound(self) -> bool:
        """Whether any channel can take a submit. With none bound (the SMSC went away, every
        bind refused) nothing is claimed: claimed, each message would fail, count an attempt
        and back off - thousands in a few seconds of outage, failed for good in a long one.
        Held back, they wait ``queued`` until a channel binds again (logged once per outage)."""
        if any(self.router.bound(name) for name in self.channels):
            if self._outage_since is not None:
                log.warning("a channel is bound again after %.1f s without one; claiming",
                            time.monotonic() - self._outage_since)  # fmt: skip
                self._outage_since = None
            return True
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("no channel is bound (%s): holding due messages queued until one binds",
                        ", ".join(sorted(self.channels)) or "none configured")  # fmt: skip
        return False

    async def _wait(self, got: int) -> None:
        """Between two claims. Every path that claimed nothing awaits a timer: ``_fill``
        returns without awaiting when no channel is bound, and a loop of the two that never
        yields starves every other task on the loop - the channels' re-binds among them, so
        after a lost link the worker once spun for good with the SMSC back up."""
        if got and len(self._in_flight) < self.config.max_in_flight:
            return  # more may be due: claim again at once
        if not self._in_flight or (not got and self._free() >= self._batch):
            # Idle, or slots free yet nothing claimed: nothing is due, or no channel is bound.
            await asyncio.sleep(self.config.idle_sleep)
            return
        # Busy: wait for a batch's worth of free slots, at most idle_sleep. Each claim is a
        # database round trip; claiming a slot or two at a time cost more than it sent.
        # An OTP waits at most idle_sleep for the next claim.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.idle_sleep
        while self._in_flight and self._free() < self._batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.wait(self._in_flight, timeout=remaining,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip

    async def _settled(self, linger: float) -> bool:
        if self._submitted or self._moved or self.inbox.items or self.mo_inbox.items:
            return False
        return await self._call(
            self._nothing_left, horizon=self.clock() + timedelta(seconds=linger)
        )

    def _nothing_left(self, *, horizon: datetime) -> bool:
        from sqlalchemy import func, or_, select

        from jingxin.data.store.models import Message

        query = select(func.count()).where(or_(
            Message.state.in_(("submitting", "submitted")),
            (Message.state == "queued") & (Message.scheduled_at <= horizon)
            & Message.lane.in_(self.config.lanes),
        ))  # fmt: skip
        with store_errors("checking for work left"), self.store.sessions() as session:
            return session.execute(query).scalar_one() == 0

    # ------------------------------------------------------------------ one message

    async def _send(self, message: claims.Claimed) -> None:
        now = self.clock()
        if message.expires_at is not None and message.expires_at <= now:
            self._moved.append(outbox.Moved(message.id, "expired", "validity"))
            self.tally.expired += 1
            return
        channel_name = None
        try:
            channel_name = self.router.route(message.msisdn, preferred=message.channel)
            await self.limiter.acquire(channel_name, rate=self.config.tps.get(channel_name, 0.0),
                                       tokens=message.parts)  # fmt: skip
            result = await self._submit(channel_name, message, now)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a state; none may kill the worker
            self._failed(message, channel_name, exc)
            return
        self.router.record(channel_name, ok=True)
        ok = self._submits_ok.get(channel_name)
        if ok is None:  # labels() is a lookup under a lock: once per channel, not per message
            ok = self._submits_ok[channel_name] = self.metrics.submits.labels(channel_name, "ok")
        ok.inc()
        tariff = self.config.tariffs.get(channel_name)
        if (
            tariff is None
            and self.config.tariffs
            and channel_name not in self._untariffed
        ):
            self._untariffed.add(channel_name)
            log.error(
                "no tariff for channel %s: its messages keep the cost they were queued with (or NULL)",
                channel_name,
            )
        cost = None if tariff is None else round(tariff * len(result.message_ids), 4)
        self._submitted.append(outbox.Submitted(
            message.id, channel_name, result.message_ids, result.submitted_at, cost
        ))  # fmt: skip
        self.tally.submitted += 1

    async def _submit(
        self, channel_name: str, message: claims.Claimed, now: datetime
    ) -> SubmitResult:
        # The first lane (OTP) never waits for a window's worth of lower-lane submits.
        gate = None if message.lane == self.config.lanes[0] else self._gates.get(channel_name)
        async with gate or contextlib.nullcontext():
            return await self.channels[channel_name].submit(self._outbound(message, now))

    def _outbound(self, message: claims.Claimed, now: datetime) -> OutboundSms:
        validity = None
        if message.expires_at is not None:
            validity = max(60, int((message.expires_at - now).total_seconds()))
        return OutboundSms(
            destination=message.msisdn.lstrip("+"), text=message.text,
            reference=str(message.id), validity_seconds=validity,
            priority=1 if message.lane == 0 else 0, source_addr=message.sender,
        )  # fmt: skip

    def _failed(
        self, message: claims.Claimed, channel: str | None, exc: BaseException
    ) -> None:
        failure = classify(exc)
        if not isinstance(exc, JingxinError):
            log.exception("unexpected error submitting message %s", message.id)
        label = channel or "none"
        if channel is not None and failure is not Failure.TEMPORARY:
            # Throttling and link-down retries are not the channel's error rate: the first is
            # the SMSC pacing us, the second is bind state, which routing reads directly.
            self.router.record(channel, ok=False)
        self.metrics.errors.labels(label, failure.value).inc()
        self.metrics.submits.labels(label, failure.value).inc()
        verdict = self.config.retry.after(
            failure=failure, attempts=message.attempts, category=message.category,
            now=self.clock(), expires_at=message.expires_at, asked=getattr(exc, "delay", 0.0),
            source=message.source,
        )  # fmt: skip
        unresolved = failure is Failure.UNRESOLVED
        if unresolved:
            self.tally.unresolved += 1
            self.metrics.unresolved.labels(label).inc()
        self._count(verdict.state)
        log.info("message %s to %s: %s (%s) -> %s", message.id, mask(message.msisdn),
                 failure.value, exc, verdict.state)  # fmt: skip
        self._moved.append(outbox.Moved(
            message.id, verdict.state, error_code(exc), str(exc)[:500], verdict.retry_at,
            unresolved, channel,
        ))  # fmt: skip

    def _count(self, state: str) -> None:
        if state == "queued":
            self.tally.retried += 1
        elif state == "expired":
            self.tally.expired += 1
        else:
            self.tally.failed += 1

    # ------------------------------------------------------------------ writing back

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        last_sweep = 0.0
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            stopping = stop.is_set()
            sweep = loop.time() - last_sweep > 5.0
            # Buffers are swapped here, on the loop thread that fills them (no lock needed);
            # only the swapped-out lists go to the database thread. MO parts are the MO
            # lane's (_mo_loop), not this batch's.
            batch, waiter = self._take(mo=False)
            self._writing = len(batch[0]) + len(batch[1])
            try:
                await self._call(self.write_back, batch=batch, sweep=sweep)
                # Only now may the channels acknowledge the receipts to the SMSC.
                self._committed(waiter)
                if sweep:
                    last_sweep = loop.time()
                    self._observe_binds()
                failures = 0
            except (
                JingxinError
            ) as exc:  # the database went away: keep buffers, try again
                self._put_back(batch, waiter)
                failures += 1
                log.error("flush failed (will retry): %s", exc)
            finally:
                self._writing = 0
            if stopping and not (self._submitted or self._moved or self.inbox.items):
                return
            if stopping and failures >= 20:
                # Rows stay 'submitting': the next start resolves them by the unresolved rule.
                log.error(
                    "giving up writing back after %d failures; restart resolves them",
                    failures,
                )
                return
            await asyncio.sleep(self.config.flush_interval)

    def _take(self, *, mo: bool = True) -> tuple[tuple[list, ...], tuple]:
        receipts, waiter = self.inbox.take()
        mo_parts, mo_waiter = self.mo_inbox.take() if mo else ([], None)
        batch = (self._submitted, self._moved, receipts, mo_parts, self.mo_inbox.take_acks() if mo else [])
        self._submitted, self._moved = [], []
        return batch, (waiter, mo_waiter)

    def _put_back(self, batch: tuple[list, ...], waiter: tuple) -> None:
        submitted, moved, receipts, mo_parts, mo_acks = batch
        self._submitted[:0], self._moved[:0] = submitted, moved
        self.inbox.put_back(receipts, waiter[0])
        self.mo_inbox.put_back(mo_parts, waiter[1], mo_acks)

    def _committed(self, waiter: tuple) -> None:
        self.inbox.committed(waiter[0])
        self.mo_inbox.committed(waiter[1])

    def flush(self, *, sweep: bool = False) -> MoTally:
        """Write what is buffered now, MO parts included, in one transaction (for callers
        on the loop thread, and tests); then run the MO handlers when MO were stored."""
        batch, waiter = self._take()
        try:
            mo = self.write_back(batch=batch, sweep=sweep, mo=True)
        except JingxinError:
            self._put_back(batch, waiter)
            raise
        self._committed(waiter)
        if mo.assembled or sweep or self._mo_behind:
            self.run_handlers(mo=mo)
        return mo

    def write_back(self, *, batch: tuple[list, ...], sweep: bool = False,
                   mo: bool = False) -> MoTally:  # fmt: skip
        """Write one batch of outcomes and receipts in one transaction (the db thread);
        with ``mo``, its MO parts too (the MO lane stores them otherwise)."""
        submitted, moved, receipts, *more = batch
        mo_parts, mo_acks = (more[0], more[1]) if more else ([], [])
        now = self.clock()
        with (
            store_errors("recording submits and receipts"),
            self.store.engine.begin() as conn,
        ):
            outbox.record_submitted(conn, submitted=submitted, now=now)
            outbox.record_moved(conn, moved=moved, now=now)
            outcome = apply_receipts(conn, receipts=receipts, now=now)
            late = reconcile(conn, now=now) if submitted or sweep else None
            finished = outcome.finished + (late.finished if late else [])
            marked = record_outcomes(
                conn, finished=finished, now=now, threshold=self.config.invalid_after,
                statuses=self.config.invalid_statuses,
            )  # fmt: skip
            if sweep:
                outbox.expire_unreceipted(
                    conn, now=now, grace=self.config.no_receipt_grace
                )
            tally = (store_parts(conn, items=mo_parts, now=now, rules=self.config.inbox_rules,
                                 expire=sweep, acks=mo_acks, prune=sweep and self.prune_due())
                     if mo and (mo_parts or mo_acks or sweep) else MoTally())  # fmt: skip
        self._observe(receipts, outcome, late, finished, marked)
        self._observe_mo(tally)
        if sweep:
            self.recover(own=False)
            self._finish_campaigns(now)
            self._observe_queue(now)
        return tally

    def _finish_campaigns(self, now: datetime) -> None:
        """Housekeeping, at most every ``finish_every``: running campaigns whose messages
        are all final become ``finished`` (one UPDATE). A failure only waits for the next
        sweep: the batch it follows is already committed."""
        from jingxin.dispatch.campaign import finish_campaigns

        last = self._campaigns_checked
        if last is not None and now - last < self.config.finish_every:
            return
        self._campaigns_checked = now
        try:
            self.tally.campaigns_finished += len(finish_campaigns(self.store, now=now))
        except JingxinError as exc:
            log.warning("marking finished campaigns failed (next sweep retries): %s", exc)

    def _observe(self, receipts, outcome, late, finished, marked) -> None:
        counted = collections.Counter(
            (channel, r.status.value) for channel, r in receipts
        )
        for (channel, status), count in counted.items():
            self.metrics.receipts.labels(channel, status).inc(count)
        histograms: dict[str, Any] = {}
        for channel, seconds in outcome.latencies + (late.latencies if late else []):
            histogram = histograms.get(channel)
            if histogram is None:
                histogram = histograms[channel] = self.metrics.latency.labels(channel)
            histogram.observe(max(seconds, 0.0))
        self.metrics.unmatched.inc(outcome.unmatched)
        self.tally.receipts += len(receipts)
        self.tally.unmatched += outcome.unmatched - (late.matched if late else 0)
        self.tally.finished += len(finished)
        self.tally.invalid_marked += len(marked)
        for msisdn in marked:
            log.warning(
                "number %s marked invalid after repeated permanent failures",
                mask(msisdn),
            )

    def _observe_queue(self, now: datetime) -> None:
        for row in outbox.stats(self.store):
            if row.state == "queued":
                self.metrics.queue_depth.labels(row.lane).set(row.count)
                age = (now - row.oldest).total_seconds() if row.oldest else 0.0
                self.metrics.queue_age.labels(row.lane).set(max(age, 0.0))

    def _observe_binds(self) -> None:
        for name in self.channels:
            self.metrics.bound.labels(name).set(1 if self.router.bound(name) else 0)

    def recover(self, *, own: bool) -> int:
        """Resolve ``submitting`` rows whose submit may never have been answered.

        ``own``: every row this worker's name left behind (at start-up nothing of ours is
        in flight); otherwise rows of any worker older than ``stale_after``.
        """
        now = self.clock()
        rows = claims.stale_submitting(
            self.store, now=now, older_than=self.config.stale_after,
            worker=self.config.name if own else None,
        )  # fmt: skip
        moved = []
        for message_id, category, expires_at, scheduled_at, source in rows:
            verdict = self.config.retry.after(
                failure=Failure.UNRESOLVED, attempts=1, category=category, now=now,
                expires_at=expires_at, source=source,
            )  # fmt: skip
            # A resend keeps its original due time, so it goes out before the backlog
            # queued behind it (due "now", it waited for a whole campaign and expired).
            due = min(scheduled_at, now) if scheduled_at is not None else now
            moved.append(outbox.Moved(message_id, verdict.state, "unresolved",
                                      "worker stopped before the submit response", due, True))  # fmt: skip
        if moved:
            log.warning(
                "resolving %d unanswered submits left in 'submitting'", len(moved)
            )
            with (
                store_errors("resolving unanswered submits"),
                self.store.engine.begin() as conn,
            ):
                outbox.record_moved(conn, moved=moved, now=now)
            self.tally.unresolved += len(moved)
            self.metrics.unresolved.labels("recovered").inc(len(moved))
        return len(moved)
