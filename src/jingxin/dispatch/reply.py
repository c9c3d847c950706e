"""Answering an MO: one reply through the delivery entry, at most once per MO.

A reply is an ordinary delivery (source ``inbox``, category ``notification``), so policy
sees it like any other message: a blacklisted number gets nothing, quiet hours defer it. It
goes out from the service number the subscriber wrote to, so their next answer comes back
to the same place. Its idempotency key is ``inbox:<mo_id>:reply``: a handler that runs
again after a crash (handlers run at least once) gets ``duplicate`` and the first
message's id back, and the subscriber one reply.

The handler runner answers a whole batch at once (:func:`send_replies`): the production
:class:`DeliveryReplier` hands it to the delivery entry's small-batch form
(:func:`jingxin.dispatch.deliver.deliver_many`: one transaction, one state load, what
``deliver_one`` on each in order would give), which answers each reply's outcome - its
message id (the first one's for a ``duplicate``) or policy's reasons. A number that does
not normalise raises InputError before anything is written, as :func:`deliver_one` would,
so the runner can answer that batch one MO at a time and fail only the bad one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from jingxin.data.store.engine import Store

if TYPE_CHECKING:
    from jingxin.dispatch.deliver import Delivery, DeliveryContext

REPLY_CATEGORY = "notification"
REPLY_SOURCE = "inbox"
# From this many replies a batch goes through deliver_many (one transaction for all); one
# reply alone goes through deliver_one, which on PostgreSQL is two round trips.
BULK_FROM = 2


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
    source: str = "inbox"  # the capability answering: 'inbox' or 'hall'


class Replier(Protocol):
    """Sends the reply to one MO; tests pass a fake, production :class:`DeliveryReplier`.
    A replier may also have ``many(store, requests, *, now) -> {mo_id: ReplySent}`` to
    send a batch at once; :func:`send_replies` loops ``__call__`` otherwise."""

    def __call__(
        self, store: Store, *, mo_id: int, msisdn: str, service_number: str, text: str,
        tenant_id: str, now: datetime | None = None, source: str = "inbox",
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
                             tenant_id=r.tenant_id, now=now, source=r.source)
            for r in requests}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeliveryReplier:
    """The production replier: :func:`jingxin.dispatch.deliver.deliver_one`, and
    :func:`~jingxin.dispatch.deliver.deliver_many` for a batch."""

    context: DeliveryContext | None = None
    bulk_from: int | None = None  # None: BULK_FROM

    def __call__(
        self, store: Store, *, mo_id: int, msisdn: str, service_number: str, text: str,
        tenant_id: str, now: datetime | None = None, source: str = "inbox",
    ) -> ReplySent:  # fmt: skip
        from jingxin.dispatch.deliver import deliver_one

        request = ReplyRequest(mo_id, msisdn, service_number, text, tenant_id, source)
        done = deliver_one(store, delivery=_delivery(request, msisdn), context=self.context,
                           now=now)  # fmt: skip
        return ReplySent(outcome=done.outcome, message_id=done.message_id,
                         reasons=tuple(done.reasons))  # fmt: skip

    def many(self, store: Store, *, requests: Sequence[ReplyRequest],
             now: datetime | None = None) -> dict[int, ReplySent]:  # fmt: skip
        """The replies of a batch through one :func:`deliver_many` call: one transaction,
        one state load (fewer than ``bulk_from``: one :func:`deliver_one` each). Every
        number is checked first, so a bad one raises before anything is written."""
        from jingxin.data.store.models import utc_now
        from jingxin.dispatch.deliver import deliver_many

        now = now or utc_now()
        if len(requests) < (self.bulk_from or BULK_FROM):
            return {r.mo_id: self(store, mo_id=r.mo_id, msisdn=r.msisdn, text=r.text,
                                  service_number=r.service_number, tenant_id=r.tenant_id,
                                  now=now, source=r.source) for r in requests}  # fmt: skip
        numbers = _numbers(requests)
        done = deliver_many(store, deliveries=[_delivery(r, numbers[r.mo_id]) for r in requests],
                            context=self.context, now=now)  # fmt: skip
        return {r.mo_id: ReplySent(d.outcome, d.message_id, tuple(d.reasons))
                for r, d in zip(requests, done, strict=True)}  # fmt: skip


def _delivery(request: ReplyRequest, msisdn: str) -> Delivery:
    """The delivery of one reply: source ``inbox`` (or the capability that answered, e.g.
    ``hall``), from the service number written to."""
    from jingxin.dispatch.deliver import Delivery

    return Delivery(msisdn=msisdn, source=request.source or REPLY_SOURCE, idempotency_key=reply_key(request.mo_id),
                    category=REPLY_CATEGORY, tenant_id=request.tenant_id,
                    source_id=str(request.mo_id), text=request.text,
                    sender=request.service_number)  # fmt: skip


def _numbers(requests: Sequence[ReplyRequest]) -> dict[int, str]:
    """Each reply's number in E.164 (the delivery entry's rules); one that does not
    normalise raises the delivery entry's InputError naming its MO."""
    from jingxin.data.msisdn import e164_of_few
    from jingxin.dispatch.deliver import normalised

    found = e164_of_few([r.msisdn for r in requests])
    return {r.mo_id: e164 or normalised(r.msisdn, where=f"reply to MO {r.mo_id}")
            for r, e164 in zip(requests, found, strict=True)}  # fmt: skip
