"""``jingxin fence`` end to end on a DuckDB warehouse file and a SQLite store: check (warnings,
nothing saved), apply (again: unchanged), list, show (cells with their place, a real PNG map,
by default under var/geofence), export and re-apply, disable / enable / remove, add from
options; a bad file is an error naming file:line, fence and field, and saves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import InputError

TOML = """[store]
url = "sqlite:///fences.db"

[warehouse]
path = "wh.duckdb"
"""
CELLS = [  # id, lat, lon, district, kind
    ("P1", 31.1443, 121.8083, "浦东新区", "airport"),
    ("P2", 31.1452, 121.8090, "浦东新区", "airport"),
    ("P3", 31.1430, 121.8070, "浦东新区", "airport"),
    ("R1", 31.1946, 121.3204, "闵行区", "rail"),
    ("R2", 31.1950, 121.3210, "闵行区", "rail"),
    ("M1", 31.2272, 121.4921, "黄浦区", "mall"),
    ("X1", 31.3000, 121.6000, "宝山区", "residential"),
]
FENCES = """\
fences:
  - code: pvg
    name: 浦东机场
    scenario: airport_departure
    centre: {lat: 31.1443, lon: 121.8083}
    radius_m: 300
    hours: "06:00-23:00"
    dwell: 10m
    template: fence.airport_departure
    variables: {offer: 日韩包, price: 25, order_code: MYRH25}
  - code: pvg-core
    name: 浦东机场T2
    scenario: airport_departure
    cells: [P1, P2]
    template: fence.airport_departure
    variables: {offer: 港澳包, price: 15, order_code: MYGA15}
  - code: hongqiao
    name: 虹桥火车站
    scenario: railway_station
    cells: [R1, R2]
    template: fence.railway_station
    variables: {offer: 3日包, order_code: LT3D10}
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    from jingxin.data.warehouse.connection import open_duckdb

    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_WAREHOUSE__PATH",
                 "JINGXIN_GEOFENCE__TENANT", "JINGXIN_GEOFENCE__CHECKPOINT_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jingxin.toml").write_text(TOML, encoding="utf-8")
    (tmp_path / "fences.yaml").write_text(FENCES, encoding="utf-8")
    schema = TABLES["cells"].schema
    columns = list(zip(*CELLS, strict=True))
    wh = open_duckdb(tmp_path / "wh.duckdb")
    wh.con.create_table("cells", pa.table([pa.array(list(c), f.type) for f, c in
                                           zip(schema, columns, strict=True)], schema=schema))
    wh.close()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def ok(done) -> str:
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    return done.output


def fences_json(cli) -> list[dict]:
    return json.loads(ok(cli("fence", "list", "--json")))


def test_check_apply_list_show_export_disable_remove(cli, tmp_path: Path) -> None:
    # check: every fence valid, the overlap warned about, nothing saved
    out = ok(cli("fence", "check", "fences.yaml"))
    assert "3 fence(s), all valid" in out
    assert "warning: fences pvg and pvg-core share 2 cells" in out
    assert fences_json(cli) == []
    # apply: created; again: unchanged; the templates are not approved yet: said so
    report = json.loads(ok(cli("fence", "apply", "fences.yaml", "--json")))
    assert report["created"] == ["pvg", "pvg-core", "hongqiao"]
    assert any("fence.airport_departure has no approved version" in w
               for w in report["warnings"])  # fmt: skip
    assert "0 created, 0 updated, 3 unchanged" in ok(cli("fence", "apply", "fences.yaml"))
    listed = {f["code"]: f for f in fences_json(cli)}
    assert listed["pvg"]["cells"] == ["P1", "P2", "P3"] and listed["pvg"]["version"] == 1
    assert listed["pvg"]["definition"]["dwell_seconds"] == 600
    # show: the definition, each cell with its place, and the map
    out = ok(cli("fence", "show", "pvg", "--map", "maps/pvg.png"))
    assert "radius_m: 300\n" in out and "P3" in out and "31.143000" in out and "airport" in out
    assert_png(tmp_path / "maps" / "pvg.png")
    shown = json.loads(ok(cli("fence", "show", "hongqiao", "--json")))
    assert shown["cells"][0] == {"cell": "R1", "lat": 31.1946, "lon": 121.3204,
                                 "district": "闵行区", "kind": "rail"}  # fmt: skip
    assert shown["map"] == str(Path("var/geofence/hongqiao.png"))
    assert_png(tmp_path / "var" / "geofence" / "hongqiao.png")
    # export, then apply the export: nothing changes
    ok(cli("fence", "export", "--out", "exported.yaml"))
    assert "3 unchanged" in ok(cli("fence", "apply", "exported.yaml"))
    # disable: a new version, off; enable; remove
    assert "disabled (version 2)" in ok(cli("fence", "disable", "hongqiao"))
    assert {f["code"]: f["enabled"] for f in fences_json(cli)}["hongqiao"] is False
    assert "enabled (version 3)" in ok(cli("fence", "enable", "hongqiao"))
    ok(cli("fence", "remove", "pvg-core"))
    assert [f["code"] for f in fences_json(cli)] == ["hongqiao", "pvg"]
    # apply --prune with a file naming one fence removes the rest
    (tmp_path / "one.yaml").write_text(FENCES.split("  - code: pvg-core")[0], encoding="utf-8")
    assert "removed: hongqiao" in ok(cli("fence", "apply", "one.yaml", "--prune"))


def assert_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[0] >= 400 and image.shape[1] >= 400
    assert (image[..., :3] < 0.99).any()  # something was drawn


def test_a_bad_file_names_file_line_fence_and_field_and_saves_nothing(cli,
                                                                      tmp_path: Path) -> None:
    bad = FENCES.replace('hours: "06:00-23:00"', 'hours: "06:00-25:00"').replace(
        "cells: [R1, R2]", "cells: [R1, NOPE]")  # fmt: skip
    (tmp_path / "bad.yaml").write_text(bad, encoding="utf-8")
    done = cli("fence", "apply", "bad.yaml")
    assert isinstance(done.exception, InputError)
    assert str(done.exception) == "bad.yaml:7: fences[0] (pvg): hours: '06:00-25:00': not a " \
                                  "time of day"
    # Fixing the hours, the unknown cell is named next (the cell table is read)
    (tmp_path / "bad.yaml").write_text(bad.replace("25:00", "23:00"), encoding="utf-8")
    done = cli("fence", "check", "bad.yaml")
    assert str(done.exception) == "bad.yaml:20: fences[2] (hongqiao): cells: 1 not in the " \
                                  "cell table: NOPE"
    done = cli("fence", "apply", "bad.yaml")
    assert isinstance(done.exception, InputError)
    assert fences_json(cli) == []


def test_add_from_options(cli, tmp_path: Path) -> None:
    # Given the starter templates approved
    ok(cli("template", "seed-library", "--approve-as", "qa"))
    out = ok(cli("fence", "add", "mall", "--name", "豫园商城", "--scenario", "mall",
                 "--centre", "31.2272,121.4921", "--radius", "200", "--template", "fence.mall",
                 "--hours", "10:00-22:00", "--dwell", "15m", "--cap", "2", "--residents", "skip",
                 "--variable", "offer=5元包", "--holdout", "10%"))  # fmt: skip
    assert "fence mall added (operator): 1 cell(s)" in out
    # The template's order code is not set: said so (its offers would be refused)
    assert "warning: fence mall: template fence.mall needs variable(s) order_code" in out
    (fence,) = fences_json(cli)
    assert fence["cells"] == ["M1"]
    assert fence["definition"]["hours"] == ["10:00-22:00"]
    assert fence["definition"]["variables"] == {"offer": "5元包"}
    assert (fence["definition"]["cap_per_day"], fence["definition"]["residents"]) == (2, "skip")
    assert fence["definition"]["holdout"] == 0.1
    # The same code again, a bad option, a radius covering nothing: one line each
    again = cli("fence", "add", "mall", "--name", "M", "--scenario", "mall", "--cells", "M1",
                "--template", "fence.mall")  # fmt: skip
    assert "fence 'mall' already exists" in str(again.exception)
    bad = cli("fence", "add", "x", "--name", "X", "--scenario", "mall", "--cells", "M1",
              "--template", "fence.mall", "--hours", "late")  # fmt: skip
    assert str(bad.exception).startswith("--hours: 'late': hours are")
    whole = cli("fence", "add", "z", "--name", "Z", "--scenario", "mall", "--cells", "M1",
                "--template", "fence.mall", "--holdout", "100%")  # fmt: skip
    assert "holdout" in str(whole.exception) and "100%" in str(whole.exception)
    empty = cli("fence", "add", "y", "--name", "Y", "--scenario", "mall", "--centre",
                "31.25,121.40", "--radius", "50", "--template", "fence.mall")  # fmt: skip
    assert "y: radius_m: 50 m around (31.25, 121.4) covers no cell" in str(empty.exception)
    assert len(fences_json(cli)) == 1
