"""Fences over the API on a tiny cell table (a DuckDB warehouse file): define one as a
fences file's entry (by cells and by radius), read it, replace it (the version moves only
on a change, the flag is kept), switch it off and on, its cells for a map and its PNG;
bad definitions are 422 naming the field, a taken code 409; permissions, tenant isolation
and the audit log."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sqlalchemy import select

from jingxin.data.store.models import AuditEntry
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES

URL = "/api/v1/fences"
CELLS = [  # id, lat, lon, district, kind
    ("P1", 31.1443, 121.8083, "浦东新区", "airport"),
    ("P2", 31.1452, 121.8090, "浦东新区", "airport"),
    ("P3", 31.1430, 121.8070, "浦东新区", "airport"),
    ("R1", 31.1946, 121.3204, "闵行区", "rail"),
    ("M1", 31.2272, 121.4921, "黄浦区", "mall"),
]
PVG = {"code": "pvg", "name": "浦东机场", "scenario": "airport_departure",
       "centre": {"lat": 31.1443, "lon": 121.8083}, "radius_m": 300, "hours": "06:00-23:00",
       "dwell": "10m", "template": "fence.airport_departure",
       "variables": {"offer": "日韩包", "price": 25, "order_code": "MYRH25"}}  # fmt: skip


@pytest.fixture
def fenced(api, tmp_path):
    """The API with a warehouse whose cell table has CELLS."""
    schema = TABLES["cells"].schema
    columns = list(zip(*CELLS, strict=True))
    path = tmp_path / "wh.duckdb"
    wh = open_duckdb(path)
    wh.con.create_table("cells", pa.table([pa.array(list(c), f.type) for f, c in
                                           zip(schema, columns, strict=True)], schema=schema))
    wh.close()
    api.settings.warehouse.path = str(path)
    return api


def audited(api) -> list[tuple[str, str]]:
    with api.store.transaction() as session:
        return [(a.action, a.tenant_id) for a in session.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "fence").order_by(AuditEntry.id))]


def test_define_read_change_and_switch_a_fence(fenced) -> None:
    marketer = fenced.as_user("marketer")
    # When the marketer defines a fence by centre and radius
    r = marketer.post(URL, json=PVG)
    # Then it is saved with the cells within the radius, and warned of its template
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["code"], made["cells"], made["version"]) == ("pvg", ["P1", "P2", "P3"], 1)
    assert (made["hours"], made["dwell_seconds"], made["enabled"]) == (["06:00-23:00"], 600, True)
    assert made["centre"] == {"lat": 31.1443, "lon": 121.8083} and made["radius_m"] == 300
    assert any("no approved version" in w for w in made["warnings"])
    # And a second fence sharing cells is warned of the overlap
    segment = {"name": "frequent", "where": {"all": [{"field": "star_level", "op": "ge",
                                                       "value": 3}]}}  # fmt: skip
    core = marketer.post(URL, json={"code": "pvg-core", "name": "T2", "scenario": "airport_departure",
                                    "cells": ["P1", "P2"], "template": "fence.airport_departure",
                                    "segment": segment})  # fmt: skip
    assert core.status_code == 201, core.text
    assert "fences pvg-core and pvg share 2 cells" in core.json()["warnings"]
    assert core.json()["definition"]["segment"] == segment
    # And both are listed, and one is read back by id
    listed = marketer.get(URL).json()
    assert (listed["total"], [f["code"] for f in listed["items"]]) == (2, ["pvg", "pvg-core"])
    got = marketer.get(f"{URL}/{made['id']}").json()
    assert got["definition"]["code"] == "pvg" and got["definition"]["dwell_seconds"] == 600
    # When it is switched off
    off = marketer.post(f"{URL}/{made['id']}/deactivate")
    assert (off.status_code, off.json()["enabled"], off.json()["version"]) == (200, False, 2)
    assert [f["code"] for f in marketer.get(URL, params={"enabled": False}).json()["items"]] == ["pvg"]
    # And its definition is put back unchanged (no `enabled`): nothing moves, it stays off
    same = marketer.put(f"{URL}/{made['id']}", json={**PVG, "tenant": "operator"})
    assert same.status_code == 200, same.text
    assert (same.json()["version"], same.json()["enabled"]) == (2, False)
    # When its hours change: a new version, still off
    moved = marketer.put(f"{URL}/{made['id']}", json={**PVG, "hours": ["07:00-22:00"]})
    assert (moved.json()["version"], moved.json()["hours"], moved.json()["enabled"]) == (
        3, ["07:00-22:00"], False)
    # And switched on again
    assert marketer.post(f"{URL}/{made['id']}/activate").json()["enabled"] is True
    # Then every change is in the audit log, in the operator's tenant
    assert audited(fenced) == [("fence.create", "operator"), ("fence.create", "operator"),
                               ("fence.deactivate", "operator"), ("fence.update", "operator"),
                               ("fence.update", "operator"), ("fence.activate", "operator")]


def test_cells_and_map_for_the_console(fenced) -> None:
    admin = fenced.as_key("admin", tenant="operator")
    made = admin.post(URL, json=PVG).json()
    # The cells with their positions
    r = admin.get(f"{URL}/{made['id']}/cells")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 3 and body["radius_m"] == 300
    assert body["items"][0] == {"cell_id": "P1", "lat": 31.1443, "lon": 121.8083,
                                "district": "浦东新区", "kind": "airport"}
    # The map as a PNG
    png = admin.get(f"{URL}/{made['id']}/map.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"scenario": "moon"}, "body.scenario", "no scenario"),
    ({"radius_m": -5}, "body.radius_m", "greater than 0"),
    ({"code": "Bad Code"}, "body.code", "pattern"),
    ({"colour": "red"}, "body.colour", "Extra inputs"),
    ({"segment": "frequent.yaml"}, "body.segment", "segment file"),
    ({"tenant": "acme"}, "body.tenant", "your own tenant"),
    ({"segment": {"name": "s", "exclude_files": ["/etc/passwd"]}}, "body.segment", "exclude_files"),
    ({"radius_m": 5, "centre": {"lat": 31.3, "lon": 121.0}}, "body.radius_m", "covers no cell"),
    ({"cells": ["P1", "NOPE"], "centre": None, "radius_m": None}, "body.cells", "NOPE"),
])  # fmt: skip
def test_bad_definitions_are_422_naming_the_field(fenced, change, field, words) -> None:
    r = fenced.as_key("marketer", tenant="operator").post(URL, json={**PVG, **change})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert field in [f["field"] for f in error["fields"]] and words in error["message"]
    assert fenced.as_key("marketer", tenant="operator").get(URL).json()["total"] == 0


def test_a_taken_code_is_409_and_a_code_stays(fenced) -> None:
    marketer = fenced.as_key("marketer", tenant="operator")
    made = marketer.post(URL, json=PVG).json()
    again = marketer.post(URL, json=PVG)
    assert again.status_code == 409 and "already exists" in again.json()["error"]["message"]
    renamed = marketer.put(f"{URL}/{made['id']}", json={**PVG, "code": "pvg2"})
    assert renamed.status_code == 422 and renamed.json()["error"]["fields"][0]["field"] == "body.code"


def test_roles_and_tenants(fenced) -> None:
    operator = fenced.as_key("marketer", tenant="operator")
    mine = operator.post(URL, json=PVG).json()
    # A reader may read but not write
    analyst = fenced.as_key("analyst", tenant="operator")
    assert analyst.get(f"{URL}/{mine['id']}").status_code == 200
    for method, path in (("post", URL), ("put", f"{URL}/{mine['id']}"),
                         ("post", f"{URL}/{mine['id']}/deactivate")):
        refused = getattr(analyst, method)(path, json=PVG)
        assert refused.status_code == 403 and "fences.write" in refused.json()["error"]["message"]
    assert fenced.as_key("api-client", tenant="acme").get(URL).status_code == 403
    # acme may define its own fence with the same code, and sees only it
    acme = fenced.as_key("marketer", tenant="acme")
    theirs = acme.post(URL, json=PVG)
    assert theirs.status_code == 201, theirs.text
    assert [f["id"] for f in acme.get(URL).json()["items"]] == [theirs.json()["id"]]
    # The operator's fence is 404 to acme, for every route, like a missing one
    for suffix in ("", "/cells", "/map.png"):
        assert acme.get(f"{URL}/{mine['id']}{suffix}").status_code == 404
        assert acme.get(f"{URL}/999999{suffix}").status_code == 404
    assert acme.put(f"{URL}/{mine['id']}", json=PVG).status_code == 404
    assert acme.post(f"{URL}/{mine['id']}/deactivate").status_code == 404
    assert operator.get(f"{URL}/{mine['id']}").json()["enabled"] is True
    assert ("fence.create", "acme") in audited(fenced)


def test_no_cell_table_is_503(api) -> None:
    api.settings.warehouse.path = "/nonexistent/wh.duckdb"
    r = api.as_key("marketer", tenant="operator").post(URL, json=PVG)
    assert r.status_code == 503 and "cell table" in r.json()["error"]["message"]
