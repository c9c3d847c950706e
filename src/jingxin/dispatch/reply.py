"""Answering an MO: one reply through the delivery entry, at most once per MO.

A reply is an ordinary delivery (source ``inbox``, category ``notification``), so policy
sees it like any other message: a blacklisted number gets nothing, quiet hours defer it. It
goes out from the service number the subscriber wrote to, so their next answer comes back
to the same place. Its idempotency key is ``inbox:<mo_id>:reply``: a handler that runs
again after a crash (handlers run at least once) gets ``duplicate`` and the first
message's id back, and the subscriber one reply.

The handler runner answers a whole batch at once (:func:`send_replies`): the production
:class:`DeliveryReplier` takes the replies already queued under their keys as
``duplicate`` and hands the rest to the delivery entry's bulk form
(:func:`jingxin.dispatch.deliver.deliver_table`) as one table, then reads back what became
of each row (its message, or the reasons policy rejected it). A number that does not
normalise raises InputError before anything is written, as :func:`deliver_one` would, so
the runner can answer that batch one MO at a time and fail only the bad one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from jingxin.data.store.engine import Store, store_errors

if TYPE_CHECKING:
    from jingxin.dispatch.deliver import DeliveryContext

REPLY_CATEGORY = "notification"
REPLY_SOURCE = "inbox"
# From this many replies a batch goes through deliver_table; fewer go one by one through
# deliver_one. Measured on the 2-core development VM: the bulk form costs ~45-55 ms per
# call whatever its size (its policy-state load) plus ~0.25 ms a row; deliver_one ~0.5 ms
# a row on SQLite, ~1.5 ms on PostgreSQL. So the bulk form pays off from ~50 rows on
# PostgreSQL and ~150 on SQLite, and a handful of replies never waits 50 ms for it.
BULK_FROM = {"postgresql": 48, "sqlite": 160}
DEFAULT_BULK_FROM = 48


def reply_key(mo_id: int) -> str:
    """The idempotency key of the one reply to MO ``mo_id``."""
    return f"inbox:{mo_id}:reply"


@dataclass(frozen=True, slots=True)
class ReplySent:
    """What the delivery entry made of a reply: ``queued``, ``deferred``, ``rejected``
    (with policy's reasons) or ``duplicate`` (sent before; ``message_id`` is the first)."""

    outcome: str
    message_id: int | None
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        why = f" ({', '.join(self.reasons)})" if self.reasons else ""
        number = f" as message {self.message_id}" if self.message_id is not None else ""
        return f"reply {self.outcome}{number}{why}"


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """One reply the runner sends for a handler: to whom, from where, what."""

    mo_id: int
    msisdn: str
    service_number: str
    text: str
    tenant_id: str


class Replier(Protocol):
    """Sends the reply to one MO; tests pass a fake, production :class:`DeliveryReplier`.
    A replier may also have ``many(store, requests, *, now) -> {mo_id: ReplySent}`` to
    send a batch at once; :func:`send_replies` loops ``__call__`` otherwise."""

    def __call__(
        self, store: Store, *, mo_id: int, msisdn: str, service_number: str, text: str,
        tenant_id: str, now: datetime | None = None,
    ) -> ReplySent: ...  # fmt: skip


def send_replies(replier: Replier, store: Store, *, requests: Sequence[ReplyRequest],
                 now: datetime | None) -> dict[int, ReplySent]:  # fmt: skip
    """Every reply of a batch, by MO id: in one go when the replier can, else one by one."""
    if not requests:
        return {}
    many = getattr(replier, "many", None)
    if many is not None:
        return many(store, requests=requests, now=now)
    return {r.mo_id: replier(store, mo_id=r.mo_id, msisdn=r.msisdn,
                             service_number=r.service_number, text=r.text,
                             tenant_id=r.tenant_id, now=now) for r in requests}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeliveryReplier:
    """The production replier: :func:`jingxin.dispatch.deliver.deliver_one`, and
    :func:`~jingxin.dispatch.deliver.deliver_table` for a batch."""

    context: DeliveryContext | None = None
    bulk_from: int | None = None  # None: by dialect (BULK_FROM)

    def __call__(
        self, store: Store, *, mo_id: int, msisdn: str, service_number: str, text: str,
        tenant_id: str, now: datetime | None = None,
    ) -> ReplySent:  # fmt: skip
        from jingxin.dispatch.deliver import Delivery, deliver_one

        delivery = Delivery(
            msisdn=msisdn,
            source=REPLY_SOURCE,
            idempotency_key=reply_key(mo_id),
            category=REPLY_CATEGORY,
            tenant_id=tenant_id,
            source_id=str(mo_id),
            text=text,
            sender=service_number,
        )
        done = deliver_one(store, delivery=delivery, context=self.context, now=now)
        return ReplySent(outcome=done.outcome, message_id=done.message_id,
                         reasons=tuple(done.reasons))  # fmt: skip

    def many(self, store: Store, *, requests: Sequence[ReplyRequest],
             now: datetime | None = None) -> dict[int, ReplySent]:  # fmt: skip
        """The replies of a batch through one :func:`deliver_table` call (fewer than
        ``bulk_from``: one :func:`deliver_one` each). Every number is checked first."""
        import pyarrow as pa

        from jingxin.data.store.models import utc_now
        from jingxin.dispatch.deliver import deliver_table

        now = now or utc_now()
        bulk_from = self.bulk_from or BULK_FROM.get(store.engine.dialect.name,
                                                    DEFAULT_BULK_FROM)  # fmt: skip
        if len(requests) < bulk_from:
            return {r.mo_id: self(store, mo_id=r.mo_id, msisdn=r.msisdn, text=r.text,
                                  service_number=r.service_number, tenant_id=r.tenant_id,
                                  now=now) for r in requests}  # fmt: skip
        numbers = _numbers(requests)
        first = _queued(store, keys=[reply_key(r.mo_id) for r in requests])
        fresh = [r for r in requests if reply_key(r.mo_id) not in first]
        if fresh:
            table = pa.table({
                "msisdn": [numbers[r.mo_id] for r in fresh],
                "text": [r.text for r in fresh],
                "idempotency_key": [reply_key(r.mo_id) for r in fresh],
                "sender": [r.service_number for r in fresh],
                "tenant_id": [r.tenant_id for r in fresh],
                "source_id": [str(r.mo_id) for r in fresh],
            })  # fmt: skip
            deliver_table(store, table=table, context=self.context, now=now,
                          defaults={"source": REPLY_SOURCE, "category": REPLY_CATEGORY},
                          where="inbox replies")  # fmt: skip
        made = _made(store, requests=fresh, numbers=numbers, now=now)
        return {r.mo_id: (ReplySent("duplicate", first[reply_key(r.mo_id)], ("duplicate",))
                          if reply_key(r.mo_id) in first else made[r.mo_id])
                for r in requests}  # fmt: skip


def _numbers(requests: Sequence[ReplyRequest]) -> dict[int, str]:
    """Each reply's number in E.164 (one vectorised pass, the delivery entry's rules); one
    that does not normalise raises the delivery entry's InputError naming its MO."""
    import pyarrow as pa

    from jingxin.data.msisdn import normalise_msisdns
    from jingxin.dispatch.deliver import normalised

    column = normalise_msisdns(pa.array([r.msisdn for r in requests], pa.string()))
    return {r.mo_id: e164 or normalised(r.msisdn, where=f"reply to MO {r.mo_id}")
            for r, e164 in zip(requests, column.e164.to_pylist(), strict=True)}  # fmt: skip


def _queued(store: Store, *, keys: list[str]) -> dict[str, int]:
    """The messages already queued under ``keys``: key → message id."""
    from sqlalchemy import select

    from jingxin.data.store.models import Message

    with store_errors("reading the replies already queued"), store.sessions() as session:
        rows = session.execute(select(Message.idempotency_key, Message.id)
                               .where(Message.idempotency_key.in_(keys))).all()  # fmt: skip
    return {key: message_id for key, message_id in rows}


def _made(store: Store, *, requests: Sequence[ReplyRequest], numbers: dict[int, str],
          now: datetime) -> dict[int, ReplySent]:  # fmt: skip
    """What the bulk call made of each reply: its message (queued, or deferred when it
    is scheduled later), else policy's reasons from its decision row."""
    from sqlalchemy import select

    from jingxin.data.store.models import DecisionRecord, Message

    if not requests:
        return {}
    keys = [reply_key(r.mo_id) for r in requests]
    with store_errors("reading back the replies"), store.sessions() as session:
        queued = {row.idempotency_key: row for row in session.execute(
            select(Message.idempotency_key, Message.id, Message.scheduled_at)
            .where(Message.idempotency_key.in_(keys)))}  # fmt: skip
        missing = [numbers[r.mo_id] for r in requests if reply_key(r.mo_id) not in queued]
        decided = session.execute(
            select(DecisionRecord.idempotency_key, DecisionRecord.reasons)
            .where(DecisionRecord.msisdn.in_(missing), DecisionRecord.idempotency_key.in_(keys))
            .order_by(DecisionRecord.id)).all() if missing else []  # fmt: skip
    reasons = {key: why for key, why in decided}  # the newest decision per key wins
    out = {}
    for r in requests:
        row = queued.get(reply_key(r.mo_id))
        if row is not None:
            later = row.scheduled_at is not None and row.scheduled_at > now
            out[r.mo_id] = ReplySent("deferred" if later else "queued", row.id)
            continue
        why = tuple(x for x in (reasons.get(reply_key(r.mo_id)) or "").split(",") if x)
        out[r.mo_id] = ReplySent("duplicate" if why == ("duplicate",) else "rejected", None, why)
    return out
