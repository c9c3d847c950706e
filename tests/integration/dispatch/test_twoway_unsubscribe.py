"""Two-way messaging through the real delivery entry, on SQLite and PostgreSQL: a reply is
attributed to the campaign message it answers, ``TD`` opts the number out at once (the
next campaign message is rejected), and the one confirmation goes out only once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import delete, select, update

from jingxin.config import load_settings
from jingxin.data.store import open_store
from jingxin.data.store.contact import record_consent
from jingxin.data.store.models import Message, MoMessage, MoOutcome, OptOut
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.dispatch.deliver import Delivery, deliver_one
from jingxin.dispatch.handlers import HandlerContext, default_registry, run_pending

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
NUMBER = "+8613912345678"
_dedup = count(1)


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    with opened.transaction() as session:
        ensure_default_tenant(session)
        record_consent(session, tenant_id="operator", msisdn=NUMBER, category="marketing",
                       channel="sms", wording="同意接收优惠信息", given_at=NOON - timedelta(days=30))
    yield opened
    opened.dispose()


def campaign_message(store, *, key: str, at: datetime) -> object:
    return deliver_one(store, delivery=Delivery(
        msisdn=NUMBER, source="campaign", source_id="3", idempotency_key=key,
        category="marketing", text="【中国移动】流量包五折，回复JY办理。回T退订", arm="A"), now=at)


def mark_sent(store, message_id: int, *, at: datetime) -> None:
    # What the worker records on submit_sm_resp (channel sim-smpp, its default sender).
    with store.transaction() as session:
        session.execute(update(Message).where(Message.id == message_id).values(
            state="submitted", channel="sim-smpp", submitted_at=at))


def receive(store, *, text: str, at: datetime, to: str = "10690000") -> int:
    row = MoMessage(channel="sim-smpp", msisdn=NUMBER, service_number=to, text=text, coding=8,
                    parts=1, parts_expected=1, complete=True, undecodable=False,
                    received_at=at, dedup_key=f"it:{next(_dedup)}")
    with store.transaction() as session:
        session.add(row)
        session.flush()
        return row.id


def handle(store, *, at: datetime, settings=None):
    settings = settings or load_settings()
    return run_pending(store, registry=default_registry(settings),
                       context=HandlerContext.from_settings(settings), now=at)


def test_td_is_attributed_opts_out_at_once_and_confirms_once(store) -> None:
    # Given a campaign message sent to the number at noon
    sent = campaign_message(store, key="campaign:3:a", at=NOON)
    assert sent.outcome == "queued"
    mark_sent(store, sent.message_id, at=NOON)
    # When the subscriber answers ＴＤ ten minutes later and the handlers run
    mo_id = receive(store, text="ＴＤ", at=NOON + timedelta(minutes=10))
    assert handle(store, at=NOON + timedelta(minutes=10)).handled == 1
    # Then the MO is attributed to that campaign message and its arm
    with store.transaction() as session:
        out = session.scalar(select(MoOutcome).where(MoOutcome.mo_id == mo_id))
        reply = session.scalar(
            select(Message).where(Message.idempotency_key == f"inbox:{mo_id}:reply"))
        opt_out = session.scalar(select(OptOut).where(OptOut.msisdn == NUMBER))
    assert (out.message_id, out.source, out.source_id, out.arm) == (sent.message_id, "campaign",
                                                                     "3", "A")
    # And the number is opted out of the operator's marketing, and one confirmation is queued
    assert (opt_out.tenant_id, opt_out.category, opt_out.source) == ("operator", None, "sms_reply")
    assert (reply.source, reply.category, reply.sender, reply.state) == (
        "inbox", "notification", "10690000", "queued")
    assert "您已成功退订" in reply.text and out.reply_message_id == reply.id
    # And the next campaign message, a minute later, is rejected
    nxt = campaign_message(store, key="campaign:4:a", at=NOON + timedelta(minutes=11))
    assert (nxt.outcome, nxt.reasons) == ("rejected", ("opted_out",))
    # When the handler runs again for that MO (a crash lost its outcome)
    with store.transaction() as session:
        session.execute(delete(MoOutcome))
    handle(store, at=NOON + timedelta(minutes=12))
    # Then there is still one opt-out and one reply
    with store.transaction() as session:
        assert len(session.scalars(select(OptOut)).all()) == 1
        replies = session.scalars(select(Message).where(Message.source == "inbox")).all()
        redo = session.scalar(select(MoOutcome).where(MoOutcome.mo_id == mo_id))
    assert len(replies) == 1 and redo.reply_message_id == reply.id
    assert "duplicate" in redo.detail


def test_a_reply_outside_the_window_is_not_attributed(store) -> None:
    # Given a campaign message sent 4 days before the answer (window: 72 h)
    sent = campaign_message(store, key="campaign:3:b", at=NOON)
    mark_sent(store, sent.message_id, at=NOON)
    mo_id = receive(store, text="好的", at=NOON + timedelta(days=4))
    # When the handlers run, Then the MO has no handler and no attribution
    assert handle(store, at=NOON + timedelta(days=4)).no_handler == 1
    with store.transaction() as session:
        out = session.scalar(select(MoOutcome).where(MoOutcome.mo_id == mo_id))
    assert (out.outcome, out.message_id, out.tenant_id) == ("no_handler", None, "operator")


def test_two_runners_at_once_reply_once_per_mo(store) -> None:
    # Given twenty keyword MO and an auto-reply for them
    settings = load_settings(inbox={"auto_replies": [{"keyword": "JY", "reply": "已收到"}]})
    ids = [receive(store, text="jy", at=NOON) for _ in range(20)]
    # When two runners (two workers) handle them at the same time
    barrier = threading.Barrier(2)

    def runner() -> None:
        barrier.wait()
        handle(store, at=NOON, settings=settings)

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then each MO has one outcome and one reply
    with store.transaction() as session:
        outcomes = session.scalars(select(MoOutcome.mo_id)).all()
        replies = session.scalars(select(Message.idempotency_key).where(
            Message.source == "inbox")).all()
    assert sorted(outcomes) == ids
    assert sorted(replies) == sorted(f"inbox:{i}:reply" for i in ids)


def test_the_inbox_view_lists_searches_and_counts(store) -> None:
    from jingxin.dispatch.inbox_view import MoFilter, inbox_stats, list_mo

    # Given an attributed TD, an incomplete chat message and an undecodable one, handled
    sent = campaign_message(store, key="campaign:3:c", at=NOON)
    mark_sent(store, sent.message_id, at=NOON)
    td = receive(store, text="TD", at=NOON + timedelta(minutes=1))
    with store.transaction() as session:
        session.add_all([
            MoMessage(channel="sim-cmpp", msisdn=NUMBER, service_number="1069012345",
                      text="你好_100%", coding=8, parts=1, parts_expected=2, complete=False,
                      undecodable=False, received_at=NOON, dedup_key="it:chat"),
            MoMessage(channel="sim-cmpp", msisdn="+8613800000000", service_number="10690000",
                      text="ff00", coding=245, parts=1, parts_expected=1, complete=True,
                      undecodable=True, received_at=NOON, dedup_key="it:odd")])
    handle(store, at=NOON + timedelta(minutes=2))
    # When the inbox is read, Then filters narrow it (LIKE wildcards taken literally)
    assert [r.id for r in list_mo(store, where=MoFilter(outcome="handled"))] == [td]
    assert len(list_mo(store, where=MoFilter(msisdn="13912345678"))) == 2
    assert len(list_mo(store, where=MoFilter(text="_100%"))) == 1
    assert len(list_mo(store, where=MoFilter(text="0%x"))) == 0
    assert len(list_mo(store, where=MoFilter(service_number="1069012"))) == 1
    assert list_mo(store, where=MoFilter(since=NOON + timedelta(seconds=30)))[0].id == td
    # And the counts agree on either dialect
    stats = inbox_stats(store)
    assert (stats.total, stats.incomplete, stats.undecodable, stats.attributed) == (3, 1, 1, 1)
    assert stats.by_outcome == {"handled": 1, "no_handler": 2}
    assert stats.by_handler[("unsubscribe", "handled")] == 1


def test_a_batch_of_replies_goes_through_the_bulk_delivery_once(store) -> None:
    from jingxin.data.store.contact import add_to_blacklist
    from jingxin.dispatch.reply import DeliveryReplier, ReplyRequest

    # Given five TD from five numbers, one of them blacklisted, and a replier that takes
    # the bulk form from the first row
    numbers = [f"+86139123456{i:02d}" for i in range(5)]
    with store.transaction() as session:
        add_to_blacklist(session, msisdn=numbers[4], added_by="test", at=NOON - timedelta(days=1))
    replier = DeliveryReplier(bulk_from=1)
    requests = [ReplyRequest(mo_id=100 + i, msisdn=n, service_number="10690000",
                             text="您已成功退订", tenant_id="operator")
                for i, n in enumerate(numbers)]
    # When the batch is answered
    sent = replier.many(store, requests=requests, now=NOON)
    # Then four replies are queued from the service number written to, the blacklisted
    # one is rejected with policy's reason
    assert [sent[100 + i].outcome for i in range(5)] == ["queued"] * 4 + ["rejected"]
    assert "blacklisted" in sent[104].reasons[0]
    with store.transaction() as session:
        rows = session.execute(select(Message.id, Message.idempotency_key, Message.sender,
                                      Message.source, Message.source_id)
                               .where(Message.source == "inbox")).all()
    assert {(r.id, r.idempotency_key, r.sender, r.source_id) for r in rows} == {
        (sent[100 + i].message_id, f"inbox:{100 + i}:reply", "10690000", str(100 + i))
        for i in range(4)}
    # And answering the same batch again (a crash before the outcomes) sends nothing new
    again = replier.many(store, requests=requests, now=NOON + timedelta(seconds=1))
    assert [again[100 + i].outcome for i in range(4)] == ["duplicate"] * 4
    assert [again[100 + i].message_id for i in range(4)] == [sent[100 + i].message_id
                                                             for i in range(4)]
    with store.transaction() as session:
        assert len(session.scalars(select(Message.id).where(Message.source == "inbox")).all()) == 4
