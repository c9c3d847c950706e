"""The inbox as staff read it: MO with what the handlers made of them (``jingxin inbox``).

Read-only queries over ``mo_messages`` joined to ``mo_outcomes``: a filtered list, one MO
in full with its parts, and counts by outcome and handler (pending, incomplete and
undecodable MO included). The CLI and the API call these; numbers are masked by the
caller that shows them.

Whose an MO is (``tenant_id`` of :class:`MoFilter`, :func:`find_mo`): an enterprise's are
the MO attributed to its messages (``mo_outcomes.tenant_id``) and the MO its own hall
answered (``hall_interactions.tenant_id``); None - the operator's view - is every MO,
pending ones included (a pending MO has no attribution yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.sql import Select

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import (
    MO_OUTCOMES,
    HallInteraction,
    MoMessage,
    MoOutcome,
    MoPartRow,
)
from jingxin.dispatch.handlers import keyword_form
from jingxin.errors import InputError

PENDING = "pending"
LIST_OUTCOMES = (*MO_OUTCOMES, PENDING)


@dataclass(frozen=True, slots=True)
class MoFilter:
    """What ``jingxin inbox list`` narrows by; None means any."""

    msisdn: str | None = None
    service_number: str | None = None  # this number or one it prefixes
    text: str | None = None  # contained, case-insensitively
    since: datetime | None = None
    outcome: str | None = None  # handled | no_handler | failed | pending
    limit: int = 50
    offset: int = 0
    tenant_id: str | None = None  # only this tenant's MO (module docstring); None: all

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in LIST_OUTCOMES:
            raise InputError(f"--outcome: {self.outcome!r} is not one of "
                             f"{', '.join(LIST_OUTCOMES)}")  # fmt: skip
        if self.limit < 1:
            raise InputError(f"--limit: {self.limit} must be at least 1")
        if self.offset < 0:
            raise InputError(f"--offset: {self.offset} must be 0 or more")


@dataclass(frozen=True, slots=True)
class MoView:
    """One MO and its outcome (``outcome`` is ``pending`` until a handler ran)."""

    id: int
    channel: str
    msisdn: str
    service_number: str
    text: str
    coding: int
    parts: int
    parts_expected: int
    complete: bool
    undecodable: bool
    received_at: datetime
    outcome: str
    handler: str | None
    detail: str | None
    tenant_id: str | None
    message_id: int | None
    campaign_id: int | None
    source: str | None
    source_id: str | None
    arm: str | None
    reply_message_id: int | None
    handled_at: datetime | None

    @property
    def attributed_to(self) -> str:
        """``campaign 3 (message 17, arm B)``, or ``-``."""
        if self.message_id is None:
            return "-"
        what = f"{self.source or 'message'} {self.source_id}" if self.source_id else (
            self.source or "message")
        arm = f", arm {self.arm}" if self.arm else ""
        return f"{what} (message {self.message_id}{arm})"

    @property
    def flags(self) -> str:
        marks = []
        if not self.complete:
            marks.append(f"incomplete {self.parts}/{self.parts_expected}")
        if self.undecodable:
            marks.append("undecodable")
        return ", ".join(marks)


@dataclass(frozen=True, slots=True)
class InboxStats:
    total: int
    by_outcome: dict[str, int]
    by_handler: dict[tuple[str, str], int]  # (handler or '-', outcome) -> count
    incomplete: int
    undecodable: int
    attributed: int


def _base() -> Select:
    return select(MoMessage, MoOutcome).outerjoin(MoOutcome, MoOutcome.mo_id == MoMessage.id)


def _view(mo: MoMessage, out: MoOutcome | None) -> MoView:
    return MoView(
        id=mo.id, channel=mo.channel, msisdn=mo.msisdn, service_number=mo.service_number,
        text=mo.text, coding=mo.coding, parts=mo.parts, parts_expected=mo.parts_expected,
        complete=mo.complete, undecodable=mo.undecodable, received_at=mo.received_at,
        outcome=out.outcome if out else PENDING,
        handler=out.handler if out else None, detail=out.detail if out else None,
        tenant_id=out.tenant_id if out else None, message_id=out.message_id if out else None,
        campaign_id=out.campaign_id if out else None, source=out.source if out else None,
        source_id=out.source_id if out else None, arm=out.arm if out else None,
        reply_message_id=out.reply_message_id if out else None,
        handled_at=out.handled_at if out else None,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MoPartView:
    """One PDU of an MO as received (the payload's size, not the payload)."""

    seq: int
    total: int
    ref: int | None
    coding: int
    octets: int
    smsc_id: str | None
    received_at: datetime


def list_mo(store: Store, *, where: MoFilter) -> list[MoView]:
    """The newest MO matching ``where``, newest first."""
    query = _filtered(_base(), where).order_by(MoMessage.id.desc()).limit(where.limit)
    if where.offset:
        query = query.offset(where.offset)
    with store_errors("listing the inbox"), store.transaction() as session:
        return [_view(mo, out) for mo, out in session.execute(query).all()]


def count_mo(store: Store, *, where: MoFilter) -> int:
    """How many MO match ``where`` (its limit and offset aside)."""
    query = _filtered(select(func.count()).select_from(MoMessage).outerjoin(
        MoOutcome, MoOutcome.mo_id == MoMessage.id), where)  # fmt: skip
    with store_errors("counting the inbox"), store.transaction() as session:
        return int(session.execute(query).scalar_one())


def _filtered(query: Select, where: MoFilter) -> Select:
    if where.tenant_id is not None:
        query = query.where(owned_by(where.tenant_id))
    if where.msisdn:
        query = query.where(MoMessage.msisdn.in_(number_forms(where.msisdn)))
    if where.service_number:
        query = query.where(MoMessage.service_number.startswith(where.service_number,
                                                                autoescape=True))
    if where.text:
        query = query.where(func.lower(MoMessage.text).contains(keyword_form(where.text),
                                                                autoescape=True))
    if where.since:
        query = query.where(MoMessage.received_at >= where.since)
    if where.outcome == PENDING:
        query = query.where(MoOutcome.id.is_(None))
    elif where.outcome:
        query = query.where(MoOutcome.outcome == where.outcome)
    return query


def owned_by(tenant_id: str) -> ColumnElement[bool]:
    """The MO of ``tenant_id`` (see the module docstring), over ``mo_messages`` outer-joined
    to ``mo_outcomes``."""
    answered = select(HallInteraction.mo_id).where(HallInteraction.tenant_id == tenant_id)
    return or_(MoOutcome.tenant_id == tenant_id, MoMessage.id.in_(answered))


def get_mo(store: Store, *, mo_id: int) -> MoView:
    """One MO; an unknown id is an InputError."""
    found = find_mo(store, mo_id=mo_id)
    if found is None:
        raise InputError(f"MO {mo_id}: no such message in the inbox")
    return found


def find_mo(store: Store, *, mo_id: int, tenant_id: str | None = None) -> MoView | None:
    """One MO (of ``tenant_id`` only, when given), or None."""
    query = _base().where(MoMessage.id == mo_id)
    if tenant_id is not None:
        query = query.where(owned_by(tenant_id))
    with store_errors(f"reading MO {mo_id}"), store.transaction() as session:
        row = session.execute(query).first()
    return None if row is None else _view(*row)


def mo_parts(store: Store, *, mo_id: int) -> list[MoPartView]:
    """The PDUs an MO was assembled from, in part order."""
    query = (select(MoPartRow.seq, MoPartRow.total, MoPartRow.ref, MoPartRow.coding,
                    func.length(MoPartRow.payload), MoPartRow.smsc_id, MoPartRow.received_at)
             .where(MoPartRow.mo_id == mo_id).order_by(MoPartRow.seq, MoPartRow.id))  # fmt: skip
    with store_errors(f"reading the parts of MO {mo_id}"), store.transaction() as session:
        return [MoPartView(*row) for row in session.execute(query).all()]


def inbox_stats(store: Store) -> InboxStats:
    """Counts by outcome and by handler, with incomplete, undecodable and attributed MO."""
    outcome = func.coalesce(MoOutcome.outcome, PENDING)
    handler = func.coalesce(MoOutcome.handler, "-")
    grouped = (
        select(handler, outcome, func.count(), func.sum(_flag(~MoMessage.complete)),
               func.sum(_flag(MoMessage.undecodable)), func.count(MoOutcome.message_id))
        .select_from(MoMessage)
        .outerjoin(MoOutcome, MoOutcome.mo_id == MoMessage.id)
        .group_by(handler, outcome)
    )  # fmt: skip
    with store_errors("counting the inbox"), store.transaction() as session:
        rows = session.execute(grouped).all()
    by_outcome: dict[str, int] = {}
    for _, name, count, *_ in rows:
        by_outcome[name] = by_outcome.get(name, 0) + count
    return InboxStats(
        total=sum(r[2] for r in rows),
        by_outcome=by_outcome,
        by_handler={(r[0], r[1]): r[2] for r in rows},
        incomplete=sum(int(r[3] or 0) for r in rows),
        undecodable=sum(int(r[4] or 0) for r in rows),
        attributed=sum(r[5] for r in rows),
    )


def _flag(condition):  # noqa: ANN001, ANN202
    """A SQL condition as 0/1, to sum on either dialect."""
    return case((condition, 1), else_=0)


def number_forms(raw: str) -> list[str]:
    """The number as typed and, when it normalises, its E.164 form (how MO keep it)."""
    from jingxin.data.msisdn import InvalidMsisdn, normalise_msisdn

    forms = [raw.strip()]
    try:
        forms.append(normalise_msisdn(raw).e164)
    except InvalidMsisdn:
        pass  # a raw source that never normalised is kept as received: match it as typed
    return forms


# ----------------------------------------------------------------------------- conversations


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation: an MO the number sent (``mo``) or a message it was
    sent (``mt``), with what became of it."""

    direction: str  # "mo" | "mt"
    id: int  # the MO's id, or the message's
    at: datetime  # received (MO); asked for (MT)
    text: str
    service_number: str | None  # MO: the number written to; MT: the sender, when recorded
    state: str  # MO: its outcome (pending ...); MT: the message's state
    tenant_id: str | None
    handler: str | None = None  # MO only
    command: str | None = None  # MO the hall answered: its command
    category: str | None = None  # MT only
    source: str | None = None  # MT only: api, campaign, hall, inbox ...


def conversation(store: Store, *, msisdn: str, tenant_id: str | None = None,
                 limit: int = 50) -> list[Turn]:  # fmt: skip
    """The last ``limit`` MO and messages of ``msisdn``, oldest first. With ``tenant_id``:
    only that tenant's MO (module docstring) and messages."""
    from jingxin.data.store.models import Message

    forms = number_forms(msisdn)
    mo_query = (select(MoMessage, MoOutcome, HallInteraction.command)
                .outerjoin(MoOutcome, MoOutcome.mo_id == MoMessage.id)
                .outerjoin(HallInteraction, HallInteraction.mo_id == MoMessage.id)
                .where(MoMessage.msisdn.in_(forms))
                .order_by(MoMessage.received_at.desc(), MoMessage.id.desc()).limit(limit))  # fmt: skip
    mt_query = (select(Message.id, Message.created_at, Message.text, Message.sender,
                       Message.state, Message.tenant_id, Message.category, Message.source)
                .where(Message.msisdn.in_(forms))
                .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit))  # fmt: skip
    if tenant_id is not None:
        mo_query = mo_query.where(owned_by(tenant_id))
        mt_query = mt_query.where(Message.tenant_id == tenant_id)
    with store_errors("reading a conversation"), store.transaction() as session:
        turns = [Turn("mo", mo.id, mo.received_at, mo.text, mo.service_number,
                      out.outcome if out else PENDING, out.tenant_id if out else None,
                      handler=out.handler if out else None, command=command)
                 for mo, out, command in session.execute(mo_query).all()]  # fmt: skip
        turns += [Turn("mt", id_, at, text, sender, state, tenant, category=category,
                       source=source)
                  for id_, at, text, sender, state, tenant, category, source
                  in session.execute(mt_query).all()]  # fmt: skip
    turns.sort(key=lambda t: (t.at, t.direction == "mt", t.id))
    return turns[-limit:] if limit else []
