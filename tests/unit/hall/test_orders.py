"""Hall orders (jingxin.hall.orders) over the in-store BOSS: the price rules, every refusal
saying why, and no order ever placed twice - a re-run of the same MO, a BOSS answer lost
after its commit or a request lost before it, a crash between the commit and the call,
each reconciled and the subscriber told once. Staff codes on orders, the staff list and
removed codes (jingxin.hall.staff)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

import jingxin.hall.referrals as referrals
from jingxin.config import HallSettings
from jingxin.data.store.engine import open_store
from jingxin.data.store.models import (
    BossAccount,
    BossHolding,
    BossOrder,
    BossProduct,
    HallOrder,
    HallReferral,
    HallStaff,
    Message,
)
from jingxin.dispatch.deliver import DeliveryContext
from jingxin.errors import ImportFileError, InputError
from jingxin.hall import orders
from jingxin.hall.boss import BossFaults, StoreBoss
from jingxin.hall.context import Answer, HallContext, HallRequest
from jingxin.hall.orders import Quote, confirmation, place, quote, reconcile
from jingxin.hall.points import points_balance
from jingxin.hall.staff import add_staff, deactivate_staff, import_staff, list_staff

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, outside quiet hours
NUMBER = "+8613912345678"
REFERRER = "+8613800138000"
SERVICE = "10086"
PROCESSING = "订单正在处理中，结果将短信通知您。"


class Killed(BaseException):
    """The process dies (kill -9) right there: nothing after it runs."""


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "orders.db"))
    yield opened
    opened.dispose()


@pytest.fixture
def placed_calls(monkeypatch) -> list[int]:
    """The ids of orders referrals.on_order_placed was called for (it still runs)."""
    calls: list[int] = []
    real = referrals.on_order_placed

    def spy(session, order, *, points, at):
        calls.append(order.id)
        return real(session, order, points=points, at=at)

    monkeypatch.setattr(referrals, "on_order_placed", spy)
    return calls


def seed(store, *, balance_fen: int = 5000, holds: tuple[str, ...] = (), star_level: int = 3):
    with store.transaction() as session:
        session.add_all([
            BossProduct(product_id="V1", name="视频会员", monthly_fee_fen=3000, zone="42",
                        exclusive_group="video"),
            BossProduct(product_id="V2", name="音乐会员", monthly_fee_fen=1500, zone="42",
                        exclusive_group="video"),
            BossProduct(product_id="T7", name="流量体验包", monthly_fee_fen=1000, zone="41",
                        trial_days=15),
            BossProduct(product_id="T0", name="彩铃体验", monthly_fee_fen=500, zone="41"),
            BossProduct(product_id="L1", name="来电提醒", monthly_fee_fen=200),
            BossProduct(product_id="G5", name="金卡礼包", monthly_fee_fen=800, min_star_level=5),
            BossAccount(msisdn=NUMBER, plan_id="P58", plan_name="畅享58", star_level=star_level,
                        balance_fen=balance_fen),
        ])  # fmt: skip
        session.add_all([BossHolding(msisdn=NUMBER, product_id=p) for p in holds])


def context(store, *, faults: BossFaults | None = None, now: datetime = NOW,
            boss=None) -> HallContext:  # fmt: skip
    return HallContext(store=store, settings=HallSettings(), now=now,
                       boss=boss or StoreBoss(store, faults=faults),
                       delivery=DeliveryContext())  # fmt: skip


def request(mo_id: int, text: str = "y") -> HallRequest:
    return HallRequest(mo_id=mo_id, msisdn=NUMBER, service_number=SERVICE, tenant_id="operator",
                       text=text, at=NOW)  # fmt: skip


def quoted(ctx, code: str = "V1", *, zone_rules=None, staff_code=None) -> Quote:
    result = quote(ctx, request(1, f"kt{code}"), code=code, zone_rules=zone_rules,
                   staff_code=staff_code)  # fmt: skip
    assert isinstance(result, Quote), result
    return result


def balance(store) -> int:
    with store.transaction() as session:
        return session.get(BossAccount, NUMBER).balance_fen


def hall_order(store, key: str = "hall:1") -> HallOrder:
    with store.transaction() as session:
        return session.scalar(select(HallOrder).where(HallOrder.request_key == key))


def count(store, model) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def notifications(store) -> list[Message]:
    with store.transaction() as session:
        return list(session.scalars(select(Message).where(Message.source == "hall")))


# ----------------------------------------------------------------------------- prices


def test_a_zone_42_deal_is_20_percent_off_for_3_months_then_list_price(store) -> None:
    seed(store)
    q = quoted(context(store), "v1")  # typed in lower case
    assert (q.product_id, q.list_fee_fen, q.price_fen) == ("V1", 3000, 2400)
    assert (q.discount_pct, q.discounted_months, q.trial_days) == (20, 3, 0)
    text = confirmation(context(store), q).text
    assert "视频会员" in text and "前3个月优惠价24.00元/月，之后30.00元/月" in text
    assert "10分钟内回复Y" in text


def test_the_menus_zone_rule_prices_the_deal_to_the_nearest_fen(store) -> None:
    seed(store)
    with store.transaction() as session:
        session.get(BossProduct, "V2").monthly_fee_fen = 999
    rules = {"42": {"discount_pct": 15, "discounted_months": 6}}
    q = quoted(context(store), "V2", zone_rules=rules)
    assert (q.price_fen, q.discount_pct, q.discounted_months) == (849, 15, 6)  # 849.15 → 849
    no_deal = quoted(context(store), "V2", zone_rules={"42": {"discount_pct": 20,
                                                             "discounted_months": 0}})
    assert (no_deal.price_fen, no_deal.discount_pct) == (999, 0)
    with pytest.raises(InputError, match=r"zone_rules: 42\.discount_pct"):
        quoted(context(store), "V2", zone_rules={"42": {"discount_pct": 120}})


def test_a_zone_41_product_is_a_free_trial_and_others_cost_the_list_price(store) -> None:
    seed(store)
    ctx = context(store)
    trial, default_trial, plain = quoted(ctx, "T7"), quoted(ctx, "T0"), quoted(ctx, "L1")
    assert (trial.price_fen, trial.trial_days) == (0, 15)
    assert (default_trial.price_fen, default_trial.trial_days) == (0, 7)
    assert "免费体验15天，到期后10.00元/月" in confirmation(ctx, trial).text
    assert (plain.price_fen, plain.discount_pct, plain.trial_days) == (200, 0, 0)
    assert "资费2.00元/月" in confirmation(ctx, plain).text


def test_a_quote_survives_the_session_as_json(store) -> None:
    seed(store)
    q = quoted(context(store), "V1")
    assert Quote.from_json(q.to_json()) == q
    for bad, field in [("[", "not a JSON"), ('{"name": "x"}', "product_id: missing"),
                       ('{"product_id": "V1", "name": "x", "list_fee_fen": "3000", '
                        '"price_fen": 1}', "list_fee_fen: expected int")]:  # fmt: skip
        with pytest.raises(InputError, match=field):
            Quote.from_json(bad)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("given", "code", "reason", "says"), [
    ({}, "NOPE", "unknown_product", "未找到业务代码NOPE"),
    ({"star_level": 2}, "G5", "not_eligible", "该业务仅限5星级及以上客户办理"),
    ({"holds": ("V1",)}, "V1", "already_held", "您已订购视频会员，无需重复办理"),
    ({"holds": ("V2",)}, "V1", "mutually_exclusive", "视频会员与您已订购的音乐会员不能同时办理"),
    ({"balance_fen": 1000}, "V1", "insufficient_balance",
     "您的余额为10.00元，不足以支付视频会员的24.00元"),
])  # fmt: skip
def test_a_quote_that_cannot_be_placed_says_why_and_writes_nothing(store, given, code, reason,
                                                                   says) -> None:  # fmt: skip
    seed(store, **given)
    answer = quote(context(store), request(1, f"kt{code}"), code=code, zone_rules=None,
                   staff_code=None)  # fmt: skip
    assert isinstance(answer, Answer)
    assert answer.outcome == f"failed:{reason}" and answer.kind == "order"
    assert says in answer.text
    assert count(store, HallOrder) == 0 and count(store, BossOrder) == 0


def test_a_confirmation_after_expiry_is_refused_with_its_reason(store) -> None:
    seed(store)
    ctx = context(store)
    answer = orders.expired_answer(ctx, request(2), quote=quoted(ctx, "V1"))
    assert answer.outcome == "failed:confirmation_expired"
    assert answer.text == "确认已超时，视频会员未办理。如需订购请重新发送KTV1。"
    assert orders.expired_answer(ctx, request(2)).outcome == "failed:confirmation_expired"


def test_the_boss_refusing_at_placing_time_fails_the_order_with_the_reason(store) -> None:
    # Given a quote made while the balance sufficed, and the balance spent before Y
    seed(store)
    ctx = context(store)
    q = quoted(ctx, "V1")
    with store.transaction() as session:
        session.get(BossAccount, NUMBER).balance_fen = 100
    # When the order is placed, it fails saying why; a re-run answers the same
    first = place(ctx, request(2), quote=q, request_key="hall:1")
    assert first.outcome == "failed:insufficient_balance"
    assert "余额为1.00元，不足以支付视频会员的24.00元" in first.text
    assert place(ctx, request(2), quote=q, request_key="hall:1") == first
    assert (hall_order(store).state, hall_order(store).reason) == ("failed",
                                                                   "insufficient_balance")
    assert balance(store) == 100


def test_a_boss_error_fails_the_order_and_is_not_retried(store) -> None:
    seed(store)
    faults = BossFaults()
    faults.fail_next(1)
    ctx = context(store, faults=faults)
    answer = place(ctx, request(2), quote=quoted(ctx), request_key="hall:1")
    assert answer.outcome == "failed:boss_error" and "系统繁忙" in answer.text
    assert place(ctx, request(2), quote=quoted(ctx), request_key="hall:1") == answer
    assert count(store, BossOrder) == 0 and balance(store) == 5000


# ----------------------------------------------------------------------------- placing


def test_an_order_is_placed_once_however_often_its_mo_is_handled(store, placed_calls) -> None:
    # Given a confirmed zone-42 quote
    seed(store)
    ctx = context(store)
    q = quoted(ctx, "V1")
    # When the Y is handled three times (the inbox runs handlers at least once)
    answers = [place(ctx, request(2), quote=q, request_key="hall:1") for _ in range(3)]
    # Then it was placed once, charged the deal price once, converted referrals once
    order = hall_order(store)
    assert answers[0].outcome == "placed" and answers[0] == answers[1] == answers[2]
    assert "订购成功！您已开通视频会员" in answers[0].text and order.boss_ref in answers[0].text
    assert (order.state, order.price_fen, order.mo_id, order.zone) == ("placed", 2400, 2, "42")
    assert balance(store) == 5000 - 2400
    assert count(store, BossOrder) == 1 and placed_calls == [order.id]


def test_a_rerun_never_calls_the_boss_again_for_a_settled_order(store) -> None:
    seed(store)
    ctx = context(store)
    q = quoted(ctx, "V1")
    place(ctx, request(2), quote=q, request_key="hall:1")

    class Silent(StoreBoss):
        def place_order(self, **kwargs):
            raise AssertionError("the BOSS was asked again")

        def find_order(self, request_key):
            raise AssertionError("the BOSS was asked again")

    rerun = place(context(store, boss=Silent(store)), request(2), quote=q, request_key="hall:1")
    assert rerun.outcome == "placed"


def test_an_answer_lost_after_the_commit_is_reconciled_not_repeated(store, placed_calls) -> None:
    # Given a BOSS that places the order but loses the answer
    seed(store)
    faults = BossFaults()
    faults.timeout_next(1, after_commit=True)
    ctx = context(store, faults=faults)
    q = quoted(ctx)
    # When the order is confirmed, the subscriber is told it is being processed
    answer = place(ctx, request(2), quote=q, request_key="hall:1")
    assert (answer.outcome, answer.text) == ("unknown", PROCESSING)
    order = hall_order(store)
    assert (order.state, order.reason) == ("unknown", "boss_timeout") and placed_calls == []
    # And the reconciler finds the BOSS's order: placed, charged once, subscriber told once
    tally = reconcile(ctx, older_than=0)
    assert (tally.checked, tally.placed, tally.notified) == (1, 1, 1)
    assert hall_order(store).state == "placed" and balance(store) == 2600
    assert count(store, BossOrder) == 1 and placed_calls == [order.id]
    (note,) = notifications(store)
    assert note.idempotency_key == f"hall:order:{order.id}:result"
    assert "订购成功！您已开通视频会员" in note.text and note.category == "notification"
    # And nothing is left to reconcile; a late re-run of the Y answers the result
    assert reconcile(ctx, older_than=0).checked == 0
    assert place(ctx, request(2), quote=q, request_key="hall:1").outcome == "placed"
    assert balance(store) == 2600 and len(notifications(store)) == 1


def test_a_request_lost_before_the_boss_did_anything_is_placed_by_the_reconciler(store) -> None:
    seed(store)
    faults = BossFaults()
    faults.timeout_next(1, after_commit=False)
    ctx = context(store, faults=faults)
    assert place(ctx, request(2), quote=quoted(ctx), request_key="hall:1").outcome == "unknown"
    assert count(store, BossOrder) == 0 and balance(store) == 5000
    tally = reconcile(ctx, older_than=0)
    assert (tally.placed, tally.notified) == (1, 1)
    with store.transaction() as session:
        (booked,) = session.scalars(select(BossOrder))
    assert booked.request_key == "hall:1" and balance(store) == 2600
    assert reconcile(ctx, older_than=0).checked == 0 and balance(store) == 2600


def test_a_boss_still_silent_leaves_the_order_unknown_for_the_next_run(store) -> None:
    seed(store)
    faults = BossFaults()
    faults.timeout_next(2, after_commit=False)
    ctx = context(store, faults=faults)
    place(ctx, request(2), quote=quoted(ctx), request_key="hall:1")
    assert reconcile(ctx, older_than=0) == orders.ReconcileTally(checked=1, unknown=1)
    assert notifications(store) == [] and hall_order(store).state == "unknown"
    assert reconcile(ctx, older_than=0).placed == 1


def test_a_reconciled_refusal_tells_the_subscriber_why(store) -> None:
    # Given an order whose request was lost, and the balance spent meanwhile
    seed(store)
    faults = BossFaults()
    faults.timeout_next(1, after_commit=False)
    ctx = context(store, faults=faults)
    place(ctx, request(2), quote=quoted(ctx), request_key="hall:1")
    with store.transaction() as session:
        session.get(BossAccount, NUMBER).balance_fen = 0
    # When it is reconciled, the BOSS refuses it and the subscriber is told why
    assert reconcile(ctx, older_than=0).failed == 1
    assert hall_order(store).reason == "insufficient_balance"
    (note,) = notifications(store)
    assert "不足以支付视频会员的24.00元" in note.text


def test_a_crash_between_the_commit_and_the_call_is_placed_once_later(store) -> None:
    # Given a process that dies right after committing the order, before the BOSS call
    seed(store)
    ctx = context(store)

    class Dying(StoreBoss):
        def place_order(self, **kwargs):
            raise Killed()

    with pytest.raises(Killed):
        place(context(store, boss=Dying(store)), request(2), quote=quoted(ctx),
              request_key="hall:1")  # fmt: skip
    assert hall_order(store).state == "submitting"
    # When the reconciler runs before reconcile_after_seconds (30 s), it leaves it alone
    assert reconcile(context(store, now=NOW + timedelta(seconds=10))).checked == 0
    # And after it, the order is placed once with its key and the subscriber told
    tally = reconcile(context(store, now=NOW + timedelta(seconds=31)))
    assert (tally.checked, tally.placed, tally.notified) == (1, 1, 1)
    assert balance(store) == 2600 and count(store, BossOrder) == 1


def test_a_crash_after_the_boss_placed_it_is_copied_not_charged_again(store) -> None:
    seed(store)
    ctx = context(store)
    q = quoted(ctx)

    class DyingAfter(StoreBoss):
        def place_order(self, **kwargs):
            super().place_order(**kwargs)
            raise Killed()

    with pytest.raises(Killed):
        place(context(store, boss=DyingAfter(store)), request(2), quote=q,
              request_key="hall:1")  # fmt: skip
    # The inbox handles the MO again: the re-run settles it from the BOSS's order book
    answer = place(ctx, request(2), quote=q, request_key="hall:1")
    assert answer.outcome == "placed" and balance(store) == 2600
    assert count(store, BossOrder) == 1 and notifications(store) == []  # the reply tells


def test_a_referred_friend_ordering_pays_the_referrer_once(store) -> None:
    # Given a referral of the product to this number, and an answer the BOSS lost
    seed(store)
    with store.transaction() as session:
        session.add(HallReferral(referrer=REFERRER, friend=NUMBER, product_id="V1",
                                 state="offered", created_at=NOW))  # fmt: skip
    faults = BossFaults()
    faults.timeout_next(1, after_commit=True)
    ctx = context(store, faults=faults)
    q = quoted(ctx)
    place(ctx, request(2), quote=q, request_key="hall:1")
    assert points_balance(store, REFERRER) == 0  # not placed as far as the hall knows
    # When it is reconciled and the MO handled again
    reconcile(ctx, older_than=0)
    place(ctx, request(2), quote=q, request_key="hall:1")
    # Then the referrer earned the points once and the referral names the order
    assert points_balance(store, REFERRER) == ctx.settings.referral_points
    assert hall_order(store).referral_id is not None


def test_orders_are_never_doubled_on_either_store(store_url, placed_calls) -> None:
    # The same story on SQLite and PostgreSQL: a lost answer, a re-run, a reconcile
    opened = open_store(store_url, upgrade=True)
    try:
        seed(opened)
        faults = BossFaults()
        faults.timeout_next(1, after_commit=True)
        ctx = context(opened, faults=faults)
        q = quoted(ctx, "V1")
        assert place(ctx, request(2), quote=q, request_key="hall:1").outcome == "unknown"
        assert place(ctx, request(2), quote=q, request_key="hall:1").outcome == "placed"
        assert reconcile(ctx, older_than=0).checked == 0
        assert balance(opened) == 2600 and count(opened, BossOrder) == 1
        assert len(placed_calls) == 1 and len(notifications(opened)) == 1
    finally:
        opened.dispose()


# ----------------------------------------------------------------------------- cancelling


def test_cancelling_a_held_product_once_per_confirmation(store) -> None:
    seed(store)
    ctx = context(store)
    place(ctx, request(2), quote=quoted(ctx), request_key="hall:1")
    asked = orders.cancel_confirmation(ctx, request(3, "qxv1"), code="v1")
    assert asked.outcome == "pending" and "您将取消视频会员" in asked.text
    done = orders.cancel_product(ctx, request(4), code="v1")
    assert done.outcome == "cancelled" and done.text == "您已成功取消视频会员。"
    assert orders.cancel_product(ctx, request(4), code="v1") == done  # the re-run
    assert hall_order(store).state == "cancelled"
    assert StoreBoss(store).holdings(NUMBER) == set()
    again = orders.cancel_product(ctx, request(5), code="V1")
    assert again.outcome == "failed:not_held" and "您未订购视频会员" in again.text
    assert orders.cancel_confirmation(ctx, request(6), code="V1").outcome == "failed:not_held"
    assert orders.cancel_product(ctx, request(7), code="zz").outcome == "failed:unknown_product"


# ----------------------------------------------------------------------------- staff


# ----------------------------------------------------------------------------- plan changes


def seed_plans(store) -> None:
    """Plans as ``hall seed`` loads them; the account (``seed``) is on P58."""
    with store.transaction() as session:
        session.add_all([
            BossProduct(product_id="P58", name="畅享58", category="plan", monthly_fee_fen=5800,
                        payment="prepaid", rank=3),
            BossProduct(product_id="P4G034C24", name="4G畅享34元(24个月合约)", category="plan",
                        monthly_fee_fen=3400, payment="prepaid", rank=2),
            BossProduct(product_id="Q39", name="全球通39", category="plan",
                        monthly_fee_fen=3900, payment="postpaid", rank=2),
        ])  # fmt: skip


def plan_quote(ctx, code: str, mo_id: int = 1) -> Quote | Answer:
    return quote(ctx, request(mo_id, f"xy{code}"), code=code, plan=True)


def test_a_plan_change_is_quoted_at_its_monthly_fee_and_placed_once(store, placed_calls) -> None:
    # Given a prepaid account on 畅享58 with 50.00 yuan
    seed(store)
    seed_plans(store)
    ctx = context(store)
    # When XYp4g034c24 is quoted: the monthly fee, from next month, nothing to pay now
    q = plan_quote(ctx, "p4g034c24")
    assert isinstance(q, Quote) and q.plan
    assert (q.product_id, q.list_fee_fen, q.price_fen) == ("P4G034C24", 3400, 0)
    assert Quote.from_json(q.to_json()) == q
    assert confirmation(ctx, q).text == ("您将变更为4G畅享34元(24个月合约)，月费34.00元，次月生效。"
                                         "请在10分钟内回复Y确认，回复QX放弃。")  # fmt: skip
    # And confirmed (the Y handled twice): changed once, in the plan's words, no charge
    answers = [place(ctx, request(2), quote=q, request_key="hall:1") for _ in range(2)]
    order = hall_order(store)
    assert answers[0] == answers[1] and answers[0].outcome == "placed"
    assert answers[0].text.startswith("套餐变更成功，4G畅享34元(24个月合约)将于次月1日生效")
    assert (order.state, order.price_fen, order.list_fee_fen) == ("placed", 0, 3400)
    account = ctx.boss.account(NUMBER)
    assert (account.plan_id, account.plan_name) == ("P4G034C24", "4G畅享34元(24个月合约)")
    assert balance(store) == 5000 and ctx.boss.holdings(NUMBER) == set()
    assert count(store, BossOrder) == 1 and placed_calls == [order.id]


@pytest.mark.parametrize(("code", "reason", "says"), [
    ("P58", "already_held", "您当前已是畅享58，无需变更"),
    ("Q39", "not_eligible", "该业务仅限后付费用户办理，暂不能办理全球通39"),
    ("P99", "unknown_product", "未找到套餐代码XYP99"),
    ("V1", "unknown_product", "未找到套餐代码XYV1"),  # a product, but no plan
])  # fmt: skip
def test_a_plan_change_that_cannot_be_made_says_why(store, code, reason, says) -> None:
    seed(store)
    seed_plans(store)
    answer = plan_quote(context(store), code)
    assert isinstance(answer, Answer) and answer.outcome == f"failed:{reason}"
    assert says in answer.text
    assert count(store, HallOrder) == 0 and count(store, BossOrder) == 0


def test_a_plan_change_refused_by_the_boss_or_expired_says_so_in_its_words(store) -> None:
    # Given a quote, and the account moved to that plan before the Y
    seed(store)
    seed_plans(store)
    ctx = context(store)
    q = plan_quote(ctx, "P4G034C24")
    with store.transaction() as session:
        session.get(BossAccount, NUMBER).plan_id = "P4G-034-C24"  # the warehouse's id
    answer = place(ctx, request(2), quote=q, request_key="hall:1")
    assert answer.outcome == "failed:already_held" and "您当前已是4G畅享34元" in answer.text
    expired = orders.expired_answer(ctx, request(3), quote=q)
    assert expired.text == "确认已超时，4G畅享34元(24个月合约)未变更。如需变更请重新发送XYP4G034C24。"


def test_a_plan_change_whose_answer_was_lost_is_reconciled_and_told_in_its_words(store) -> None:
    seed(store)
    seed_plans(store)
    faults = BossFaults()
    faults.timeout_next(1, after_commit=True)
    ctx = context(store, faults=faults)
    assert place(ctx, request(2), quote=plan_quote(ctx, "P4G034C24"),
                 request_key="hall:1").outcome == "unknown"  # fmt: skip
    assert reconcile(ctx, older_than=0).placed == 1
    (note,) = notifications(store)
    assert "套餐变更成功，4G畅享34元(24个月合约)将于次月1日生效，月费34.00元" in note.text
    assert count(store, BossOrder) == 1


def test_a_known_staff_code_is_kept_on_the_order_and_an_unknown_one_is_said(store) -> None:
    seed(store)
    with store.transaction() as session:
        add_staff(session, code="s1234", name="王芳", branch="朝阳营业厅")
    ctx = context(store)
    known = quoted(ctx, "V1", staff_code="S1234")
    assert (known.staff_code, known.ignored_staff_code) == ("S1234", None)
    assert "推荐工号S1234" in confirmation(ctx, known).text
    unknown = quoted(ctx, "V1", staff_code="x9")
    assert (unknown.staff_code, unknown.ignored_staff_code) == (None, "X9")
    assert "工号X9不存在，本次订购不计入工号" in confirmation(ctx, unknown).text
    place(ctx, request(2), quote=known, request_key="hall:1")
    assert hall_order(store).staff_code == "S1234"


def test_a_staff_list_is_imported_whole_or_not_at_all(store, tmp_path) -> None:
    good = tmp_path / "staff.csv"
    good.write_text("\ufeffcode,name,branch\ns1,王芳,朝阳\nS2,李雷,海淀\n\n", encoding="utf-8")
    assert import_staff(store, good) == orders_staff_import(added=2)
    good.write_text("code,name,branch\nS1,王芳,朝阳\nS2,李雷,西城\n", encoding="utf-8")
    assert import_staff(store, good) == orders_staff_import(updated=1, unchanged=1)
    for text, error in [
        ("code,name\nS3,x\n", r"staff\.csv:1: missing column\(s\) branch"),
        ("code,name,branch\nS3,张三,东城\nbad code!,x,y\n", r"staff\.csv:3: code:"),
        ("code,name,branch\nS3,张三,东城\ns3,张三,东城\n", r"staff\.csv:3: code: S3 is already on line 2"),
        ("code,name,branch\nS3,,东城\n", r"staff\.csv:2: name:"),
        ("", r"staff\.csv: empty file"),
    ]:  # fmt: skip
        good.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=error):
            import_staff(store, good)
    with pytest.raises(ImportFileError, match="cannot read"):
        import_staff(store, tmp_path / "missing.csv")
    with store.transaction() as session:  # nothing of the bad files was written
        assert sorted(s.code for s in session.scalars(select(HallStaff))) == ["S1", "S2"]


def orders_staff_import(*, added: int = 0, updated: int = 0, unchanged: int = 0):
    from jingxin.hall.staff import StaffImport

    return StaffImport(added=added, updated=updated, unchanged=unchanged)


def staff_codes(store, **filters) -> list[str]:
    with store.transaction() as session:
        return [s.code for s in list_staff(session, **filters)]


def test_the_staff_list_is_by_branch_and_code_and_filters(store) -> None:
    # Given two branches of the operator, another tenant's agent and a code removed
    with store.transaction() as session:
        add_staff(session, code="s2", name="李雷", branch="朝阳")
        add_staff(session, code="s1", name="王芳", branch="朝阳")
        add_staff(session, code="s3", name="韩梅", branch="海淀")
        add_staff(session, code="a1", name="代理", branch="朝阳", tenant_id="t2")
        deactivate_staff(session, code="s3")
    # Then the list is the active ones by branch and code, every tenant's unless one is asked
    assert staff_codes(store) == ["A1", "S1", "S2"]
    assert staff_codes(store, include_inactive=True) == ["A1", "S1", "S2", "S3"]
    assert staff_codes(store, branch=" 朝阳 ", tenant_id="operator") == ["S1", "S2"]
    assert staff_codes(store, branch="海淀") == []
    assert staff_codes(store, branch="海淀", include_inactive=True) == ["S3"]
    assert staff_codes(store, tenant_id="t2") == ["A1"]
    assert staff_codes(store, tenant_id="nobody", include_inactive=True) == []


def test_a_removed_staff_code_no_longer_counts_and_adding_it_again_restores_it(store) -> None:
    # Given an order placed under S1234
    seed(store)
    with store.transaction() as session:
        add_staff(session, code="S1234", name="王芳", branch="朝阳营业厅")
    ctx = context(store)
    place(ctx, request(2), quote=quoted(ctx, "V1", staff_code="s1234"), request_key="hall:1")
    # When the code is removed (in any case), twice
    with store.transaction() as session:
        row, changed = deactivate_staff(session, code=" s1234 ")
        assert (row.code, row.active, changed) == ("S1234", False, True)
    with store.transaction() as session:
        row, changed = deactivate_staff(session, code="S1234")
        assert (row.active, changed) == (False, False)  # harmless: it already was
    # Then a new order quoting it is not attributed, and the confirmation says so
    after = quoted(ctx, "L1", staff_code="s1234")
    assert (after.staff_code, after.ignored_staff_code) == (None, "S1234")
    assert "工号S1234不存在，本次订购不计入工号" in confirmation(ctx, after).text
    # And the past order, and the row, are kept
    assert hall_order(store).staff_code == "S1234"
    with store.transaction() as session:
        kept = session.get(HallStaff, "S1234")
        assert (kept.name, kept.branch, kept.active) == ("王芳", "朝阳营业厅", False)
    # And adding it again re-activates it
    with store.transaction() as session:
        assert add_staff(session, code="s1234", name="王芳", branch="朝阳营业厅").active
    assert quoted(ctx, "L1", staff_code="S1234").staff_code == "S1234"


def test_removing_an_unknown_or_another_tenants_code_is_refused(store) -> None:
    with store.transaction() as session:
        add_staff(session, code="A1", name="代理", branch="朝阳", tenant_id="t2")
    with pytest.raises(InputError, match="staff code 'x9': no such staff in tenant 'operator'"), \
            store.transaction() as session:  # fmt: skip
        deactivate_staff(session, code="x9")
    # Another tenant's code is unknown to this one, and stays in use
    with pytest.raises(InputError, match="staff code 'a1': no such staff"), \
            store.transaction() as session:  # fmt: skip
        deactivate_staff(session, code="a1", tenant_id="operator")
    assert staff_codes(store, tenant_id="t2") == ["A1"]
    with store.transaction() as session:
        assert deactivate_staff(session, code="a1", tenant_id="t2")[1] is True
