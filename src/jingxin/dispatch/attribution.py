"""Which message an MO answers: the last one sent to that number from that service number.

A subscriber replies to the number a message came from, so an MO to service number S from
number N is attributed to the last message *sent* (``submitted_at`` set) to N within the
window (``[inbox] attribution_window_hours``, 72 by default) whose sender is S or a prefix
of S - operators append extension digits to a service number, and the reply comes back to
the longer number. A message without its own ``sender`` went out from its channel's
default ``source_addr`` (``[[channels]]``). Messages the inbox itself sent (confirmations,
auto-replies) are never the answer: a reply to a reply still belongs to the campaign,
journey or fence that started the conversation.

:func:`attribute_all` attributes a whole batch of MO in ONE query (the handler runner's
batch): ``mo_messages`` joined to ``messages`` on the number (indexed), the sender
matched as a prefix in SQL, and ``row_number()`` over each MO newest first - a window
function SQLite (3.25+) and PostgreSQL both have. Read-only; the caller owns the session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import Message, MoMessage


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


def attribute_all(
    session: Session,
    *,
    received: Mapping[int, datetime],
    window: timedelta,
    default_senders: Mapping[str, str],
) -> dict[int, Attribution]:
    """The message each MO answers, by MO id (an MO that answers nothing is absent).

    ``received`` maps the ids of ``mo_messages`` rows to their ``received_at``;
    ``default_senders`` maps a channel name to its default ``source_addr``.
    """
    if not received:
        return {}
    sender = _sender_of(default_senders)
    newest = func.row_number().over(
        partition_by=MoMessage.id,
        order_by=(Message.submitted_at.desc(), Message.id.desc()),
    )
    # One lower bound for the batch (SQL date arithmetic differs by dialect); the newest
    # match per MO is checked against its own window below - if it is too old, every
    # older match is too.
    earliest = min(received.values()) - window
    ranked = (
        select(MoMessage.id.label("mo_id"), Message.id, Message.tenant_id,
               Message.campaign_id, Message.source, Message.source_id, Message.arm,
               Message.submitted_at, newest.label("rank"))
        .join(Message, and_(
            Message.msisdn == MoMessage.msisdn,
            Message.submitted_at.is_not(None),
            Message.submitted_at >= earliest,
            Message.submitted_at <= MoMessage.received_at,
            Message.source != "inbox",
            sender.is_not(None),
            sender != "",
            func.substr(MoMessage.service_number, 1, func.length(sender)) == sender,
        ))
        .where(MoMessage.id.in_(list(received)))
    ).subquery()  # fmt: skip
    with store_errors(f"attributing {len(received)} MO"):
        rows = session.execute(select(ranked).where(ranked.c.rank == 1)).all()
    return {
        row.mo_id: Attribution(
            message_id=row.id, tenant_id=row.tenant_id, campaign_id=row.campaign_id,
            source=row.source, source_id=row.source_id, arm=row.arm, sent_at=row.submitted_at,
        )  # fmt: skip
        for row in rows
        if row.submitted_at >= received[row.mo_id] - window
    }


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
