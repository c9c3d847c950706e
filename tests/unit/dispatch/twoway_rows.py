"""Rows for two-way tests, written straight into the store: MO as the inbox would have
assembled them, sent messages as the worker would have left them, and a fake replier."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from jingxin.data.store.models import LANES, Message, MoMessage, MoOutcome, OptOut
from jingxin.dispatch.reply import ReplySent

NOW = datetime(2026, 10, 8, 4, 0, tzinfo=UTC)
NUMBER = "+8613912345678"
_keys = itertools.count(1)


def add_mo(store, *, text: str, msisdn: str = NUMBER, service_number: str = "10690000",
           received_at: datetime = NOW, undecodable: bool = False, complete: bool = True,
           mo_id: int | None = None, channel: str = "sim-smpp") -> int:
    row = MoMessage(channel=channel, msisdn=msisdn, service_number=service_number, text=text,
                    coding=8, parts=1, parts_expected=1 if complete else 2,
                    complete=complete, undecodable=undecodable, received_at=received_at,
                    dedup_key=f"test:{next(_keys)}")
    if mo_id is not None:
        row.id = mo_id
    with store.transaction() as session:
        session.add(row)
        session.flush()
        return row.id


def add_sent(store, *, msisdn: str = NUMBER, sent_at: datetime = NOW - timedelta(hours=1),
             sender: str | None = None, channel: str = "sim-smpp", source: str = "campaign",
             source_id: str | None = "1", campaign_id: int | None = 1, arm: str | None = None,
             tenant_id: str = "operator") -> int:
    row = Message(tenant_id=tenant_id, campaign_id=campaign_id, msisdn=msisdn,
                  category="marketing", lane=LANES["marketing"], text="offer", channel=channel,
                  idempotency_key=f"sent:{next(_keys)}", state="delivered",
                  submitted_at=sent_at, created_at=sent_at, source=source,
                  source_id=source_id, sender=sender, arm=arm)
    with store.transaction() as session:
        session.add(row)
        session.flush()
        return row.id


def outcome_of(store, mo_id: int) -> MoOutcome | None:
    with store.transaction() as session:
        return session.scalar(select(MoOutcome).where(MoOutcome.mo_id == mo_id))


def opt_outs(store, msisdn: str = NUMBER) -> list[OptOut]:
    with store.transaction() as session:
        return list(session.scalars(select(OptOut).where(OptOut.msisdn == msisdn)))


def count(store, model) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


@dataclass
class FakeReplier:
    """Answers like the delivery entry: a new key queues a message, a known key is a
    duplicate of the first."""

    sent: dict[str, tuple[int, dict]] = field(default_factory=dict)
    calls: int = 0

    def __call__(self, store, *, mo_id, msisdn, service_number, text, tenant_id,
                 now=None, source="inbox") -> ReplySent:
        self.calls += 1
        key = f"inbox:{mo_id}:reply"
        if key in self.sent:
            return ReplySent(outcome="duplicate", message_id=self.sent[key][0])
        self.sent[key] = (1000 + len(self.sent), {
            "msisdn": msisdn, "service_number": service_number, "text": text,
            "tenant_id": tenant_id, "source": source})
        return ReplySent(outcome="queued", message_id=self.sent[key][0])
