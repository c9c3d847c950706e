"""The worker and the send-time re-check: a number that opted out while its message waited
for 08:00 gets nothing; the others go (in-memory channel, SQLite store)."""

from __future__ import annotations

from datetime import timedelta

from dispatch_fakes import HappyChannel, entries, make_worker

from jingxin.data.store.audit import list_decisions
from jingxin.data.store.contact import add_to_blacklist, record_opt_out
from jingxin.data.store.models import utc_now
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.dispatch.outbox import enqueue


async def test_a_number_that_opted_out_after_the_decision_is_not_sent_to(store) -> None:
    # Given three marketing messages decided at 22:30 and deferred to 08:00
    eight = utc_now() - timedelta(minutes=1)
    decided = eight - timedelta(hours=9, minutes=30)
    queued = entries(3, scheduled_at=eight)
    enqueue(store, entries=queued, now=decided)
    # ... the first number opts out at 07:00, the second is blacklisted at 07:30
    with store.transaction() as session:
        ensure_default_tenant(session)
        record_opt_out(session, msisdn=queued[0].msisdn, source="sms_reply",
                       at=eight - timedelta(hours=1))  # fmt: skip
        add_to_blacklist(session, msisdn=queued[1].msisdn, added_by="ops",
                         at=eight - timedelta(minutes=30))  # fmt: skip
    worker, channels = make_worker(store, {"happy": (HappyChannel, {})})
    # When the worker drains at 08:00
    tally = await worker.run(once=True, linger=2)
    # Then only the third number gets its message; the two cancellations are counted
    assert [m.destination for m in channels["happy"].sent] == [queued[2].msisdn.lstrip("+")]
    assert (tally.submitted, tally.cancelled, tally.claimed) == (1, 2, 1)
    # ... and `why` has the reason for each
    with store.sessions() as session:
        reasons = [
            (d.outcome, d.reasons)
            for m in queued[:2]
            for d in list_decisions(session, msisdn=m.msisdn)
        ]
    assert reasons == [("cancel", "opted_out"), ("cancel", "blacklisted")]


async def test_campaign_status_counts_the_cancellations_by_reason(store) -> None:
    from jingxin.data.store.models import Campaign
    from jingxin.dispatch.campaign import campaign_status

    # Given a campaign of two messages deferred to 08:00, one number opting out at 07:00
    eight = utc_now() - timedelta(minutes=1)
    with store.transaction() as session:
        ensure_default_tenant(session)
        campaign = Campaign(tenant_id="default", name="night", category="marketing",
                            status="running", started_at=eight - timedelta(hours=10))  # fmt: skip
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    queued = entries(2, scheduled_at=eight, campaign_id=campaign_id)
    enqueue(store, entries=queued, now=eight - timedelta(hours=9))
    with store.transaction() as session:
        record_opt_out(session, msisdn=queued[0].msisdn, source="sms_reply",
                       at=eight - timedelta(hours=1))  # fmt: skip
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    # When the worker drains at 08:00
    await worker.run(once=True, linger=2)
    # Then the campaign's status says why one message never went
    status = campaign_status(store, campaign_id=campaign_id)
    assert status["rejected_by"] == {"opted_out": 1}
    assert status["messages"]["rejected"] == 1
