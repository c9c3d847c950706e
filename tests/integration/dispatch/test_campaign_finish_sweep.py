"""finish_campaigns: one UPDATE marks the drained running campaigns finished, on SQLite and
PostgreSQL, and leaves every other campaign as it is (the worker's sweep calling it:
tests/unit/dispatch/test_worker_finish.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from jingxin.data.store import open_store
from jingxin.data.store.models import Campaign, Message
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.dispatch.campaign import finish_campaigns
from jingxin.dispatch.outbox import OutboxEntry, enqueue

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
LATER = NOON + timedelta(minutes=5)


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def _campaign(store, name: str, *, status: str = "running", started: datetime = NOON,
              states: tuple[str, ...] = ()) -> int:  # fmt: skip
    with store.transaction() as s:
        ensure_default_tenant(s)
        campaign = Campaign(tenant_id="operator", name=name, category="notification",
                            status=status, started_at=started)  # fmt: skip
        s.add(campaign)
        s.flush()
        cid = campaign.id
    enqueue(store, entries=[OutboxEntry(tenant_id="operator", msisdn=f"+861390000{i:04d}",
                                        category="notification", text="您好",
                                        idempotency_key=f"{name}:{i}", campaign_id=cid)
                            for i in range(len(states))], now=NOON)  # fmt: skip
    with store.transaction() as s:
        for i, state in enumerate(states):
            s.execute(update(Message).where(Message.idempotency_key == f"{name}:{i}")
                      .values(state=state))  # fmt: skip
    return cid


def _statuses(store) -> dict[str, str]:
    with store.sessions() as s:
        return dict(s.execute(select(Campaign.name, Campaign.status)).all())


def test_only_drained_running_campaigns_are_finished(store) -> None:
    # Given campaigns: drained, one message still submitted, nothing queued yet, drained
    # but started a moment ago, and drained but paused
    _campaign(store, "drained", states=("delivered", "undeliverable", "expired"))
    _campaign(store, "open", states=("delivered", "submitted"))
    _campaign(store, "empty")
    _campaign(store, "young", started=LATER - timedelta(seconds=10), states=("delivered",))
    _campaign(store, "paused", status="paused", states=("delivered",))
    # When the sweep runs, Then only the drained, settled, running campaign is finished
    finished = finish_campaigns(store, now=LATER)
    assert _statuses(store) == {"drained": "finished", "open": "running", "empty": "running",
                                "young": "running", "paused": "paused"}  # fmt: skip
    assert finished == [1]
    with store.sessions() as s:
        assert s.scalar(select(Campaign.finished_at).where(Campaign.id == 1)) == LATER
    # And a second sweep finds nothing more to do
    assert finish_campaigns(store, now=LATER) == []
