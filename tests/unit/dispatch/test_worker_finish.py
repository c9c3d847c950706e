"""The worker's housekeeping sweep marks drained campaigns finished, at most every
``finish_every``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatch_fakes import HappyChannel, make_worker
from sqlalchemy import select, update

from jingxin.data.store.models import Campaign, Message
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.dispatch.outbox import OutboxEntry, enqueue

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
LATER = NOON + timedelta(minutes=5)


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


def test_the_worker_sweep_finishes_campaigns_at_its_own_pace(store) -> None:
    # Given a worker whose clock we hold, and a drained campaign
    worker, _ = make_worker(store, {"a": (HappyChannel, {})})
    clock = [LATER]
    worker.clock = lambda: clock[0]
    _campaign(store, "first", states=("delivered",))
    # When it sweeps, Then the campaign is finished and counted
    worker.flush(sweep=True)
    assert (_statuses(store)["first"], worker.tally.campaigns_finished) == ("finished", 1)
    # When another drains and the next sweep comes within finish_every, it waits
    _campaign(store, "second", states=("expired",))
    clock[0] = LATER + timedelta(seconds=10)
    worker.flush(sweep=True)
    assert _statuses(store)["second"] == "running"
    # And the first sweep after finish_every finishes it
    clock[0] = LATER + worker.config.finish_every
    worker.flush(sweep=True)
    assert (_statuses(store)["second"], worker.tally.campaigns_finished) == ("finished", 2)
