"""The realism check's parsing and replay on tiny hand-made files in the Shanghai Telecom
format (the real ones are not needed): stations as cells, sessions as events (every 15
minutes, past midnight for a session that crosses it, ``4.1`` read as 04:10), bad rows
counted with file:line, sessions at no station counted; entries per fence per hour with no
dwell and a 10-minute dwell; the bench command on such a folder, and without one."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jingxin.errors import InputError
from jingxin.geofence.shanghai import (
    PLACES,
    Place,
    cells_from_stations,
    events_from_sessions,
    fake_msisdn,
    replay,
)
from jingxin.geofence.types import EVENT_TYPES, to_msisdn_int

LOCAL = dt.timezone(dt.timedelta(hours=8))
A, B, C = "a" * 32, "b" * 32, "c" * 32  # user md5s
STATIONS = """,index,latitude,longitude,address,id
0,0,31.200000,121.300000,x,7
1,5,31.200500,121.300500,x,8
2,9,31.300000,121.500000,x,9
3,11,31.500000,121.900000,x,10
"""
SESSIONS = [
    f"8.00\t8.40\t31.200000\t121.300000\t{A}",  # fence one, 40 minutes: 08:00 08:15 08:30
    f"8.40\t9.00\t31.500000\t121.900000\t{A}",  # then elsewhere: 08:40 08:55
    f"7.59\t7.59\t31.200500\t121.300500\t{B}",  # fence one, a moment
    f"8.05\t8.10\t31.500000\t121.900000\t{B}",  # then elsewhere
    f"23.50\t0.20\t31.300000\t121.500000\t{C}",  # fence two, across midnight
    f"4.1\t4.1\t31.500000\t121.900000\t{C}",  # 04:10 (a float that lost its zero)
    f"9.00\t9.30\t0\t0\t{C}",  # no station at 0, 0
    "9.00\t9.30\t31.2",  # too few fields
    f"25.10\t26.00\t31.200000\t121.300000\t{A}",  # no such hour
    "9.00\t9.30\t31.200000\t121.300000\tnot-an-md5",
]
FENCES = (Place("one", "one", "mall", 31.2002, 121.3002, 200),
          Place("two", "two", "railway_station", 31.3, 121.5, 100))  # fmt: skip


def at(day: int, hh: int, mm: int) -> int:
    return int(dt.datetime(2014, 6, day, hh, mm, tzinfo=LOCAL).timestamp() * 1000)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "shanghai_base_stations.csv").write_text(STATIONS)
    (tmp_path / "shanghai_sessions_0614.tsv").write_text("\n".join(SESSIONS) + "\n")
    return tmp_path


def test_stations_become_cells_with_coordinates(data):
    cells = cells_from_stations(data / "shanghai_base_stations.csv")
    assert cells.ids == ["SH7", "SH8", "SH9", "SH10"]
    assert cells.lat.tolist() == [31.2, 31.2005, 31.3, 31.5]
    assert cells.lon.tolist() == [121.3, 121.3005, 121.5, 121.9]


def test_a_bad_station_row_names_the_file_and_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(STATIONS.replace("31.300000", "north"))
    with pytest.raises(InputError, match=r"s.csv: 1 unreadable station row\(s\): .*s.csv:4: latitude"):
        cells_from_stations(path)
    path.write_text("lat,lon,id\n1,2,3\n")
    with pytest.raises(InputError, match="s.csv: line 1: no column latitude, longitude"):
        cells_from_stations(path)
    with pytest.raises(InputError, match="nowhere.csv: no such file"):
        cells_from_stations(tmp_path / "nowhere.csv")


def test_sessions_become_events_every_15_minutes_and_across_midnight(data):
    cells = cells_from_stations(data / "shanghai_base_stations.csv")
    loaded = events_from_sessions(data / "shanghai_sessions_0614.tsv", cells)
    batch = loaded.batch
    # Then six sessions are placed, one crossing midnight, one at no station
    assert (loaded.sessions, loaded.users, loaded.crossing_midnight) == (6, 3, 1)
    assert loaded.counts == {"malformed": 3, "no_station": 1}
    path = data / "shanghai_sessions_0614.tsv"
    assert loaded.samples == [f"{path}:8: 3 fields, expected 5", f"{path}:10: user is not readable",
                              f"{path}:9: a time past 23.59"]  # fmt: skip
    a, b, c = fake_msisdn(np.array([A, B, C]))
    rows = sorted(zip(batch.msisdn.tolist(), batch.ts.tolist(), batch.cell.to_pylist(),
                      (EVENT_TYPES[k] for k in batch.kind), strict=True))  # fmt: skip
    assert [r for r in rows if r[0] == a] == [
        (a, at(14, 8, 0), "SH7", "data"), (a, at(14, 8, 15), "SH7", "update"),
        (a, at(14, 8, 30), "SH7", "update"), (a, at(14, 8, 40), "SH10", "data"),
        (a, at(14, 8, 55), "SH10", "update")]
    assert [r for r in rows if r[0] == c] == [
        (c, at(14, 4, 10), "SH10", "data"), (c, at(14, 23, 50), "SH9", "data"),
        (c, at(15, 0, 5), "SH9", "update")]
    assert (np.diff(batch.ts) >= 0).all()
    assert not to_msisdn_int([f"+{n}" for n in (a, b, c)])[1].any()  # valid mobile numbers


def test_fake_numbers_are_stable_and_distinct():
    md5 = np.array([hashlib.md5(str(i).encode()).hexdigest() for i in range(5000)])
    numbers = fake_msisdn(md5)
    assert len(set(numbers.tolist())) == 5000
    assert (fake_msisdn(md5[::-1])[::-1] == numbers).all()  # whatever the order of the file
    assert numbers[0] == 8_614_000_000_000 + int(md5[0], 16) % 10**9
    # md5s equal modulo 10^9 move up, in md5 order, to the next free numbers
    clash = np.array([f"{v:032x}" for v in (2 * 10**9 + 5, 5, 6, 10**9 + 5)])
    assert (fake_msisdn(clash) - 8_614_000_000_000).tolist() == [8, 5, 6, 7]


def test_entries_per_fence_per_hour_with_and_without_dwell(data):
    cells = cells_from_stations(data / "shanghai_base_stations.csv")
    batch = events_from_sessions(data / "shanghai_sessions_0614.tsv", cells).batch
    # With no dwell every entry counts, in the hour it happened
    now = replay(batch, cells, dwell_seconds=0, places=FENCES, batch_events=3)
    assert [f.cells for f in now.fences] == [("SH7", "SH8"), ("SH9",)]
    assert now.by_hour(0) == {"07": 1, "08": 1}  # B at 07:59, A at 08:00
    assert now.by_hour(1) == {"23": 1}  # C at 23:50
    assert now.subscribers.tolist() == [2, 1]
    # With ten minutes, B's moment does not count; A counts at 08:15, C after midnight
    later = replay(batch, cells, dwell_seconds=600, places=FENCES, batch_events=3)
    assert later.by_hour(0) == {"08": 1}
    assert later.by_hour(1) == {"24": 1}
    assert later.counts["entries"] == 3 and later.counts["triggered"] == 2


def test_every_real_place_has_a_name_a_scenario_and_a_radius():
    assert len({p.code for p in PLACES}) == 6
    assert all(100 <= p.radius_m <= 3000 for p in PLACES)


def test_the_bench_command_on_a_folder_of_files(tmp_path):
    from jingxin.cli import app

    # Given the two files with a station at each real place and a session at each
    rows = [",index,latitude,longitude,address,id"]
    rows += [f"{i},{i},{p.lat:.6f},{p.lon:.6f},x,{100 + i}" for i, p in enumerate(PLACES)]
    (tmp_path / "shanghai_base_stations.csv").write_text("\n".join(rows) + "\n")
    sessions = [f"{8 + i}.00\t{8 + i}.30\t{p.lat:.6f}\t{p.lon:.6f}\t{i:032x}"
                for i, p in enumerate(PLACES)]  # fmt: skip
    (tmp_path / "shanghai_sessions_0614.tsv").write_text("\n".join(sessions) + "\n")
    # When the benchmark runs on them
    result = CliRunner().invoke(app, ["bench", "geofence-shanghai", "--data-dir", str(tmp_path),
                                      "--no-record"])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    figures = json.loads(result.output.strip().splitlines()[-1])
    # Then each fence has its station and an entry in its hour, with or without dwell
    assert figures["benchmark"] == "geofence-shanghai" and figures["events"] == 12
    fences = figures["fences"]
    for i, p in enumerate(PLACES):
        assert f"SH{100 + i}" in fences[p.code]["stations"]
        for dwell in ("dwell_0m", "dwell_10m"):
            assert fences[p.code][dwell]["by_hour"][f"{8 + i:02d}"] == 1
    # and the Hongqiao hub's two fences, 700 m apart, share their stations
    hub = [fences["sh-hongqiao-rail"], fences["sh-hongqiao-t2"]]
    assert hub[0]["stations"] == hub[1]["stations"] == ["SH100", "SH102"]
    assert [f["dwell_0m"]["entries"] for f in hub] == [2, 2]
    assert sum(f["dwell_0m"]["entries"] for f in fences.values()) == 8
    assert "entries per local hour" in result.output


def test_the_bench_command_without_the_data(tmp_path):
    from jingxin.cli import app

    result = CliRunner().invoke(app, ["bench", "geofence-shanghai", "--data-dir",
                                      str(tmp_path / "none")])  # fmt: skip
    assert isinstance(result.exception, InputError)
    assert "no such directory" in str(result.exception)
    assert "shanghai_sessions_0614.tsv" in str(result.exception)
