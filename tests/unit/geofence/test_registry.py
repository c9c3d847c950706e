"""Fences in the store: a file applied in one transaction (created, updated with a new
version only when something changed, unchanged, pruned per tenant), add / get / list /
enable / disable / remove, the version the runner polls moving on every change, and a
fence read back from its row equal to the one saved (export and re-apply changes nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from jingxin.data.store import open_store
from jingxin.errors import InputError, JingxinError
from jingxin.geofence import registry
from jingxin.geofence.directory import CellIndex
from jingxin.geofence.fences import DefinedFence, FenceDef, fence_of, parse_fences, resolve
from jingxin.geofence.types import Fence

CELLS = CellIndex.from_ids(["C1", "C2", "C3", "C4"])


def defined(code: str, cells: list[str], **fields: object) -> DefinedFence:
    raw = {"code": code, "name": f"围栏{code}", "scenario": "mall", "cells": cells,
           "template": "fence.mall", "variables": {"offer": "5元包", "order_code": "GJ5"},
           **fields}  # fmt: skip
    (fence,), _ = resolve([FenceDef.model_validate(raw)], CELLS)
    return fence


@pytest.fixture
def store(tmp_path, migrated_sqlite) -> Iterator:
    opened = open_store(migrated_sqlite(tmp_path / "fences.db"))
    yield opened
    opened.dispose()


def test_apply_creates_then_changes_only_what_changed(store_url: str) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        # Given two fences applied
        first = [defined("a", ["C1", "C2"], hours="07:00-22:00", dwell="5m"),
                 defined("b", ["C3"], residents="skip")]  # fmt: skip
        report = registry.apply(store, first)
        assert (report.created, report.updated, report.unchanged) == (["a", "b"], [], [])
        before = registry.store_version(store)
        # When the same file is applied again
        again = registry.apply(store, first)
        # Then nothing moves
        assert again.unchanged == ["a", "b"] and registry.store_version(store) == before
        assert [f.version for f in registry.list_fences(store)] == [1, 1]
        # When one fence's hours change
        changed = [defined("a", ["C1", "C2"], hours="08:00-22:00", dwell="5m"), first[1]]
        report = registry.apply(store, changed)
        # Then only it gets a new version, and the runner's number moves
        assert (report.updated, report.unchanged) == (["a"], ["b"])
        assert [(f.code, f.version) for f in registry.list_fences(store)] == [("a", 2), ("b", 1)]
        assert registry.store_version(store) != before
        # And a fence read back is the fence saved (definition, cells, hours, dwell)
        back = registry.get(store, "a")
        assert back == replace(changed[0], version=2)
        assert back.definition == changed[0].definition
    finally:
        store.dispose()


def test_prune_removes_only_the_named_tenants_other_fences(store) -> None:
    registry.apply(store, [defined("a", ["C1"]), defined("b", ["C2"]),
                           defined("t", ["C2"], tenant="acme")])  # fmt: skip
    report = registry.apply(store, [defined("b", ["C2"])], prune=True)
    assert report.removed == ["a"] and report.unchanged == ["b"]
    assert [(f.tenant_id, f.code) for f in registry.list_fences(store)] == [
        ("acme", "t"), ("operator", "b")]


def test_apply_is_all_or_nothing(store) -> None:
    # Given a file whose second fence cannot be stored (a value JSON cannot hold)
    broken = DefinedFence(code="z", name="Z", scenario="mall", cells=("C1",), template="t",
                          definition={"code": "z", "odd": {1, 2}})  # fmt: skip
    with pytest.raises(JingxinError):
        registry.apply(store, [defined("a", ["C1"]), broken])
    # Then the first was not saved either
    assert registry.list_fences(store) == []
    # And the same code twice is refused before anything is written
    with pytest.raises(InputError, match="given twice: operator/a"):
        registry.apply(store, [defined("a", ["C1"]), defined("a", ["C2"])])


def test_add_get_enable_disable_remove(store) -> None:
    # Given a fence added
    added = registry.add(store, defined("a", ["C1", "C2"], centre=None))
    assert added.version == 1 and added.enabled
    with pytest.raises(InputError, match="fence 'a' already exists"):
        registry.add(store, defined("a", ["C3"]))
    registry.add(store, defined("b", ["C3"]))
    version = registry.store_version(store)
    # When the fence below the top version is disabled
    off = registry.set_enabled(store, "b", False)
    # Then it is off with a new version, and the runner's number moved
    assert (off.enabled, off.version) == (False, 2)
    assert registry.store_version(store) != version
    assert [f.code for f in registry.list_fences(store, enabled_only=True)] == ["a"]
    assert registry.get(store, "b").definition["enabled"] is False
    # And disabling again changes nothing
    version = registry.store_version(store)
    assert registry.set_enabled(store, "b", False).version == 2
    assert registry.store_version(store) == version
    assert registry.set_enabled(store, "b", True).version == 3
    # When removed, it is gone, and the number moves
    registry.remove(store, "a")
    assert [f.code for f in registry.list_fences(store)] == ["b"]
    assert registry.store_version(store) != version
    with pytest.raises(InputError, match=r"no fence 'a' for tenant operator \(fences: b\)"):
        registry.get(store, "a")
    with pytest.raises(InputError, match="no fence 'x' for tenant acme"):
        registry.remove(store, "x", tenant="acme")


def test_a_fence_built_in_code_is_stored_with_a_definition(store) -> None:
    # Given a plain Fence (no definition of its own), defined by a radius
    plain = Fence(code="p", name="P", scenario="railway_station", cells=("C2", "C1"),
                  template="fence.railway_station", hours=((1320, 360),), dwell_seconds=90,
                  centre=(31.19, 121.32), radius_m=700.0, variables={"offer": "x"})  # fmt: skip
    saved = registry.add(store, plain)
    # Then its definition says what it is, and the fence reads back the same
    assert saved.definition["hours"] == ["22:00-06:00"]
    assert saved.definition["centre"] == {"lat": 31.19, "lon": 121.32}
    assert saved.cells == ("C1", "C2") and saved.hours == plain.hours
    assert saved.validity_minutes == 120


def test_export_reads_back_and_reapplies_unchanged(store) -> None:
    fences = [defined("a", ["C1", "C2"], hours=["07:00-09:00", "17:00-20:00"], cap_per_day=2,
                      segment={"name": "s", "where": {"field": "region", "op": "eq",
                                                      "value": "黄浦区"}}),
              defined("b", ["C3"], tenant="acme", validity_minutes=30)]  # fmt: skip
    registry.apply(store, fences)
    text = registry.export_yaml(registry.list_fences(store))
    # Defaults are left out; what was set is there
    assert "residents" not in text and "cap_per_day: 2" in text and "validity_minutes: 30" in text
    import yaml

    again, _ = resolve(parse_fences(yaml.safe_load(text)), CELLS)
    report = registry.apply(store, again)
    assert sorted(report.unchanged) == ["a", "b"] and not report.updated
    assert fence_of(again[1].definition, again[1].cells) == fences[0]
