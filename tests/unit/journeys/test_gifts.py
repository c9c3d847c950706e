"""Gift claims (LB after the anniversary message, SR after the birthday one) on a real
store: a valid claim recorded once and confirmed, a second one told 已领取过, no offer (or
an expired one) politely refused, re-runs and batches idempotent, the inbox routing LB/SR
to the gift handler before the hall; and the follow-up a week after the claim."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from jingxin.config import JourneySettings, Settings
from jingxin.content.library import library_document
from jingxin.content.templates import render
from jingxin.data.store import open_store
from jingxin.data.store.models import LANES, GiftClaim, Message, MoMessage, MoOutcome
from jingxin.dispatch.handlers import (
    HandlerContext,
    InboundMessage,
    default_registry,
    run_pending,
)
from jingxin.dispatch.reply import ReplySent
from jingxin.errors import ConfigError
from jingxin.journeys.gifts import GIFT_FOLLOWUP, GiftClaimHandler, gift_followups
from jingxin.journeys.trigger import TriggerContext

NOW = datetime(2026, 5, 13, 4, 0, tzinfo=UTC)  # 13 May 12:00 in Shanghai
ME, YOU = "+8613900000001", "+8613900000002"
HANDLER = GiftClaimHandler()  # 30 claim days, 100 minutes, 1GB
CONFIRMED_LB = ("领取成功！您的入网周年感恩礼包（100分钟国内通话+1GB国内流量）将在24小时内到账，"
                "到账后半年内有效。感谢您一路相伴！")  # fmt: skip
CONFIRMED_SR = "领取成功！您的生日流量（1GB）将在24小时内到账，当月有效。祝您生日快乐！"
_ids = itertools.count(1)


@pytest.fixture
def store(tmp_path, migrated_sqlite) -> Iterator:
    opened = open_store(migrated_sqlite(tmp_path / "gifts.db"))
    yield opened
    opened.dispose()


def offer(store, *, msisdn: str = ME, trigger: str = "anniversary", day: date = date(2026, 5, 10),
          created_at: datetime | None = None, source: str = "journey",
          tenant: str = "operator") -> int:  # fmt: skip
    created = created_at or datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(
        hours=2)
    row = Message(tenant_id=tenant, msisdn=msisdn, category="marketing", lane=LANES["marketing"],
                  text="offer", idempotency_key=f"journey:{trigger}:{day}:{msisdn}:{next(_ids)}",
                  state="delivered", created_at=created, source=source,
                  source_id=f"{trigger}:{day}")  # fmt: skip
    with store.transaction() as session:
        session.add(row)
        session.flush()
        return row.id


def mo(text: str, *, msisdn: str = ME, at: datetime = NOW, mo_id: int | None = None,
       to: str = "10086") -> InboundMessage:  # fmt: skip
    return InboundMessage(id=mo_id or next(_ids), channel="sim-smpp", msisdn=msisdn,
                          service_number=to, text=text, received_at=at)  # fmt: skip


def claims(store) -> list[tuple]:
    with store.transaction() as session:
        return [tuple(r) for r in session.execute(select(
            GiftClaim.msisdn, GiftClaim.gift, GiftClaim.occasion, GiftClaim.message_id,
            GiftClaim.mo_id, GiftClaim.tenant_id).order_by(GiftClaim.id))]  # fmt: skip


def claim(store, *messages: InboundMessage, handler: GiftClaimHandler = HANDLER):
    return handler.handle_batch(list(messages), context=HandlerContext(store=store, now=NOW))


def test_a_claim_after_the_offer_is_recorded_once_and_confirmed(store_url: str) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        # Given the anniversary message three days ago, to a tenant's subscriber
        offered = offer(store, tenant="operator")
        first, again, other = mo("LB"), mo("lb"), mo("SR")
        # When LB is claimed, claimed again in the same batch, and SR (no birthday offer)
        results = claim(store, first, again, other)
        # Then the first is recorded and confirmed, the second told it was claimed before
        assert claims(store) == [(ME, "anniversary", "2026", offered, first.id, "operator")]
        assert [r.reply for r in results] == [
            CONFIRMED_LB, "您已领取过2026年的入网周年感恩礼包，无需重复领取。",
            "抱歉，暂未查询到您可领取的生日流量。礼包需在收到领取通知后30天内回复“SR”领取。"]
        assert [r.reply_source for r in results] == ["journey"] * 3
        assert results[0].reply_tenant == "operator" and results[2].reply_tenant is None
        # And the first MO run again (after a crash) is confirmed again, nothing recorded twice
        (rerun,) = claim(store, first)
        assert rerun.reply == CONFIRMED_LB and len(claims(store)) == 1
    finally:
        store.dispose()


def test_the_claim_window_is_claim_days_from_the_offer(store) -> None:
    # Given a birthday message 30 days ago to ME and 30 days and a second ago to YOU
    offer(store, trigger="birthday", created_at=NOW - timedelta(days=30))
    offer(store, msisdn=YOU, trigger="birthday", created_at=NOW - timedelta(days=30, seconds=1))
    # When both answer SR now
    mine, yours = claim(store, mo("SR"), mo("SR", msisdn=YOU))
    # Then ME's claim is in time and YOU's is not
    assert (mine.reply, yours.reply.startswith("抱歉")) == (CONFIRMED_SR, True)
    assert [c[:3] for c in claims(store)] == [(ME, "birthday", "2026")]


def test_only_a_journey_message_of_the_gift_s_trigger_is_an_offer(store) -> None:
    # Given a campaign that says "anniversary" and a journey message of another trigger
    offer(store, source="campaign")
    offer(store, trigger="holiday")
    # And an anniversary message to YOU made a second after YOU's LB
    offer(store, msisdn=YOU, created_at=NOW + timedelta(seconds=1))
    # Then neither LB finds an offer
    results = claim(store, mo("LB"), mo("LB", msisdn=YOU))
    assert [r.reply.startswith("抱歉，暂未查询到") for r in results] == [True, True]
    assert claims(store) == []


def test_the_occasion_is_the_offer_s_year_so_next_year_s_gift_is_new(store) -> None:
    # Given the anniversary of 2026 offered on 20 December, claimed on 5 January 2027
    offer(store, day=date(2026, 12, 20))
    january = datetime(2027, 1, 5, 4, tzinfo=UTC)
    (first,) = claim(store, mo("LB", at=january))
    # And the anniversary of 2027 offered and claimed in December 2027
    offer(store, day=date(2027, 12, 20))
    (second,) = claim(store, mo("LB", at=datetime(2027, 12, 21, 4, tzinfo=UTC)))
    # Then both are claims, one per year
    assert (first.reply, second.reply) == (CONFIRMED_LB, CONFIRMED_LB)
    assert [c[2] for c in claims(store)] == ["2026", "2027"]


def test_the_reply_names_the_configured_gift(store) -> None:
    settings = Settings(journeys=JourneySettings(gift_voice_min=60, gift_data_mb=2048,
                                                 claim_days=3))  # fmt: skip
    handler = GiftClaimHandler.from_settings(settings)
    offer(store, created_at=NOW - timedelta(days=3))
    (result,) = claim(store, mo("LB"), handler=handler)
    assert "（60分钟国内通话+2GB国内流量）" in result.reply


@dataclass
class FakeReplier:
    sent: list[dict] = field(default_factory=list)

    def __call__(self, store, *, mo_id, msisdn, service_number, text, tenant_id, now=None,
                 source="inbox") -> ReplySent:  # fmt: skip
        self.sent.append({"mo_id": mo_id, "text": text, "source": source, "tenant": tenant_id,
                          "to": service_number})  # fmt: skip
        return ReplySent(outcome="queued", message_id=100 + len(self.sent))


def test_the_inbox_routes_lb_and_sr_to_the_gift_handler_before_the_hall(store) -> None:
    # Given the default registry (the hall enabled on 10086) and an anniversary offer
    offer(store)
    with store.transaction() as session:
        rows = [MoMessage(channel="sim-smpp", msisdn=ME, service_number=to, text=text, coding=8,
                          parts=1, parts_expected=1, complete=True, undecodable=False,
                          received_at=NOW, dedup_key=f"gift:{n}")
                for n, (to, text) in enumerate([("10086", "ＬＢ"), ("1069000", "SR 谢谢")])]
        session.add_all(rows)
        session.flush()
        ids = [r.id for r in rows]
    replier = FakeReplier()
    # When the inbox runs
    run_pending(store, registry=default_registry(Settings()),
                context=HandlerContext(reply=replier), now=NOW)  # fmt: skip
    # Then the gift handler answered both, from where they wrote, as the journey
    with store.transaction() as session:
        handled = dict(session.execute(select(MoOutcome.mo_id, MoOutcome.handler)).all())
    assert handled == {ids[0]: "gift", ids[1]: "gift"}
    assert [(r["text"], r["source"], r["to"]) for r in replier.sent] == [
        (CONFIRMED_LB, "journey", "10086"), (replier.sent[1]["text"], "journey", "1069000")]
    assert replier.sent[1]["text"].startswith("抱歉，暂未查询到您可领取的生日流量")


# ----------------------------------------------------------------------------- follow-up


def add_claim(store, *, msisdn: str, claimed_at: datetime, gift: str = "anniversary",
              mo_id: int | None = None) -> int:  # fmt: skip
    row = GiftClaim(msisdn=msisdn, tenant_id="operator", gift=gift, occasion="2026",
                    mo_id=mo_id or next(_ids), claimed_at=claimed_at)  # fmt: skip
    with store.transaction() as session:
        session.add(row)
        session.flush()
        return row.id


def on(day: date, store=None) -> TriggerContext:
    """The scan's context on ``day``: the store only (follow-ups read no warehouse)."""
    return TriggerContext(warehouse=None,  # type: ignore[arg-type]
                          day=day, settings=Settings(), store=store)


def followups(store, day: date):
    return gift_followups(on(day, store))


def test_the_follow_up_is_due_a_week_after_the_claim_once(store) -> None:
    # Given claims on 3 May (Shanghai): its first and last instant; and on 2 and 4 May
    first = add_claim(store, msisdn=ME, claimed_at=datetime(2026, 5, 2, 16, tzinfo=UTC))
    last = add_claim(store, msisdn=YOU, gift="birthday",
                     claimed_at=datetime(2026, 5, 3, 15, 59, 59, tzinfo=UTC))
    add_claim(store, msisdn="+8613900000003", claimed_at=datetime(2026, 5, 2, 15, 59, tzinfo=UTC))
    add_claim(store, msisdn="+8613900000004", claimed_at=datetime(2026, 5, 3, 16, tzinfo=UTC))
    # When the scan of 10 May asks for follow-ups
    out = followups(store, date(2026, 5, 10))
    # Then the two claims of 3 May get one, keyed by claim whatever day the scan runs
    assert out.candidates.to_pylist() == [
        {"msisdn": ME, "subscriber_id": None, "template": "care.gift_followup",
         "name": "尊敬的客户", "gift": "入网周年感恩礼包", "hall_number": "10086",
         "tenant_id": "operator", "idempotency_key": f"journey:gift_followup:{first}"},
        {"msisdn": YOU, "subscriber_id": None, "template": "care.gift_followup",
         "name": "尊敬的客户", "gift": "生日流量", "hall_number": "10086",
         "tenant_id": "operator", "idempotency_key": f"journey:gift_followup:{last}"},
    ]  # fmt: skip
    # And once the follow-up went out, the claim records its message and is not due again
    with store.transaction() as session:
        message = Message(tenant_id="operator", msisdn=ME, category="marketing",
                          lane=LANES["marketing"], text="followup", source="journey",
                          idempotency_key=f"journey:gift_followup:{first}")  # fmt: skip
        session.add(message)
        session.flush()
        sent = message.id
    again = followups(store, date(2026, 5, 10))
    assert [r["msisdn"] for r in again.candidates.to_pylist()] == [YOU]
    assert again.skipped == {"followed_up": 1}
    with store.transaction() as session:
        assert session.get(GiftClaim, first).followup_message_id == sent


def test_the_follow_up_renders_and_is_a_trigger(store) -> None:
    add_claim(store, msisdn=ME, claimed_at=datetime(2026, 5, 3, 4, tzinfo=UTC))
    out = GIFT_FOLLOWUP.candidates(on(date(2026, 5, 10), store))
    (row,) = out.candidates.to_pylist()
    document = library_document(row["template"])
    compiled = document.compile()
    text = render(compiled, {n: row[n] for n in compiled.variables},
                  category=document.category, signature=None).text  # fmt: skip
    assert text.startswith("尊敬的客户，您领取的入网周年感恩礼包用得还满意吗？感谢您的支持！"
                           "想要更多优惠，发送“42”到10086查看每日特惠")  # fmt: skip
    assert GIFT_FOLLOWUP.name == "gift_followup"


def test_without_a_store_follow_ups_cannot_run() -> None:
    with pytest.raises(ConfigError, match="gift_followup: the scan gave no store"):
        gift_followups(on(date(2026, 5, 10)))
