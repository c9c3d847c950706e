"""The daily scan on a hand-made warehouse and a real store: counts per trigger, the
messages in the outbox, a day run twice (nothing sent twice), a run cut off and started
again, a failed trigger beside done ones, a dry run, and the sample messages.

Day 2026-10-15 (08:30 in Shanghai when the scan runs); renewal 30 days before: contracts
ending 2026-11-14. Last three months Jul-Sep 2026, a year earlier Jul-Sep 2025.

1 born 10-15 (F)                         → birthday
2 born 10-15 (M), joined 2020-10-15       → birthday, anniversary (6 years)
3 no birth date                           → birthday skipped: no_birthday
4 contract ends 11-14, light user on P3   → renewal (care.plan_renewal, own figures)
5 contract ends 11-14, no usage           → renewal skipped: no_usage
6 contract ends 11-14, usage this year only → renewal through care.plan_fit
7 joined 2019-10-15                       → anniversary (7 years)

Subscriber 2's anniversary is refused by policy (``cap_day``: one marketing message a day):
the birthday, scanned first, took the day's message.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from jingxin.config import Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import JourneyRun, LedgerEntry, Message
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import StoreError, WarehouseError
from jingxin.journeys.scan import run_scan, wanted_at
from jingxin.journeys.trigger import TriggerOutput

D = dt.date
DAY = D(2026, 10, 15)
SCAN_AT = datetime(2026, 10, 15, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
TEN_LOCAL = datetime(2026, 10, 15, 2, 0, tzinfo=UTC)  # [journeys] send_at 10:00 local
CORE = ["birthday", "anniversary", "renewal"]
PLANS = [
    ("P2", "畅享38", 2, "prepaid", 38.0, 5120, 300, 100, 0.03, 0.15, 0.1, 0, 4),
    ("P3", "畅享58", 3, "prepaid", 58.0, 10240, 500, 100, 0.03, 0.15, 0.1, 0, 4),
]


def subscriber(sid: int, *, birthday=D(1980, 1, 1), entry=D(2015, 6, 1), contract_end=None,
               gender="F") -> tuple:  # fmt: skip
    return (sid, f"+86139000000{sid:02d}", "china_mobile", "P3", "prepaid", "active", gender,
            birthday, entry, contract_end, 2, "浦东新区", None, 4, False, None)


SUBSCRIBERS = [
    subscriber(1, birthday=D(1980, 10, 15)),
    subscriber(2, birthday=D(1999, 10, 15), entry=D(2020, 10, 15), gender="M"),
    subscriber(3, birthday=None),
    subscriber(4, contract_end=D(2026, 11, 14)),
    subscriber(5, contract_end=D(2026, 11, 14)),
    subscriber(6, contract_end=D(2026, 11, 14), gender=None),
    subscriber(7, entry=D(2019, 10, 15)),
]


def usage() -> list[tuple]:
    rows = []
    for month in (D(2026, 7, 1), D(2026, 8, 1), D(2026, 9, 1)):
        rows.append((4, month, "P3", 600.0, 80.0, 5, 58.0, 0, 0.0, 0, 0))
        rows.append((6, month, "P3", 300.0, 20.0, 5, 58.0, 0, 0.0, 0, 0))
    for month in (D(2025, 7, 1), D(2025, 8, 1), D(2025, 9, 1)):
        rows.append((4, month, "P3", 400.0, 80.0, 5, 55.0, 0, 0.0, 0, 0))
    return rows


def arrow(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                    schema=schema)  # fmt: skip


@pytest.fixture(scope="module")
def warehouse():
    wh = open_duckdb(":memory:")
    for name, rows in (("plans", PLANS), ("subscribers", SUBSCRIBERS),
                       ("usage_monthly", usage())):  # fmt: skip
        wh.con.create_table(name, arrow(name, rows))
    yield wh
    wh.close()


def seed_care_templates(store, *, skip: tuple[str, ...] = ()) -> None:
    """The starter library's care templates, approved for the operator's tenant."""
    from jingxin.content import catalog
    from jingxin.content.library import starter_library
    from jingxin.data.store.tenants import ensure_default_tenant

    documents = [d for d in starter_library() if d.code.startswith("care.") and d.code not in skip]
    with store.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=documents, approve_as="reviewer", reviewer=None)


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    seed_care_templates(opened)
    yield opened
    opened.dispose()


def scan(store, warehouse, **options):
    options.setdefault("triggers", CORE)
    options.setdefault("now", SCAN_AT)
    return run_scan(Settings(), store, warehouse, day=DAY, **options)


def by_trigger(report) -> dict:
    return {t.trigger: t for t in report.triggers}


def messages(store) -> list[tuple]:
    with store.sessions() as s:
        return [tuple(r) for r in s.execute(
            select(Message.idempotency_key, Message.category, Message.source,
                   Message.source_id, Message.scheduled_at, Message.text)
            .order_by(Message.idempotency_key))]  # fmt: skip


def runs(store) -> dict[str, tuple]:
    with store.sessions() as s:
        return {r.trigger: (r.state, r.candidates, r.queued, r.duplicates, r.skipped, r.detail)
                for r in s.scalars(select(JourneyRun))}  # fmt: skip


def test_a_day_is_scanned_into_the_outbox_and_recorded(store_url, warehouse) -> None:
    opened = open_store(store_url, upgrade=True)
    try:
        seed_care_templates(opened)
        # When the core triggers scan the day
        report = scan(opened, warehouse)
        # Then each trigger queued exactly its candidates and counted its skipped
        got = by_trigger(report)
        assert {n: (t.state, t.candidates, t.queued, t.duplicates, dict(t.rejected))
                for n, t in got.items()} == {
            "birthday": ("done", 2, 2, 0, {}), "anniversary": ("done", 2, 1, 0, {"cap_day": 1}),
            "renewal": ("done", 2, 2, 0, {})}  # fmt: skip
        assert got["birthday"].skipped == {"no_birthday": 1}
        assert got["renewal"].skipped == {"no_usage": 1}
        # And the outbox holds one message per candidate, keyed per trigger, day and number,
        # with the template's category, wanted at 10:00 local
        sent = messages(opened)
        assert [m[0] for m in sent] == [
            "journey:anniversary:2026-10-15:+8613900000007",
            "journey:birthday:2026-10-15:+8613900000001",
            "journey:birthday:2026-10-15:+8613900000002",
            "journey:renewal:2026-10-15:+8613900000004",
            "journey:renewal:2026-10-15:+8613900000006"]  # fmt: skip
        assert {(m[1], m[2], m[4]) for m in sent} == {("marketing", "journey", TEN_LOCAL)}
        assert sent[1][3] == "birthday:2026-10-15"
        # And they go out from the SMS hall's number, where what they teach is answered
        with opened.sessions() as session:
            assert set(session.scalars(select(Message.sender))) == {"10086"}
        # And subscriber 4's renewal text carries their own figures (600 MB, +50%, 3 yuan)
        assert "月均用流量600MB（同比增长50%）" in sent[3][5]
        assert "比去年同期多3元" in sent[3][5] and "推荐畅享38套餐" in sent[3][5]
        assert "改用畅享38套餐，每月可省20.0元" in sent[4][5]  # the plan-fit fallback
        # And each run is recorded done with its counts
        assert runs(opened) == {
            "birthday": ("done", 2, 2, 0, {"no_birthday": 1}, None),
            "anniversary": ("done", 2, 1, 0, {}, None),
            "renewal": ("done", 2, 2, 0, {"no_usage": 1}, None)}  # fmt: skip
    finally:
        opened.dispose()


def test_the_report_carries_one_rendered_message_per_trigger(store, warehouse) -> None:
    got = by_trigger(scan(store, warehouse))
    # The sample is the first candidate's message exactly as it was queued
    first_birthday = next(m for m in messages(store) if m[0].endswith("birthday:2026-10-15:"
                                                                       "+8613900000001"))
    assert got["birthday"].sample == first_birthday[5]
    assert got["birthday"].sample.startswith("【中国移动】尊敬的女士，今天是您的生日")
    assert got["birthday"].sample.endswith("回T退订")
    assert "值此入网6周年之际" in got["anniversary"].sample  # subscriber 2's, refused later
    assert "畅享58套餐将于11月14日到期" in got["renewal"].sample


def test_a_day_scanned_again_sends_nothing_twice(store, warehouse) -> None:
    # Given a day scanned once
    scan(store, warehouse)
    before = messages(store)
    # When it is scanned again
    again = scan(store, warehouse)
    # Then every trigger is reported as already done, and nothing more is queued
    assert [(t.trigger, t.state, t.already_done) for t in again.triggers] == [
        ("birthday", "done", True), ("anniversary", "done", True), ("renewal", "done", True)]
    assert by_trigger(again)["birthday"].queued == 2  # what the first scan did
    assert messages(store) == before


def test_a_run_cut_off_half_way_is_finished_by_the_next(store, warehouse) -> None:
    from sqlalchemy import delete, update

    # Given a scan that crashed in the renewal trigger after handing over its first
    # template's candidates (subscriber 4), before the second's (subscriber 6)
    scan(store, warehouse)
    with store.transaction() as s:
        s.execute(update(JourneyRun).where(JourneyRun.trigger == "renewal")
                  .values(state="running"))  # fmt: skip
        for model in (Message, LedgerEntry):
            s.execute(delete(model).where(model.idempotency_key.like("journey:renewal:%06")))
    # When the day is scanned again
    again = by_trigger(scan(store, warehouse))
    # Then the renewal trigger runs again: the message it had queued is a duplicate, the
    # missing one is queued, and the run is done
    assert (again["renewal"].already_done, again["renewal"].queued,
            again["renewal"].duplicates, again["renewal"].rejected) == (False, 1, 1, {}), \
        again["renewal"]  # fmt: skip
    assert again["birthday"].already_done
    assert runs(store)["renewal"][0] == "done"
    with store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 5


class Exploding:
    """A trigger whose warehouse table is missing."""

    name = "anniversary"

    def candidates(self, ctx) -> TriggerOutput:
        raise WarehouseError("warehouse table 'subscribers' is missing")


def test_a_failed_trigger_leaves_the_others_done(store, warehouse, monkeypatch) -> None:
    import jingxin.journeys.triggers.lifecycle as lifecycle

    # Given an anniversary trigger that cannot run
    monkeypatch.setattr(lifecycle, "ANNIVERSARY", Exploding())
    # When the day is scanned
    report = scan(store, warehouse)
    # Then the anniversary run failed with the message, and the others are done
    assert report.failed == ["anniversary"]
    assert by_trigger(report)["anniversary"].error == "warehouse table 'subscribers' is missing"
    recorded = runs(store)
    assert recorded["anniversary"][0] == "failed"
    assert recorded["anniversary"][5] == "warehouse table 'subscribers' is missing"
    assert (recorded["birthday"][0], recorded["renewal"][0]) == ("done", "done")
    # And once the trigger works again, the next scan runs it (and only it)
    monkeypatch.undo()
    again = by_trigger(scan(store, warehouse))
    assert (again["anniversary"].state, again["anniversary"].queued) == ("done", 1)
    assert again["birthday"].already_done and again["renewal"].already_done


def test_a_template_not_approved_fails_its_trigger_by_name(tmp_path, migrated_sqlite, warehouse) -> None:
    opened = open_store(migrated_sqlite(tmp_path / "bare.db"))
    try:
        seed_care_templates(opened, skip=("care.birthday",))
        report = by_trigger(scan(opened, warehouse))
        assert report["birthday"].state == "failed"
        assert "care.birthday has no approved version" in report["birthday"].error
        # (no birthday message took subscriber 2's day: both anniversaries are queued)
        assert (report["anniversary"].queued, report["renewal"].queued) == (2, 2)
    finally:
        opened.dispose()


def test_a_dry_run_counts_and_renders_but_delivers_and_records_nothing(store, warehouse):
    report = scan(store, warehouse, dry_run=True)
    got = by_trigger(report)
    assert report.dry_run
    assert {n: (t.state, t.candidates, t.queued) for n, t in got.items()} == {
        "birthday": ("done", 2, 0), "anniversary": ("done", 2, 0), "renewal": ("done", 2, 0)}
    assert "今天是您的生日" in got["birthday"].sample
    assert messages(store) == [] and runs(store) == {}


def test_a_store_failure_stops_the_scan(store, warehouse, monkeypatch) -> None:
    import jingxin.dispatch.delivery_table as delivery_table

    def broken(*args, **kwargs):
        raise StoreError("the database connection was lost")

    monkeypatch.setattr(delivery_table, "deliver_table", broken)
    with pytest.raises(StoreError, match="connection was lost"):
        scan(store, warehouse)
    # The first trigger's run stays 'running' (the next scan runs it again); no other ran
    assert runs(store) == {"birthday": ("running", 0, 0, 0, {}, None)}


def test_wanted_at_is_send_at_local_or_now_once_past() -> None:
    settings = Settings()
    assert wanted_at(settings, day=DAY, now=SCAN_AT) == TEN_LOCAL
    later = datetime(2026, 10, 15, 5, 0, tzinfo=UTC)  # 13:00 local
    assert wanted_at(settings, day=DAY, now=later) == later
    other = Settings(journeys={"send_at": "09:15"}, policy={"default_timezone": "Asia/Urumqi"})
    assert wanted_at(other, day=DAY, now=SCAN_AT) == datetime(2026, 10, 15, 3, 15, tzinfo=UTC)


def test_an_unknown_trigger_is_refused_before_anything_runs(store, warehouse) -> None:
    from jingxin.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown trigger"):
        scan(store, warehouse, triggers=["birthday", "moon"])
    assert runs(store) == {}


def test_a_marketing_trigger_holds_out_its_share_before_policy(store, warehouse) -> None:
    from jingxin.analytics.assign import assign_one
    from jingxin.data.store.models import ExperimentAssignment

    # Given half held out ([analytics] holdout 0.5) - the care messages are marketing
    settings = Settings(analytics={"holdout": 0.5})
    # When the day is scanned
    report = run_scan(settings, store, warehouse, day=DAY, triggers=CORE, now=SCAN_AT)
    got = by_trigger(report)
    # Then birthday's held-out subscriber (by the hash of journey:birthday) gets nothing,
    # is counted as skipped, and both candidates' arms are recorded
    held = {n for n in ("+8613900000001", "+8613900000002")
            if assign_one(n, experiment="journey:birthday", holdout=0.5) == "holdout"}
    assert held == {"+8613900000002"}
    assert got["birthday"].skipped["holdout"] == 1 and got["birthday"].queued == 1
    sent = {m[0].rsplit(":", 1)[1] for m in messages(store) if ":birthday:" in m[0]}
    assert sent == {"+8613900000001"}
    with store.sessions() as s:
        arms = dict(s.execute(select(ExperimentAssignment.msisdn, ExperimentAssignment.arm)
                              .where(ExperimentAssignment.experiment == "journey:birthday")).all())
        arm_of_sent = set(s.scalars(select(Message.arm).where(Message.source_id.like("birthday:%"))))
    assert arms == {"+8613900000001": "main", "+8613900000002": "holdout"}
    assert arm_of_sent == {"main"}
    # And scanned again (another day's scan meets the same subscriber), nothing is reassigned
    run_scan(settings, store, warehouse, day=DAY, triggers=CORE, now=SCAN_AT)
    with store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ExperimentAssignment)
                        .where(ExperimentAssignment.experiment == "journey:birthday")) == 2
