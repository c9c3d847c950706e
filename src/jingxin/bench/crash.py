"""Crash runs at campaign scale: ``jingxin bench crash-worker`` and ``crash-smsc``.

A campaign of notifications goes into an empty PostgreSQL outbox; ``jingxin smsc`` and
``jingxin worker`` run as processes of their own (:mod:`jingxin.bench.harness`), and a
third of the way through, with submits in flight, one of them is killed with -9:

- **crash-worker**: the worker dies; a worker under the same name starts, resolves the
  rows the dead one left in 'submitting' (unresolved: resent) and drains the rest;
- **crash-smsc**: the SMSC dies and comes back on the same port ``outage`` seconds later;
  the same worker re-binds by itself and drains the rest.

Then the store and the SMSC's own record of every submit_sm (over each run of it) are
counted into a report, and :func:`invariants` says what of it breaks crash safety: every
message in exactly one final state, none lost, duplicates at the SMSC ≤ the worker's own
count of unresolved submits ≤ what can be in flight, the drain went on after the kill, the
JSON logs hold no full number. The CLI prints the report as its last line and exits 1 when
an invariant fails; the crash tests call the same functions at a smaller size.

Validity is staggered by position: message *i* may be sent until ``base + i / pace``
seconds after it was queued. Claims go in id order, so each message has about ``base``
seconds of slack at ``pace`` msg/s, and the few whose receipt died with a killed process
(all sent around the kill) expire 'no_receipt' soon after it rather than at the end of a
campaign-wide validity. On a machine slower than ``pace`` the last ones expire 'validity'
instead of going out, a final state too; the report counts them by reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer

from jingxin.bench.harness import (
    Fleet,
    RunFailed,
    SmscProcess,
    kill_9,
    run_scenario,
    scan_log,
    sim_channel,
    terminate,
    wait_until,
    worker_env,
)

OPEN_STATES = ("queued", "submitting", "submitted")
FINAL_STATES = ("delivered", "expired")
Report = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CrashPlan:
    """The size and pacing of one crash run."""

    messages: int = 100_000
    base: float = 30.0  # seconds of validity every message has
    pace: float = 600.0  # msg/s the validity is staggered at (below a slow VM's ~850)
    kill_at: float = 1 / 3  # share of the campaign out of the queue at the kill
    # 10 ms per submit response keeps a few dozen submit_sm on the wire, so a kill lands on
    # some (at 1 ms there is rarely one, and the unresolved path goes untested).
    latency: float = 0.01
    receipt_delay: float = 0.01
    window: int = 50  # submit_sm on the wire without a response, per bind
    max_in_flight: int = 200  # rows one worker holds in 'submitting' at most
    outage: float = 3.0  # seconds the SMSC stays dead (crash-smsc)

    @property
    def drain_timeout(self) -> float:
        return self.base + self.messages / self.pace + 30


# --------------------------------------------------------------------------- the store


def enqueue_campaign(store, *, plan: CrashPlan) -> None:
    """``plan.messages`` notifications, one number each, staggered validity."""
    from jingxin.data.store.models import utc_now
    from jingxin.dispatch.outbox import OutboxEntry, enqueue

    now = utc_now()
    enqueue(store, entries=(
        OutboxEntry(tenant_id="default", msisdn=f"+86139{i:08d}", category="notification",
                    text=f"账单提醒 {i}", idempotency_key=f"crash-{i}",
                    expires_at=now + timedelta(seconds=plan.base + i / plan.pace))
        for i in range(plan.messages)
    ))  # fmt: skip


def state_counts(store) -> dict[str, int]:
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    with store.sessions() as s:
        return dict(s.execute(select(Message.state, func.count()).group_by(Message.state)).all())


def mid_drain(store, *, plan: CrashPlan) -> Callable[[], bool]:
    """A condition: ``plan.kill_at`` of the campaign has left the queue, submits in flight."""
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    def in_state(s, state: str) -> int:  # an index range on ix_messages_queue: cheap
        return s.execute(select(func.count()).where(Message.state == state)).scalar_one()

    def check() -> bool:
        # 'submitting' is read last, so the kill follows it by as little as possible: a
        # whole claim can go out and come back in a few tens of milliseconds
        with store.sessions() as s:
            queued = in_state(s, "queued")
            if queued == 0:  # too small a campaign: say so rather than wait for nothing
                raise RunFailed(f"all {plan.messages} messages were claimed before the kill "
                                "point; run more --messages")  # fmt: skip
            return (plan.messages - queued >= plan.kill_at * plan.messages
                    and in_state(s, "submitting") > 0)  # fmt: skip

    return check


def all_final(store) -> Callable[[], bool]:
    return lambda: not set(state_counts(store)) & set(OPEN_STATES)


def open_empty_store(store_url: str):
    """The store at ``store_url``, migrated; refused unless PostgreSQL with no messages."""
    from sqlalchemy import func, select

    from jingxin.data.store import open_store
    from jingxin.data.store.models import Message
    from jingxin.errors import InputError

    if not store_url.startswith("postgresql"):
        scheme = store_url.split(":")[0]
        raise InputError(f"--store-url: this benchmark needs PostgreSQL, got {scheme!r}")
    store = open_store(store_url, upgrade=True)
    with store.sessions() as s:
        queued = s.execute(select(func.count()).select_from(Message)).scalar_one()
    if queued:
        store.dispose()
        raise InputError(f"--store-url: the outbox already holds {queued} messages; this "
                         "benchmark needs an empty database (leave --store-url out for a "
                         "throwaway one)")  # fmt: skip
    return store


# --------------------------------------------------------------------------- the scenarios


def crash_worker(*, store_url: str, workdir: Path, plan: CrashPlan = CrashPlan()) -> Report:
    """kill -9 the worker mid-drain, start one under the same name; the report."""
    store = open_empty_store(store_url)
    try:
        with Fleet(workdir) as fleet:
            enqueue_campaign(store, plan=plan)
            began = time.monotonic()
            smsc = fleet.smsc(latency=plan.latency, receipt_delay=plan.receipt_delay)
            env = _worker_env(store_url=store_url, smsc=smsc, plan=plan)
            first = fleet.worker(env, "worker-1")
            wait_until("the kill point", mid_drain(store, plan=plan), timeout=120,
                       processes=[first])  # fmt: skip
            kill_9(first)
            at_kill = state_counts(store)
            second = fleet.worker(env, "worker-2")
            wait_until("every message final", all_final(store), timeout=plan.drain_timeout,
                       processes=[second])  # fmt: skip
            exit_code = terminate(second)
            smsc.stop()
            report = _report(store, smsc, plan=plan, at_kill=at_kill, began=began,
                             scenario="crash-worker", bound=plan.max_in_flight)  # fmt: skip
        report.update(worker_exit=exit_code, in_flight_at_kill=at_kill.get("submitting", 0),
                      resent_by_state=_resent_by_state(store),
                      logs=_logs(fleet, "worker-1", "worker-2"))  # fmt: skip
    finally:
        store.dispose()
    return _finish(report, workdir)


def crash_smsc(*, store_url: str, workdir: Path, plan: CrashPlan = CrashPlan()) -> Report:
    """kill -9 the SMSC mid-drain, start it again after ``plan.outage`` s; the report."""
    store = open_empty_store(store_url)
    try:
        with Fleet(workdir) as fleet:
            enqueue_campaign(store, plan=plan)
            began = time.monotonic()
            smsc = fleet.smsc(latency=plan.latency, receipt_delay=plan.receipt_delay)
            env = _worker_env(store_url=store_url, smsc=smsc, plan=plan)
            worker = fleet.worker(env, "worker")
            wait_until("the kill point", mid_drain(store, plan=plan), timeout=120,
                       processes=[worker])  # fmt: skip
            smsc.kill()
            at_kill = state_counts(store)
            time.sleep(plan.outage)
            smsc.start()
            # the same worker re-binds by itself: no restart
            wait_until("every message final", all_final(store), timeout=plan.drain_timeout,
                       processes=[worker])  # fmt: skip
            exit_code = terminate(worker)
            smsc.stop()
            # only the submits on the wire when the link died can be duplicated: one window
            report = _report(store, smsc, plan=plan, at_kill=at_kill, began=began,
                             scenario="crash-smsc", bound=plan.window)  # fmt: skip
        logs = _logs(fleet, "worker")
        report.update(worker_exit=exit_code, logs=logs,
                      link_lost_warnings=_link_lost_warnings(fleet.log("worker")))  # fmt: skip
    finally:
        store.dispose()
    return _finish(report, workdir)


def _worker_env(*, store_url: str, smsc: SmscProcess, plan: CrashPlan) -> dict[str, str]:
    return worker_env(store_url=store_url, max_in_flight=plan.max_in_flight,
                      channels=[sim_channel(smsc.port, window=plan.window)])  # fmt: skip


def _report(store, smsc: SmscProcess, *, plan: CrashPlan, at_kill: dict[str, int],
            began: float, scenario: str, bound: int) -> Report:  # fmt: skip
    """What the store and the SMSC's record say once every message is final."""
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    submits = smsc.submits()
    smsc.discard_records()  # ~50 MB per 100,000 submits: counted, not kept
    with store.sessions() as s:
        unresolved = s.execute(select(func.sum(Message.unresolved))).scalar_one() or 0
        keys = s.execute(select(func.count(func.distinct(Message.idempotency_key)))).scalar_one()
        delivered = {m.lstrip("+") for (m,) in s.execute(
            select(Message.msisdn).where(Message.state == "delivered"))}  # fmt: skip
        expired = dict(s.execute(select(Message.error_code, func.count())
                                 .where(Message.state == "expired")
                                 .group_by(Message.error_code)).all())  # fmt: skip
        claimed_again = s.execute(select(func.count()).where(Message.attempts > 1)).scalar_one()
    return {
        "scenario": scenario, "messages": plan.messages, "plan": asdict(plan),
        "seconds": round(time.monotonic() - began, 1), "at_kill": at_kill,
        "final": state_counts(store), "keys": keys, "expired_by_reason": expired,
        "submits_received": sum(submits.values()), "distinct_numbers_received": len(submits),
        "delivered_not_received": len(delivered - set(submits)),
        "duplicates": sum(n - 1 for n in submits.values() if n > 1),
        "unresolved_counted": int(unresolved), "in_flight_bound": bound,
        "claimed_more_than_once": claimed_again,
    }  # fmt: skip


def _resent_by_state(store) -> dict[str, int]:
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    with store.sessions() as s:
        resent = select(Message.state, func.count()).where(Message.attempts > 1)
        return dict(s.execute(resent.group_by(Message.state)).all())


def _logs(fleet: Fleet, *names: str) -> dict[str, dict[str, int]]:
    scans = {name: scan_log(fleet.log(name)) for name in names}
    return {name: {"records": len(it.records), "bad_lines": it.bad_lines, "leaks": it.leaks}
            for name, it in scans.items()}  # fmt: skip


def _link_lost_warnings(path: Path) -> int:
    return sum(1 for r in scan_log(path).records if r["level"] == "WARNING"
               and str(r["logger"]).startswith("jingxin.channels"))  # fmt: skip


def _finish(report: Report, workdir: Path) -> Report:
    report["failures"] = invariants(report)
    (workdir / "crash-report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


# --------------------------------------------------------------------------- the invariants


def invariants(report: Report) -> list[str]:
    """What in ``report`` breaks crash safety, one line each; empty when nothing does."""
    final, at_kill, n = report["final"], report["at_kill"], report["messages"]
    duplicates, unresolved = report["duplicates"], report["unresolved_counted"]
    checks = [
        (not set(final) & set(OPEN_STATES), f"messages left open: {final}"),
        (set(final) <= set(FINAL_STATES), f"a final state other than {FINAL_STATES}: {final}"),
        (sum(final.values()) == report["keys"] == n,
         f"lost: {sum(final.values())} rows, {report['keys']} keys for {n} messages"),
        (at_kill.get("queued", 0) > 0, "the campaign was drained before the kill"),
        (report["delivered_not_received"] == 0,
         f"{report['delivered_not_received']} delivered messages the SMSC never received"),
        (report["distinct_numbers_received"] <= n, "the SMSC received numbers never queued"),
        (final.get("delivered", 0) - at_kill.get("delivered", 0) >= at_kill.get("queued", 0) // 10,
         "the drain did not go on after the kill"),
        (duplicates <= unresolved <= report["in_flight_bound"],
         f"duplicates {duplicates} ≤ unresolved {unresolved} ≤ bound "
         f"{report['in_flight_bound']} does not hold"),
        (report["worker_exit"] == 0,
         f"the worker exited with {report['worker_exit']} on SIGTERM"),
    ]  # fmt: skip
    for name, log in report["logs"].items():
        checks += [(log["leaks"] == 0, f"{name}.log: {log['leaks']} full numbers"),
                   (log["bad_lines"] == 0, f"{name}.log: {log['bad_lines']} non-JSON lines"),
                   (log["records"] > 0, f"{name}.log: no records")]  # fmt: skip
    checks += SCENARIO_CHECKS[report["scenario"]](report)
    return [text for ok, text in checks if not ok]


def _worker_checks(report: Report) -> list[tuple[bool, str]]:
    # The restart resolved exactly the rows the dead worker left in 'submitting': only those
    # can be duplicates. And every resend kept its place in the queue and went out (a resend
    # due "now" once waited behind the whole backlog and expired).
    in_flight, again = report["in_flight_at_kill"], report["claimed_more_than_once"]
    return [
        (report["duplicates"] <= in_flight <= report["unresolved_counted"],
         f"duplicates {report['duplicates']} ≤ in 'submitting' at the kill {in_flight} ≤ "
         f"unresolved {report['unresolved_counted']} does not hold"),
        (report["resent_by_state"] == ({"delivered": again} if again else {}),
         f"not every resend was delivered: {report['resent_by_state']}"),
    ]  # fmt: skip


def _smsc_checks(report: Report) -> list[tuple[bool, str]]:
    # Nothing is claimed while no channel is bound: only what the worker held when the link
    # died is tried again (claiming through the outage once failed thousands never tried).
    bound = report["plan"]["max_in_flight"]
    return [
        (report["claimed_more_than_once"] <= bound,
         f"{report['claimed_more_than_once']} claimed more than once (> {bound} held)"),
        (report["link_lost_warnings"] > 0, "the worker logged no warning about the lost link"),
    ]  # fmt: skip


SCENARIO_CHECKS = {"crash-worker": _worker_checks, "crash-smsc": _smsc_checks}


# --------------------------------------------------------------------------- the commands


def _command(bench_app: typer.Typer, name: str, scenario: Callable[..., Report], doc: str) -> None:
    def run(
        messages: int = typer.Option(100_000, min=1, help="Messages in the campaign."),
        store_url: str = typer.Option(None, help="An empty PostgreSQL database (default: a "
                                      "throwaway one on JINGXIN_BENCH_PG or the local server)."),
        workdir: Path = typer.Option(None, help="Keep the logs and crash-report.json here."),
        base: float = typer.Option(30.0, min=1, help="Seconds of validity every message has."),
        pace: float = typer.Option(600.0, min=1, help="msg/s the validity is staggered at."),
    ) -> None:
        plan = CrashPlan(messages=messages, base=base, pace=pace)
        run_scenario(name, scenario, plan=plan, store_url=store_url, workdir=workdir)

    run.__doc__ = doc
    bench_app.command(name)(run)


def register_commands(bench_app: typer.Typer) -> None:
    _command(bench_app, "crash-worker", crash_worker,
             "kill -9 the worker mid-campaign (PostgreSQL, real processes); restart, check.")
    _command(bench_app, "crash-smsc", crash_smsc,
             "kill -9 the SMSC mid-campaign (PostgreSQL, real processes); re-bind, check.")
