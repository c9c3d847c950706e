"""The BOSS stand-in (jingxin.hall.boss.StoreBoss) on a real store: each refusal reason in
its order, the prepaid fee deducted exactly once, orders idempotent on their key (also
when the answer is lost, and when two calls race on PostgreSQL), cancellation."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from jingxin.data.store.engine import open_store
from jingxin.data.store.models import BossAccount, BossHolding, BossOrder, BossProduct
from jingxin.errors import InputError
from jingxin.hall.boss import (
    Boss,
    BossError,
    BossFaults,
    BossResult,
    BossTimeout,
    Product,
    StoreBoss,
    check_order,
)

NUMBER = "+8613912345678"


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "boss.db"))
    yield opened
    opened.dispose()


def seed(store, *, msisdn: str = NUMBER, balance_fen: int = 5000, payment: str = "prepaid",
         star_level: int = 3, status: str = "active", holds: tuple[str, ...] = ()) -> None:
    """An account and a small catalogue: two video products in one exclusive group, an
    electronic-only one, one for 5-star customers, one for postpaid customers only."""
    with store.transaction() as session:
        if session.get(BossProduct, "V1") is None:
            session.add_all([
                BossProduct(product_id="V1", name="视频会员A", monthly_fee_fen=3000, zone="42",
                            exclusive_group="video", rank=2),
                BossProduct(product_id="V2", name="视频会员B", monthly_fee_fen=2000, zone="42",
                            exclusive_group="video", rank=1),
                BossProduct(product_id="E1", name="云盘", monthly_fee_fen=500,
                            electronic_only=True),
                BossProduct(product_id="G5", name="金卡礼包", monthly_fee_fen=1000,
                            min_star_level=5),
                BossProduct(product_id="PP", name="后付费包", monthly_fee_fen=1000,
                            payment="postpaid"),
                BossProduct(product_id="OLD", name="旧业务", monthly_fee_fen=100, active=False),
            ])  # fmt: skip
        session.add(BossAccount(msisdn=msisdn, plan_id="P58", plan_name="畅享58",
                                payment=payment, status=status, star_level=star_level,
                                balance_fen=balance_fen))  # fmt: skip
        for product_id in holds:
            session.add(BossHolding(msisdn=msisdn, product_id=product_id))


def balance(store, msisdn: str = NUMBER) -> int:
    with store.transaction() as session:
        return session.get(BossAccount, msisdn).balance_fen


def order_rows(store) -> list[BossOrder]:
    with store.transaction() as session:
        return list(session.scalars(select(BossOrder).order_by(BossOrder.at)))


def place(boss: StoreBoss, key: str, product_id: str = "V1", *, fee_fen: int = 2400,
          channel: str = "sms_hall", msisdn: str = NUMBER) -> BossResult:
    return boss.place_order(request_key=key, msisdn=msisdn, product_id=product_id,
                            channel=channel, fee_fen=fee_fen)  # fmt: skip


def test_the_store_boss_is_a_boss(store) -> None:
    assert isinstance(StoreBoss(store), Boss)


def test_a_prepaid_order_is_charged_once_however_often_it_is_asked(store) -> None:
    # Given a prepaid number with 50.00 yuan
    seed(store)
    boss = StoreBoss(store)
    # When the same order (one key) is placed three times
    results = [place(boss, "hall:1") for _ in range(3)]
    # Then it was placed once: one booking, one holding, 24.00 deducted once
    assert results[0].state == "placed" and results[0].fee_fen == 2400
    assert results[1] == results[0] == results[2]
    assert balance(store) == 5000 - 2400
    assert [(o.request_key, o.state) for o in order_rows(store)] == [("hall:1", "placed")]
    assert boss.holdings(NUMBER) == {"V1"}
    assert boss.find_order("hall:1") == results[0]
    assert boss.find_order("hall:2") is None


def test_a_postpaid_order_is_billed_later_not_deducted(store) -> None:
    seed(store, payment="postpaid", balance_fen=0)
    boss = StoreBoss(store)
    assert place(boss, "hall:1", "PP", fee_fen=1000).state == "placed"
    assert balance(store) == 0


@pytest.mark.parametrize(("given", "product_id", "channel", "reason"), [
    ({}, "NOPE", "sms_hall", "unknown_product"),
    ({}, "OLD", "sms_hall", "unknown_product"),  # withdrawn
    ({"msisdn": "+8613900000000"}, "V1", "sms_hall", "not_eligible"),  # no account
    ({"status": "suspended"}, "V1", "sms_hall", "not_eligible"),
    ({"star_level": 4}, "G5", "sms_hall", "not_eligible"),
    ({}, "PP", "sms_hall", "not_eligible"),  # prepaid asking for a postpaid product
    ({}, "E1", "counter", "not_eligible"),  # electronic only, asked at the counter
    ({"holds": ("V1",)}, "V1", "sms_hall", "already_held"),
    ({"holds": ("V2",)}, "V1", "sms_hall", "mutually_exclusive"),
    ({"balance_fen": 2399}, "V1", "sms_hall", "insufficient_balance"),
    # the first reason in the order wins
    ({"star_level": 0, "holds": ("G5",)}, "G5", "sms_hall", "not_eligible"),
    ({"holds": ("V1",), "balance_fen": 0}, "V1", "sms_hall", "already_held"),
    ({"holds": ("V2",), "balance_fen": 0}, "V1", "sms_hall", "mutually_exclusive"),
])  # fmt: skip
def test_each_refusal_says_why_is_booked_and_charges_nothing(store, given, product_id, channel,
                                                             reason) -> None:  # fmt: skip
    # Given an account (or none) that may not have the product
    account = {k: v for k, v in given.items() if k != "msisdn"}
    seed(store, **account)
    boss = StoreBoss(store)
    holdings_before = boss.holdings(NUMBER)
    # When it is ordered
    result = place(boss, "hall:9", product_id, channel=channel,
                   msisdn=given.get("msisdn", NUMBER))  # fmt: skip
    # Then it is refused with the reason, booked (a second call answers the same), no charge
    assert (result.state, result.reason) == ("refused", reason)
    assert place(boss, "hall:9", product_id, channel=channel,
                 msisdn=given.get("msisdn", NUMBER)) == result  # fmt: skip
    assert balance(store) == account.get("balance_fen", 5000)
    assert boss.holdings(NUMBER) == holdings_before
    assert [o.state for o in order_rows(store)] == ["refused"]


def test_electronic_only_products_sell_through_the_hall_and_the_app(store) -> None:
    seed(store)
    boss = StoreBoss(store)
    assert place(boss, "hall:1", "E1", fee_fen=500, channel="sms_hall").state == "placed"
    boss.cancel(request_key="c:1", msisdn=NUMBER, product_id="E1")
    assert place(boss, "app:1", "E1", fee_fen=500, channel="app").state == "placed"


def test_check_order_is_the_same_rule_for_a_quote(store) -> None:
    # The pure form names the product in the way, which the booked reason cannot
    held = [Product(product_id="V2", name="视频会员B", monthly_fee_fen=2000,
                    exclusive_group="video")]  # fmt: skip
    seed(store)
    boss = StoreBoss(store)
    refusal = check_order(account=boss.account(NUMBER), product=boss.product("v1"), held=held,
                          channel="sms_hall", fee_fen=2400)  # fmt: skip
    assert refusal is not None and refusal.reason == "mutually_exclusive"
    assert refusal.other is not None and refusal.other.name == "视频会员B"


def test_an_answer_lost_after_the_commit_is_found_and_never_charged_twice(store) -> None:
    # Given a BOSS that does the next order but loses its answer
    seed(store)
    faults = BossFaults()
    faults.timeout_next(1, after_commit=True)
    boss = StoreBoss(store, faults=faults)
    # When the order is placed, it times out
    with pytest.raises(BossTimeout):
        place(boss, "hall:1")
    # Then the BOSS has it, charged once; asking again with the key answers it, no new charge
    found = boss.find_order("hall:1")
    assert found is not None and found.state == "placed"
    assert balance(store) == 2600
    assert place(boss, "hall:1") == found
    assert balance(store) == 2600 and len(order_rows(store)) == 1


def test_a_request_lost_before_the_boss_did_anything_leaves_nothing(store) -> None:
    seed(store)
    faults = BossFaults()
    faults.timeout_next(1, after_commit=False)
    faults.fail_next(1)
    boss = StoreBoss(store, faults=faults)
    with pytest.raises(BossTimeout):
        place(boss, "hall:1")
    with pytest.raises(BossError):
        place(boss, "hall:1")
    assert boss.find_order("hall:1") is None and balance(store) == 5000
    # And the faults used up, the same key places it once
    assert place(boss, "hall:1").state == "placed" and balance(store) == 2600


def test_an_answer_slower_than_the_timeout_is_a_timeout_after_the_commit(store) -> None:
    seed(store)
    boss = StoreBoss(store, timeout_seconds=1e-9)  # every call is too slow for it
    with pytest.raises(BossTimeout, match="answered after"):
        place(boss, "hall:1")
    assert boss.find_order("hall:1").state == "placed"


def test_a_negative_fee_is_bad_input(store) -> None:
    seed(store)
    with pytest.raises(InputError, match="fee_fen"):
        place(StoreBoss(store), "hall:1", fee_fen=-1)
    with pytest.raises(InputError, match="n must not be negative"):
        BossFaults().timeout_next(-1)


def test_cancel_removes_the_holding_once_per_key(store) -> None:
    seed(store, holds=("V2",))
    boss = StoreBoss(store)
    first = boss.cancel(request_key="hall:cancel:5", msisdn=NUMBER, product_id="v2")
    assert first.state == "cancelled" and boss.holdings(NUMBER) == set()
    # a re-run of the same request answers the same; a new request finds nothing held
    assert boss.cancel(request_key="hall:cancel:5", msisdn=NUMBER, product_id="V2") == first
    again = boss.cancel(request_key="hall:cancel:6", msisdn=NUMBER, product_id="V2")
    assert (again.state, again.reason) == ("refused", "not_held")
    assert balance(store) == 5000


def test_reads_accounts_products_and_holdings(store) -> None:
    seed(store, holds=("E1",))
    boss = StoreBoss(store)
    account = boss.account(NUMBER)
    assert (account.plan_name, account.balance_fen, account.star_level) == ("畅享58", 5000, 3)
    assert boss.account("+8613900000000") is None
    assert [p.product_id for p in boss.products(zone="42")] == ["V2", "V1"]  # by rank
    assert "OLD" not in {p.product_id for p in boss.products()}
    assert boss.product("v1").product_id == "V1"  # case-insensitive
    assert boss.product("nope") is None
    assert boss.holdings(NUMBER) == {"E1"}


# ----------------------------------------------------------------------------- plans


def seed_plans(store, *, plan_id: str = "P-58") -> None:
    """Plans as ``hall seed`` loads them (category plan, no zone, keyed by the compact
    code); the account is on ``plan_id``, the warehouse's id of 畅享58."""
    with store.transaction() as session:
        session.add_all([
            BossProduct(product_id="P58", name="畅享58", category="plan", monthly_fee_fen=5800,
                        payment="prepaid", rank=3),
            BossProduct(product_id="P38", name="畅享38", category="plan", monthly_fee_fen=3800,
                        payment="prepaid", rank=2),
            BossProduct(product_id="Q39", name="全球通39", category="plan",
                        monthly_fee_fen=3900, payment="postpaid", rank=2),
        ])  # fmt: skip
        session.get(BossAccount, NUMBER).plan_id = plan_id


def test_a_plan_change_sets_the_plan_once_holds_nothing_charges_nothing(store) -> None:
    # Given a prepaid account on 畅享58 with 50.00 yuan
    seed(store)
    seed_plans(store)
    boss = StoreBoss(store)
    # When the change to 畅享38 (one key) is asked three times
    results = [place(boss, "hall:7", "p38", fee_fen=0) for _ in range(3)]
    # Then it is placed once, no fee, nothing held, the account on the new plan
    assert results[0].state == "placed" and results[0].fee_fen == 0
    assert results[1] == results[0] == results[2]
    account = boss.account(NUMBER)
    assert (account.plan_id, account.plan_name, account.balance_fen) == ("P38", "畅享38", 5000)
    assert boss.holdings(NUMBER) == set()
    assert [(o.product_id, o.state, o.fee_fen) for o in order_rows(store)] == [
        ("P38", "placed", 0)]
    # And a fee passed for a plan is not charged (a plan is billed monthly)
    assert place(boss, "hall:8", "P58", fee_fen=5800).fee_fen == 0
    assert balance(store) == 5000 and boss.account(NUMBER).plan_id == "P58"
    # And a new request for the plan now held is refused
    assert place(boss, "hall:9", "P58", fee_fen=0).reason == "already_held"


@pytest.mark.parametrize(("given", "product_id", "reason"), [
    ({}, "P58", "already_held"),  # on P-58, whose code is P58
    ({"plan_id": "P58"}, "P58", "already_held"),  # after a change: the code itself
    ({}, "Q39", "not_eligible"),  # a postpaid plan for a prepaid account
    ({"status": "suspended"}, "P38", "not_eligible"),
    ({}, "P99", "unknown_product"),
])  # fmt: skip
def test_a_plan_change_refused_says_why_and_changes_nothing(store, given, product_id,
                                                             reason) -> None:  # fmt: skip
    seed(store, **{k: v for k, v in given.items() if k == "status"})
    seed_plans(store, **{k: v for k, v in given.items() if k == "plan_id"})
    boss = StoreBoss(store)
    before = boss.account(NUMBER)
    result = place(boss, "hall:9", product_id, fee_fen=0)
    assert (result.state, result.reason) == ("refused", reason)
    assert boss.account(NUMBER) == before and boss.holdings(NUMBER) == set()


def test_check_order_knows_the_account_is_on_the_plan() -> None:
    from jingxin.hall.boss import Account, plan_code

    assert plan_code("P4G-034-C24") == "P4G034C24" and plan_code("y5g-123456-c24") == "Y5G123456C"
    plan = Product(product_id="P4G034C24", name="4G畅享34元", monthly_fee_fen=3400,
                   category="plan", payment="postpaid")
    on = Account(msisdn=NUMBER, plan_id="P4G-034-C24", plan_name="4G畅享34元",
                 payment="postpaid", status="active", star_level=1, balance_fen=0)
    refusal = check_order(account=on, product=plan, held=[], channel="sms_hall", fee_fen=0)
    assert refusal is not None and refusal.reason == "already_held"
    other = Account(msisdn=NUMBER, plan_id="P4G-058", plan_name="", payment="postpaid",
                    status="active", star_level=1, balance_fen=0)
    assert check_order(account=other, product=plan, held=[], channel="sms_hall",
                       fee_fen=0) is None  # fmt: skip


def test_two_racing_calls_with_one_key_place_one_order(pg_url) -> None:
    # Given PostgreSQL (real row locks and unique keys) and one prepaid account
    store = open_store(pg_url, upgrade=True)
    try:
        seed(store)
        boss = StoreBoss(store, timeout_seconds=30)
        results: list[BossResult] = []
        barrier = threading.Barrier(4)

        def twin() -> None:
            barrier.wait()
            results.append(place(boss, "hall:77"))

        # When four workers place the same order at once
        threads = [threading.Thread(target=twin) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then all have the one answer, and the number paid once
        assert len(results) == 4 and len(set(results)) == 1 and results[0].state == "placed"
        assert balance(store) == 2600
        with store.transaction() as session:
            assert session.scalar(select(func.count()).select_from(BossOrder)) == 1
    finally:
        store.dispose()
