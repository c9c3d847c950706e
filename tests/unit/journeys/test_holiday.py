"""HOLIDAY: the festival greeting of the day to every active subscriber of a tiny warehouse."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from jingxin.config import JourneySettings, Settings
from jingxin.content.library import library_document, starter_library
from jingxin.content.templates import render
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import ConfigError
from jingxin.journeys.calendar import festivals, official_schedule
from jingxin.journeys.trigger import TriggerContext
from jingxin.journeys.triggers import trigger
from jingxin.journeys.triggers.holiday import HOLIDAY, greeting

D = date
# id, msisdn, status, gender: three of the six are active
PEOPLE = [(1, "+8613800000001", "active", "F"), (2, "+8613800000002", "active", "M"),
          (3, "+8613800000003", "suspended", "F"), (4, "+8613800000004", "active", None),
          (5, "+8613800000005", "double_stop", "M"), (6, "+8613800000006", "churned", "F")]
ACTIVE = {(1, "+8613800000001"), (2, "+8613800000002"), (4, "+8613800000004")}
ADDRESSED = {1: "尊敬的女士", 2: "尊敬的先生", 4: "尊敬的客户"}
HOLIDAY_2027 = """\
2027:
  holidays:
    - {name: 国庆节, from: 2027-10-01, to: 2027-10-07}
  workdays: [2027-09-26, 2027-10-09]
"""


def subscribers() -> pa.Table:
    schema = TABLES["subscribers"].schema
    rows = [{"subscriber_id": i, "msisdn": m, "carrier": "china_mobile", "plan_id": "P1",
             "payment": "prepaid", "status": s, "gender": g, "birthday": None,
             "entry_date": D(2020, 1, 1), "contract_end": None, "star_level": 1,
             "region": "浦东新区", "handset_model": None, "handset_generation": None,
             "app_user": False, "suspended_since": None} for i, m, s, g in PEOPLE]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture(scope="module")
def warehouse():
    wh = open_duckdb(":memory:")
    wh.con.create_table("subscribers", subscribers(), overwrite=True)
    yield wh
    wh.close()


def context(warehouse, day: date, *, tmp_path: Path | None = None, holiday_file: str | None = None,
            store=None) -> TriggerContext:  # fmt: skip
    settings = Settings(home=tmp_path or Path("."),
                        journeys=JourneySettings(holiday_file=holiday_file))  # fmt: skip
    return TriggerContext(warehouse=warehouse, day=day, settings=settings, store=store)


def who(table: pa.Table) -> set[tuple[int, str]]:
    return set(zip(table.column("subscriber_id").to_pylist(), table.column("msisdn").to_pylist(),
                   strict=True))  # fmt: skip


def only(table: pa.Table, column: str):
    values = set(table.column(column).to_pylist())
    assert len(values) == 1, (column, values)
    return values.pop()


def test_the_trigger_is_registered_under_its_name() -> None:
    assert trigger("holiday") is HOLIDAY and HOLIDAY.name == "holiday"


def test_on_mid_autumn_every_active_subscriber_gets_the_greeting(warehouse) -> None:
    # Given the tiny warehouse, When the scan asks for 2026-09-25 (Mid-Autumn)
    out = HOLIDAY.candidates(context(warehouse, D(2026, 9, 25)))
    table = out.candidates
    # Then exactly the three active subscribers are candidates, with the festival's values
    assert who(table) == ACTIVE and table.num_rows == 3
    assert only(table, "template") == "care.mid_autumn"
    assert only(table, "gift_voice") == 60
    # And each is addressed by gender, as the lifecycle triggers do (no names in the warehouse)
    names = dict(zip(table.column("subscriber_id").to_pylist(), table.column("name").to_pylist(),
                     strict=True))  # fmt: skip
    assert names == ADDRESSED
    assert table.schema.field("subscriber_id").type == pa.int64()
    assert out.warning is None and not out.skipped


def test_on_another_day_nobody_in_the_right_schema(warehouse) -> None:
    out = HOLIDAY.candidates(context(warehouse, D(2026, 9, 24)))
    assert out.candidates.num_rows == 0
    assert out.candidates.column_names == ["msisdn", "subscriber_id", "name", "template"]
    assert out.candidates.schema.field("msisdn").type == pa.string()


def test_spring_festival_is_greeted_on_new_years_eve_with_the_years_zodiac(warehouse) -> None:
    # 2027-02-06 is the Spring Festival: its greeting goes out on 除夕, the day before;
    # its template shows no days off, so a year without a schedule needs no warning
    out = HOLIDAY.candidates(context(warehouse, D(2027, 2, 5)))
    assert who(out.candidates) == ACTIVE and out.warning is None
    assert (only(out.candidates, "template"), only(out.candidates, "zodiac")) == (
        "care.spring_festival", "羊")
    assert HOLIDAY.candidates(context(warehouse, D(2027, 2, 6))).candidates.num_rows == 0


def test_national_day_2026_carries_the_official_days_off(warehouse) -> None:
    out = HOLIDAY.candidates(context(warehouse, D(2026, 9, 30)))
    table = out.candidates
    assert only(table, "template") == "care.national_day" and out.warning is None
    assert (only(table, "off_from"), only(table, "off_to"), only(table, "off_days")) == (
        D(2026, 10, 1), D(2026, 10, 7), 7)
    assert only(table, "makeup_workdays") == "9月20日（周日）、10月10日（周六）"
    assert only(table, "hall_number") == "10086"


def test_a_year_without_a_schedule_greets_without_days_off_and_warns(warehouse) -> None:
    # Given 2027, which chinese-calendar does not know, and no holiday file
    out = HOLIDAY.candidates(context(warehouse, D(2027, 9, 30)))
    # Then National Day is still greeted, with the variant that shows no days off
    assert who(out.candidates) == ACTIVE
    assert only(out.candidates, "template") == "care.national_day_plain"
    assert "off_from" not in out.candidates.column_names
    assert "no official holiday schedule for 2027: set [journeys] holiday_file" in out.warning


def test_the_holiday_file_fills_in_the_year(warehouse, tmp_path) -> None:
    # Given the operator's file for 2027 (a path relative to the settings' home)
    (tmp_path / "holidays.yaml").write_text(HOLIDAY_2027, encoding="utf-8")
    ctx = context(warehouse, D(2027, 9, 30), tmp_path=tmp_path, holiday_file="holidays.yaml")
    out = HOLIDAY.candidates(ctx)
    # Then the days off come from it
    assert only(out.candidates, "template") == "care.national_day" and out.warning is None
    assert only(out.candidates, "makeup_workdays") == "9月26日（周日）、10月9日（周六）"
    # And a festival the file leaves out falls back, saying which schedule lacked it
    out = HOLIDAY.candidates(context(warehouse, D(2027, 4, 30), tmp_path=tmp_path,
                                     holiday_file="holidays.yaml"))  # fmt: skip
    assert only(out.candidates, "template") == "care.labour_day_plain"
    assert "has no days off on 2027-05-01 (劳动节)" in out.warning


def test_a_greeting_that_needs_days_off_without_a_fallback_fails(warehouse) -> None:
    from dataclasses import replace

    national = next(f for f in festivals(2027) if f.key == "national_day")
    with pytest.raises(ConfigError, match="no official holiday schedule for 2027.*no fallback"):
        greeting(replace(national, fallback=None), context(warehouse, D(2027, 9, 30)))


def _all_greetings() -> list[tuple[str, date]]:
    """(festival key, day it is greeted) in a year with a schedule and one without."""
    return [(f.key, f.send_on) for year in (2026, 2030) for f in festivals(year)]


@pytest.mark.parametrize(("key", "day"), _all_greetings(), ids=lambda v: str(v))
def test_every_festival_greeting_renders_with_the_triggers_values(warehouse, key, day) -> None:
    # Given the greeting the trigger chooses on the festival's day
    ctx = context(warehouse, day)
    festival = next(f for f in festivals(day.year) + festivals(day.year + 1)
                    if f.key == key and f.send_on == day)  # fmt: skip
    chosen = greeting(festival, ctx)
    # Then its template is in the starter library and renders with exactly those values
    document = library_document(chosen.template)
    assert document is not None
    assert chosen.addressed
    out = render(document.compile(), dict(chosen.values, name="尊敬的女士"),
                 category=document.category, signature="中国移动")  # fmt: skip
    assert out.fits and "{{" not in out.text and "尊敬的女士" in out.text
    # And the trigger's own table carries the same values
    table = HOLIDAY.candidates(ctx).candidates
    assert {n: only(table, n) for n in chosen.values} == dict(chosen.values)


def test_every_festival_template_and_fallback_is_in_the_library() -> None:
    codes = {d.code for d in starter_library()}
    schedule = official_schedule(2026)
    for festival in festivals(2026, schedule=schedule):
        assert festival.template in codes
        assert festival.fallback is None or festival.fallback in codes


def test_the_candidates_go_through_the_delivery_entry(warehouse, tmp_path, migrated_sqlite) -> None:
    # Given a store with the starter library approved, and the scan's store in the context
    from sqlalchemy import select

    from jingxin.content import catalog
    from jingxin.data.store.models import Message
    from jingxin.data.store.engine import open_store
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.dispatch.deliver import DeliveryContext, deliver_table

    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    with store.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=starter_library(), approve_as="reviewer")
    ctx = context(warehouse, D(2026, 9, 30), store=store)
    out = HOLIDAY.candidates(ctx)
    # When they are delivered as the scan delivers them
    summary = deliver_table(store, table=out.candidates,
                            context=DeliveryContext.from_settings(ctx.settings),
                            now=datetime(2026, 9, 30, 2, 0, tzinfo=UTC),
                            defaults={"source": "journey", "source_id": "holiday:2026-09-30",
                                      "tenant_id": "operator", "category": "marketing"})  # fmt: skip
    # Then every active subscriber's greeting renders and is queued, addressed by gender
    assert summary.rows == 3 and not summary.rejected, summary.as_dict()
    assert summary.accepted + summary.deferred == 3
    with store.sessions() as session:
        texts = dict(session.execute(select(Message.msisdn, Message.text)).all())
    assert texts["+8613800000001"].startswith("【中国移动】尊敬的女士，国庆快乐！")
    days_off = "10月1日至10月7日，共7天，9月20日（周日）、10月10日（周六）上班"
    assert days_off in texts["+8613800000002"]
    assert texts["+8613800000004"].endswith("回T退订")
