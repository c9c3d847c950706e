"""The send API's fast path: requests parked on the event loop, delivered in a thread.

The event loop only parses, authenticates and parks each request with the app's
:class:`SendQueue`. One task at a time hands everything parked meanwhile to a thread: each
message checked with the delivery entry's own functions (number, approved template,
category, variables), the single sends merged into ONE ``deliver_many`` call (one state
read, one write: a group commit), then one read of the new rows (their parts). A request
pays for its share of a transaction instead of a whole one, and only one thread writes
(SQLite has one writer). Nothing here writes the outbox or the ledger itself.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import select

from jingxin.api.errors import respond
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import Message
from jingxin.data.store.models.audit import DecisionRecord
from jingxin.dispatch.deliver import (
    Delivered,
    Delivery,
    DeliveryContext,
    deliver_many,
    deliver_one,
)
from jingxin.errors import InputError, TemplateError

MERGE = 256  # single sends handed to one deliver_many call at most
CONFLICT = "idempotency_conflict"  # a batch item whose key a concurrent request took
DECISIONS = {"queued": "send", "deferred": "defer", "rejected": "reject"}


class Refusal(Exception):
    """An answer other than the results: 422 with the bad fields, or 409."""

    def __init__(self, status: int, message: str, fields: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields

    def response(self) -> JSONResponse:
        return respond(self.status, self.message, fields=self.fields)


@dataclass(slots=True)
class _Unit:
    deliveries: tuple[Delivery, ...]
    batch: bool
    future: asyncio.Future[Any]
    result: Any = None


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: int | None
    status: str
    decision: str
    reasons: tuple[str, ...]
    parts: int | None
    send_at: datetime | None
    replayed: bool = False


class SendQueue:
    """The app's sends, parked on the event loop and delivered by one task at a time in a
    thread, everything parked meanwhile at once (see the module docstring)."""

    def __init__(self, store: Store, context: DeliveryContext, *, validity: timedelta,
                 merge: int = MERGE) -> None:  # fmt: skip
        self.store, self.context, self.validity, self.merge = store, context, validity, merge
        self._pending: list[_Unit] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, app_state: Any) -> SendQueue:
        """The app's queue, made on first use (the one DeliveryContext of its sends)."""
        queue = getattr(app_state, "send_queue", None)
        if queue is None:
            settings = app_state.settings
            queue = app_state.send_queue = cls(
                app_state.store, DeliveryContext.from_settings(settings),
                validity=timedelta(hours=settings.dispatch.validity_hours))  # fmt: skip
        return queue

    async def send(self, deliveries: list[Delivery], *, batch: bool) -> list[Sent]:
        loop = asyncio.get_running_loop()
        unit = _Unit(tuple(deliveries), batch, loop.create_future())
        self._pending.append(unit)
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._drain())
        return await unit.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while units := self._take(loop):
            try:
                await asyncio.to_thread(work, self.store, self.context, units)
            except Exception as exc:  # noqa: BLE001 - a bug: every waiter of the pass gets it
                for unit in units:
                    unit.result = exc
            for unit in units:
                if unit.future.done():  # the client went away; its messages were sent
                    continue
                if isinstance(unit.result, BaseException):
                    unit.future.set_exception(unit.result)
                else:
                    unit.future.set_result(unit.result)

    def _take(self, loop: asyncio.AbstractEventLoop) -> list[_Unit]:
        taken, kept, count = [], [], 0
        for unit in self._pending:
            if unit.future.get_loop() is loop and (not taken or count < self.merge):
                taken.append(unit)
                count += len(unit.deliveries)
            else:
                kept.append(unit)
        self._pending = kept
        return taken


def work(store: Store, context: DeliveryContext, units: list[_Unit]) -> None:
    """In a thread: check, deliver and read back each unit; its ``result`` is its list of
    :class:`Sent`, a :class:`Refusal` or the exception that failed it."""
    for unit in units:
        try:
            problems = [p for i, d in enumerate(unit.deliveries)
                        for p in check(store, context, d, item=i if unit.batch else None)]  # fmt: skip
            if problems:
                unit.result = _invalid(problems)
            elif unit.batch:
                unit.result = _conflicts(store, unit.deliveries)
        except Exception as exc:  # noqa: BLE001 - the store (503): this unit's answer
            unit.result = exc
    singles = [u for u in units if u.result is None and not u.batch]
    if singles:
        _deliver_singles(store, context, singles)
    for unit in units:
        if unit.result is None:
            try:
                unit.result = deliver_many(store, deliveries=unit.deliveries, context=context)
            except InputError as exc:
                unit.result = _invalid([_entry_problem(exc, batch=True)])
            except Exception as exc:  # noqa: BLE001 - this unit's answer (503, 500)
                unit.result = exc
    done = [u for u in units if isinstance(u.result, list)]
    if done:
        try:
            _answers(store, done)
        except Exception as exc:  # noqa: BLE001
            for unit in done:
                unit.result = exc


def _deliver_singles(store: Store, context: DeliveryContext, singles: list[_Unit]) -> None:
    """One deliver_many for every single send; if one of them is bad input after all
    (too long, a link with no place), each alone, so only that one fails."""
    try:
        made = deliver_many(store, deliveries=[u.deliveries[0] for u in singles], context=context)
    except InputError:
        made = None
    except Exception as exc:  # noqa: BLE001 - the store: every one of them answers 503
        for unit in singles:
            unit.result = exc
        return
    for n, unit in enumerate(singles):
        if made is not None:
            unit.result = [made[n]]
            continue
        try:
            unit.result = [deliver_one(store, delivery=unit.deliveries[0], context=context)]
        except InputError as exc:
            unit.result = _invalid([_entry_problem(exc, batch=False)])
        except Exception as exc:  # noqa: BLE001
            unit.result = exc


def _answers(store: Store, units: list[_Unit]) -> None:
    """Each unit's Delivered as :class:`Sent`, from ONE read of the rows (parts, state,
    the request digest) and, for replays only, of their first decisions."""
    ids = {d.message_id for u in units for d in u.result if d.message_id is not None}
    replays = [(dl, d) for u in units for dl, d in zip(u.deliveries, u.result, strict=True)
               if d.outcome == "duplicate"]  # fmt: skip
    M = Message.__table__.c
    with store_errors("reading the messages just sent"), store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(
            M.id, M.state, M.parts, M.source_id, M.scheduled_at, M.msisdn
        ).where(M.id.in_(ids)))} if ids else {}  # fmt: skip
        first = _first_decisions(conn, [(rows[d.message_id].msisdn, dl.idempotency_key)
                                        for dl, d in replays if d.message_id in rows])  # fmt: skip
    for unit in units:
        out = [_sent(dl, d, rows.get(d.message_id), first)
               for dl, d in zip(unit.deliveries, unit.result, strict=True)]  # fmt: skip
        clash = next((s for s in out if isinstance(s, str)), None)
        if clash is not None and not unit.batch:
            unit.result = Refusal(409, clash)
        else:
            unit.result = [s if isinstance(s, Sent) else
                           Sent(None, "refused", "reject", (CONFLICT,), None, None)
                           for s in out]  # fmt: skip


def _first_decisions(conn: Any, pairs: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    if not pairs:
        return {}
    D = DecisionRecord.__table__.c
    found = conn.execute(select(D.idempotency_key, D.outcome, D.reasons).where(
        D.msisdn.in_({m for m, _ in pairs}), D.idempotency_key.in_({k for _, k in pairs}),
        D.outcome.in_(("send", "defer"))).order_by(D.id))  # fmt: skip
    kept: dict[str, tuple[str, str]] = {}
    for key, outcome, reasons in found:
        kept.setdefault(key, (outcome, reasons))
    return kept


def _sent(delivery: Delivery, got: Delivered, row: Any,
          first: dict[str, tuple[str, str]]) -> Sent | str:  # fmt: skip
    """The answer for one message, or why its key clashes (a str)."""
    if got.outcome == "rejected" or row is None:
        return Sent(None, "refused", "reject", got.reasons, None, None)
    if got.outcome != "duplicate":
        return Sent(row.id, row.state, DECISIONS[got.outcome], got.reasons, row.parts,
                    got.send_at)  # fmt: skip
    if row.source_id != delivery.source_id:
        key = delivery.idempotency_key.split(":", 2)[2]
        return (f"idempotency_key {key!r} was used for a different request (message "
                f"{row.id}); give a new key for a new message")  # fmt: skip
    outcome, reasons = first.get(delivery.idempotency_key, ("send", ""))
    return Sent(row.id, row.state, outcome, tuple(r for r in reasons.split(",") if r),
                row.parts, row.scheduled_at, replayed=True)  # fmt: skip


# -- checks -----------------------------------------------------------------------------


def check(store: Store, context: DeliveryContext, delivery: Delivery, *,
          item: int | None) -> list[dict[str, str]]:  # fmt: skip
    """What is wrong with one message, field by field, found by the delivery entry's own
    functions (number, approved template, category, variables); [] if nothing."""
    from jingxin.content.variables import validate_values
    from jingxin.dispatch.approval import check_category
    from jingxin.dispatch.deliver import LINK_VARIABLE, normalised

    at = "body." if item is None else f"body.messages.{item}."
    problems = []
    try:
        normalised(delivery.msisdn)
    except InputError as exc:
        problems.append({"field": at + "msisdn", "message": _after(str(exc), "msisdn: ")})
    code = delivery.template or ""
    try:
        approved = context.approved(store, tenant_id=delivery.tenant_id, code=code)
    except TemplateError as exc:
        text = (f"no template {code!r} approved for your tenant"
                if "no approved version" in str(exc) else str(exc))  # fmt: skip
        return [*problems, {"field": at + "template", "message": text}]
    try:
        check_category(approved=approved.category, sending=delivery.category,
                       what=f"template {code}")  # fmt: skip
    except InputError as exc:
        problems.append({"field": at + "category", "message": _after(str(exc), "category: ")})
    values = dict(delivery.variables)
    if delivery.link is not None and LINK_VARIABLE in approved.compiled.variables:
        values.setdefault(LINK_VARIABLE, delivery.link)  # the entry puts the short link there
    try:
        validate_values(approved.compiled.variables, values, where=f"template {code}")
    except TemplateError as exc:
        for problem in _after(str(exc), f"template {code}: ").split("; "):
            name = re.search(r"variable '([^']+)'", problem)
            where = f"variables.{name[1]}" if name else "variables"
            problems.append({"field": at + where, "message": problem})
    return problems


def _after(text: str, marker: str) -> str:
    return text.split(marker, 1)[1] if marker in text else text


def _invalid(problems: list[dict[str, str]]) -> Refusal:
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return Refusal(422, summary + more, problems)


ENTRY_FIELDS = (("msisdn: ", "msisdn"), ("link: ", "link"), ("category: ", "category"),
                ("variable '", "variables"), ("template", "template"))  # fmt: skip


def _entry_problem(exc: InputError, *, batch: bool) -> dict[str, str]:
    """The field a refusal of the delivery entry names (it says "delivery #3 (key): link:
    ..." in a batch)."""
    text = str(exc)
    at = "body."
    index = re.match(r"delivery #(\d+) ", text)
    if batch and index:
        at = f"body.messages.{int(index[1]) - 1}."
    name = next((name for marker, name in ENTRY_FIELDS if marker in text), None)
    return {"field": at + (name or "template"), "message": text}


def _conflicts(store: Store, deliveries: tuple[Delivery, ...]) -> Refusal | None:
    """409 if a key of the batch was used for another request, before or in the batch."""
    seen: dict[str, tuple[int, str | None]] = {}
    clashes = []
    for i, d in enumerate(deliveries):
        before = seen.setdefault(d.idempotency_key, (i, d.source_id))
        if before[1] != d.source_id:
            clashes.append(f"messages.{i}: its idempotency_key is messages.{before[0]}'s "
                           "with another body")  # fmt: skip
    M = Message.__table__.c
    with store_errors("reading earlier keys"), store.engine.connect() as conn:
        found = conn.execute(select(M.idempotency_key, M.id, M.source_id).where(
            M.idempotency_key.in_(seen)))  # fmt: skip
        for key, message_id, digest in found:
            if digest != seen[key][1]:
                clashes.append(f"messages.{seen[key][0]}: its idempotency_key was used for a "
                               f"different request (message {message_id})")  # fmt: skip
    if not clashes:
        return None
    return Refusal(409, "; ".join(clashes[:5]) + "; give new keys for new messages")
