"""The inbox as staff read it: MO with what the handlers made of them (``jingxin inbox``).

Read-only queries over ``mo_messages`` joined to ``mo_outcomes``: a filtered list, one MO
in full, and counts by outcome and handler (pending, incomplete and undecodable MO
included). The CLI and, later, the console call these; numbers are masked by the caller
that prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.sql import Select

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import MO_OUTCOMES, MoMessage, MoOutcome
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

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in LIST_OUTCOMES:
            raise InputError(f"--outcome: {self.outcome!r} is not one of "
                             f"{', '.join(LIST_OUTCOMES)}")  # fmt: skip
        if self.limit < 1:
            raise InputError(f"--limit: {self.limit} must be at least 1")


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


def list_mo(store: Store, *, where: MoFilter) -> list[MoView]:
    """The newest MO matching ``where``, newest first."""
    query = _base()
    if where.msisdn:
        query = query.where(MoMessage.msisdn.in_(_number_forms(where.msisdn)))
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
    query = query.order_by(MoMessage.id.desc()).limit(where.limit)
    with store_errors("listing the inbox"), store.transaction() as session:
        return [_view(mo, out) for mo, out in session.execute(query).all()]


def get_mo(store: Store, *, mo_id: int) -> MoView:
    """One MO; an unknown id is an InputError."""
    with store_errors(f"reading MO {mo_id}"), store.transaction() as session:
        row = session.execute(_base().where(MoMessage.id == mo_id)).first()
    if row is None:
        raise InputError(f"MO {mo_id}: no such message in the inbox")
    return _view(*row)


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


def _number_forms(raw: str) -> list[str]:
    """The number as typed and, when it normalises, its E.164 form (how MO keep it)."""
    from jingxin.data.msisdn import InvalidMsisdn, normalise_msisdn

    forms = [raw.strip()]
    try:
        forms.append(normalise_msisdn(raw).e164)
    except InvalidMsisdn:
        pass  # a raw source that never normalised is kept as received: match it as typed
    return forms
