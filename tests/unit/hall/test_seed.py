"""Seeding the BOSS stand-in from the warehouse: products from the catalogue, accounts with
plan and latest usage, open holdings of catalogue products; re-runnable; bad catalogues
refused naming the file, the entry and the field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import func, select, update

from jingxin.data.store.engine import open_store
from jingxin.data.store.models.hall import (
    BossAccount,
    BossHolding,
    BossProduct,
    HallStaff,
    Merchant,
)
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import InputError
from jingxin.hall import seed
from jingxin.hall.seed import (
    DEMO_MERCHANTS,
    DEMO_STAFF,
    load_catalogue,
    pseudo_balance_fen,
    seed_boss,
    seed_demo_hall,
)

D = dt.date

# A catalogue of three: two products standing for warehouse ids, one for nothing there.
CATALOGUE = """
products:
  - {product_id: LL10, name: 1GB流量包, category: data_pack, monthly_fee_fen: 1000,
     zone: 42, exclusive_group: data_pack, rank: 1, warehouse_ids: [DP, DP-OLD]}
  - {product_id: RBT5, name: 5元彩铃, category: ringback, monthly_fee_fen: 500,
     warehouse_ids: [RB]}
  - {product_id: TXSP, name: 腾讯视频会员, monthly_fee_fen: 1500, zone: "41", trial_days: 7}
"""

PLANS = [
    ("P1", "畅享18", 1, "prepaid", 18.0, 1024, 100, 50, 0.03, 0.15, 0.1, 0, 4),
    ("Q2", "全球通39", 2, "postpaid", 39.0, 6144, 300, 100, 0.03, 0.15, 0.1, 12, 5),
]
SUBSCRIBERS = [
    (11, "+8613800000011", "china_mobile", "P1", "prepaid", "active", "F", None,
     D(2020, 1, 1), None, 3, "浦东新区", None, 4, False, None),
    (12, "+8613800000012", "china_mobile", "Q2", "postpaid", "suspended", "M", None,
     D(2021, 1, 1), None, 5, "徐汇区", None, 5, True, None),
    (13, "+8613800000013", "china_mobile", "ZZ", "prepaid", "active", None, None,
     D(2022, 1, 1), None, 0, "闵行区", None, 5, True, None),  # a plan the catalogue lacks
]
USAGE = [  # id, month, plan, data, voice, sms, bill, topups, topup, dom, intl
    (11, D(2024, 5, 1), "P1", 300.4, 40.6, 3, 18.0, 1, 20.0, 0, 0),
    (11, D(2024, 6, 1), "P1", 900.5, 80.2, 7, 18.0, 1, 20.0, 0, 0),
    (12, D(2024, 5, 1), "Q2", 5000.0, 250.0, 20, 39.0, 0, 0.0, 0, 0),
]
HOLDINGS = [  # id, product, start, end
    (11, "DP", D(2024, 2, 1), None),
    (11, "DP-OLD", D(2023, 1, 1), None),  # the same catalogue product: one holding, earliest
    (11, "RB", D(2020, 1, 1), D(2024, 6, 15)),  # ended: not held now, held in May
    (12, "RB", D(2024, 6, 10), None),  # started in June
    (12, "BB", D(2020, 1, 1), None),  # not in the catalogue
    (13, "DP", D(2024, 1, 1), None),
]


def _table(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    columns = list(zip(*rows, strict=True))
    return pa.table({f.name: pa.array(list(c), f.type) for f, c in zip(schema, columns,
                                                                        strict=True)},
                    schema=schema)  # fmt: skip


@pytest.fixture
def warehouse():
    wh = open_duckdb(":memory:")
    for name, rows in (("plans", PLANS), ("subscribers", SUBSCRIBERS), ("usage_monthly", USAGE),
                       ("holdings", HOLDINGS)):
        wh.con.create_table(name, _table(name, rows), overwrite=True)
    yield wh
    wh.close()


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE, encoding="utf-8")
    return path


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def _rows(store, model) -> list:
    with store.transaction() as session:
        return list(session.scalars(select(model)))


def _count(store, model) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_accounts_products_and_holdings_come_from_the_warehouse(store, warehouse,
                                                                catalogue) -> None:
    # When the BOSS is seeded from the tiny warehouse
    tally = seed_boss(store, warehouse, catalogue_path=catalogue)
    # Then every subscriber has an account with its plan and its latest month's use
    assert (tally.products, tally.retired, tally.accounts, tally.holdings) == (3, 0, 3, 3)
    accounts = {a.msisdn: a for a in _rows(store, BossAccount)}
    one = accounts["+8613800000011"]
    assert (one.plan_id, one.plan_name, one.payment, one.status, one.star_level) == (
        "P1", "畅享18", "prepaid", "active", 3)
    assert (one.data_quota_mb, one.voice_quota_min, one.sms_quota) == (1024, 100, 50)
    assert (one.data_used_mb, one.voice_used_min, one.sms_used) == (900, 80, 7)  # June
    assert one.balance_fen == pseudo_balance_fen(11)
    two = accounts["+8613800000012"]
    assert (two.status, two.balance_fen, two.data_used_mb, two.sms_used) == ("suspended", 0,
                                                                           5000, 20)
    three = accounts["+8613800000013"]  # unknown plan, no usage: named, zero quotas
    assert (three.plan_id, three.plan_name, three.data_quota_mb, three.data_used_mb) == (
        "ZZ", "", 0, 0)
    # And the holdings are the open ones of catalogue products, one per number and product
    held = {(h.msisdn[-2:], h.product_id): h.since for h in _rows(store, BossHolding)}
    assert set(held) == {("11", "LL10"), ("12", "RBT5"), ("13", "LL10")}
    assert held[("11", "LL10")] == dt.datetime(2022, 12, 31, 16, tzinfo=dt.UTC)  # CST midnight
    # And the products are the catalogue's, zone as text
    products = {p.product_id: p for p in _rows(store, BossProduct)}
    assert products["LL10"].zone == "42" and products["LL10"].exclusive_group == "data_pack"
    assert products["TXSP"].trial_days == 7 and products["RBT5"].zone is None


def test_as_of_and_limit(store, warehouse, catalogue) -> None:
    # When seeded as of the end of May, for the first two subscribers only
    tally = seed_boss(store, warehouse, catalogue_path=catalogue, as_of=D(2024, 5, 31), limit=2)
    # Then May's use is loaded, and what was held in May (the ringback of 11, not yet 12's)
    assert tally.accounts == 2
    accounts = {a.msisdn[-2:]: a for a in _rows(store, BossAccount)}
    assert set(accounts) == {"11", "12"}
    assert (accounts["11"].data_used_mb, accounts["11"].voice_used_min) == (300, 41)
    held = {(h.msisdn[-2:], h.product_id) for h in _rows(store, BossHolding)}
    assert held == {("11", "LL10"), ("11", "RBT5")}


def test_a_second_seed_updates_and_never_duplicates(store, warehouse, catalogue) -> None:
    # Given a seeded BOSS whose prepaid account has since been charged
    first = seed_boss(store, warehouse, catalogue_path=catalogue)
    with store.transaction() as session:
        session.execute(update(BossAccount).where(BossAccount.msisdn == "+8613800000011")
                        .values(balance_fen=123))  # fmt: skip
    # And the warehouse has new use and a new plan for 11
    warehouse.con.raw_sql("UPDATE usage_monthly SET data_mb = 2000 WHERE subscriber_id = 11 "
                          "AND month = DATE '2024-06-01'").fetchall()  # fmt: skip
    warehouse.con.raw_sql("UPDATE subscribers SET plan_id = 'Q2' WHERE subscriber_id = 11"
                          ).fetchall()
    # When it is seeded again
    second = seed_boss(store, warehouse, catalogue_path=catalogue)
    # Then the same rows are there, updated, the balance the BOSS's own
    assert first == second
    assert (_count(store, BossAccount), _count(store, BossHolding),
            _count(store, BossProduct)) == (3, 3, 5)  # fmt: skip (3 products and 2 plans)
    one = next(a for a in _rows(store, BossAccount) if a.msisdn == "+8613800000011")
    assert (one.plan_id, one.plan_name, one.data_used_mb, one.balance_fen) == (
        "Q2", "全球通39", 2000, 123)


def test_products_the_catalogue_drops_are_retired(store, warehouse, catalogue,
                                                  tmp_path) -> None:
    seed_boss(store, warehouse, catalogue_path=catalogue)
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(CATALOGUE.split("  - {product_id: RBT5")[0], encoding="utf-8")
    # When a catalogue without RBT5 and TXSP is seeded
    tally = seed_boss(store, warehouse, catalogue_path=smaller)
    # Then they stay (orders name them) but are withdrawn
    assert (tally.products, tally.retired) == (1, 2)
    active = {p.product_id: p.active for p in _rows(store, BossProduct)}
    assert active == {"LL10": True, "RBT5": False, "TXSP": False, "P1": True, "Q2": True}


def test_the_warehouse_plans_are_products_in_no_zone_once(store, warehouse,
                                                           catalogue) -> None:
    # Given a plan id with dashes, as the synthetic operator's are
    warehouse.con.raw_sql("UPDATE plans SET plan_id = 'P4G-034-C24', monthly_fee = 34.5 "
                          "WHERE plan_id = 'Q2'").fetchall()  # fmt: skip
    # When the BOSS is seeded twice
    first = seed_boss(store, warehouse, catalogue_path=catalogue)
    second = seed_boss(store, warehouse, catalogue_path=catalogue)
    # Then each plan is a product of category plan, keyed by its compact code, once
    assert first == second and first.plans == 2
    plans = {p.product_id: p for p in _rows(store, BossProduct) if p.category == "plan"}
    assert set(plans) == {"P1", "P4G034C24"}
    q = plans["P4G034C24"]
    assert (q.name, q.monthly_fee_fen, q.payment, q.rank, q.zone, q.active) == (
        "全球通39", 3450, "postpaid", 2, None, True)
    assert (plans["P1"].payment, plans["P1"].monthly_fee_fen) == ("prepaid", 1800)
    assert _count(store, BossProduct) == 5
    # And the zones list no plan
    from jingxin.hall.boss import StoreBoss

    boss = StoreBoss(store)
    assert all(p.category != "plan" for zone in ("41", "42") for p in boss.products(zone))
    # And the code is the one the renewal message teaches after XY
    import ibis

    from jingxin.journeys.triggers.renewal import order_code

    taught = order_code(ibis.literal("P4G-034-C24")).execute()
    assert taught == "XY" + q.product_id


def test_plans_sharing_a_code_or_a_product_id_are_named(store, warehouse, tmp_path) -> None:
    warehouse.con.raw_sql("UPDATE plans SET plan_id = 'P-1' WHERE plan_id = 'Q2'").fetchall()
    with pytest.raises(InputError, match="'P1' and 'P-1' share the order code XYP1"):
        seed_boss(store, warehouse)
    clash = tmp_path / "clash.yaml"
    clash.write_text("products: [{product_id: P1, name: x, monthly_fee_fen: 1}]",
                     encoding="utf-8")
    warehouse.con.raw_sql("UPDATE plans SET plan_id = 'Q2' WHERE plan_id = 'P-1'").fetchall()
    with pytest.raises(InputError, match="plan_id 'P1': its code P1 is a catalogue product"):
        seed_boss(store, warehouse, catalogue_path=clash)


def test_pages_and_chunks_cover_every_subscriber(store, warehouse, catalogue,
                                                 monkeypatch) -> None:
    # Given pages of two subscribers and chunks of one row
    monkeypatch.setattr(seed, "READ_PAGE", 2)
    monkeypatch.setattr(seed, "CHUNK", 1)
    # When seeded, Then every account and holding is there, once
    tally = seed_boss(store, warehouse, catalogue_path=catalogue)
    assert (tally.accounts, tally.holdings) == (3, 3)
    assert (_count(store, BossAccount), _count(store, BossHolding)) == (3, 3)


def test_the_packaged_catalogue_over_a_synthetic_warehouse(tmp_path, migrated_sqlite) -> None:
    from jingxin.data.synth import SynthParams, synthesize
    from jingxin.data.warehouse.directory import import_directory

    # Given a small synthetic operator in a DuckDB warehouse
    synthesize(params=SynthParams(subscribers=300, location_subscribers=5, location_days=1,
                                  cells=600), out=tmp_path / "synth")  # fmt: skip
    wh = open_duckdb(tmp_path / "wh.duckdb")
    import_directory(wh, tmp_path / "synth", rejects_dir=tmp_path / "rejects")
    store = open_store(migrated_sqlite(tmp_path / "store.db"))
    try:
        products = load_catalogue()
        mapping = ", ".join(f"('{w}', '{p.product_id}')" for p in products
                            for w in p.stands_for())  # fmt: skip
        ((expected,),) = wh.con.raw_sql(
            "SELECT count(DISTINCT (h.subscriber_id, m.product)) FROM holdings h JOIN "
            f"(VALUES {mapping}) m(wid, product) ON h.product_id = m.wid "
            "WHERE h.end_date IS NULL").fetchall()
        # When the BOSS is seeded twice with the packaged catalogue
        first = seed_boss(store, wh)
        second = seed_boss(store, wh)
        # Then every subscriber has an account and every open catalogue holding is held
        assert first == second
        assert first.accounts == 300 == _count(store, BossAccount)
        assert expected > 20 and first.holdings == expected == _count(store, BossHolding)
        zones = [p.zone for p in products]
        assert zones.count("41") == 10 and zones.count("42") == 5
        assert any(p.product_id == "RBT5" and p.monthly_fee_fen == 500 for p in products)
        prepaid = [a for a in _rows(store, BossAccount) if a.payment == "prepaid"]
        assert prepaid and len({a.balance_fen for a in prepaid}) > len(prepaid) // 2
    finally:
        store.dispose()
        wh.close()


@pytest.mark.parametrize(("text", "says"), [
    ("products: [{product_id: A1, name: x, monthly_fee_fen: 1, zone: '43'}]",
     "products[0].zone: Input should be '41' or '42'"),
    ("products:\n  - {product_id: A1, name: x, monthly_fee_fen: 1}\n"
     "  - {product_id: A2, name: y, monthly_fee_fen: -5}",
     "products[1].monthly_fee_fen: Input should be greater than or equal to 0"),
    ("products: [{product_id: a1, name: x, monthly_fee_fen: 1}]",
     "products[0].product_id: Value error, 'a1': use upper-case letters"),
    ("products: [{product_id: A1, name: x, monthly_fee_fen: 1, colour: red}]",
     "products[0].colour: Extra inputs are not permitted"),
    ("products: [{product_id: A1, name: x}]", "products[0].monthly_fee_fen: Field required"),
    ("products: [{product_id: A1, name: x, monthly_fee_fen: 1, payment: cash}]",
     "products[0].payment"),
    ("products:\n  - {product_id: A1, name: x, monthly_fee_fen: 1}\n"
     "  - {product_id: A1, name: y, monthly_fee_fen: 2}",
     "products[1].product_id: 'A1' is already products[0]"),
    ("products:\n  - {product_id: A1, name: x, monthly_fee_fen: 1, warehouse_ids: [W]}\n"
     "  - {product_id: A2, name: y, monthly_fee_fen: 2, warehouse_ids: [W]}",
     "products[1].warehouse_ids: 'W' already stands for products[0]"),
    ("products: []", "products: List should have at least 1 item"),
    ("- just a list", "a catalogue is a mapping with a 'products' list"),
    ("products: [unclosed", "not valid YAML"),
])  # fmt: skip
def test_a_bad_catalogue_names_file_entry_and_field(tmp_path, text, says) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_catalogue(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert says in str(caught.value)


def test_a_missing_catalogue_is_named(tmp_path) -> None:
    with pytest.raises(InputError, match="nowhere.yaml"):
        load_catalogue(tmp_path / "nowhere.yaml")


def test_the_demo_hall_is_seeded_once(store) -> None:
    # When the demo's staff and merchants are seeded twice
    seed_demo_hall(store)
    done = seed_demo_hall(store)
    # Then each is there once, merchants with their registered numbers
    assert (done.staff, done.merchants) == (len(DEMO_STAFF), len(DEMO_MERCHANTS))
    staff = {s.code: s.branch for s in _rows(store, HallStaff)}
    assert staff == {code: branch for code, _, branch in DEMO_STAFF}
    assert len(set(staff.values())) == 2
    merchants = {m.id: m.msisdn for m in _rows(store, Merchant)}
    assert merchants == {"M001": DEMO_MERCHANTS[0][2], "M002": DEMO_MERCHANTS[1][2]}
