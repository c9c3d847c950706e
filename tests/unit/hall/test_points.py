"""Points: each grant booked once per key, a balance is the sum, and a redemption debits
the points and issues the voucher together, once per MO, never spending a balance twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from jingxin.config import HallSettings
from jingxin.data.store.engine import open_store
from jingxin.data.store.models.hall import PointsEntry, Voucher
from jingxin.errors import InputError
from jingxin.hall.context import HallContext, HallRequest
from jingxin.hall.points import grant, points_balance, redeem_points, reward_of, show_points
from jingxin.hall.vouchers import ALPHABET, add_merchant

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
NUMBER = "+8613800138000"
REWARDS = [
    {"code": "K1", "title": "星巴克中杯咖啡券", "merchant": "M001", "value_fen": 3000,
     "points": 300, "days": 30},
    {"code": "K2", "title": "星巴克10元代金券", "merchant": "M001", "value_fen": 1000,
     "points": 100},  # valid [hall] voucher_days
    {"code": "K9", "title": "已停业商户券", "merchant": "M404", "value_fen": 500, "points": 50},
]  # fmt: skip


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    with opened.transaction() as s:
        add_merchant(s, id="M001", name="星巴克(陆家嘴店)", msisdn="13700000001",
                     tenant_id="operator")  # fmt: skip
    yield opened
    opened.dispose()


def context(store, tmp_path) -> HallContext:
    settings = HallSettings(voucher_dir=str(tmp_path / "vouchers"), voucher_days=7)
    return HallContext(store=store, settings=settings, now=NOON)


def request(mo_id: int, *, msisdn: str = NUMBER) -> HallRequest:
    return HallRequest(mo_id=mo_id, msisdn=msisdn, service_number="10086", tenant_id="operator",
                       text="dhk1", at=NOON)  # fmt: skip


def give(store, points: int, *, key: str = "referral:1", msisdn: str = NUMBER) -> bool:
    with store.transaction() as s:
        return grant(s, key=key, msisdn=msisdn, tenant_id="operator", delta=points,
                     reason="referral", staff_code="S1001", at=NOON)  # fmt: skip


def count(store, model) -> int:
    with store.transaction() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_grant_is_booked_once_per_key_and_the_balance_is_the_sum(store) -> None:
    # Given two grants and a debit, and one grant repeated
    assert give(store, 100, key="referral:1") is True
    assert give(store, 100, key="referral:1") is False
    assert give(store, 50, key="referral:2") is True
    assert give(store, -30, key="redeem:9") is True
    # Then each key is booked once and the balance sums them (from a store or a session)
    assert count(store, PointsEntry) == 3
    assert points_balance(store, NUMBER) == 120
    with store.transaction() as s:
        assert points_balance(s, NUMBER) == 120
        assert points_balance(s, "+8613900000000") == 0


def test_a_repeated_grant_inside_a_transaction_leaves_it_usable(store) -> None:
    # Given one transaction that books a key and then meets it again
    with store.transaction() as s:
        first = grant(s, key="referral:7", msisdn=NUMBER, tenant_id="operator", delta=100,
                      reason="referral", at=NOON)  # fmt: skip
        second = grant(s, key="referral:7", msisdn=NUMBER, tenant_id="operator", delta=100,
                       reason="referral", at=NOON)  # fmt: skip
        # Then the second is refused without spoiling the transaction, which goes on
        assert (first, second) == (True, False)
        assert points_balance(s, NUMBER) == 100
    assert points_balance(store, NUMBER) == 100


def test_jf_says_the_balance(store, tmp_path) -> None:
    give(store, 250)
    answer = show_points(context(store, tmp_path), request(1))
    assert (answer.command, answer.kind) == ("points", "query")
    assert "250" in answer.text


def test_an_unknown_reward_lists_the_rewards_and_the_balance(store, tmp_path) -> None:
    # Given 120 points
    give(store, 120)
    # When the subscriber asks for a reward code that does not exist
    answer = redeem_points(context(store, tmp_path), request(1), reward_code="k7",
                           rewards=REWARDS)  # fmt: skip
    # Then every reward is listed with its cost, and the balance; nothing is spent
    assert answer.outcome == "failed:unknown_reward"
    for line in ("K1 星巴克中杯咖啡券（300分）", "K2 星巴克10元代金券（100分）", "120"):
        assert line in answer.text
    assert (points_balance(store, NUMBER), count(store, Voucher)) == (120, 0)


def test_too_few_points_says_the_balance_and_the_cost(store, tmp_path) -> None:
    give(store, 120)
    answer = redeem_points(context(store, tmp_path), request(1), reward_code="K1",
                           rewards=REWARDS)  # fmt: skip
    assert answer.outcome == "failed:insufficient_points"
    assert "120" in answer.text and "300" in answer.text
    assert (points_balance(store, NUMBER), count(store, Voucher)) == (120, 0)


def test_a_reward_of_an_unregistered_merchant_is_not_sold(store, tmp_path) -> None:
    give(store, 120)
    answer = redeem_points(context(store, tmp_path), request(1), reward_code="K9",
                           rewards=REWARDS)  # fmt: skip
    assert answer.outcome == "failed:unknown_merchant"
    assert (points_balance(store, NUMBER), count(store, Voucher)) == (120, 0)


def test_a_redemption_debits_issues_and_answers_the_same_when_rerun(store, tmp_path) -> None:
    # Given 350 points
    give(store, 350)
    ctx = context(store, tmp_path)
    # When the subscriber redeems K1 and the MO is handled twice
    first = redeem_points(ctx, request(5), reward_code="k1", rewards=REWARDS)
    again = redeem_points(ctx, request(5), reward_code="k1", rewards=REWARDS)
    # Then 300 points are debited once, under the MO's key, and one voucher issued
    assert points_balance(store, NUMBER) == 50
    with store.transaction() as s:
        (debit,) = s.scalars(select(PointsEntry).where(PointsEntry.delta < 0))
        (voucher,) = s.scalars(select(Voucher))
    assert (debit.key, debit.delta, debit.reason) == ("redeem:5", -300, "redeem")
    assert (voucher.issue_key, voucher.msisdn, voucher.merchant_id, voucher.value_fen,
            voucher.points_cost) == ("redeem:5", NUMBER, "M001", 3000, 300)  # fmt: skip
    assert len(voucher.code) == 10 and set(voucher.code) <= set(ALPHABET)
    # And the reply gives the code, value, merchant, last day (30 days on) and link
    assert first == again
    assert first.outcome == "redeemed"
    for part in (voucher.code, "30元", "星巴克(陆家嘴店)", "2026年12月23日",
                 f"https://jx.cn/v/{voucher.code}"):  # fmt: skip
        assert part in first.text
    # And the QR image behind the link is written
    assert (tmp_path / "vouchers" / f"{voucher.code}.svg").read_bytes().startswith(b"<?xml")


def test_a_reward_without_days_lasts_the_configured_days(store, tmp_path) -> None:
    give(store, 100)
    answer = redeem_points(context(store, tmp_path), request(6), reward_code="K2",
                           rewards=REWARDS)  # fmt: skip
    assert "2026年11月30日" in answer.text  # voucher_days = 7


@pytest.mark.parametrize(("item", "field"), [
    ({"code": "K1", "title": "券", "merchant": "M001", "value_fen": 100}, "points"),
    ({"code": "K1", "title": "券", "merchant": "M001", "value_fen": "10", "points": 1},
     "value_fen"),
    ({"code": "", "title": "券", "merchant": "M001", "value_fen": 100, "points": 1}, "code"),
])  # fmt: skip
def test_a_malformed_reward_names_its_field(item, field) -> None:
    with pytest.raises(InputError, match=field):
        reward_of(item, where="rewards[0]")


def test_two_redemptions_at_once_never_spend_the_balance_twice(pg_url, tmp_path) -> None:
    # Given 300 points on PostgreSQL, enough for ONE K1
    store = open_store(pg_url, upgrade=True)
    try:
        with store.transaction() as s:
            add_merchant(s, id="M001", name="星巴克", msisdn="13700000001", tenant_id="operator")
        give(store, 300)
        ctx = context(store, tmp_path)
        barrier = threading.Barrier(2)
        answers: dict[int, str] = {}

        def redeem(mo_id: int) -> None:
            barrier.wait()
            answers[mo_id] = redeem_points(ctx, request(mo_id), reward_code="K1",
                                           rewards=REWARDS).outcome  # fmt: skip

        # When two MOs redeem K1 at the same moment
        threads = [threading.Thread(target=redeem, args=(m,)) for m in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Then one gets the voucher, the other is told the points do not suffice
        assert sorted(answers.values()) == ["failed:insufficient_points", "redeemed"]
        assert (points_balance(store, NUMBER), count(store, Voucher)) == (0, 1)
    finally:
        store.dispose()
