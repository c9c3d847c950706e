"""A fence's hold-out: ``holdout:`` read from the fences file (a share, a percentage,
none; more than half named by file and line), the default for marketing fences only, the
split by hash (the same on a replay), assignments recorded once, treated offers sent with
arm ``main``, held-out stays counted ``holdout`` by the runner and by ``fence report``."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import select

from jingxin.analytics.assign import assign_one
from jingxin.analytics.holdout import default_share
from jingxin.config import AnalyticsSettings, Settings
from jingxin.content.library import TemplateDocument
from jingxin.data.store import open_store
from jingxin.data.store.models import Message
from jingxin.data.store.models.analytics import ExperimentAssignment
from jingxin.dispatch.deliver import DeliveryContext
from jingxin.errors import ConfigError, InputError
from jingxin.geofence.compiled import CompiledFences
from jingxin.geofence.directory import CellIndex
from jingxin.geofence.fences import FenceDef, fence_of, parse_fences
from jingxin.geofence.offers import split_holdout
from jingxin.geofence.report import fence_report
from jingxin.geofence.runner import _Loop
from jingxin.geofence.types import MatchResult, Triggers

NOW = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)
AT = int(datetime(2026, 5, 10, 1, 37, tzinfo=UTC).timestamp() * 1000)
OFFER = TemplateDocument(code="fence.test_offer", category="marketing",
                         body="{{ place }}专享：{{ pack }}。",
                         variables={"place": "str", "pack": "str"})  # fmt: skip
NUMBERS = [8613900000000 + i for i in range(200)]


def fence(code: str, **more) -> dict:
    return {"code": code, "name": code, "scenario": "mall", "cells": ["C1"],
            "template": "fence.test_offer", "variables": {"pack": "周末流量包"}, **more}


def compiled(*definitions: dict) -> CompiledFences:
    fences = [fence_of(FenceDef.model_validate(d).definition(), ["C1"]) for d in definitions]
    return CompiledFences.build(fences, CellIndex.from_ids(["C1"]))


def triggers(fence_index: int, numbers: list[int]) -> Triggers:
    n = len(numbers)
    return Triggers(np.arange(n, dtype=np.int32), np.array(numbers, np.int64),
                    np.full(n, fence_index, np.int32), np.full(n, AT - 600_000, np.int64),
                    np.full(n, AT, np.int64), np.full(n, -1, np.int64))  # fmt: skip


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    from jingxin.content import catalog
    from jingxin.data.store.tenants import ensure_default_tenant

    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    with opened.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=[OFFER], approve_as="reviewer", reviewer=None)
    yield opened
    opened.dispose()


@pytest.mark.parametrize(("written", "share"), [
    ("0.1", 0.1), ("5%", 0.05), ("none", 0.0), ("off", 0.0), ("0", 0.0), ("0.5", 0.5),
])  # fmt: skip
def test_holdout_is_read_as_a_share(written, share) -> None:
    import yaml

    raw = yaml.safe_load(f"fences:\n  - {{code: m, name: m, scenario: mall, cells: [C1], "
                         f"template: t, holdout: {written}}}\n")  # fmt: skip
    (defined,) = parse_fences(raw)
    assert defined.holdout == share and defined.definition()["holdout"] == share


@pytest.mark.parametrize(("written", "why"), [
    ("1", ("1 is no hold-out share: give 0 to 0.5 (50%), or none - a hold-out of 100% would "
           "send nothing")),
    ("100%", "100% is no hold-out share"),
    ("0.6", "0.6 is no hold-out share: give 0 to 0.5"),
    ("-0.1", "-0.1 is no hold-out share"),
    ("lots", "'lots' is no share (write 0.05, 5% or none)"),
])  # fmt: skip
def test_a_holdout_above_half_is_named_by_file_line_and_field(tmp_path, written, why) -> None:
    from jingxin.geofence.fences import load_fences

    path = tmp_path / "fences.yaml"
    path.write_text("fences:\n  - code: m\n    name: m\n    scenario: mall\n    cells: [C1]\n"
                    f"    template: t\n    holdout: {written}\n", encoding="utf-8")  # fmt: skip
    with pytest.raises(InputError) as caught:
        load_fences(path)
    assert str(caught.value).startswith(f"{path}:7: fences[0] (m): holdout: {why}")


def test_the_default_applies_to_marketing_fences_and_an_explicit_share_wins() -> None:
    unset = fence_of(fence("a"), ["C1"])
    assert unset.holdout is None and unset.holdout_share(0.05) == 0.05
    assert fence_of(fence("b", category="notification"), ["C1"]).holdout_share(0.05) == 0.0
    assert fence_of(fence("c", holdout=0.0), ["C1"]).holdout_share(0.05) == 0.0
    assert fence_of(fence("d", category="notification", holdout=0.2),
                    ["C1"]).holdout_share(0.05) == 0.2  # fmt: skip
    # A stored definition keeps an explicit share, never an unset one
    assert "holdout" not in FenceDef.model_validate(fence("a")).definition()
    assert FenceDef.from_fence(fence_of(fence("e", holdout=0.1), ["C1"])).holdout == 0.1


def test_the_split_is_by_hash_recorded_once_and_the_same_on_a_replay(store) -> None:
    fences = compiled(fence("half", holdout=0.3), fence("plain", holdout="none"))
    # When 200 stays at the fence with a hold-out come due
    treated, arms, held = split_holdout(store, triggers(0, NUMBERS), fences, default_share=0.05,
                                        now=NOW)  # fmt: skip
    expected = {n for n in NUMBERS if assign_one(f"+{n}", experiment="fence:half",
                                                 holdout=0.3) == "holdout"}  # fmt: skip
    # Then the held-out ones are the hash's, the rest go on with arm "main"
    assert held == len(expected) and 40 <= held <= 80
    assert set(treated.msisdn.tolist()) == set(NUMBERS) - expected
    assert arms == ["main"] * len(treated)
    with store.sessions() as session:
        rows = session.execute(select(ExperimentAssignment.msisdn, ExperimentAssignment.arm,
                                      ExperimentAssignment.holdout,
                                      ExperimentAssignment.experiment)).all()  # fmt: skip
    assert len(rows) == 200 and {r.experiment for r in rows} == {"fence:half"}
    assert {r.msisdn for r in rows if r.holdout} == {f"+{n}" for n in expected}
    assert {r.arm for r in rows if not r.holdout} == {"main"}
    # And a replay (a restart from a checkpoint) splits the same, recording nothing new
    again = split_holdout(store, triggers(0, NUMBERS), fences, default_share=0.05, now=NOW)
    assert (again[0].msisdn.tolist(), again[2]) == (treated.msisdn.tolist(), held)
    with store.sessions() as session:
        assert len(session.scalars(select(ExperimentAssignment.id)).all()) == 200
    # A fence without a hold-out is no experiment: everyone, no arm, nothing recorded
    plain = split_holdout(store, triggers(1, NUMBERS[:5]), fences, default_share=0.05, now=NOW)
    assert (len(plain[0]), plain[1], plain[2]) == (5, [None] * 5, 0)


def test_the_runner_sends_the_treated_with_arm_main_and_counts_the_held_out(store) -> None:
    # Given the runner's round with the default hold-out (a marketing fence setting none)
    fences = compiled(fence("mall", holdout=0.4))
    loop = SimpleNamespace(clock=lambda: NOW, store=store, compiled=fences, sender="10086",
                           zone="Asia/Shanghai", context=DeliveryContext(), holdout=0.05,
                           report=SimpleNamespace(triggers=0, offers=Counter(),
                                                  counts=Counter()))  # fmt: skip
    numbers = NUMBERS[:30]
    _Loop._offer(loop, MatchResult(triggers(0, numbers)))
    held = sum(assign_one(f"+{n}", experiment="fence:mall", holdout=0.4) == "holdout"
               for n in numbers)  # fmt: skip
    assert held > 0
    # Then the held-out stays are counted "holdout", the others queued with arm "main"
    assert loop.report.offers == {"queued": 30 - held, "holdout": held}
    assert loop.report.counts["offer_holdout"] == held and loop.report.triggers == 30
    with store.sessions() as session:
        assert {m.arm for m in session.scalars(select(Message))} == {"main"}
    # And `fence report` shows them
    (line,) = fence_report(store, since=datetime(2026, 1, 1, tzinfo=UTC), zone="Asia/Shanghai")
    assert (line.code, line.queued, line.held_out) == ("mall", 30 - held, held)
    assert line.as_dict()["held_out"] == held


def test_a_default_holdout_above_half_stops_the_runner() -> None:
    assert default_share(Settings()) == AnalyticsSettings().holdout
    with pytest.raises(ConfigError, match="analytics.holdout: 0.6 would hold out more than"):
        default_share(Settings(analytics=AnalyticsSettings(holdout=0.6)))
