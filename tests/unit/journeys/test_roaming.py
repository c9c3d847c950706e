"""The roaming welcome on a hand-made warehouse: exactly the subscribers who arrived
abroad or in another province on the day (not back within the quiet days, one welcome for
two arrivals), the destination pack from the knowledge table, destinations the table lacks
skipped by code, and a knowledge file's errors naming the file, entry, line and field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from jingxin.config import JourneySettings, Settings
from jingxin.content.library import library_document
from jingxin.content.templates import render
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import ConfigError
from jingxin.journeys.knowledge import load_knowledge, parse_knowledge, season_of
from jingxin.journeys.trigger import TriggerContext
from jingxin.journeys.triggers import trigger
from jingxin.journeys.triggers.roaming import ROAMING, RoamingTrigger

D, T = dt.date, dt.datetime
DAY = D(2026, 5, 10)
BEFORE_SEND = dt.datetime(2026, 5, 10, 0, 30, tzinfo=dt.UTC)  # 08:30 in Shanghai


def _table(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                    schema=schema)  # fmt: skip


def subscriber(sid: int, *, region: str = "浦东新区", gender: str | None = "F") -> tuple:
    return (sid, f"+86139000000{sid:02d}", "china_mobile", "P1", "prepaid", "active", gender,
            None, D(2015, 6, 1), None, 3, region, None, 4, False, None)


SUBSCRIBERS = [subscriber(i) for i in range(1, 12)] + [subscriber(12, region="黄浦区")]
CELLS = [
    ("C1", 31.22, 121.54, "浦东新区", "residential"),
    ("C2", 31.23, 121.48, "黄浦区", "business"),  # another district of the operator's own
    ("X1", 30.64, 104.04, "成都市武侯区", "business"),  # Chengdu: in the knowledge table
    ("X2", 29.65, 91.13, "拉萨市城关区", "business"),  # Lhasa: not in it
]


def at(sid: int, when: dt.datetime, country: str, cell: str | None = None) -> tuple:
    return (sid, when, cell or f"ROAM-{country}", country)


EVENTS = [
    *(at(sid, T(2026, 5, 10, 8), "CN", "C1") for sid in range(1, 13)),  # everybody at home
    at(1, T(2026, 5, 10, 9), "JP"),  # 1: lands in Japan on the day
    at(2, T(2026, 5, 10, 9), "JP"), at(2, T(2026, 5, 7, 9), "JP"),  # 2: was there 3 days ago
    at(3, T(2026, 5, 10, 9), "JP"), at(3, T(2026, 5, 2, 9), "JP"),  # 3: 8 days ago: a new trip
    at(4, T(2026, 5, 10, 7), "HK"), at(4, T(2026, 5, 10, 12), "JP"),  # 4: HK, then Japan
    at(5, T(2026, 5, 10, 9), "IS"), at(5, T(2026, 5, 10, 10), "IS"),  # 5: Iceland: unknown
    at(6, T(2026, 5, 10, 15), "CN", "X1"),  # 6: Chengdu
    at(7, T(2026, 5, 10, 15), "CN", "X2"),  # 7: Lhasa: unknown
    at(8, T(2026, 5, 10, 15), "CN", "C2"),  # 8: another of the operator's own districts
    at(9, T(2026, 5, 11, 0), "JP"),  # 9: lands just after the day
    at(10, T(2026, 5, 9, 23, 59), "KR"), at(10, T(2026, 5, 10, 9), "KR"),  # 10: since yesterday
    at(11, T(2026, 5, 10, 23, 59, 59), "KR"),  # 11: the day's last second
]


@pytest.fixture(scope="module")
def warehouse():
    wh = open_duckdb(":memory:")
    wh.con.create_table("subscribers", _table("subscribers", SUBSCRIBERS))
    wh.con.create_table("cells", _table("cells", CELLS))
    wh.con.create_table("location_events", _table("location_events", EVENTS))
    yield wh
    wh.close()


def run(warehouse, settings: Settings | None = None, *, day: dt.date = DAY):
    roaming = RoamingTrigger(clock=lambda: BEFORE_SEND)
    return roaming.candidates(TriggerContext(warehouse=warehouse, day=day,
                                             settings=settings or Settings()))  # fmt: skip


def test_exactly_the_day_s_new_arrivals_get_a_welcome(warehouse) -> None:
    # When the roaming trigger runs for the day
    out = run(warehouse)
    rows = {r["msisdn"][-2:]: r for r in out.candidates.to_pylist()}
    # Then: new in Japan (1), back after 8 days (3), Japan after a Hong Kong transit (4),
    # Chengdu (6), Korea at the day's last second (11); not 2 (there 3 days ago), not 8 (an
    # own district), not 9 (the next day), not 10 (arrived yesterday)
    assert sorted(rows) == ["01", "03", "04", "06", "11"]
    assert {k: r["template"] for k, r in rows.items()} == {
        "01": "care.roaming_international", "03": "care.roaming_international",
        "04": "care.roaming_international", "06": "care.roaming_domestic",
        "11": "care.roaming_international"}  # fmt: skip
    assert rows["04"]["country"] == "日本" and rows["11"]["country"] == "韩国"
    # And the unknown destinations are skipped by code, and the warning names them
    assert out.skipped == {"no_knowledge:IS": 1, "no_knowledge:拉萨市城关区": 1}
    assert out.warning is not None and "IS, 拉萨市城关区" in out.warning
    assert "destinations.yaml" in out.warning


def test_the_international_pack_is_the_destination_s_own(warehouse) -> None:
    (japan,) = [r for r in run(warehouse).candidates.to_pylist() if r["msisdn"].endswith("01")]
    # Then the pack comes from the table: May is spring in Tokyo, the message wanted at
    # 10:00 in Shanghai is 11:00 there, the daily cap in yuan
    assert {k: japan[k] for k in ("subscriber_id", "name", "country", "local_time", "weather",
                                   "pack_name", "pack_daily", "police")} == {
        "subscriber_id": 1, "name": "尊敬的女士", "country": "日本", "local_time": "11:00",
        "weather": "东京一带温和，早晚偏凉，气温约8到19度", "pack_name": "日韩多日包",
        "pack_daily": Decimal("25.00"), "police": "110"}  # fmt: skip
    assert japan["customs_tip"] == ("携带现金超过100万日元须向海关申报，肉类制品不可带入。"
                                    "遇地震请远离玻璃门窗，听从广播指引。")  # fmt: skip
    # And it renders with the approved template's variables only
    text = _render("care.roaming_international", japan)
    assert text.startswith("尊敬的女士，欢迎抵达日本，当地时间11:00，东京一带温和，早晚偏凉，气温约8到19度。"
                           "您已开通日韩多日包，当地上网每日25元封顶，开机即用。")  # fmt: skip
    assert text.endswith("当地报警电话110。")


def test_the_domestic_pack_names_the_city(warehouse) -> None:
    (chengdu,) = [r for r in run(warehouse).candidates.to_pylist() if r["msisdn"].endswith("06")]
    assert {k: chengdu[k] for k in ("city", "weather", "temp_range", "hall_address", "tip",
                                     "country")} == {
        "city": "成都", "weather": "温和，多阴天", "temp_range": "气温约12到23度",
        "hall_address": "当地自有", "tip": "出门记得带伞。", "country": None}  # fmt: skip
    assert _render("care.roaming_domestic", chengdu).startswith(
        "尊敬的女士，欢迎来到成都！今天温和，多阴天，气温约12到23度。出门记得带伞。")


def test_a_late_scan_quotes_the_local_time_it_sends_at(warehouse) -> None:
    # Given a scan run at 15:00 in Shanghai, after send_at: the messages go out now
    late = RoamingTrigger(clock=lambda: dt.datetime(2026, 5, 10, 7, 0, tzinfo=dt.UTC))
    out = late.candidates(TriggerContext(warehouse=warehouse, day=DAY, settings=Settings()))
    # Then Tokyo's local time is 16:00
    assert {r["local_time"] for r in out.candidates.to_pylist() if r["country"] == "日本"} == {
        "16:00"}


def test_an_operator_table_without_the_destination_skips_it(warehouse, tmp_path: Path) -> None:
    # Given an operator's knowledge file that knows Korea only
    path = tmp_path / "knowledge.yaml"
    path.write_text(KOREA_ONLY, encoding="utf-8")
    settings = Settings(journeys=JourneySettings(knowledge_path=str(path)))
    # When the trigger runs
    out = run(warehouse, settings)
    # Then Korea is welcomed with the operator's pack, everything else skipped by code
    assert [(r["msisdn"][-2:], r["pack_name"]) for r in out.candidates.to_pylist()] == [
        ("11", "韩国包")]
    assert out.skipped == {"no_knowledge:JP": 3, "no_knowledge:IS": 1,
                           "no_knowledge:拉萨市城关区": 1, "no_knowledge:成都市武侯区": 1}
    assert out.warning == (f"roaming: no knowledge of IS, JP, 成都市武侯区, 拉萨市城关区 in {path} "
                           "(6 subscriber(s) skipped)")  # fmt: skip


def test_the_quiet_days_decide_what_a_new_arrival_is(warehouse) -> None:
    # Given a quiet period of 9 days, 3's trip 8 days ago is the same trip
    out = RoamingTrigger(quiet_days=9, clock=lambda: BEFORE_SEND).candidates(
        TriggerContext(warehouse=warehouse, day=DAY, settings=Settings()))
    assert sorted(r["msisdn"][-2:] for r in out.candidates.to_pylist()) == ["01", "04", "06", "11"]


def test_a_day_without_arrivals_has_no_candidates_and_no_warning(warehouse) -> None:
    out = run(warehouse, day=D(2026, 4, 1))
    assert (out.candidates.num_rows, out.skipped, out.warning) == (0, {}, None)


def test_the_registry_names_this_trigger() -> None:
    assert trigger("roaming") is ROAMING and ROAMING.name == "roaming"


# ----------------------------------------------------------------------------- knowledge


def test_the_packaged_table_covers_the_synthetic_travellers_countries() -> None:
    from jingxin.data.synth.mobility import COUNTRIES

    table = load_knowledge()
    assert [c for c in COUNTRIES if table.get(c) is None] == []
    assert {d.code for d in table.domestic} == {"CN-BJ", "CN-CD", "CN-GZ", "CN-SY", "CN-XA"}
    assert all(d.police and d.roaming and d.timezone for d in table.destinations.values()
               if d.kind == "international")  # fmt: skip


@pytest.mark.parametrize(("day", "season"), [
    (D(2026, 1, 5), "dec_feb"), (D(2026, 2, 28), "dec_feb"), (D(2026, 3, 1), "mar_may"),
    (D(2026, 6, 1), "jun_aug"), (D(2026, 11, 30), "sep_nov"), (D(2026, 12, 1), "dec_feb"),
])  # fmt: skip
def test_months_fall_in_their_season(day: dt.date, season: str) -> None:
    assert season_of(day) == season


KOREA_ONLY = """\
destinations:
  KR:
    name: 韩国
    city: 首尔
    timezone: Asia/Seoul
    climate:
      dec_feb: [-6, 3, 寒冷干燥]
      mar_may: [6, 19, 温和]
      jun_aug: [21, 29, 炎热]
      sep_nov: [8, 21, 凉爽]
    customs: 请如实申报
    safety: 注意安全。
    police: 112
    roaming: {pack: 韩国包, daily_fen: 1500}
"""


@pytest.mark.parametrize(("change", "expected"), [
    (("police: 112", "police: 112\n    colour: red"),
     "destinations.KR (line 14): field 'colour': Extra inputs are not permitted"),
    (("mar_may: [6, 19, 温和]", "mar_may: [26, 19, 温和]"),
     "destinations.KR (line 8): field 'climate.mar_may': low 26 is above high 19"),
    (("      sep_nov: [8, 21, 凉爽]\n", ""),
     "destinations.KR (line 2): climate: missing season(s) sep_nov"),
    (("timezone: Asia/Seoul", "timezone: Asia/Soul"),
     "destinations.KR (line 5): field 'timezone': unknown time zone 'Asia/Soul'"),
    (("    roaming: {pack: 韩国包, daily_fen: 1500}\n", ""),
     "destinations.KR (line 2): missing field(s) roaming (every international destination"),
    (("  KR:", "  KOR:"), "destinations.KOR (line 2): 'KOR': an international destination is"),
    (("  KR:", "  CN-LS:\n    kind: domestic"),
     "destinations.CN-LS (line 2): match: a domestic destination lists"),
    (("climate:", "climate: ["), "line 8: invalid YAML"),
])  # fmt: skip
def test_a_bad_knowledge_file_names_the_file_entry_line_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    # Given a knowledge file with one mistake
    path = tmp_path / "kb.yaml"
    path.write_text(KOREA_ONLY.replace(*change), encoding="utf-8")
    # When it is loaded, Then the error names the file, the entry, the line and the field
    with pytest.raises(ConfigError) as caught:
        load_knowledge(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_a_knowledge_file_that_is_not_a_table_of_destinations_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^kb.yaml: expected 'destinations:'"):
        parse_knowledge("- JP\n- KR\n", source="kb.yaml")
    with pytest.raises(ConfigError, match=r"^kb.yaml: destinations.JP \(line 2\): expected a"):
        parse_knowledge("destinations:\n  JP: 日本\n", source="kb.yaml")


def test_a_missing_knowledge_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_knowledge(tmp_path / "nowhere.yaml")


def _render(code: str, row: dict) -> str:
    document = library_document(code)
    assert document is not None
    compiled = document.compile()
    values = {name: row[name] for name in compiled.variables}
    return render(compiled, values, category=document.category, signature=None).text
