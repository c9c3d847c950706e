"""The fence matcher's crash promise at CI size: on PostgreSQL and Redis, with real
``jingxin fence run --redis`` processes, kill -9 the matcher mid-stream, start another, and
count with :mod:`jingxin.bench.geofence_crash` against the offers the script itself causes.

The same run at full size is ``jingxin bench geofence-crash``. The report is printed
(``pytest -s``): offers missing, extra and doubled must be 0, who is inside kept.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from jingxin.bench.geofence_crash import FenceCrashPlan, geofence_crash, invariants
from jingxin.bench.geofence_script import SPAN_S, script_start
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES

# kill -9 and restarts on a timeline: run alone, after the parallel part (./dev test).
pytestmark = pytest.mark.serial

SUBSCRIBERS, CELLS = 600, 40


def tiny_warehouse(path: Path) -> Path:
    """``SUBSCRIBERS`` subscribers and ``CELLS`` cells in a DuckDB file (the matcher is a
    process of its own: it cannot see an in-memory one). No features: nobody is a resident."""
    n = SUBSCRIBERS
    columns = {
        "subscriber_id": np.arange(1, n + 1, dtype=np.int64),
        "msisdn": [f"+86139{i:08d}" for i in range(n)], "carrier": ["china_mobile"] * n,
        "plan_id": ["P1"] * n, "payment": ["prepaid"] * n, "status": ["active"] * n,
        "gender": ["F", "M"] * (n // 2), "birthday": [None] * n,
        "entry_date": [dt.date(2015, 6, 1)] * n, "contract_end": [None] * n,
        "star_level": np.full(n, 3, np.int8), "region": ["浦东新区"] * n,
        "handset_model": [None] * n, "handset_generation": np.full(n, 4, np.int8),
        "app_user": [False] * n, "suspended_since": [None] * n,
    }  # fmt: skip
    cells = {"cell_id": [f"C{i:04d}" for i in range(CELLS)],
             "lat": 31.2 + np.arange(CELLS) / 1000, "lon": 121.5 + np.arange(CELLS) / 1000,
             "district": ["浦东新区"] * CELLS, "kind": ["mall"] * CELLS}  # fmt: skip
    wh = open_duckdb(path)
    try:
        for name, data in (("subscribers", columns), ("cells", cells)):
            schema = TABLES[name].schema
            wh.con.create_table(name, pa.table([pa.array(data[f.name], f.type) for f in schema],
                                               schema=schema))  # fmt: skip
    finally:
        wh.close()
    return path


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_kill_9_the_matcher_mid_stream_neither_resends_nor_forgets(pg_url, redis_url,
                                                                    tmp_path) -> None:  # fmt: skip
    # Given 300 subscribers entering 6 fences (half on entry, half after 120 s), staying,
    # some leaving and some coming back, among 4,000 events on 4 streams
    plan = FenceCrashPlan(subscribers=300, events=4000, kill_at=0.5, streams=4, fences=6,
                          rate=4000.0, warehouse=str(tiny_warehouse(tmp_path / "wh.duckdb")),
                          redis_url=redis_url, batch_size=500, timeout=20.0)  # fmt: skip
    # When the matcher is killed with SIGKILL halfway, and another takes over its lease
    began = time.monotonic()
    report = geofence_crash(store_url=pg_url, workdir=tmp_path, plan=plan)
    seconds = time.monotonic() - began
    print(f"\ngeofence crash report ({seconds:.1f} s): {json.dumps(report, default=str)}")
    # Then every expected offer is queued once, nothing else, and who is inside is kept
    assert report["failures"] == [], report["failures"]
    assert report["messages"] == report["offers_expected"] == 300
    # And the kill landed mid-stream, with offers on both sides of it and stays open across it
    at_kill, after = report["at_kill"], report["after_restart"]
    assert 0 < at_kill["offers"] < 300 and after["offers_queued"] > 0
    assert at_kill["checkpoint"]["inside"] > 0 and after["restored_inside"] > 0
    assert report["capped"] > 0
    assert seconds < 40


def test_the_invariants_name_each_broken_promise() -> None:
    sound = {"missing": 0, "extra": 0, "doubles": 0, "offers_expected": 10,
             "inside_at_end": 4, "inside_expected": 4, "capped": 2, "capped_expected": 2,
             "queued_after_last_checkpoint": 1, "drained": True, "second_exit": 0,
             "at_kill": {"offers": 5}, "after_restart": {"restored": True, "offers_duplicate": 1},
             "logs": {"matcher-1": {"leaks": 0}}}  # fmt: skip
    assert invariants(sound) == []
    broken = [({"missing": 1}, "missing"), ({"extra": 2}, "extra"), ({"doubles": 1}, "doubles"),
              ({"inside_at_end": 3}, "inside at the end"), ({"capped": 1}, "capped"),
              ({"after_restart": {"restored": False, "offers_duplicate": 1}}, "did not restore"),
              ({"after_restart": {"restored": True, "offers_duplicate": 0}}, "re-asked"),
              ({"at_kill": {"offers": 10}}, "mid-stream"),
              ({"logs": {"matcher-1": {"leaks": 1}}}, "full numbers")]  # fmt: skip
    for change, words in broken:
        assert any(words in line for line in invariants({**sound, **change})), change


def test_the_script_keeps_to_one_local_day() -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    # Given noon: the script ends now; just after midnight: it starts at midnight, not before
    noon = dt.datetime(2026, 5, 10, 12, 0, tzinfo=shanghai)
    assert script_start(noon, "Asia/Shanghai") == (noon.timestamp() - SPAN_S) * 1000
    late = dt.datetime(2026, 5, 10, 0, 5, tzinfo=shanghai)
    midnight = dt.datetime(2026, 5, 10, tzinfo=shanghai)
    assert script_start(late.astimezone(dt.UTC), "Asia/Shanghai") == midnight.timestamp() * 1000
