"""Which message an MO answers: the last one sent to that number from that service number.

A subscriber replies to the number a message came from, so an MO to service number S from
number N is attributed to the last message *sent* (``submitted_at`` set) to N within the
window (``[inbox] attribution_window_hours``, 72 by default) whose sender is S or a prefix
of S - operators append extension digits to a service number, and the reply comes back to
the longer number. A message without its own ``sender`` went out from its channel's
default ``source_addr`` (``[[channels]]``). Messages the inbox itself sent (confirmations,
auto-replies) are never the answer: a reply to a reply still belongs to the campaign,
journey or fence that started the conversation.

:func:`pending_attributed` reads a batch of pending MO with what each answers in ONE
query (the handler runner's batch): ``mo_messages`` joined to ``messages`` on the number
(indexed), the sender matched as a prefix in SQL, and ``row_number()`` over each MO newest
first - a window function SQLite (3.25+) and PostgreSQL both have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, select

from jingxin.data.store.models import Message


@dataclass(frozen=True, slots=True)
class Attribution:
    """The message an MO answers, and what sent it (campaign, journey, fence; the arm)."""

    message_id: int
    tenant_id: str
    campaign_id: int | None
    source: str | None
    source_id: str | None
    arm: str | None
    sent_at: datetime


def sender_matches(service_number: str, sender: str | None) -> bool:
    """Does an MO to ``service_number`` answer a message sent from ``sender``?"""
    return bool(sender) and service_number.startswith(sender)  # type: ignore[arg-type]


def pending_attributed(pending: Any, *, window: timedelta, default_senders: Mapping[str, str],
                       dialect: str) -> Any:  # fmt: skip
    """The MO of ``pending`` (a CTE of ``mo_messages`` rows) with ``att_*`` columns of the newest message each answers
    (all null when none). The window bound is each MO's own in SQL (loosened by a second,
    as dialects round differently); the caller checks the answer's ``att_submitted_at``
    against its window exactly (:func:`within`)."""
    sender = _sender_of(default_senders)
    newest = func.row_number().over(partition_by=pending.c.id,
                                    order_by=(Message.submitted_at.desc(), Message.id.desc()))
    ranked = (
        select(pending.c.id.label("mo_id"), Message.id, Message.tenant_id,
               Message.campaign_id, Message.source, Message.source_id, Message.arm,
               Message.submitted_at, newest.label("rank"))
        .join(Message, and_(
            Message.msisdn == pending.c.msisdn,
            Message.submitted_at.is_not(None),
            Message.submitted_at >= _earliest(pending.c.received_at, window, dialect),
            Message.submitted_at <= pending.c.received_at,
            Message.source != "inbox",
            sender.is_not(None),
            sender != "",
            func.substr(pending.c.service_number, 1, func.length(sender)) == sender,
        ))
    ).subquery("ranked")  # fmt: skip
    att = [ranked.c[name].label(f"att_{name}") for name in
           ("id", "tenant_id", "campaign_id", "source", "source_id", "arm", "submitted_at")]
    return (select(pending, *att)
            .outerjoin(ranked, and_(ranked.c.mo_id == pending.c.id, ranked.c.rank == 1))
            .order_by(pending.c.id))  # fmt: skip


def within(row: Any, window: timedelta) -> Attribution | None:
    """The attribution of a :func:`pending_attributed` row, if its message is in the window."""
    if row.att_id is None or row.att_submitted_at < row.received_at - window:
        return None
    return Attribution(message_id=row.att_id, tenant_id=row.att_tenant_id,
                       campaign_id=row.att_campaign_id, source=row.att_source,
                       source_id=row.att_source_id, arm=row.att_arm,
                       sent_at=row.att_submitted_at)  # fmt: skip


def _earliest(received: Any, window: timedelta, dialect: str) -> Any:
    """``received - window - 1 s`` in the dialect's own date arithmetic."""
    seconds = int(window.total_seconds()) + 1
    if dialect == "postgresql":
        return received - func.make_interval(0, 0, 0, 0, 0, 0, seconds)
    return func.datetime(received, f"-{seconds} seconds")


def _sender_of(default_senders: Mapping[str, str]):
    """The address a message went out from: its own ``sender``, else its channel's."""
    own = func.nullif(Message.sender, "")
    if not default_senders:
        return own
    by_channel = case(
        *((Message.channel == name, literal(addr)) for name, addr in default_senders.items()),
        else_=None,
    )
    return func.coalesce(own, by_channel)
