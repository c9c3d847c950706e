"""The matcher loop end to end on a hand-made warehouse, a real SQLite store with fences
applied and the starter templates approved, and a CSV replay with bad rows in it.

The morning of 2026-05-10 (Shanghai time), fence ``pvg`` = airport cells A1, A2, dwell
10 minutes, residents skipped:

1 home 08:00, airport A1 09:00, A2 09:05, A1 09:12  -> one offer (dwelled 12 min)
2 airport 09:00, home 09:03                          -> left before the dwell: nothing
3 home 08:00, Japan (ROAM-JP) 12:00                  -> one roaming welcome (journey)
4 airport 09:00, 09:20, but lives at A1              -> resident: skipped
+ a number not ours, a cell not in the table, a line that is no CSV row, a bad time.
"""

from __future__ import annotations

import datetime as dt
import logging
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select

from jingxin.config import GeofenceSettings, Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import Message
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.geofence import registry
from jingxin.geofence.audience import refresh_audiences
from jingxin.geofence.compiled import CompiledFences
from jingxin.geofence.directory import CellIndex, Directory
from jingxin.geofence.runner import read_meta, roaming_path, run_matcher, shard_label
from jingxin.geofence.sources import FileReplay
from jingxin.geofence.types import Fence
from jingxin.journeys.scan import journey_key

DAY = dt.date(2026, 5, 10)
CLOCK = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: offers are sent
LOCAL = dt.timezone(dt.timedelta(hours=8))
N = {i: 8613900000000 + i for i in range(1, 6)}  # 5 joins mid-run (the last test)


def ms(hh: int, mm: int) -> int:
    return int(datetime(2026, 5, 10, hh, mm, tzinfo=LOCAL).timestamp() * 1000)


ROWS = [  # the replay, in time order; the bad rows are where a feed would have them
    f"+{N[1]},H1,2026-05-10T08:00:00,update",
    f"+{N[3]},H1,2026-05-10T08:00:00,update",
    "this line is no event",
    f"+{N[1]},A1,2026-05-10T09:00:00,attach",
    f"+{N[4]},A1,2026-05-10T09:00:00,update",
    f"+{N[2]},A1,2026-05-10T09:00:00,update",
    "+8613900000099,A1,2026-05-10T09:01:00,update",  # not our subscriber
    f"+{N[2]},H1,2026-05-10T09:03:00,handover",
    f"+{N[1]},A2,2026-05-10T09:05:00,handover",
    f"+{N[2]},C404,2026-05-10T09:06:00,update",  # a cell nobody knows
    f"+{N[1]},A1,2026-05-10T09:12:00,update",
    f"+{N[4]},A1,2026-05-10T09:20:00,update",
    f"+{N[2]},H1,yesterday-ish,update",  # a time that is no time
    f"+{N[3]},ROAM-JP,2026-05-10T12:00:00,attach",
]
PVG = Fence(code="pvg", name="浦东国际机场", scenario="airport_departure", cells=("A1", "A2"),
            template="fence.airport_departure", dwell_seconds=600, residents="skip",
            variables={"offer": "日韩多日包", "price": "25", "order_code": "MYRH25"})  # fmt: skip


def arrow(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                    schema=schema)  # fmt: skip


def subscriber(sid: int, gender: str) -> tuple:
    return (sid, f"+{N[sid]}", "china_mobile", "P1", "prepaid", "active", gender, None,
            dt.date(2015, 6, 1), None, 3 + sid % 2, "浦东新区" if sid < 4 else "黄浦区", None, 4,
            False, None)  # fmt: skip


@pytest.fixture
def warehouse():
    wh = open_duckdb(":memory:")
    wh.con.create_table("subscribers", arrow("subscribers", [
        subscriber(1, "F"), subscriber(2, "M"), subscriber(3, "M"), subscriber(4, "F")]))
    wh.con.create_table("cells", arrow("cells", [
        ("H1", 31.22, 121.54, "浦东新区", "residential"),
        ("A1", 31.144, 121.808, "浦东新区", "airport"),
        ("A2", 31.145, 121.809, "浦东新区", "airport")]))  # fmt: skip
    # The features' resident cells (only the columns the residents query reads)
    wh.con.create_table("features", pa.table({
        "subscriber_id": pa.array([1, 4], pa.int64()), "as_of": [DAY, DAY],
        "home_cell": ["H1", "H1"], "work_cell": [None, "A1"]}))  # fmt: skip
    yield wh
    wh.close()


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    from jingxin.content import catalog
    from jingxin.content.library import starter_library
    from jingxin.data.store.tenants import ensure_default_tenant

    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    documents = [d for d in starter_library()
                 if d.code.startswith(("fence.", "care.roaming"))]  # fmt: skip
    with opened.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=documents, approve_as="reviewer", reviewer=None)
    registry.apply(opened, [PVG])
    yield opened
    opened.dispose()


@pytest.fixture
def replay(tmp_path) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("msisdn,cell,ts,type\n" + "\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def settings(tmp_path: Path) -> Settings:
    return Settings(geofence=GeofenceSettings(checkpoint_dir=str(tmp_path / "state"),
                                              batch_size=4, block_ms=0))  # fmt: skip


def run(tmp_path, store, warehouse, source, **options):
    return run_matcher(settings(tmp_path), store, warehouse, source, clock=lambda: CLOCK,
                       **options)  # fmt: skip


def messages(store) -> list[Message]:
    with store.sessions() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def test_an_entry_that_dwells_gets_one_offer_and_an_arrival_one_welcome(
        tmp_path, store, warehouse, replay) -> None:  # fmt: skip
    report = run(tmp_path, store, warehouse, FileReplay(replay))
    # Then one offer for 1's stay that began at 09:00, one welcome for 3 in Japan
    offer, welcome = messages(store)
    assert (offer.source, offer.source_id, offer.msisdn) == ("fence", "pvg", f"+{N[1]}")
    assert offer.idempotency_key == f"fence:pvg:{N[1]}:{ms(9, 0)}"
    assert "浦东国际机场" in offer.text and "日韩多日包" in offer.text
    assert (welcome.source, welcome.idempotency_key) == (
        "journey", journey_key("roaming", DAY, f"+{N[3]}"))
    assert "欢迎抵达日本" in welcome.text
    # And every event and every bad row is counted, none of them fatal
    c = report.counts
    assert (report.stopped, report.events, report.triggers) == ("exhausted", 12, 1)
    assert (c["malformed"], c["unknown_subscriber"], c["unknown_cell"]) == (2, 1, 1)
    assert (c["entries"], c["dwelled"], c["triggered"], c["resident_skipped"]) == (3, 2, 1, 1)
    assert (dict(report.offers), dict(report.welcomes), report.arrivals) == (
        {"queued": 1}, {"queued": 1}, 1)
    # And the checkpoint holds the position and the totals
    meta = read_meta(Path(report.checkpoint))
    assert meta["position"] == {"file": str(replay), "row": len(ROWS)}
    assert meta["counts"]["triggered"] == 1 and meta["fences"] == ["pvg"]
    assert roaming_path(Path(report.checkpoint)).exists()


def test_the_same_file_again_sends_nothing_twice(tmp_path, store, warehouse, replay) -> None:
    first = run(tmp_path, store, warehouse, FileReplay(replay))
    # When resumed from the checkpoint's position: nothing left to read
    row = read_meta(Path(first.checkpoint))["position"]["row"]
    resumed = run(tmp_path, store, warehouse, FileReplay(replay, start_row=row))
    assert (resumed.restored, resumed.events, resumed.triggers) == (True, 0, 0)
    # When the whole file is replayed with no state at all (the checkpoint lost)
    fresh = run(tmp_path, store, warehouse, FileReplay(replay),
                checkpoint=tmp_path / "other" / "matcher-all.npz")  # fmt: skip
    # Then the same stay triggers again under the same key, and so does the arrival:
    # both duplicates, no second message
    assert (dict(fresh.offers), dict(fresh.welcomes)) == ({"duplicate": 1}, {"duplicate": 1})
    assert len(messages(store)) == 2


def test_a_restart_mid_stay_neither_resends_nor_forgets_who_is_inside(
        tmp_path, store, warehouse, replay) -> None:  # fmt: skip
    # Given a run stopped after 1's 09:05 event (8 events), 1 inside since 09:00
    first = run(tmp_path, store, warehouse, FileReplay(replay), max_events=8)
    assert (first.stopped, first.events, first.triggers, messages(store)) == (
        "max_events", 8, 0, [])
    # When a new run resumes from the checkpoint
    row = read_meta(Path(first.checkpoint))["position"]["row"]
    second = run(tmp_path, store, warehouse, FileReplay(replay, start_row=row))
    # Then the dwell completes at 09:12 for the stay that began before the restart
    assert (second.restored, second.events, second.triggers) == (True, 4, 1)
    offer = [m for m in messages(store) if m.source == "fence"]
    assert [m.idempotency_key for m in offer] == [f"fence:pvg:{N[1]}:{ms(9, 0)}"]
    # And the checkpoint's totals add up across the two runs
    assert read_meta(Path(second.checkpoint))["counts"]["events"] == 12


def test_a_stay_that_dwells_without_another_event_is_swept(tmp_path, store, warehouse,
                                                           replay) -> None:  # fmt: skip
    # Given a file where 1 enters at 11:00 and is never seen again; 2's events go on
    rows = [f"+{N[1]},H1,2026-05-10T10:30:00,update", f"+{N[1]},A1,2026-05-10T11:00:00,update",
            f"+{N[2]},H1,2026-05-10T11:05:00,update", f"+{N[2]},H1,2026-05-10T11:30:00,update"]
    replay.write_text("msisdn,cell,ts,type\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report = run(tmp_path, store, warehouse, FileReplay(replay))
    # Then the sweep at the watermark decides it: entered 11:00, due by 11:10
    (offer,) = [m for m in messages(store) if m.source == "fence"]
    assert offer.idempotency_key == f"fence:pvg:{N[1]}:{ms(11, 0)}"
    assert report.triggers == 1


def test_the_checkpoint_is_named_for_the_shards() -> None:
    assert [shard_label(s) for s in (None, [], [3], [0, 1, 2, 3], [0, 1, 2, 3, 6, 8, 9])] == [
        "all", "all", "3", "0-3", "0-3_6_8-9"]


# ------------------------------------------------------------------ audiences


def test_segments_become_bitmaps_and_a_broken_one_suspends_its_fence(warehouse, caplog) -> None:
    cells = CellIndex.from_warehouse(warehouse)
    directory = Directory.from_warehouse(warehouse)
    pudong = {"name": "pudong", "where": {"field": "region", "op": "eq", "value": "浦东新区"}}
    broken = {"name": "broken", "where": {"field": "no_such_field", "op": "eq", "value": 1}}
    fences = [PVG, Fence(code="mall", name="商场", scenario="mall", cells=("H1",),
                         template="fence.mall", segment=pudong),
              Fence(code="bad", name="坏", scenario="other", cells=("A2",),
                    template="fence.generic", segment=broken)]  # fmt: skip
    compiled = CompiledFences.build(fences, cells)
    with caplog.at_level(logging.ERROR, logger="jingxin.geofence.audience"):
        members = refresh_audiences(compiled, directory, warehouse)
    # Then: no segment is everyone; Pudong is 1-3; the broken segment is suspended
    assert members == {"pvg": 4, "mall": 3, "bad": 0}
    assert compiled.audience[0] is None
    assert sorted(compiled.audience[1]) == sorted(directory.lookup([N[1], N[2], N[3]]).tolist())
    assert len(compiled.audience[2]) == 0
    assert "fence bad" in caplog.text and "no_such_field" in caplog.text
    # And the residents: 4 works at A1 (an airport cell), 1 and 4 live at H1 (the mall)
    assert list(compiled.resident_members[0]) == directory.lookup([N[4]]).tolist()
    assert sorted(compiled.resident_members[1]) == sorted(directory.lookup([N[1], N[4]]).tolist())


class JoinsMidRun:
    """A replay during which subscriber 5 joins the warehouse (as the first batch is read,
    after the matcher loaded its directory)."""

    def __init__(self, source: FileReplay, warehouse) -> None:
        self.source, self.warehouse, self.reads = source, warehouse, 0
        self.name = source.name

    def read(self, max_events: int, block_ms: int):
        self.reads += 1
        if self.reads == 1:
            self.warehouse.con.insert("subscribers", arrow("subscribers", [subscriber(5, "F")]))
        return self.source.read(max_events, block_ms)

    def __getattr__(self, name: str):
        return getattr(self.source, name)


def test_a_subscriber_who_joins_mid_run_is_known_at_the_next_refresh(
        tmp_path, store, warehouse, replay) -> None:  # fmt: skip
    five = N[5]
    rows = [f"+{N[1]},H1,2026-05-10T08:00:00,update", f"+{five},A1,2026-05-10T08:30:00,update",
            f"+{N[2]},H1,2026-05-10T08:40:00,update", f"+{N[3]},H1,2026-05-10T08:50:00,update",
            f"+{five},A1,2026-05-10T09:00:00,update", f"+{five},A2,2026-05-10T09:15:00,update"]
    replay.write_text("msisdn,cell,ts,type\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = settings(tmp_path)
    config.geofence.audience_refresh_seconds = 0.001  # every round
    report = run_matcher(config, store, warehouse, JoinsMidRun(FileReplay(replay), warehouse),
                         clock=lambda: CLOCK)  # fmt: skip
    # Then 5's first event (before joining) was not ours; from 09:00 on 5 is matched
    assert report.counts["unknown_subscriber"] == 1
    (offer,) = messages(store)
    assert offer.idempotency_key == f"fence:pvg:{five}:{ms(9, 0)}"
