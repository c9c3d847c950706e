"""Crash safety (issue #5 item 7) at CI size: on PostgreSQL, with real ``jingxin worker`` and
``jingxin smsc`` processes, kill -9 the worker - or the SMSC - a third of the way through a
campaign with submits in flight, and check the report of :mod:`jingxin.bench.crash`.

The scenarios, their counting and their invariants are the product's own: the same run at
100,000 messages is ``jingxin bench crash-worker`` / ``crash-smsc`` (figures in
BENCHMARKS.md). Here 9,000 messages, valid for 15 s + i / 600 s, are enough for the kill to
land with a claim in flight and the drain to go on after it; the report is printed
(``pytest -s``) and written to ``crash-report.json`` in the test's tmp dir.
"""

from __future__ import annotations

import copy
import json

import pytest

from jingxin.bench.crash import CrashPlan, crash_smsc, crash_worker, invariants

# kill -9 and restarts on a timeline: run alone, after the parallel part (./dev test).
pytestmark = pytest.mark.serial

# 15 s of slack covers a worker's start-up, or the SMSC's 3-s outage and the re-bind, after
# the kill; the receipts lost with a killed process (messages ~3,000) expire 'no_receipt'
# 20 s after queueing, about when the drain ends: that bounds each run near 20 s.
PLAN = CrashPlan(messages=9_000, base=15.0, pace=600.0)


def show(report: dict) -> None:
    print(f"\ncrash report: {json.dumps(report)}")


@pytest.mark.postgres
@pytest.mark.slow
def test_kill_9_worker_mid_campaign(pg_url, tmp_path) -> None:
    # Given 9,000 notifications in an empty outbox, an SMSC and a worker in processes of their own
    # When the worker is killed with SIGKILL a third of the way through, and a worker under
    # the same name starts again
    report = crash_worker(store_url=pg_url, workdir=tmp_path, plan=PLAN)
    show(report)
    # Then every message is final and none lost, duplicates ≤ unresolved ≤ the rows left in
    # 'submitting', every resend delivered, no full number in the JSON logs
    assert report["failures"] == [], report["failures"]
    assert (tmp_path / "crash-report.json").exists()
    # And the kill did hit submits in flight, so the unresolved path ran
    assert report["in_flight_at_kill"] > 0, report["at_kill"]
    assert report["unresolved_counted"] >= report["in_flight_at_kill"]


@pytest.mark.postgres
@pytest.mark.slow
def test_kill_9_smsc_mid_campaign(pg_url, tmp_path) -> None:
    # Given the same campaign, SMSC and worker
    # When the SMSC is killed with SIGKILL a third of the way through and comes back on the
    # same port three seconds later (the worker is not restarted)
    report = crash_smsc(store_url=pg_url, workdir=tmp_path, plan=PLAN)
    show(report)
    # Then the worker re-bound and drained the rest: every message final, none lost,
    # duplicates ≤ one window, nothing claimed during the outage, the lost link logged
    assert report["failures"] == [], report["failures"]
    assert report["link_lost_warnings"] > 0
    assert report["final"].get("delivered", 0) > report["at_kill"].get("delivered", 0)


GOOD = {
    "scenario": "crash-worker", "messages": 100, "plan": {"max_in_flight": 200},
    "at_kill": {"queued": 60, "submitting": 5, "delivered": 35},
    "final": {"delivered": 98, "expired": 2}, "keys": 100,
    "delivered_not_received": 0, "distinct_numbers_received": 100,
    "duplicates": 3, "unresolved_counted": 5, "in_flight_bound": 200,
    "claimed_more_than_once": 5, "resent_by_state": {"delivered": 5}, "in_flight_at_kill": 5,
    "worker_exit": 0, "logs": {"worker-1": {"records": 10, "bad_lines": 0, "leaks": 0}},
}  # fmt: skip


@pytest.mark.parametrize(("change", "failure"), [
    ({"final": {"delivered": 97, "expired": 2}}, "lost: 99 rows"),
    ({"final": {"delivered": 90, "submitted": 10}}, "messages left open"),
    ({"duplicates": 6}, "duplicates 6 ≤ unresolved 5"),
    ({"resent_by_state": {"delivered": 4, "expired": 1}}, "not every resend was delivered"),
    ({"logs": {"worker-1": {"records": 10, "bad_lines": 0, "leaks": 1}}}, "1 full numbers"),
    ({"at_kill": {"queued": 0, "delivered": 100}}, "drained before the kill"),
])  # fmt: skip
def test_the_invariants_name_what_a_run_broke(change, failure) -> None:
    # Given the report of a sound run, the invariants find nothing
    assert invariants(GOOD) == []
    # When one figure shows a lost message, an uncounted duplicate, a leak, ...
    broken = {**copy.deepcopy(GOOD), **change}
    # Then the invariants say so, in one line
    assert any(failure in line for line in invariants(broken)), invariants(broken)
