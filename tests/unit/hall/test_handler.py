"""The hall's MO handler on a real store: menu, zones, queries, feedback, complaints,
garbage, sessions (Y with nothing pending, expiry), idempotent re-runs, a failing command,
and the hall in the inbox's default registry (TD still wins)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from jingxin.config import HallSettings, Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import (
    BossAccount,
    BossProduct,
    Campaign,
    HallComplaint,
    HallFeedback,
    HallInteraction,
    HallOrder,
    HallSession,
    MoMessage,
    MoOutcome,
    OptOut,
    SubscriberState,
)
from jingxin.dispatch.attribution import Attribution
from jingxin.dispatch.handlers import HandlerContext, InboundMessage, default_registry, run_pending
from jingxin.dispatch.reply import ReplySent
from jingxin.errors import StoreError
from jingxin.hall.boss import Account, Product, StoreBoss
from jingxin.hall.handler import HallHandler
from jingxin.hall.menu import load_menu
from jingxin.hall.sessions import fresh_session, load_sessions, save_sessions

NOW = datetime(2026, 10, 8, 4, 0, tzinfo=UTC)
ME = "+8613912345678"
STRANGER = "+8613700000000"
_ids = itertools.count(1)


@pytest.fixture
def store(tmp_path, migrated_sqlite) -> Iterator:
    opened = open_store(migrated_sqlite(tmp_path / "hall.db"))
    yield opened
    opened.dispose()


@pytest.fixture
def either_store(store_url) -> Iterator:
    """The store on SQLite and on PostgreSQL, where some writes take a path of their own."""
    opened = open_store(store_url)
    yield opened
    opened.dispose()


# ----------------------------------------------------------------------------- fakes


@dataclass
class CounterBoss:
    """A BOSS that knows one subscriber and a small catalogue; counts catalogue reads."""

    accounts: dict[str, Account] = field(default_factory=lambda: {ME: Account(
        msisdn=ME, plan_id="P58", plan_name="畅享58元套餐", payment="prepaid", status="active",
        star_level=3, balance_fen=5050, data_quota_mb=10240, data_used_mb=1536,
        voice_quota_min=500, voice_used_min=20, sms_quota=100, sms_used=3)})  # fmt: skip
    catalogue: list[Product] = field(default_factory=lambda: [
        Product("AQY", "爱奇艺会员", 1500, zone="41", trial_days=7, rank=2),
        Product("TXSP", "腾讯视频会员", 1500, zone="41", trial_days=7, rank=1),
        Product("LL10", "10GB流量包", 3000, zone="42", rank=1),
        Product("JT5", "5元来电提醒", 499, zone="42", rank=2),
    ])  # fmt: skip
    held: set[str] = field(default_factory=lambda: {"TXSP"})
    product_reads: int = 0

    def account(self, msisdn: str) -> Account | None:
        return self.accounts.get(msisdn)

    def products(self, zone: str | None = None) -> list[Product]:
        self.product_reads += 1
        return [p for p in self.catalogue if zone is None or p.zone == zone]

    def product(self, product_id: str) -> Product | None:
        return next((p for p in self.catalogue if p.product_id.lower() == product_id.lower()),
                    None)  # fmt: skip

    def holdings(self, msisdn: str) -> set[str]:
        return set(self.held) if msisdn in self.accounts else set()


class BrokenBoss(CounterBoss):
    """A BOSS whose account lookups fail: one number's with a bug, another's with the store."""

    def account(self, msisdn: str) -> Account | None:
        if msisdn == STRANGER:
            raise StoreError("reading the BOSS account failed: the database is gone")
        raise RuntimeError("BOSS adapter bug")


def mo(text: str, *, msisdn: str = ME, at: datetime = NOW, service_number: str = "10086",
       mo_id: int | None = None, tenant: str | None = None) -> InboundMessage:  # fmt: skip
    attribution = None
    if tenant is not None:
        attribution = Attribution(message_id=1, tenant_id=tenant, campaign_id=1,
                                  source="campaign", source_id="1", arm=None,
                                  sent_at=at - timedelta(hours=1))  # fmt: skip
    return InboundMessage(id=mo_id or next(_ids), channel="sim", msisdn=msisdn,
                          service_number=service_number, text=text, received_at=at,
                          attribution=attribution)  # fmt: skip


def hall(boss=None, **settings) -> HallHandler:
    boss = boss or CounterBoss()
    return HallHandler(menu=load_menu(), settings=HallSettings(**settings),
                       boss_factory=lambda _store: boss)  # fmt: skip


def answer(handler: HallHandler, store, *mos: InboundMessage) -> list[str]:
    results = handler.handle_batch(list(mos), context=HandlerContext(store=store, now=NOW))
    assert all(r.reply_source == "hall" for r in results)
    return [r.reply for r in results]


def rows(store, model) -> list:
    with store.transaction() as session:
        return list(session.scalars(select(model)))


def count(store, model) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


# ----------------------------------------------------------------------------- queries


def test_menu_zones_and_queries(either_store) -> None:
    store = either_store  # PostgreSQL reads the campaigns with the batch's other reads
    # Given the tenant's campaigns: two current ones, a draft, and another tenant's
    with store.transaction() as session:
        for name, status, tenant, minutes in [("国庆流量节", "running", "operator", 1),
                                              ("双十一预热", "scheduled", "operator", 2),
                                              ("草稿", "draft", "operator", 3),
                                              ("别人的活动", "running", "acme", 4)]:  # fmt: skip
            session.add(Campaign(tenant_id=tenant, name=name, category="marketing",
                                 status=status, created_at=NOW + timedelta(minutes=minutes)))
    boss = CounterBoss()
    # When the subscriber asks for the menu, each zone, the balance, usage and plan
    menu, z41, z42, z43, ye, ll, tc = answer(hall(boss), store, *map(mo, [
        "？", "４１", "42", "43", "YE", "cxll", "查套餐"]))  # fmt: skip
    # Then each is answered from the menu, the BOSS and the campaign store
    assert menu == load_menu().halls[0].menu
    assert z41.splitlines()[1:3] == ["TXSP 腾讯视频会员：免费体验7天，之后15元/月",
                                     "AQY 爱奇艺会员：免费体验7天，之后15元/月"]  # fmt: skip
    assert "如KTTXSP" in z41
    assert "前3个月享8折优惠" in z42
    assert "LL10 10GB流量包：原价30元/月，优惠价24元/月" in z42
    assert "JT5 5元来电提醒：原价4.99元/月，优惠价3.99元/月" in z42  # 399.2 fen, rounded
    assert z43.splitlines()[1:] == ["1. 双十一预热", "2. 国庆流量节", "回复0查看菜单。"]
    assert ye == "尊敬的客户，您的账户余额为50.5元（畅享58元套餐）。回复0查看菜单。"
    assert ll.startswith("本月您已用流量1.5GB，剩余8.5GB（共10GB）；通话已用20分钟，剩余480分钟")
    assert "已订购业务：腾讯视频会员(TXSP)" in tc
    # And one catalogue read per zone for the whole batch
    assert boss.product_reads == 2
    # And each MO is recorded as a query, zones with their zone
    recorded = {(r.command, r.zone, r.kind, r.outcome) for r in rows(store, HallInteraction)}
    assert recorded == {("menu", None, "query", "answered"), ("zone", "41", "query", "answered"),
                        ("zone", "42", "query", "answered"), ("zone", "43", "query", "answered"),
                        ("balance", None, "query", "answered"),
                        ("usage", None, "query", "answered"), ("plan", None, "query", "answered")}


class NoCatalogue:
    """A BOSS as an adapter without ``catalogue()``: asked one zone or product at a time."""

    def __init__(self, boss) -> None:
        self._boss = boss

    def __getattr__(self, name: str):
        if name in ("catalogue", "catalogue_read", "snapshot_read"):
            raise AttributeError(name)
        return getattr(self._boss, name)


def test_a_batch_answers_from_one_catalogue_read_as_it_would_a_product_at_a_time(either_store) -> None:
    # (PostgreSQL: the catalogue and the accounts come with the batch's other reads)
    store = either_store
    with store.transaction() as session:
        session.add_all([
            BossProduct(product_id="AQY", name="爱奇艺会员", monthly_fee_fen=1500,
                        zone="41", trial_days=7, rank=2),
            BossProduct(product_id="TXSP", name="腾讯视频会员", monthly_fee_fen=1500,
                        zone="41", trial_days=7, rank=1),
            BossProduct(product_id="LL10", name="10GB流量包", monthly_fee_fen=3000,
                        zone="42", rank=1),
            BossProduct(product_id="OLD", name="旧业务", monthly_fee_fen=100, zone="42",
                        active=False),
            BossAccount(msisdn=ME, plan_id="P58", plan_name="畅享58", payment="prepaid",
                        status="active", star_level=3, balance_fen=5000),
        ])  # fmt: skip

    def answers(wrap) -> list[str]:
        # (each KT is declined with N: the second run finds the number as the first did)
        return answer(hall(wrap(StoreBoss(store))), store, *map(mo, [
            "41", "42", "KTaqy", "N", "ktll10", "N", "KTOLD", "KTNOPE", "YE"]))  # fmt: skip

    whole = answers(lambda boss: boss)
    assert whole == answers(NoCatalogue)
    assert "旧业务" not in whole[1] and "爱奇艺会员" in whole[2] and "10GB流量包" in whole[4]
    assert "50元" in whole[8]


def test_zone_lists_keep_to_the_limit_and_say_when_empty(store, tmp_path) -> None:
    boss = CounterBoss(catalogue=[Product(f"P{i}", f"产品{i}", 100, zone="41", rank=i)
                                  for i in range(15)])  # fmt: skip
    z41, z42, z43 = answer(hall(boss), store, mo("41"), mo("42"), mo("43"))
    assert len(z41.splitlines()) == 1 + 10 + 1  # title, at most 10, how to order
    # A product without a trial of its own gets the zone's (the order prices it the same)
    assert z41.splitlines()[1] == "P0 产品0：免费体验7天，之后1元/月"
    assert z42 == "每日特惠：当前暂无内容，敬请期待。回复0查看菜单。"
    assert z43 == "精彩活动：当前暂无内容，敬请期待。回复0查看菜单。"


def test_a_number_the_boss_does_not_know_is_told_so(store) -> None:
    replies = answer(hall(), store, *(mo(t, msisdn=STRANGER) for t in ("ye", "ll", "tc")))
    assert replies == ["未查询到您的账户信息，请确认号码是否正确，或拨打10086咨询。"] * 3
    assert {r.outcome for r in rows(store, HallInteraction)} == {"failed:no_account"}


def test_garbage_emoji_and_empty_get_the_way_back_to_the_menu(store) -> None:
    replies = answer(hall(), store, mo(""), mo("😀👍"), mo("asdf qwer"), mo("   "))
    assert replies == ["抱歉，未能识别您的指令。回复0查看菜单。"] * 4
    assert {(r.command, r.outcome) for r in rows(store, HallInteraction)} == {
        ("unknown", "unrecognised")}


def test_the_menu_file_overrides_texts(store, tmp_path) -> None:
    path = tmp_path / "menu.yaml"
    path.write_text(
        "halls:\n  - service_number: '10086'\n    tenant: acme\n    name: x\n    menu: 菜单\n"
        "    texts:\n      hall.unknown: 看不懂，发0\n      query.balance: 余额{balance}元\n",
        encoding="utf-8")  # fmt: skip
    handler = HallHandler(menu=load_menu(path), settings=HallSettings(),
                          boss_factory=lambda _s: CounterBoss())  # fmt: skip
    results = handler.handle_batch([mo("??!x"), mo("ye", tenant="other")],
                                   context=HandlerContext(store=store, now=NOW))  # fmt: skip
    assert [r.reply for r in results] == ["看不懂，发0", "余额50.5元"]
    # The tenant is the hall's, not the attributed message's
    assert {r.reply_tenant for r in results} == {"acme"}
    assert {r.tenant_id for r in rows(store, HallInteraction)} == {"acme"}


# ----------------------------------------------------------------------------- feedback


def test_a_complaint_is_recorded_and_marks_the_number_complaint_sensitive(either_store) -> None:
    store = either_store
    complaint = mo("你们天天发短信骚扰我，我要投诉！", at=NOW - timedelta(minutes=3))
    (reply,) = answer(hall(), store, complaint)
    (row,) = rows(store, HallComplaint)
    assert (row.mo_id, row.msisdn, row.tenant_id, row.category, row.state) == (
        complaint.id, ME, "operator", "marketing_sms", "open")
    assert row.text == complaint.text
    assert reply.startswith(f"您的投诉已受理（编号{row.id}）")
    (state,) = rows(store, SubscriberState)
    assert (state.msisdn, state.complaint_sensitive) == (ME, True)
    assert state.last_complaint_at == complaint.received_at
    # A re-run (the interaction lost, say) records nothing twice and answers the same
    with store.transaction() as session:
        session.query(HallInteraction).delete()
    assert answer(hall(), store, complaint) == [reply]
    assert count(store, HallComplaint) == 1


def test_a_complaint_keeps_what_else_the_state_of_the_number_says(either_store) -> None:
    store = either_store
    with store.transaction() as session:
        session.add(SubscriberState(msisdn=ME, timezone="Asia/Urumqi", in_service=False))
    first, second = mo("我要投诉", at=NOW - timedelta(hours=2)), mo("12321举报", at=NOW)
    one, two = answer(hall(), store, first, second)
    tickets = sorted(r.id for r in rows(store, HallComplaint))
    assert one.startswith(f"您的投诉已受理（编号{tickets[0]}）")
    assert two.startswith(f"您的投诉已受理（编号{tickets[1]}）")
    (state,) = rows(store, SubscriberState)
    assert (state.timezone, state.in_service, state.complaint_sensitive) == ("Asia/Urumqi", False, True)
    assert state.last_complaint_at == second.received_at


def test_nps_scores_and_suggestions_are_stored_once_per_mo(store) -> None:
    nps, bad, idea, empty = mo("MY９"), mo("my11"), mo("JY 晚上网速太慢"), mo("建议")
    replies = answer(hall(), store, nps, bad, idea, empty)
    assert replies[0] == "感谢您的评价（9分），我们会持续改进服务！"
    assert replies[1].startswith("请回复0-10之间的分数")
    assert replies[2] == "感谢您的建议，我们已记录并会认真研究改进。"
    assert replies[3].startswith("请回复JY+您的建议内容")
    stored = sorted((r.mo_id, r.kind, r.score, r.text) for r in rows(store, HallFeedback))
    assert stored == [(nps.id, "nps", 9, ""), (idea.id, "suggestion", None, "JY 晚上网速太慢")]


# ----------------------------------------------------------------------------- idempotency


def test_a_second_run_answers_with_the_stored_reply_and_runs_nothing(either_store) -> None:
    store = either_store
    boss = CounterBoss()
    handler = hall(boss)
    first = answer(handler, store, mo("41", mo_id=901), mo("my8", mo_id=902))
    boss.catalogue.clear()  # the zone would now read empty
    again = handler.handle_batch([mo("41", mo_id=901), mo("my8", mo_id=902)],
                                 context=HandlerContext(store=store, now=NOW))  # fmt: skip
    assert [r.reply for r in again] == first
    assert all("answered before" in r.detail for r in again)
    assert count(store, HallInteraction) == 2 and count(store, HallFeedback) == 1
    assert boss.product_reads == 1


def test_a_failing_command_gets_a_busy_reply_and_the_rest_of_the_batch_is_answered(store) -> None:
    # Given a BOSS adapter that fails on account lookups
    bug, menu = mo("ye"), mo("0")
    replies = answer(hall(BrokenBoss()), store, bug, menu)
    # Then that MO is told to try later and recorded as an error; the menu still answers
    assert replies[0] == "系统繁忙，请稍后再试。"
    assert replies[1] == load_menu().halls[0].menu
    outcomes = {r.mo_id: r.outcome for r in rows(store, HallInteraction)}
    assert outcomes == {bug.id: "error:RuntimeError", menu.id: "answered"}


def test_a_store_failure_propagates_and_records_nothing(store) -> None:
    with pytest.raises(StoreError, match="the database is gone"):
        answer(hall(BrokenBoss()), store, mo("0"), mo("ye", msisdn=STRANGER))
    assert count(store, HallInteraction) == 0


# ----------------------------------------------------------------------------- sessions


def seed_boss(store) -> StoreBoss:
    with store.transaction() as session:
        session.add(BossAccount(msisdn=ME, plan_id="P58", plan_name="畅享58", payment="prepaid",
                                balance_fen=10_000))  # fmt: skip
        session.add(BossProduct(product_id="LL10", name="10GB流量包", monthly_fee_fen=3000,
                                zone="42", rank=1))  # fmt: skip
    return StoreBoss(store)


def test_y_with_nothing_pending_and_qx_with_nothing_to_drop(store) -> None:
    replies = answer(hall(), store, mo("Y"), mo("qx"))
    assert replies == ["您当前没有待确认的业务。回复0查看菜单。"] * 2
    assert count(store, HallSession) == 0  # nothing to remember


def test_an_order_and_its_y_in_one_batch_place_it_and_ask_the_survey(either_store) -> None:
    store = either_store
    boss = seed_boss(store)
    handler = hall(boss)
    # When the subscriber looks at 42, orders, confirms and scores, all in one batch
    looked, kt, y, score = mo("42"), mo("KTLL10", at=NOW + timedelta(seconds=5)), \
        mo("y", at=NOW + timedelta(seconds=30)), mo("9", at=NOW + timedelta(seconds=60))
    replies = answer(handler, store, looked, kt, y, score)
    # Then the order is placed once, keyed by the KT MO, at the zone-42 price
    (order,) = rows(store, HallOrder)
    assert (order.request_key, order.state, order.price_fen, order.zone) == (
        f"hall:{kt.id}", "placed", 2400, "42")
    assert "回复Y确认" in replies[1]
    # And the placed reply asks the survey, whose bare answer is the NPS score
    assert replies[2].endswith(load_menu().halls[0].survey.question)
    assert replies[3] == "感谢您的评价（9分），我们会持续改进服务！"
    (nps,) = rows(store, HallFeedback)
    assert (nps.score, nps.survey) == (9, "nps-hall")
    # And the session remembers the zone but nothing is pending any more
    (session_row,) = rows(store, HallSession)
    assert (session_row.menu, session_row.pending_kind) == ("42", None)
    kinds = {r.mo_id: (r.command, r.kind, r.outcome, r.zone) for r in rows(store, HallInteraction)}
    assert kinds[y.id] == ("confirm", "order", "placed", "42")
    # And a second Y finds nothing pending
    assert answer(handler, store, mo("y", at=NOW + timedelta(seconds=90))) == [
        "您当前没有待确认的业务。回复0查看菜单。"]
    assert count(store, HallOrder) == 1


def test_y_after_the_confirmation_expired_places_nothing(either_store) -> None:
    store = either_store
    boss = seed_boss(store)
    handler = hall(boss, confirm_seconds=60)
    answer(handler, store, mo("kt ll10"))  # one batch: the pending is stored
    (late,) = answer(handler, store, mo("Y", at=NOW + timedelta(seconds=61)))
    assert late.startswith("确认已超时")
    assert count(store, HallOrder) == 0
    (row,) = [r for r in rows(store, HallInteraction) if r.command == "confirm"]
    assert row.outcome == "failed:confirmation_expired"
    # And the expired pending is gone: another Y has nothing to confirm
    (again,) = answer(handler, store, mo("Y", at=NOW + timedelta(seconds=62)))
    assert again == "您当前没有待确认的业务。回复0查看菜单。"


def test_qx_drops_the_pending_order(store) -> None:
    handler = hall(seed_boss(store))
    replies = answer(handler, store, mo("kt ll10"), mo("QX"), mo("y"))
    assert replies[1] == "已为您取消本次办理。回复0查看菜单。"
    assert replies[2] == "您当前没有待确认的业务。回复0查看菜单。"
    assert count(store, HallOrder) == 0


def test_the_plan_code_of_a_renewal_message_changes_the_plan_on_y(store) -> None:
    # Given the BOSS with a plan (as `hall seed` loads the warehouse's P4G-034-C24)
    boss = seed_boss(store)
    with store.transaction() as session:
        session.add(BossProduct(product_id="P4G034C24", name="4G畅享34元(24个月合约)",
                                category="plan", monthly_fee_fen=3400, payment="prepaid",
                                rank=2))  # fmt: skip
    handler = hall(boss)
    # When the subscriber replies the code the renewal message taught, then Y, in 2 batches
    xy = mo("XYP4G034C24")
    (quoted,) = answer(handler, store, xy)
    (placed,) = answer(handler, store, mo("y", at=NOW + timedelta(seconds=30)))
    # Then the quote names the plan and its fee, and the Y changes the plan, once
    assert quoted == ("您将变更为4G畅享34元(24个月合约)，月费34.00元，次月生效。"
                      "请在10分钟内回复Y确认，回复QX放弃。")  # fmt: skip
    assert placed.startswith("套餐变更成功，4G畅享34元(24个月合约)将于次月1日生效")
    (order,) = rows(store, HallOrder)
    assert (order.request_key, order.state, order.price_fen) == (f"hall:{xy.id}", "placed", 0)
    assert boss.account(ME).plan_id == "P4G034C24" and boss.holdings(ME) == set()
    # And now on it, the same code is refused saying so; an unknown code says it is unknown
    again, unknown, bare = answer(handler, store, mo("xyp4g034c24"), mo("XYZZ9"), mo("xy"))
    assert again.startswith("您当前已是4G畅享34元(24个月合约)，无需变更")
    assert unknown.startswith("未找到套餐代码XYZZ9") and bare.startswith("请回复XY+套餐代码")
    outcomes = [r.outcome for r in sorted(rows(store, HallInteraction), key=lambda r: r.mo_id)
                if r.command == "order"]  # fmt: skip
    assert outcomes == ["pending", "failed:already_held", "failed:unknown_product"]
    assert count(store, HallOrder) == 1


def test_sessions_save_portably_even_when_a_twin_inserted_first(store_url) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        fresh = fresh_session(ME, "10086", tenant_id="operator")
        waiting = fresh.with_pending("order", {"mo_id": 7}, at=NOW, seconds=600)
        # Given a twin run that stored the session first
        with store.transaction() as session:
            save_sessions(session, [fresh.with_menu("41", at=NOW, seconds=1800)])
        # When this run saves its own (believing there was no row), the twin's is updated
        with store.transaction() as session:
            save_sessions(session, [waiting])
        with store.transaction() as session:
            (state,) = load_sessions(session, [(ME, "10086")]).values()
        assert state.stored and state.menu is None
        pending = state.pending_at(NOW + timedelta(seconds=599))
        assert (pending.kind, dict(pending.payload), pending.expired) == ("order", {"mo_id": 7},
                                                                          False)  # fmt: skip
        assert state.pending_at(NOW + timedelta(seconds=600)).expired
    finally:
        store.dispose()


def test_many_sessions_save_and_load_in_one_go_the_last_state_of_a_key_winning(either_store) -> None:
    store = either_store
    numbers = [f"+86139{n:08d}" for n in range(450)]  # more than one SQLite chunk
    states = [fresh_session(m, "10086", tenant_id="operator").with_menu("41", at=NOW, seconds=60)
              for m in numbers]  # fmt: skip
    with store.transaction() as session:
        save_sessions(session, states[:200])
    again = states[0].with_menu("42", at=NOW, seconds=60)
    with store.transaction() as session:  # 200 updates, 250 inserts, one key twice
        save_sessions(session, [*states, states[0].with_menu("43", at=NOW, seconds=60), again])
    with store.reading() as session:
        loaded = load_sessions(session, [(m, "10086") for m in numbers] + [(ME, "10086")])
    assert len(loaded) == 450 and (ME, "10086") not in loaded
    assert loaded[(numbers[0], "10086")].menu == "42"
    assert {s.menu for k, s in loaded.items() if k[0] != numbers[0]} == {"41"}
    assert count(store, HallSession) == 450


# ----------------------------------------------------------------------------- the inbox


@dataclass
class Replies:
    """A replier that answers like the delivery entry (a known key is a duplicate)."""

    sent: dict[int, dict] = field(default_factory=dict)

    def __call__(self, store, *, mo_id, msisdn, service_number, text, tenant_id, now=None,
                 source="inbox") -> ReplySent:  # fmt: skip
        if mo_id in self.sent:
            return ReplySent(outcome="duplicate", message_id=mo_id)
        self.sent[mo_id] = {"text": text, "source": source, "tenant_id": tenant_id,
                            "service_number": service_number}  # fmt: skip
        return ReplySent(outcome="queued", message_id=mo_id)


def add_mo(store, text: str, *, service_number: str = "10086") -> int:
    with store.transaction() as session:
        row = MoMessage(channel="sim-smpp", msisdn=ME, service_number=service_number,
                        text=text, coding=8, parts=1, parts_expected=1, complete=True,
                        undecodable=False, received_at=NOW, dedup_key=f"hall:{next(_ids)}")
        session.add(row)
        session.flush()
        return row.id


def test_the_inbox_runs_the_hall_and_unsubscribe_words_still_win(store_url) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        # Given a menu query and a TD to the hall's number (with an extension), and a text
        # to a number that has no hall
        menu_id, td_id = add_mo(store, "0", service_number="1008601"), add_mo(store, "TD")
        other_id = add_mo(store, "0", service_number="10690000")
        replier = Replies()
        registry = default_registry(Settings())
        run_pending(store, registry=registry, context=HandlerContext(reply=replier), now=NOW)
        # Then the hall answered the menu, the unsubscribe handler the TD, nobody the other
        assert replier.sent[menu_id]["source"] == "hall"
        assert replier.sent[menu_id]["text"].startswith("10086短信营业厅")
        assert replier.sent[td_id]["source"] == "inbox"
        assert other_id not in replier.sent
        with store.transaction() as session:
            outcomes = {o.mo_id: (o.outcome, o.handler) for o in session.scalars(select(MoOutcome))}
            assert session.scalar(select(func.count()).select_from(OptOut)) == 1
        assert outcomes == {menu_id: ("handled", "hall"), td_id: ("handled", "unsubscribe"),
                            other_id: ("no_handler", None)}  # fmt: skip
    finally:
        store.dispose()


def test_a_disabled_hall_is_not_registered() -> None:
    enabled = default_registry(Settings())
    disabled = default_registry(Settings(hall=HallSettings(enabled=False)))
    assert len(enabled) == len(disabled) + 1


def test_points_in_one_batch_are_read_once_and_a_redemption_is_seen(either_store) -> None:
    from jingxin.data.store.models import Merchant, PointsEntry

    store = either_store  # PostgreSQL reads the points with the batch's other reads

    # Given 300 points for one number, 50 for another, and a merchant for the rewards
    other = "+8613900139999"
    with store.transaction() as session:
        session.add_all([PointsEntry(key="grant:1", msisdn=ME, delta=300, reason="test"),
                         PointsEntry(key="grant:2", msisdn=other, delta=50, reason="test"),
                         Merchant(id="M001", name="星巴克", msisdn="+8613700000101")])  # fmt: skip
    # When one batch asks the balance, redeems 100 points, and asks again
    replies = answer(hall(), store, mo("JF"), mo("JF", msisdn=other), mo("DHK2"), mo("JF"))
    # Then each number hears its own balance, and the one after the redemption the new one
    assert "积分300分" in replies[0] and "积分50分" in replies[1]
    assert replies[2].startswith("兑换成功")
    assert "积分200分" in replies[3]
