"""The live roaming detector: off-grid cells placed (ROAM-XX, a foreign CGI by its MCC, a
national CGI by the provinces file, anything else unplaced), arrivals by the daily
trigger's rule (a new place, or the same one after the quiet days), its state saved and
restored by number, and the welcome delivered under the daily scan's key - so the scan
of the same day answers duplicate."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import select

from jingxin.config import Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import Message
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.dispatch.deliver import DeliveryContext
from jingxin.errors import ConfigError, InputError
from jingxin.geofence.directory import Directory
from jingxin.geofence.roaming import (
    HOME,
    UNPLACED,
    RoamingDetector,
    load_networks,
    load_provinces,
    salutations,
)
from jingxin.geofence.types import EventBatch
from jingxin.journeys.knowledge import load_knowledge
from jingxin.journeys.scan import journey_key, run_scan

DAY = dt.date(2026, 5, 10)
NOON = int(datetime(2026, 5, 10, 4, 0, tzinfo=UTC).timestamp() * 1000)  # 12:00 Shanghai
HOUR, DAY_MS = 3_600_000, 86_400_000
NUMBERS = [8613900000001, 8613900000002, 8613900000003]
SCAN_AT = datetime(2026, 5, 10, 6, 0, tzinfo=UTC)  # 14:00 local: after send_at


def detector(size: int = 3, provinces=(("460-00-2", "四川省成都市"), ("460-00-3", "西藏自治区")),
             **options) -> RoamingDetector:  # fmt: skip
    return RoamingDetector(size, load_networks(), provinces, load_knowledge(), 7, **options)


def batch(rows: list[tuple[int, str, int]]) -> EventBatch:
    """(msisdn index, cell, ts ms) rows."""
    return EventBatch(np.array([NUMBERS[i] for i, _, _ in rows], np.int64),
                      [c for _, c, _ in rows], np.array([t for _, _, t in rows], np.int64),
                      np.zeros(len(rows), np.uint8))  # fmt: skip


def observe(found: RoamingDetector, rows: list[tuple[int, str, int]], *, on_grid=("C1",)):
    events = batch(rows)
    cell_idx = np.array([0 if c in on_grid else -1 for _, c, _ in rows], np.int32)
    sub_idx = np.array([i for i, _, _ in rows], np.int32)
    return found.observe(events, cell_idx, sub_idx)


@pytest.mark.parametrize(("cell", "place"), [
    ("ROAM-JP", "JP"),
    ("440-10-1234-5678", "JP"),  # a Japanese network by its MCC
    ("310-260-77-12", "US"),
    ("460-00-2001-17", "CN-CD"),  # Chengdu by the provinces file, named by the knowledge table
    ("460-00-3001-17", "西藏自治区"),  # a province the knowledge table lacks keeps its name
])  # fmt: skip
def test_off_grid_cells_are_placed_by_country_or_province(cell: str, place: str) -> None:
    found = detector()
    assert found.places[found.place_of(cell)] == place


@pytest.mark.parametrize("cell", ["460-00-9001-1", "999-01-1-1", "C404", "ROAM-jp", "", None])
def test_cells_no_table_places_are_unplaced(cell) -> None:
    assert detector().place_of(cell) == UNPLACED


def test_home_is_not_a_destination() -> None:
    assert detector().place_of("ROAM-CN") == HOME
    assert detector().place_of("461-00-1-1") == UNPLACED  # China's MCC, no province row


def test_the_packaged_networks_cover_every_international_destination() -> None:
    countries = set(load_networks().values())
    wanted = {d.code for d in load_knowledge().destinations.values() if d.kind == "international"}
    assert wanted <= countries
    assert len(countries) >= 45


def test_an_arrival_is_a_new_place_or_the_same_after_the_quiet_days() -> None:
    found = detector()
    # Given 0 at home, then in Japan twice within the hour; 1 in Hong Kong then Japan
    arrivals, unplaced = observe(found, [
        (0, "C1", NOON - 5 * HOUR), (0, "ROAM-JP", NOON), (0, "ROAM-JP", NOON + HOUR),
        (1, "ROAM-HK", NOON), (1, "ROAM-JP", NOON + 2 * HOUR), (2, "C404", NOON)])  # fmt: skip
    # Then 0 arrived once, 1 once (the later place of the day), 2's cell is unplaced
    assert list(zip(arrivals.sub.tolist(), arrivals.destination, arrivals.at_ms.tolist(),
                    strict=True)) == [(0, "JP", NOON), (1, "JP", NOON + 2 * HOUR)]  # fmt: skip
    assert unplaced.tolist() == [False] * 5 + [True]
    # When 0 is seen in Japan again 3 days later (home in between): the same trip
    again, _ = observe(found, [(0, "C1", NOON + 2 * DAY_MS), (0, "ROAM-JP", NOON + 3 * DAY_MS)])
    assert len(again) == 0
    # When 0 turns up in Japan after 8 quiet days, it is a new trip; an event older than
    # the last one abroad is out of order and ignored
    later, _ = observe(found, [(0, "ROAM-JP", NOON + 11 * DAY_MS), (1, "ROAM-KR", NOON)])
    assert list(zip(later.sub.tolist(), later.destination, strict=True)) == [(0, "JP")]


def test_the_state_survives_a_restart_and_a_new_directory(tmp_path: Path) -> None:
    old = Directory.from_arrays(NUMBERS, [1, 2, 3])
    found = detector()
    observe(found, [(0, "ROAM-JP", NOON), (2, "ROAM-TH", NOON)])
    found.save(tmp_path / "roaming.npz", old)
    # Given a directory with a new subscriber first and subscriber 1 (index 0) gone
    new = Directory.from_arrays([8613900000000, NUMBERS[1], NUMBERS[2]], [9, 2, 3])
    restored = detector()
    assert restored.load(tmp_path / "roaming.npz", new) == 1
    # Then Thailand is remembered for 3 (now index 2): no second arrival; the place table too
    assert restored.away_place[2] > 0 and restored.places[restored.away_place[2]] == "TH"
    events = EventBatch(np.array([NUMBERS[2]], np.int64), ["ROAM-TH"],
                        np.array([NOON + HOUR], np.int64), np.zeros(1, np.uint8))  # fmt: skip
    arrivals, _ = restored.observe(events, np.array([-1], np.int32), new.lookup(events.msisdn))
    assert len(arrivals) == 0


def test_a_corrupt_state_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "roaming.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=str(bad)):
        detector().load(bad, Directory.from_arrays(NUMBERS, [1, 2, 3]))


def test_a_bad_provinces_row_names_the_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "provinces.csv"
    path.write_text("prefix,province\n460-00-2,四川省\n460-00-3,\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"provinces.csv: line 3: field 'province'"):
        load_provinces(path)
    path.write_text("prefix,province\n460-00-2,四川省成都市\n460-00-21,四川省绵阳市\n",
                    encoding="utf-8")  # fmt: skip
    assert load_provinces(path)[0] == ("460-00-21", "四川省绵阳市")  # longest prefix first


def test_a_bad_networks_file_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "networks.yaml"
    path.write_text('networks:\n  "440": Japan\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="networks.440"):
        load_networks(path)


# ------------------------------------------------------------------ the welcome


def _table(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                    schema=schema)  # fmt: skip


def subscriber(sid: int, gender: str | None) -> tuple:
    return (sid, f"+{NUMBERS[sid - 1]}", "china_mobile", "P1", "prepaid", "active", gender,
            None, dt.date(2015, 6, 1), None, 3, "浦东新区", None, 4, False, None)


@pytest.fixture
def warehouse():
    wh = open_duckdb(":memory:")
    wh.con.create_table("subscribers", _table("subscribers", [
        subscriber(1, "F"), subscriber(2, "M"), subscriber(3, None)]))  # fmt: skip
    wh.con.create_table("cells", _table("cells", [("C1", 31.22, 121.54, "浦东新区",
                                                   "residential")]))  # fmt: skip
    events = [(1, dt.datetime(2026, 5, 10, 7), "C1", "CN"),
              (1, dt.datetime(2026, 5, 10, 12), "ROAM-JP", "JP")]  # local = warehouse time
    wh.con.create_table("location_events", _table("location_events", events))
    yield wh
    wh.close()


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    from jingxin.content import catalog
    from jingxin.content.library import starter_library
    from jingxin.data.store.tenants import ensure_default_tenant

    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    documents = [d for d in starter_library() if d.code.startswith("care.roaming")]
    with opened.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=documents, approve_as="reviewer", reviewer=None)
    yield opened
    opened.dispose()


def test_salutations_follow_the_daily_trigger(warehouse) -> None:
    directory = Directory.from_warehouse(warehouse)
    assert salutations(warehouse, directory).tolist() == [2, 1, 0]  # 女士, 先生, 客户


def test_the_welcome_is_the_journeys_own_and_the_daily_scan_dedupes_it(warehouse, store) -> None:
    settings = Settings()
    directory = Directory.from_warehouse(warehouse)
    found = detector(salutation_codes=salutations(warehouse, directory))
    context = DeliveryContext.from_settings(settings)
    # Given subscriber 1 seen at home, then in Japan at noon
    arrivals, _ = observe(found, [(0, "C1", NOON - 5 * HOUR), (0, "ROAM-JP", NOON)])
    # When welcomed live
    outcome = found.welcome(store, context, settings, arrivals, directory, now=SCAN_AT)
    assert outcome == {"queued": 1}
    with store.sessions() as session:
        (message,) = session.scalars(select(Message)).all()
    msisdn = f"+{NUMBERS[0]}"
    assert (message.source, message.source_id, message.idempotency_key) == (
        "journey", "roaming:2026-05-10", journey_key("roaming", DAY, msisdn))
    assert message.text.startswith("【中国移动】尊敬的女士，欢迎抵达日本，当地时间15:00")
    # When welcomed again (a restart replays the event) and when the daily scan runs
    assert found.welcome(store, context, settings, arrivals, directory, now=SCAN_AT) == {
        "duplicate": 1}
    report = run_scan(settings, store, warehouse, day=DAY, triggers=["roaming"], now=SCAN_AT)
    # Then the scan found the same arrival and sent nothing: the key was taken
    (roaming,) = report.triggers
    assert (roaming.candidates, roaming.queued, roaming.duplicates) == (1, 0, 1)
    with store.sessions() as session:
        assert len(session.scalars(select(Message)).all()) == 1


def test_a_destination_the_knowledge_lacks_is_counted_not_sent(warehouse, store) -> None:
    settings = Settings()
    directory = Directory.from_warehouse(warehouse)
    found = detector()
    arrivals, _ = observe(found, [(1, "ROAM-IS", NOON)])  # Iceland: not in the table
    outcome = found.welcome(store, DeliveryContext.from_settings(settings), settings, arrivals,
                            directory, now=SCAN_AT)  # fmt: skip
    assert outcome == {"no_knowledge": 1}


def test_a_new_directory_keeps_who_was_away_by_number() -> None:
    old = Directory.from_arrays(NUMBERS, [1, 2, 3])
    found = detector()
    observe(found, [(0, "ROAM-JP", NOON), (2, "ROAM-TH", NOON)])
    # When subscriber 1 leaves and a new one comes first
    new = Directory.from_arrays([8613900000000, NUMBERS[1], NUMBERS[2], 8613900000009],
                                [9, 2, 3, 10])  # fmt: skip
    found.set_directory(old, new)
    assert [found.places[p] if p >= 0 else None for p in found.away_place.tolist()] == [
        None, None, "TH", None]
