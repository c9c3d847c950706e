"""The synthetic morning: its schema and window, the same table for the same seed, airport
trips (a stay of 20+ minutes hopping between airport cells, a detach, some abroad), homes
taken from the features table, and the events file (CSV with a plain header and +08:00
times, or Parquet), written whole or not at all; the CLI command writes one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from jingxin.data.synth import SynthParams, synthesize
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.errors import InputError
from jingxin.geofence.synthetic import iso_local, morning, write_events
from jingxin.geofence.types import EVENT_TYPES

DAY = dt.date(2026, 10, 5)  # a Monday
LOCAL = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def warehouse_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("morning")
    synthesize(params=SynthParams(subscribers=1500, seed=7, location_subscribers=0, cells=600),
               out=folder / "synth")  # fmt: skip
    path = folder / "wh.duckdb"
    wh = open_duckdb(path)
    for name in ("subscribers", "cells"):
        wh.con.raw_sql(f"CREATE TABLE {name} AS SELECT * FROM "
                       f"read_parquet('{folder / 'synth' / name}.parquet')")  # fmt: skip
    wh.close()
    return path


@pytest.fixture(scope="module")
def warehouse(warehouse_file: Path):
    wh = open_duckdb(warehouse_file, read_only=True)
    yield wh
    wh.close()


def _airport_cells(warehouse) -> set[str]:
    cells = warehouse.table("cells").to_pyarrow()
    return set(cells.filter(pc.equal(cells["kind"], "airport"))["cell_id"].to_pylist())


def test_a_morning_has_the_schema_the_window_and_the_order(warehouse):
    table = morning(warehouse, day=DAY, seed=1)
    assert table.column_names == ["msisdn", "cell", "ts", "type"]
    assert table.schema.field("ts").type == pa.timestamp("ms", tz="+08:00")
    assert table.num_rows > 1500 * 5  # everyone, seen every 20-50 minutes at least
    assert pc.all(pc.starts_with(table["msisdn"], "+86")).as_py()
    assert set(pc.unique(table["type"]).to_pylist()) <= set(EVENT_TYPES)
    ts = table["ts"].cast(pa.int64()).to_numpy()
    start = int(dt.datetime.combine(DAY, dt.time(6), LOCAL).timestamp() * 1000)
    assert ts.min() >= start and ts.max() < start + 5 * 3600 * 1000
    assert (np.diff(ts) >= 0).all()
    assert (ts % 1000 == 0).all()  # whole seconds
    cells = set(warehouse.table("cells").to_pyarrow()["cell_id"].to_pylist())
    off_grid = {c for c in pc.unique(table["cell"]).to_pylist() if c not in cells}
    assert all(c.startswith("ROAM-") for c in off_grid)


def test_the_same_seed_gives_the_same_morning_and_another_seed_another(warehouse):
    one = morning(warehouse, day=DAY, seed=3, subscribers=400)
    assert one.equals(morning(warehouse, day=DAY, seed=3, subscribers=400))
    assert not one.equals(morning(warehouse, day=DAY, seed=4, subscribers=400))
    assert len(pc.unique(one["msisdn"])) == 400


def test_airport_trips_stay_hop_between_airport_cells_and_some_go_abroad(warehouse):
    # Given a morning where a fifth of the subscribers make an airport trip
    table = morning(warehouse, day=DAY, seed=5, airport_share=0.2).to_pandas()
    airport = table[table["cell"].isin(_airport_cells(warehouse))]
    # Then about 300 of 1,500 are seen at an airport, most for 20 minutes or more,
    per = airport.groupby("msisdn")["ts"].agg(["min", "max", "count"])
    assert 200 <= len(per) <= 450
    assert ((per["max"] - per["min"]) >= pd.Timedelta(minutes=20)).mean() > 0.5
    # in more than one of the airport's cells, with a detach as they board
    assert (airport.groupby("msisdn")["cell"].nunique() > 1).mean() > 0.5
    assert (airport["type"] == "detach").sum() > 50
    # and some then turn up abroad, after their last airport event
    abroad = table[table["cell"].str.startswith("ROAM-")]
    assert abroad["msisdn"].nunique() > 20
    departed = abroad[abroad["type"] == "attach"].groupby("msisdn")["ts"].min()
    left = airport.groupby("msisdn")["ts"].max().reindex(departed.index).dropna()
    assert len(left) and (departed[left.index] > left).all()


def test_no_airport_share_means_no_one_abroad(warehouse):
    table = morning(warehouse, day=DAY, seed=5, airport_share=0.0)
    assert not pc.any(pc.starts_with(table["cell"], "ROAM-")).as_py()
    assert "detach" not in pc.unique(table["type"]).to_pylist()


def test_homes_come_from_the_features_table_when_it_has_them(warehouse_file, tmp_path):
    # Given a features table naming a home cell for three subscribers
    import shutil

    path = tmp_path / "wh.duckdb"
    shutil.copy(warehouse_file, path)
    wh = open_duckdb(path)
    cells = wh.table("cells").to_pyarrow()["cell_id"].to_pylist()
    wh.con.raw_sql("CREATE TABLE features AS SELECT * FROM (VALUES "
                   f"(1, DATE '2026-09-01', '{cells[0]}', NULL), "
                   f"(1, DATE '2026-10-01', '{cells[10]}', '{cells[20]}'), "
                   f"(2, DATE '2026-10-01', '{cells[11]}', NULL), "
                   f"(3, DATE '2026-10-01', 'NO-SUCH-CELL', NULL)) "
                   "AS t(subscriber_id, as_of, home_cell, work_cell)")  # fmt: skip
    msisdn = _numbers(wh)
    # When the morning is drawn
    table = morning(wh, day=DAY, seed=1, airport_share=0.0).to_pandas()
    wh.close()
    first = table.sort_values("ts", kind="stable").groupby("msisdn")["cell"].first()
    # Then the latest build's home cell is where they are at 06:00; an unknown one is ignored
    assert first[msisdn[1]] == cells[10]
    assert first[msisdn[2]] == cells[11]
    assert first[msisdn[3]] in set(cells)


def _numbers(wh) -> dict[int, str]:
    t = wh.table("subscribers").select("subscriber_id", "msisdn").to_pyarrow()
    return dict(zip(t["subscriber_id"].to_pylist(), t["msisdn"].to_pylist(), strict=True))


def test_events_files_csv_and_parquet(warehouse, tmp_path):
    table = morning(warehouse, day=DAY, seed=2, subscribers=200)
    csv_path = write_events(table, tmp_path / "m.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "msisdn,cell,ts,type"
    assert lines[1].split(",")[2].startswith(f"{DAY.isoformat()}T06:")
    assert lines[1].endswith(("update", "data", "call", "sms", "handover", "attach"))
    back = pacsv.read_csv(csv_path, convert_options=pacsv.ConvertOptions(
        column_types={"msisdn": pa.string(), "ts": pa.string()}))  # fmt: skip
    assert back.num_rows == table.num_rows
    parsed = [dt.datetime.fromisoformat(t) for t in back["ts"].to_pylist()[:50]]
    assert [int(p.timestamp() * 1000) for p in parsed] == table["ts"].cast(pa.int64()).to_pylist()[:50]
    assert back["msisdn"].to_pylist() == table["msisdn"].to_pylist()
    parquet = write_events(table, tmp_path / "m.parquet")
    assert pq.read_table(parquet).equals(table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m.parquet"]  # no temp left


def test_a_value_with_a_comma_is_quoted_and_a_bad_suffix_writes_nothing(tmp_path):
    table = pa.table({"msisdn": ["+8613900000001"], "cell": ["C1,2"],
                      "ts": pa.array([0], pa.timestamp("ms", tz="+08:00")), "type": ["update"]})
    path = write_events(table, tmp_path / "x.csv")
    assert path.read_text().splitlines() == ["msisdn,cell,ts,type",
                                             '"+8613900000001","C1,2","1970-01-01T08:00:00+08:00","update"']  # fmt: skip
    with pytest.raises(InputError, match="x.json: the events file must end in .csv or .parquet"):
        write_events(table, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_iso_local_formats_any_offset_and_day():
    ms = [0, 1_790_000_000_123, -1000]
    assert iso_local(ms).to_pylist() == ["1970-01-01T08:00:00+08:00", "2026-09-21T22:13:20+08:00",
                                         "1970-01-01T07:59:59+08:00"]  # fmt: skip
    assert iso_local([0], -(5 * 3600 + 1800)).to_pylist() == ["1969-12-31T18:30:00-05:30"]


def test_a_bad_airport_share_is_refused(warehouse):
    with pytest.raises(InputError, match="--airport-share must be between 0 and 1"):
        morning(warehouse, day=DAY, airport_share=1.5)


def test_the_command_writes_the_file(warehouse_file, tmp_path):
    from jingxin.cli import fence_data

    app = typer.Typer()
    fence_data.register(app)
    app.command("noop")(lambda: None)  # a second command, so typer keeps the names
    out = tmp_path / "morning.parquet"
    result = CliRunner().invoke(app, ["synth-morning", "--out", str(out), "--day", "2026-10-05",
                                      "--subscribers", "300", "--warehouse", str(warehouse_file)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "of 300 subscribers on 2026-10-05 06:00-11:00 written to" in result.output
    assert pq.read_table(out).num_rows > 300
    bad = CliRunner().invoke(app, ["synth-morning", "--out", str(out), "--day", "5 Oct"])
    assert isinstance(bad.exception, InputError) and "--day: '5 Oct' is not a date" in str(bad.exception)
