"""Fence definitions: a fences file read and checked (every problem named by file, line,
fence and field, all fences before any is used), hours, dwell and segments parsed, cells
resolved against a hand-made cell table (a radius covering nothing and unknown cells are
errors, shared cells a warning), the exact radius query, the definition round trip, the
packaged example on a synthetic grid, and the starter offer templates."""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from jingxin.content.library import starter_library
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import InputError
from jingxin.geofence.directory import CellIndex
from jingxin.geofence.fences import (
    FenceDef,
    cells_within,
    fence_of,
    load_fences,
    parse_duration,
    parse_hours,
    resolve,
)
from jingxin.geofence.types import SCENARIOS

PVG = (31.1443, 121.8083)
CELLS = [  # id, lat, lon, district, kind
    ("A1", 31.1443, 121.8083, "浦东新区", "airport"),  # the centre
    ("A2", 31.1452, 121.8083, "浦东新区", "airport"),  # 100 m north
    ("A3", 31.1443, 121.8104, "浦东新区", "airport"),  # 200 m east
    ("A4", 31.1488, 121.8083, "浦东新区", "airport"),  # 500 m north
    ("M1", 31.2272, 121.4921, "黄浦区", "mall"),
    ("M2", 31.2275, 121.4925, "黄浦区", "mall"),
    ("FAR", 31.5000, 121.2000, "嘉定区", "suburban"),
]


def cells_table(rows: list[tuple]) -> pa.Table:
    schema = TABLES["cells"].schema
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                    schema=schema)  # fmt: skip


def index_of(table: pa.Table) -> CellIndex:
    wh = open_duckdb(":memory:")
    try:
        wh.con.create_table("cells", table)
        return CellIndex.from_warehouse(wh)
    finally:
        wh.close()


@pytest.fixture(scope="module")
def cells() -> CellIndex:
    return index_of(cells_table(CELLS))


def write(tmp_path: Path, text: str, name: str = "fences.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
fences:
  - code: pvg
    name: 浦东机场
    scenario: airport_departure
    centre: {lat: 31.1443, lon: 121.8083}
    radius_m: 250
    hours: ["06:00-09:00", "22:00-02:00"]
    dwell: 5m
    template: fence.airport_departure
    variables: {offer: 日韩包, price: 25, order_code: MYRH25}
    residents: skip
    validity_minutes: 60
  - code: mall
    name: 豫园商城
    scenario: mall
    cells: [M2, M1, M1]
    sender: 10086
    template: fence.mall
    segment: {name: locals, where: {field: region, op: eq, value: 黄浦区}}
"""


def test_a_good_file_reads_with_every_form(tmp_path: Path, cells: CellIndex) -> None:
    # Given a file with a radius fence and a listed one
    defs = load_fences(write(tmp_path, GOOD), cells=cells)
    # Then each field is in its normal form
    pvg, mall = defs
    assert pvg.dwell_seconds == 300 and pvg.hours == ("06:00-09:00", "22:00-02:00")
    assert pvg.variables == {"offer": "日韩包", "price": "25", "order_code": "MYRH25"}
    assert mall.cells == ("M1", "M2") and mall.sender == "10086" and mall.cap_per_day == 1
    assert mall.residents == "once" and mall.validity_minutes == 120
    assert mall.segment == {"name": "locals",
                            "where": {"field": "region", "op": "eq", "value": "黄浦区"}}
    assert pvg.where.endswith("fences.yaml:2: fences[0] (pvg)")
    # When resolved
    fences, warnings = resolve(defs, cells, tenant="acme")
    # Then the radius picked exactly the cells within 250 m, hours are local minutes
    assert fences[0].cells == ("A1", "A2", "A3") and warnings == []
    assert fences[0].hours == ((360, 540), (1320, 120))
    assert fences[0].centre == PVG and fences[0].radius_m == 250
    assert fences[0].tenant_id == "acme" and fences[0].validity_minutes == 60
    assert fences[1].segment == mall.segment and fences[1].sender == "10086"


def test_the_definition_round_trips(tmp_path: Path, cells: CellIndex) -> None:
    # Given resolved fences
    fences, _ = resolve(load_fences(write(tmp_path, GOOD)), cells)
    for fence in fences:
        # When their definition is read back (as the store does)
        again = FenceDef.model_validate(fence.definition).definition()
        # Then it is the same, and so is the fence made from it
        assert again == fence.definition
        assert fence_of(again, fence.cells) == fence
        assert FenceDef.from_fence(fence).definition() == fence.definition


BAD_FENCES = [  # (fence lines, the problem named)
    ("    hours: 25:00-26:00\n", "6: fences[0] (x): hours: '25:00-26:00': not a time of day"),
    ("    hours: 7-22\n", "6: fences[0] (x): hours: '7-22': hours are"),
    ("    hours: '08:00-08:00'\n", "hours: '08:00-08:00': starts where it ends"),
    ("    dwell: soon\n", "6: fences[0] (x): dwell: 'soon' is not a duration"),
    ("    dwell: 5m\n    dwell_seconds: 60\n", "2: fences[0] (x): give dwell or dwell_seconds"),
    ("    residents: sometimes\n", "6: fences[0] (x): residents: Input should be"),
    ("    cap_per_day: 0\n", "6: fences[0] (x): cap_per_day: Input should be greater"),
    ("    colour: red\n", "6: fences[0] (x): colour: unknown field"),
    ("    variables: {place: here}\n", "variables: variable 'place' is set for every offer"),
    ("    radius_m: 100\n", "2: fences[0] (x): give cells, or centre and radius_m, not both"),
    ("    sender: '+86 10086'\n", "6: fences[0] (x): sender: String should match"),
    ("    segment: {name: s, where: {field: regoin, op: eq, value: x}}\n",
     "6: fences[0] (x): segment: segment: where.field: unknown field 'regoin'"),
    ("    segment: missing.yaml\n", "segment: "),
]


@pytest.mark.parametrize(("extra", "message"), BAD_FENCES, ids=[m for _, m in BAD_FENCES])
def test_a_bad_field_is_named_by_file_line_fence_and_field(tmp_path: Path, extra: str,
                                                           message: str) -> None:  # fmt: skip
    text = ("fences:\n  - code: x\n    name: X\n    scenario: mall\n    cells: [M1]\n"
            + extra + "    template: fence.mall\n")  # fmt: skip
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_fences(path)
    assert f"{path}:" in str(caught.value)
    assert message in str(caught.value)


def test_every_fence_is_checked_before_any_is_used(tmp_path: Path) -> None:
    # Given a file whose first and third fences are wrong, and a duplicated code
    text = """\
fences:
  - {code: a, name: A, scenario: nowhere, cells: [M1], template: t}
  - {code: b, name: B, scenario: mall, cells: [M1], template: t}
  - {code: c, name: C, scenario: mall, template: t}
  - {code: b, name: B again, scenario: mall, cells: [M2], template: t}
  - {code: Bad Code, name: D, scenario: mall, cells: [M2], template: t}
"""
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_fences(path)
    lines = str(caught.value).splitlines()
    # Then each problem is one line naming its own line and fence
    assert lines[0] == f"{path}:2: fences[0] (a): scenario: 'nowhere' is no scenario (one of " \
                       f"{', '.join(SCENARIOS)})"
    assert lines[1] == f"{path}:4: fences[2] (c): give cells: [ids], or centre: {{lat, lon}} " \
                       "and radius_m"
    assert lines[2].startswith(f"{path}:6: fences[4] (Bad Code): code: String should match")
    assert lines[3] == f"{path}:5: fences[3] (b): code: 'b' is already {path}:3: fences[1] (b)"
    assert len(lines) == 4


@pytest.mark.parametrize(("text", "message"), [
    ("fences:\n  - code: a\n    name: x: y\n", "fences.yaml: line 3: invalid YAML: mapping"),
    ("- {code: a}\n", ":1: expected a top-level 'fences:' list"),
    ("fences: []\n", "fences: the list is empty"),
    ("fences:\n  - just text\n", ":2: fences[0]: a fence is a mapping of fields"),
])
def test_a_file_that_is_no_fences_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        load_fences(write(tmp_path, text))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.yaml: cannot read the fences file"):
        load_fences(tmp_path / "missing.yaml")


def test_a_segment_file_is_read_beside_the_fences_file_and_inlined(tmp_path: Path) -> None:
    # Given a segment file that combines another file and an exclusion list
    (tmp_path / "seg").mkdir()
    write(tmp_path, "name: young\nwhere: {field: tenure_months, op: lt, value: 12}\n",
          "seg/young.yaml")  # fmt: skip
    write(tmp_path, "+8613900000001\n", "seg/dnc.csv")
    write(tmp_path, "name: travellers\nwhere: {field: star_level, op: ge, value: 3}\n"
                    "combine: [{op: minus, segment: young.yaml}]\nexclude_files: [dnc.csv]\n",
          "seg/travellers.yaml")  # fmt: skip
    text = GOOD.replace("    residents: skip\n",
                        "    residents: skip\n    segment: seg/travellers.yaml\n")
    (pvg, _) = load_fences(write(tmp_path, text))
    # Then the fence carries it whole: the combined segment inlined, the list's path absolute
    assert pvg.segment == {
        "name": "travellers", "where": {"field": "star_level", "op": "ge", "value": 3},
        "combine": [{"op": "minus", "segment": {
            "name": "young", "where": {"field": "tenure_months", "op": "lt", "value": 12}}}],
        "exclude_files": [str((tmp_path / "seg" / "dnc.csv").resolve())]}  # fmt: skip
    # And it reads back from the store without the files
    assert FenceDef.model_validate(pvg.definition()).segment == pvg.segment


def test_a_segment_file_referring_to_itself_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "name: loop\ncombine: [{op: union, segment: loop.yaml}]\n", "loop.yaml")
    text = GOOD.replace("    residents: skip\n", "    segment: loop.yaml\n")
    with pytest.raises(InputError, match=r"fences\[0\] \(pvg\): segment: .*refers back to itself"):
        load_fences(write(tmp_path, text))


def test_resolve_refuses_a_radius_covering_no_cell_and_unknown_cells(tmp_path: Path,
                                                                     cells: CellIndex) -> None:
    # Given a radius between cells, listed cells the table lacks, a fine fence
    text = """\
fences:
  - {code: empty, name: E, scenario: mall, centre: [31.30, 121.60], radius_m: 300, template: t}
  - {code: ghosts, name: G, scenario: mall, cells: [M1, Z9, Z1, Z2, Z3, Z4, Z5], template: t}
  - {code: fine, name: F, scenario: mall, cells: [M1], template: t}
"""
    defs = load_fences(write(tmp_path, text))
    with pytest.raises(InputError) as caught:
        resolve(defs, cells)
    lines = str(caught.value).splitlines()
    # Then both are named, with the nearest cell and the first unknown ids
    away = haversine(31.30, 121.60, 31.2275, 121.4925)
    assert lines[0].endswith(":2: fences[0] (empty): radius_m: 300 m around (31.3, 121.6) "
                             f"covers no cell (the nearest, M2, is {away:,.0f} m away)")
    assert lines[1].endswith(":3: fences[1] (ghosts): cells: 6 not in the cell table: "
                             "Z1, Z2, Z3, Z4, Z5 and 1 more")
    assert len(lines) == 2
    # And load_fences with the cell table says the same
    with pytest.raises(InputError, match="covers no cell"):
        load_fences(tmp_path / "fences.yaml", cells=cells)


def test_overlapping_fences_are_a_warning_naming_both(tmp_path: Path, cells: CellIndex) -> None:
    text = """\
fences:
  - {code: inner, name: I, scenario: mall, centre: [31.1443, 121.8083], radius_m: 150, template: t}
  - {code: outer, name: O, scenario: mall, centre: [31.1443, 121.8083], radius_m: 600, template: t}
  - {code: other-tenant, name: T, tenant: acme, scenario: mall, cells: [A1], template: t}
  - {code: mall, name: M, scenario: mall, cells: [M1, M2], template: t}
"""
    fences, warnings = resolve(load_fences(write(tmp_path, text)), cells)
    assert [len(f.cells) for f in fences] == [2, 4, 1, 2]
    assert warnings == ["fences inner and outer share 2 cells"]


def test_resolve_refuses_duplicate_codes_of_one_tenant(cells: CellIndex) -> None:
    raw = {"code": "a", "name": "A", "scenario": "mall", "cells": ["M1"], "template": "t"}
    defs = [FenceDef.model_validate(raw), FenceDef.model_validate(raw | {"tenant": "operator"})]
    with pytest.raises(InputError, match="a: code: 'a' is defined twice"):
        resolve(defs, cells)


def test_a_radius_needs_coordinates() -> None:
    bare = CellIndex.from_ids(["A1"])
    d = FenceDef.model_validate({"code": "a", "name": "A", "scenario": "mall",
                                 "centre": "31.1,121.8", "radius_m": 10, "template": "t"})
    with pytest.raises(InputError, match="a: centre: the cell table has no coordinates"):
        resolve([d], bare)


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def test_cells_within_is_the_exact_distance() -> None:
    # Given 3,000 random cells around Shanghai
    rng = np.random.default_rng(3)
    lat, lon = 31.2 + rng.normal(0, 0.05, 3000), 121.5 + rng.normal(0, 0.05, 3000)
    rows = [(f"C{i:05d}", float(a), float(b), "d", "k")
            for i, (a, b) in enumerate(zip(lat, lon, strict=True))]
    index = index_of(cells_table(rows))
    for radius in (50.0, 800.0, 2500.0, 9000.0):
        # Then the vectorised query agrees with a plain haversine per cell
        expected = sorted(r[0] for r in rows if haversine(31.21, 121.49, r[1], r[2]) <= radius)
        assert cells_within(index, 31.21, 121.49, radius) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, ()), ("", ()), ([], ()), ("07:00-22:00", ((420, 1320),)),
    ("22:00-06:00", ((1320, 360),)), (["00:00-24:00"], ((0, 1440),)),
    (["9:30 - 12:00", "13:00-18:00"], ((570, 720), (780, 1080))),
])
def test_parse_hours(value: object, expected: tuple) -> None:
    assert parse_hours(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0), (300, 300), ("300", 300), ("90s", 90), ("5m", 300), ("5min", 300),
    ("1h30m", 5400), ("1h 30m 15s", 5415),
])
def test_parse_duration(value: object, expected: int) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["", "5x", "m", -1, True, "25h"])
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_the_packaged_example_resolves_on_a_synthetic_grid() -> None:
    # Given the synthetic cell grid (any size: the fences are around landmark clusters)
    from jingxin.data.synth.cells import build_grid

    index = index_of(build_grid(np.random.default_rng(11), cells=400).table())
    path = resources.files("jingxin.geofence").joinpath("example_fences.yaml")
    fences, warnings = resolve(load_fences(Path(str(path))), index)
    # Then every fence has cells, none overlap, and each template's variables are given
    assert {f.scenario for f in fences} >= {"airport_departure", "railway_station", "mall",
                                            "business_hall"}  # fmt: skip
    assert all(len(f.cells) >= 3 for f in fences) and warnings == []
    library = {d.code: d for d in starter_library()}
    for fence in fences:
        declared = set(library[fence.template].variables) - {"place", "local_time"}
        assert declared == set(fence.variables), fence.code


FENCE_TEMPLATES = ["fence.airport_departure", "fence.airport_arrival", "fence.railway_station",
                   "fence.business_hall", "fence.mall", "fence.generic"]  # fmt: skip


@pytest.mark.parametrize("code", FENCE_TEMPLATES)
def test_offer_templates_fit_two_parts_and_order_through_the_hall(code: str) -> None:
    from jingxin.content.lexicon import build_lexicon
    from jingxin.content.review import Reviewer
    from jingxin.content.templates import render

    document = next(d for d in starter_library() if d.code == code)
    # The runner gives place and local_time; the rest are a fence's constant texts
    assert "place" in document.variables and document.category == "marketing"
    out = render(document.compile(), document.sample, category="marketing",
                 signature="中国移动", max_parts=2)  # fmt: skip
    assert out.fits, out.error
    assert f"KT{document.sample['order_code']}" in out.text and out.text.endswith("回T退订")
    verdict = Reviewer(lexicon=build_lexicon()).review(out.text, category="marketing").verdict
    assert verdict != "block"


def test_the_map_is_a_png_drawn_the_same_way_each_time(tmp_path: Path, cells: CellIndex) -> None:
    import time

    from jingxin.geofence.mapimage import draw

    (fence,), _ = resolve([FenceDef.model_validate(
        {"code": "pvg", "name": "浦东机场", "scenario": "airport_departure",
         "centre": list(PVG), "radius_m": 250, "template": "t"})], cells)  # fmt: skip
    first = draw(fence, cells, tmp_path / "a.png").read_bytes()
    started = time.perf_counter()
    second = draw(fence, cells, tmp_path / "maps" / "b.png").read_bytes()
    # The second drawing pays no start-up again (~0.1 s alone); the bound leaves room for
    # a busy CI machine (it took 1.2 s under six test processes on two cores).
    assert time.perf_counter() - started < 5.0
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and first == second
    # A fence none of whose cells the table has, and no centre, cannot be drawn
    lost = fence_of({"code": "x", "name": "X", "scenario": "mall", "template": "t"}, ["Q1"])
    with pytest.raises(InputError, match="fence x: none of its cells is in the cell table"):
        draw(lost, cells, tmp_path / "x.png")
