"""Receipts: unknown ids kept aside and reconciled; invalid numbers; metrics."""

from __future__ import annotations

from dispatch_fakes import HappyChannel, entries, make_worker, states
from sqlalchemy import select

from jingxin.data.store.models import (
    NumberFailure,
    SubscriberState,
    UnmatchedReceipt,
    utc_now,
)
from jingxin.dispatch.outbox import enqueue
from jingxin.dispatch.receipts import apply_receipts, final_of, reconcile
from jingxin.domain.sms import DeliveryReceipt, ReceiptStatus


def test_an_unknown_receipt_is_kept_and_matched_once_its_part_is_recorded(
    store,
) -> None:
    from jingxin.dispatch.claim import claim
    from jingxin.dispatch.outbox import Submitted, record_submitted

    enqueue(store, entries=entries(1))
    now = utc_now()
    (claimed,) = claim(store, worker="w", limit=1, now=now)
    receipt = DeliveryReceipt("abc", ReceiptStatus.DELIVERED, received_at=now)
    # Given a receipt for an id nobody has recorded yet
    with store.engine.begin() as conn:
        outcome = apply_receipts(conn, receipts=[("ch", receipt)], now=now)
    assert (outcome.matched, outcome.unmatched) == (0, 1)
    # When the submit response carrying that id is recorded and reconciled
    with store.engine.begin() as conn:
        record_submitted(
            conn, submitted=[Submitted(claimed.id, "ch", ("abc",), now, None)], now=now
        )
        late = reconcile(conn, now=now)
    # Then the receipt is matched and the message delivered; the kept row is marked
    assert late.matched == 1 and [f.state for f in late.finished] == ["delivered"]
    assert states(store) == {"delivered": 1}
    with store.sessions() as s:
        assert s.scalar(select(UnmatchedReceipt.matched_at)) is not None


def test_a_receipt_for_another_channels_id_is_not_matched(store) -> None:
    now = utc_now()
    with store.engine.begin() as conn:
        out = apply_receipts(
            conn,
            receipts=[("other", DeliveryReceipt("x", ReceiptStatus.DELIVERED))],
            now=now,
        )
    assert out.unmatched == 1


def test_final_state_of_parts() -> None:
    assert final_of([("delivered", None), ("delivered", None)]) == ("delivered", None)
    assert final_of([("delivered", None), ("expired", "1")]) == ("expired", "1")
    assert final_of([("expired", None), ("undeliverable", "5")]) == (
        "undeliverable",
        "5",
    )


async def test_a_number_failing_n_times_is_marked_invalid_and_a_delivery_resets(
    store,
) -> None:
    # Given invalid_after=2 and a channel whose receipts are all UNDELIV
    for round_no in range(2):
        enqueue(store, entries=entries(2, prefix=f"r{round_no}-"))
        worker, _ = make_worker(
            store,
            {"bad": (HappyChannel, {"status": ReceiptStatus.UNDELIVERABLE})},
            invalid_after=2,
        )
        tally = await worker.run(once=True, linger=2)
    # Then after the second failure both numbers are invalid
    assert tally.invalid_marked == 2
    with store.sessions() as s:
        marked = s.execute(
            select(SubscriberState.msisdn, SubscriberState.invalid_reason)
        ).all()
    assert len(marked) == 2 and all(
        "2 permanent delivery failures" in r for _, r in marked
    )
    # And a delivery to one of them sets its count back to zero
    enqueue(store, entries=entries(1, prefix="ok-"))
    worker, _ = make_worker(store, {"good": (HappyChannel, {})}, invalid_after=2)
    await worker.run(once=True, linger=2)
    with store.sessions() as s:
        counts = dict(
            s.execute(select(NumberFailure.msisdn, NumberFailure.failures)).all()
        )
    assert counts == {"+8613800000000": 0, "+8613800000001": 2}


async def test_metrics_count_submits_receipts_and_latency(store) -> None:
    enqueue(store, entries=entries(3))
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    await worker.run(once=True, linger=2)
    text = worker.metrics.render().decode()
    assert 'jingxin_submits_total{channel="happy",status="ok"} 3.0' in text
    assert 'jingxin_receipts_total{channel="happy",status="DELIVRD"} 3.0' in text
    assert 'jingxin_receipt_latency_seconds_count{channel="happy"} 3.0' in text
    assert 'jingxin_channel_bound{channel="happy"} 1.0' in text


def test_queue_gauges_follow_the_outbox(store) -> None:

    enqueue(store, entries=entries(4) + entries(1, category="otp", prefix="o"))
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    worker.flush(sweep=True)
    text = worker.metrics.render().decode()
    assert 'jingxin_outbox_queued{lane="marketing"} 4.0' in text
    assert 'jingxin_outbox_queued{lane="otp"} 1.0' in text
