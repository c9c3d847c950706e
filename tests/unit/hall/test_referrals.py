"""Referrals: every refusal says why and writes nothing, the friend gets one offer through
the delivery entry, a re-run answers the same, and a friend's order pays the oldest
referrer once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from jingxin.config import HallSettings
from jingxin.data.store.contact import record_opt_out
from jingxin.data.store.engine import open_store
from jingxin.data.store.models import Message
from jingxin.data.store.models.hall import HallOrder, HallReferral, PointsEntry
from jingxin.hall.context import HallContext, HallRequest
from jingxin.hall.points import points_balance
from jingxin.hall.referrals import on_order_placed, refer

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
NIGHT = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai: quiet hours
REFERRER = "+8613800138000"  # China Mobile
OTHER_REFERRER = "+8613700137000"
FRIEND = "+8613900139000"  # China Mobile
SERVICE = "10086"


@dataclass
class FakeBoss:
    """Only what a referral asks the BOSS: which products a number holds."""

    held: dict[str, set[str]] = field(default_factory=dict)

    def holdings(self, msisdn: str) -> set[str]:
        return set(self.held.get(msisdn, ()))


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    yield opened
    opened.dispose()


@pytest.fixture
def any_store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def context(store, *, boss=None, now=NOON, **settings) -> HallContext:
    return HallContext(store=store, settings=HallSettings(**settings), boss=boss or FakeBoss(),
                       now=now)  # fmt: skip


def request(mo_id: int, *, msisdn: str = REFERRER, at: datetime = NOON) -> HallRequest:
    return HallRequest(mo_id=mo_id, msisdn=msisdn, service_number=SERVICE, tenant_id="operator",
                       text="13900139000cl", at=at)  # fmt: skip


def referrals(store) -> list[HallReferral]:
    with store.transaction() as s:
        return list(s.scalars(select(HallReferral).order_by(HallReferral.id)))


def messages(store) -> list[Message]:
    with store.transaction() as s:
        return list(s.scalars(select(Message).order_by(Message.id)))


def place_order(store, *, msisdn: str = FRIEND, product_id: str = "RBT5", key: str = "hall:900",
                staff_code: str | None = "S1001", points: int = 100):  # fmt: skip
    """What the order module does: write the order and call on_order_placed in its
    transaction. Returns (order id, what on_order_placed returned)."""
    with store.transaction() as s:
        order = s.scalar(select(HallOrder).where(HallOrder.request_key == key))
        if order is None:
            order = HallOrder(request_key=key, msisdn=msisdn, service_number=SERVICE,
                              product_id=product_id, list_fee_fen=500, price_fen=500,
                              staff_code=staff_code, state="placed")  # fmt: skip
            s.add(order)
        granted = on_order_placed(s, order, points=points, at=NOON + timedelta(days=1))
        return order.id, granted


def test_a_referral_sends_the_friend_one_offer_and_a_rerun_answers_the_same(any_store) -> None:
    # Given a referrer and a friend who does not hold the 5-yuan ringback
    ctx = context(any_store)
    # When the referrer texts the friend's number + CL, and the MO is handled twice
    first = refer(ctx, request(1), friend="13900139000")
    again = refer(ctx, request(1), friend="13900139000")
    # Then the referral is recorded once, offered, with the MO and the offer's message
    (referral,) = referrals(any_store)
    (offer,) = messages(any_store)
    assert (referral.referrer, referral.friend, referral.product_id, referral.state,
            referral.mo_id) == (REFERRER, FRIEND, "RBT5", "offered", 1)  # fmt: skip
    assert referral.offer_message_id == offer.id
    # And the friend's offer is a marketing message of the hall, from the service number,
    # ordering with KTRBT5 and ending with the unsubscribe route
    assert (offer.msisdn, offer.source, offer.source_id, offer.category, offer.sender) == (
        FRIEND, "hall", str(referral.id), "marketing", SERVICE)
    assert offer.idempotency_key == f"hall:referral:{referral.id}:offer"
    assert "138****8000" in offer.text and "KTRBT5" in offer.text
    assert offer.text.endswith("回T退订")
    # And the referrer is told, the same both times
    assert first == again
    assert (first.command, first.outcome) == ("referral", "offered")
    assert "139****9000" in first.text and "100积分" in first.text


@pytest.mark.parametrize(("friend", "reason", "says"), [
    ("12345", "invalid", "不是有效的手机号码"),
    ("1390013900a", "invalid", "不是有效的手机号码"),
    ("01088886666", "invalid", "不是有效的手机号码"),  # a Beijing landline
    ("+14155550123", "foreign", "不是本网手机号码"),  # another country
    ("13012345678", "foreign", "不是本网手机号码"),  # China Unicom, not a home carrier
    ("13800138000", "self", "不能推荐自己"),
    ("+86 138 0013 8000", "self", "不能推荐自己"),
])  # fmt: skip
def test_an_unusable_friend_is_refused_with_the_reason_and_nothing_is_written(
        store, friend, reason, says) -> None:  # fmt: skip
    # Given the operator's hall (home carrier China Mobile)
    ctx = context(store)
    # When the referrer refers this number
    answer = refer(ctx, request(1), friend=friend)
    # Then the refusal names the reason, and no referral or offer is written
    assert answer.outcome == f"failed:{reason}"
    assert says in answer.text
    assert referrals(store) == [] and messages(store) == []


def test_a_friend_already_holding_the_product_is_refused(store) -> None:
    # Given a friend who holds the ringback already
    ctx = context(store, boss=FakeBoss(held={FRIEND: {"RBT5", "D10"}}))
    # When they are referred
    answer = refer(ctx, request(1), friend="13900139000")
    # Then the referrer is told so, and nothing is written
    assert answer.outcome == "failed:holder"
    assert "已开通5元彩铃" in answer.text and "139****9000" in answer.text
    assert referrals(store) == [] and messages(store) == []
    # But a product the friend does not hold may be referred
    other = refer(ctx, request(2), friend="13900139000", product_id="VID15",
                  product_name="视频会员")  # fmt: skip
    assert other.outcome == "offered"


def test_a_second_referral_of_the_same_friend_is_refused_but_another_referrer_may(store) -> None:
    # Given a referral made by one MO
    ctx = context(store)
    refer(ctx, request(1), friend="13900139000")
    # When the same referrer refers the same friend in another MO (another form of the number)
    twice = refer(ctx, request(2), friend="+8613900139000")
    # Then it is refused, and the friend got one offer
    assert (twice.outcome, twice.text) == ("failed:already_referred", "您已推荐过该号码。")
    assert len(messages(store)) == 1
    # When another referrer refers the same friend the next day (marketing caps: one a day)
    tomorrow = NOON + timedelta(days=1)
    other = refer(context(store, now=tomorrow), request(3, msisdn=OTHER_REFERRER, at=tomorrow),
                  friend="13900139000")  # fmt: skip
    # Then that is a referral of its own, with its own offer
    assert other.outcome == "offered"
    assert [(r.referrer, r.mo_id) for r in referrals(store)] == [(REFERRER, 1), (OTHER_REFERRER, 3)]
    assert len(messages(store)) == 2


def test_another_carrier_is_accepted_when_it_is_a_home_carrier(store) -> None:
    # Given a hall whose operator counts China Unicom as its own too
    ctx = context(store, home_carriers=["china_mobile", "china_unicom"])
    # When a Unicom number is referred
    answer = refer(ctx, request(1), friend="13012345678")
    # Then it is offered
    assert answer.outcome == "offered"
    assert [r.friend for r in referrals(store)] == ["+8613012345678"]


def test_a_friend_who_opted_out_gets_nothing_and_the_referrer_is_told_without_why(store) -> None:
    # Given a friend who unsubscribed from marketing
    with store.transaction() as s:
        record_opt_out(s, msisdn=FRIEND, source="sms_reply", at=NOON - timedelta(days=3))
    ctx = context(store)
    # When they are referred
    answer = refer(ctx, request(1), friend="13900139000")
    # Then no offer goes, the referral is recorded without one, and the reply is honest
    # but does not say the friend opted out
    assert messages(store) == []
    (referral,) = referrals(store)
    assert referral.offer_message_id is None
    assert answer.outcome == "offer_rejected"
    assert "不接收推荐短信" in answer.text and "退订" not in answer.text


def test_an_offer_in_quiet_hours_goes_later_and_the_referrer_is_told_so(store) -> None:
    # Given the middle of the night in Shanghai
    ctx = context(store, now=NIGHT)
    # When a friend is referred
    answer = refer(ctx, request(1, at=NIGHT), friend="13900139000")
    # Then the offer is queued for the morning and the referrer hears it goes later
    (offer,) = messages(store)
    assert offer.scheduled_at > NIGHT
    assert (answer.outcome, "稍后发送" in answer.text) == ("offer_deferred", True)


def test_a_friends_order_pays_the_oldest_referrer_once(any_store) -> None:
    # Given the friend was referred by two people, the first one earlier
    refer(context(any_store), request(1), friend="13900139000")
    refer(context(any_store), request(2, msisdn=OTHER_REFERRER, at=NOON + timedelta(hours=1)),
          friend="13900139000")  # fmt: skip
    # When the friend orders the ringback (staff S1001), and the hook runs twice
    order_id, granted = place_order(any_store)
    _, again = place_order(any_store)
    # Then the oldest referral is converted by that order and its referrer earns 100 points,
    # once, with the order's staff code; the other referral stays open
    first, second = referrals(any_store)
    assert (first.state, first.order_id, first.converted_at) == (
        "converted", order_id, NOON + timedelta(days=1))
    assert first.staff_code == "S1001"
    assert (second.state, second.order_id) == ("offered", None)
    assert (granted, again) == (100, None)
    assert points_balance(any_store, REFERRER) == 100
    assert points_balance(any_store, OTHER_REFERRER) == 0
    with any_store.transaction() as s:
        (entry,) = s.scalars(select(PointsEntry))
        order = s.get(HallOrder, order_id)
    assert (entry.key, entry.reason, entry.staff_code) == (
        f"referral:{first.id}", "referral", "S1001")
    assert order.referral_id == first.id


def test_an_order_of_another_product_or_number_converts_nothing(store) -> None:
    # Given a referral of the ringback
    refer(context(store), request(1), friend="13900139000")
    # When the friend orders another product, and a stranger orders the ringback
    _, other_product = place_order(store, product_id="VID15", key="hall:901")
    _, stranger = place_order(store, msisdn="+8613600136000", key="hall:902")
    # Then nothing is converted and no points are granted
    assert (other_product, stranger) == (None, None)
    assert [r.state for r in referrals(store)] == ["offered"]
    with store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(PointsEntry)) == 0
