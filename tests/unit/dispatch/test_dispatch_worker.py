"""The worker over in-memory channels: states, parts, retries, unresolved submits."""

from __future__ import annotations

from dispatch_fakes import (
    HappyChannel,
    RefusingChannel,
    SilentChannel,
    ThrottlingChannel,
    entries,
    make_worker,
    states,
)
from sqlalchemy import select

from jingxin.data.store.models import Message, MessagePart, UnmatchedReceipt
from jingxin.dispatch.outbox import enqueue
from jingxin.dispatch.retry import RetryPolicy
from jingxin.domain.sms import ReceiptStatus


async def test_happy_path_ends_delivered_with_every_part_tracked(store) -> None:
    # Given 5 short and 2 long (3-part) messages queued
    enqueue(store, entries=entries(5))
    enqueue(store, entries=entries(2, prefix="long", text="x" * 150))
    worker, _channels = make_worker(store, {"happy": (HappyChannel, {})})
    # When the worker drains the outbox
    tally = await worker.run(once=True, linger=2)
    # Then every message is delivered, and the long ones have three delivered parts each
    assert states(store) == {"delivered": 7}
    assert tally.submitted == 7 and tally.receipts == 5 + 2 * 3
    with store.sessions() as s:
        long_ids = s.scalars(
            select(Message.id).where(Message.idempotency_key.like("long%"))
        ).all()
        parts = s.execute(
            select(
                MessagePart.message_id, MessagePart.part_no, MessagePart.state
            ).where(MessagePart.message_id.in_(long_ids))
        ).all()
        msg = s.scalars(select(Message).where(Message.id == long_ids[0])).one()
    assert sorted(p[1] for p in parts) == [1, 1, 2, 2, 3, 3]
    assert {p[2] for p in parts} == {"delivered"}
    assert msg.parts == 3 and len(msg.smsc_ids) == 3
    assert msg.submitting_at <= msg.submitted_at <= msg.finished_at


async def test_a_receipt_before_the_submit_response_is_kept_then_matched(store) -> None:
    # Given a channel whose receipts arrive before submit() returns
    enqueue(store, entries=entries(4, text="y" * 100))
    worker, _ = make_worker(store, {"fast": (HappyChannel, {"receipt_first": True})})
    # When the worker drains
    await worker.run(once=True, linger=2)
    # Then all are delivered and every receipt was matched (none left unmatched)
    assert states(store) == {"delivered": 4}
    with store.sessions() as s:
        left = s.scalars(
            select(UnmatchedReceipt).where(UnmatchedReceipt.matched_at.is_(None))
        ).all()
    assert left == []


async def test_one_undelivered_part_makes_the_message_undeliverable(store) -> None:
    class OnePartLost(HappyChannel):
        def status_for(self, smsc_id):
            n = int(smsc_id.rsplit("-", 1)[1])
            return (
                ReceiptStatus.UNDELIVERABLE if n % 2 == 0 else ReceiptStatus.DELIVERED
            )

    enqueue(store, entries=entries(1, text="z" * 100))
    worker, _ = make_worker(store, {"lossy": (OnePartLost, {})})
    await worker.run(once=True, linger=2)
    assert states(store) == {"undeliverable": 1}


async def test_temporary_errors_are_retried_and_permanent_are_not(store) -> None:
    enqueue(store, entries=entries(3))
    worker, ch = make_worker(
        store,
        {"t": (ThrottlingChannel, {"refusals": 2})},
        retry=RetryPolicy(base=0.01, max_delay=0.05),
    )
    tally = await worker.run(once=True, linger=2)
    assert states(store) == {"delivered": 3}
    assert tally.retried == 2

    enqueue(store, entries=entries(2, prefix="bad"))
    worker, ch = make_worker(store, {"r": (RefusingChannel, {})})
    tally = await worker.run(once=True, linger=1)
    assert states(store)["failed"] == 2
    assert len(ch["r"].sent) == 2  # once each: never retried
    with store.sessions() as s:
        codes = set(
            s.scalars(select(Message.error_code).where(Message.state == "failed"))
        )
    assert codes == {"0x0000000b"}


async def test_retries_stop_when_validity_ends(store) -> None:
    from datetime import timedelta

    from jingxin.data.store.models import utc_now

    enqueue(store, entries=entries(1, expires_at=utc_now() + timedelta(seconds=0.3)))
    worker, _ = make_worker(
        store,
        {"t": (ThrottlingChannel, {"refusals": 100})},
        retry=RetryPolicy(base=0.2, factor=2),
    )
    await worker.run(once=True, linger=1)
    assert states(store) == {"expired": 1}


async def test_an_unresolved_submit_is_resent_by_default_and_counted(store) -> None:
    enqueue(store, entries=entries(2, category="otp"))
    worker, ch = make_worker(store, {"s": (SilentChannel, {"silences": 1})})
    tally = await worker.run(once=True, linger=2)
    assert states(store) == {"delivered": 2}
    assert (
        tally.unresolved == 1 and len(ch["s"].sent) == 3
    )  # one possible duplicate, counted
    with store.sessions() as s:
        assert sum(s.scalars(select(Message.unresolved))) == 1


async def test_an_unresolved_marketing_submit_can_be_failed_instead(store) -> None:
    enqueue(store, entries=entries(2))
    worker, ch = make_worker(
        store,
        {"s": (SilentChannel, {"silences": 1})},
        retry=RetryPolicy(unresolved={"marketing": "fail"}),
    )
    await worker.run(once=True, linger=2)
    assert states(store) == {"delivered": 1, "failed": 1}
    assert len(ch["s"].sent) == 2


async def test_a_restarted_worker_resolves_what_it_left_in_submitting(store) -> None:
    from jingxin.data.store.models import utc_now
    from jingxin.dispatch.claim import claim

    # Given a worker that claimed 3 messages and died before sending
    enqueue(store, entries=entries(3))
    assert len(claim(store, worker="test-worker", limit=3, now=utc_now())) == 3
    # When it starts again under the same name
    worker, _ch = make_worker(store, {"happy": (HappyChannel, {})})
    tally = await worker.run(once=True, linger=2)
    # Then the three are resent by the unresolved rule, counted, and delivered
    assert states(store) == {"delivered": 3}
    assert tally.unresolved == 3


async def test_an_unresolved_inbox_reply_is_sent_at_most_once(store) -> None:
    from sqlalchemy import update

    from jingxin.config import DispatchSettings

    # Given two replies to MO (source 'inbox') and the settings' default rule
    enqueue(store, entries=entries(2, category="notification"))
    with store.transaction() as s:
        s.execute(update(Message).values(source="inbox"))
    rule = DispatchSettings().unresolved
    worker, ch = make_worker(store, {"s": (SilentChannel, {"silences": 1})},
                             retry=RetryPolicy(unresolved=rule))  # fmt: skip
    # When the first submit goes unanswered
    await worker.run(once=True, linger=2)
    # Then it is not sent again (a reply goes at most once); the other is delivered
    assert states(store) == {"delivered": 1, "failed": 1}
    assert len(ch["s"].sent) == 2


def test_the_unresolved_rule_is_per_source_then_category() -> None:
    from datetime import UTC, datetime

    import pytest

    from jingxin.config import DispatchSettings
    from jingxin.dispatch.retry import Failure

    now = datetime(2026, 12, 6, tzinfo=UTC)
    policy = RetryPolicy(unresolved={"inbox": "fail", "marketing": "resend"})

    def state(category, source):
        return policy.after(failure=Failure.UNRESOLVED, attempts=1, category=category,
                            now=now, expires_at=None, source=source).state  # fmt: skip

    assert state("notification", "inbox") == "failed"
    assert state("notification", "api") == "queued"
    assert state("marketing", None) == "queued"
    # The settings keep inbox replies at most once unless told otherwise, and name a typo
    assert DispatchSettings(unresolved={"marketing": "fail"}).unresolved == {
        "inbox": "fail", "marketing": "fail"}
    assert DispatchSettings(unresolved={"inbox": "resend"}).unresolved == {"inbox": "resend"}
    with pytest.raises(ValueError, match="marketng"):
        DispatchSettings(unresolved={"marketng": "fail"})
