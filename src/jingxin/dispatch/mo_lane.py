"""The worker's MO lane and handler lane (mixed into :class:`jingxin.dispatch.worker.Worker`).

The MO lane (:meth:`MoLane._mo_loop`) stores the MO parts the channels handed over, one
transaction a round, and only then lets the channels acknowledge them; on PostgreSQL it
has its own thread and connection, so an MO never waits behind a claim or a campaign's
write-back. The handler lane (:meth:`MoLane._handler_loop`) runs ``on_mo_stored`` (the
handlers' ``run_pending``) after each commit, in bounded batches on a thread and
connection of its own, so storing never waits behind a handler backlog.

Crash safety: a part is acknowledged only after the transaction that stored it commits;
a failed store keeps the parts unacknowledged (the SMSC delivers them again after a
crash) and retries after a pause. Handlers read only committed rows, run at least once
(a sweep re-runs whatever a crash left without an outcome) and are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from jingxin.data.store.engine import store_errors
from jingxin.dispatch.handler_process import by_sender
from jingxin.dispatch.inbox import Ack
from jingxin.dispatch.mo_inbox import MoTally, one_statement, release, store_parts
from jingxin.errors import JingxinError

log = logging.getLogger("jingxin.dispatch.worker")
# A batch of at least this many MO is shared among the handler processes (by sender);
# a smaller one is answered by one - each child's batch pays for a dozen statements.
SPLIT_FROM = 8
# Seconds between two prunes of mo_unacked (a scan of it: a part whose link died unanswered
# and that the SMSC never sent again waits there; nothing reads it past the window).
PRUNE_EVERY_S = 600.0


class MoLane:
    """The MO and handler lanes of a worker; the worker provides the store, the inbox,
    the executors (``_mo_db``, ``_handler_db``), ``_call``, the tally and the clock."""

    async def _mo_loop(self, stop: asyncio.Event) -> None:
        """The MO lane: store what arrived (one transaction), let the channels acknowledge
        it and wake the handler lane (:meth:`_handler_loop`); again at once while parts
        wait, else when the next part arrives (or ``flush_interval``, for the sweep and the
        stop). The first round sweeps: groups whose wait is over, and handlers for whatever
        a crashed worker left without an outcome."""
        arrived = self.mo_inbox.watch()
        wake, storing = asyncio.Event(), asyncio.Event()
        handlers = asyncio.create_task(self._handler_loop(wake, storing))
        last_sweep = 0.0
        failures = 0
        loop = asyncio.get_running_loop()
        try:
            while True:
                stopping = stop.is_set()
                sweep = loop.time() - last_sweep > 5.0
                parts, waiter = self.mo_inbox.take()
                # The acknowledgements since the last round go with its parts; with none
                # (a flush interval went by without one) on their own, so that a worker
                # bound to the same account soon sees them too.
                acks = self.mo_inbox.take_acks()
                try:
                    mo = MoTally()
                    if parts or sweep:
                        mo = await self._call(self.store_mo, _pool=self._mo_db, parts=parts,
                                              acks=acks, sweep=sweep)  # fmt: skip
                    elif acks:
                        await self._call(self.release_mo, _pool=self._mo_db, acks=acks)
                    self.mo_inbox.committed(waiter)  # only now may the channels ack the PDUs
                    if mo.assembled or sweep:  # (store_mo queued them for the handler lane)
                        self._handlers_due = True
                        self._handlers_sweep = self._handlers_sweep or sweep
                        wake.set()
                    if sweep:
                        last_sweep = loop.time()
                    failures = 0
                except Exception as exc:  # noqa: BLE001 - the lane must outlive one failure
                    # The database went away (or a part broke the store): keep the parts
                    # unacknowledged and retry after a pause; the SMSC keeps them meanwhile.
                    self.mo_inbox.put_back(parts, waiter, acks)
                    failures += 1
                    if isinstance(exc, JingxinError):
                        log.error("storing MO failed (will retry): %s", exc)
                    else:
                        log.exception("storing MO failed unexpectedly (will retry)")
                if stopping and (not self.mo_inbox.items or failures >= 20):
                    return  # unacknowledged parts stay with the SMSC, which delivers them again
                if failures:
                    await asyncio.sleep(self.config.flush_interval)
                elif not self.mo_inbox.items:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(arrived.wait(), self.config.flush_interval)
                else:
                    await asyncio.sleep(0)  # let the channels hand over what they read meanwhile
        finally:
            storing.set()
            wake.set()
            await handlers

    async def _handler_loop(self, wake: asyncio.Event, storing: asyncio.Event) -> None:
        """The handler lane: one bounded batch of handlers whenever the MO lane committed
        MO (or swept), again at once while they are behind. Runs after the store commits,
        so whatever it reads is stored; ends with one last run once storing has stopped."""
        while True:
            if not (self._handlers_due or self._mo_behind):
                if storing.is_set():
                    return
                await wake.wait()
                wake.clear()
                continue
            sweep, self._handlers_sweep = self._handlers_sweep, False
            self._handlers_due = False
            await self._call(self.run_handlers, _pool=self._handler_db, sweep=sweep)
            if storing.is_set():
                self._mo_behind = False  # stopping: what is left waits for the next start

    def store_mo(self, *, parts: list, acks: Sequence[Ack] = (), sweep: bool = False) -> MoTally:
        """Store MO parts in their own transaction (the MO lane's thread): on PostgreSQL a
        round of single-part MO alone is one statement, run in autocommit (no ``BEGIN``
        and ``COMMIT`` round trips, each a wait for the interpreter lock again when it
        answers)."""
        now = self.clock()
        postgres = self.store.engine.dialect.name == "postgresql"
        alone = postgres and one_statement(parts, expire=sweep)
        with store_errors("storing MO"), (self.store.autocommit() if alone
                                          else self.store.engine.begin()) as conn:  # fmt: skip
            mo = store_parts(conn, items=parts, now=now, rules=self.config.inbox_rules,
                             expire=sweep, acks=acks, prune=sweep and self.prune_due())  # fmt: skip
        # Committed: the handler lane may take them now, from this thread - a handler run
        # in progress takes them when it ends, without a trip through the event loop.
        self._mo_unhandled.extend(mo.assembled)
        self._observe_mo(mo)
        return mo

    def prune_due(self) -> bool:
        """Is it time to forget the parts that will never be acknowledged (every
        :data:`PRUNE_EVERY_S`; the first sweep of a worker does it)?"""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S:
            return False
        self._pruned_at = now
        return True

    def release_mo(self, *, acks: Sequence[Ack]) -> int:
        """Record acknowledgements alone (the MO lane's thread), one statement."""
        with store_errors("recording MO acknowledgements"), self.store.autocommit() as conn:
            return release(conn, acks=acks)

    def run_handlers(self, *, mo: MoTally | None = None, sweep: bool = True) -> None:
        """After an MO commit (the handler lane's thread): the handlers, then PDU → handled
        latency. With ``mo`` (a flush on the loop thread): for its MO. Without (the handler
        lane): for the MO the MO lane has stored meanwhile, again and again while it
        stores more - the lane turns over without waiting for the event loop, which a
        campaign's PDUs keep busy. A failure is logged and counted; the rows wait for the
        next call (at least once). A run that returns true stopped at its limit with MO
        left: the handler lane (or the next flush) runs it again at once.

        A worker answers the MO it stored itself first (``on_mo_stored.handle_ids``, when
        the runner has it): several workers then share the way back instead of each
        reading every pending MO; a sweep, or a run that stopped at its limit, reads
        whatever is pending (what a crashed worker left, what another has not reached)."""
        if mo is not None:
            self._handle(list(mo.assembled), sweep=sweep)
            return
        assembled = self._take_unhandled()
        if not (assembled or sweep or self._mo_behind):
            return  # a wake for MO a run in progress took already
        while True:
            self._handle(assembled, sweep=sweep)
            if self._mo_behind:
                return  # the lane runs again at once (unless it is stopping)
            assembled, sweep = self._take_unhandled(), False
            if not assembled:
                return

    def _take_unhandled(self) -> list:
        taken = []
        with contextlib.suppress(IndexError):
            while True:
                taken.append(self._mo_unhandled.popleft())
        return taken

    def _handle(self, assembled: list, *, sweep: bool) -> None:
        if self.on_mo_stored is not None:
            try:
                own = getattr(self.on_mo_stored, "handle_ids", None)
                split = getattr(self.on_mo_stored, "handle_split", None)
                ids = [a.mo_id for a in assembled]
                if split is not None and len(ids) >= SPLIT_FROM and not (sweep or self._mo_behind):
                    split(by_sender(assembled, len(self.on_mo_stored.children)))
                elif own is not None and ids and not (sweep or self._mo_behind):
                    own(ids)
                else:
                    self._mo_behind = bool(self.on_mo_stored())
            except Exception:  # noqa: BLE001 - one bad run must not stop the worker
                # Not "behind": a failing run (the database is down) waits for the next
                # commit or sweep instead of being retried back to back.
                self._mo_behind = False
                self.tally.mo_handler_errors += 1
                self.metrics.mo_handler_errors.inc()
                log.exception("MO handlers failed; they run again on the next sweep")
        done = self.clock()
        self.mo_latencies.extend((done - a.received_at).total_seconds() for a in assembled)

    def _observe_mo(self, mo: MoTally) -> None:
        incomplete = sum(1 for a in mo.assembled if not a.complete)
        undecodable = sum(1 for a in mo.assembled if a.undecodable)
        self.tally.mo_parts += mo.stored
        self.tally.mo_duplicates += mo.duplicates
        self.tally.mo_messages += len(mo.assembled)
        self.tally.mo_incomplete += incomplete
        self.tally.mo_undecodable += undecodable
        m = self.metrics
        if mo.stored:
            m.mo_parts.inc(mo.stored)
        if mo.duplicates:
            m.mo_redelivered.inc(mo.duplicates)
        for state, count in (("complete", len(mo.assembled) - incomplete),
                             ("incomplete", incomplete)):
            if count:
                m.mo_messages.labels(state).inc(count)
        if undecodable:
            m.mo_undecodable.inc(undecodable)
