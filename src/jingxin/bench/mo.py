"""The durable MO inbox under load and under kill -9: ``jingxin bench mo-crash`` and
``mo-inbox``.

Both run ``jingxin smsc`` and ``jingxin worker`` as processes of their own
(:mod:`jingxin.bench.harness`) on an empty PostgreSQL store and stream MO into the
simulator's ``POST /mo`` endpoint from a few threads: two short ``TD`` for each long one
(GSM-7 or UCS-2, two or three parts), each from a number of its own, so every MO is
distinct and the unsubscribe handler answers the short ones.

- **mo-crash**: the worker is killed with -9 once a third of the MO are in, and a worker
  under the same name starts. The simulator delivers again every part the dead worker had
  not acknowledged. The report counts MO lost (injected, never stored), stored twice,
  handled twice (an outcome or an opt-out twice for one MO) and replies sent twice
  (submit_sm at the SMSC per reply number); :func:`invariants` says which is not zero.
- **mo-inbox**: no kill, while a campaign drains (``--campaign``); the simulator plays the
  MO itself (a script, no HTTP per MO) at an offered rate (``--rate`` MO/s, default the
  goal's 2,000; 0: all at once, for the capacity from a backlog). Storage: MO stored per
  second (first part received → last MO stored) and PDU received → stored at p50 / p99.
  End to end: MO handled per second (→ last outcome) and PDU received → reply enqueued
  (first part's ``received_at`` → the commit of the reply's transaction, read from
  PostgreSQL's commit timestamps when ``track_commit_timestamp`` is on; else the reply's
  ``created_at``, its handler batch's start, which is earlier by the batch's work: the
  report's ``reply_enqueued_at`` says which) at p50 / p99, also without the first 2 s
  (the worker's cold start), plus how many campaign messages were submitted meanwhile.
  The offered rate is measured, not assumed: first to last part received by the worker.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer

from jingxin.bench.harness import (Fleet, kill_9, run_scenario, sim_channel, wait_until,
                                   worker_env)  # fmt: skip

Report = dict[str, Any]
SERVICE = "10690001"
STEADY = timedelta(seconds=2)  # the start of a run left out of the steady-state figure


@dataclass(frozen=True, slots=True)
class MoPlan:
    messages: int = 20_000
    threads: int = 4  # HTTP clients injecting at once
    kill_at: float = 1 / 3  # share of the MO injected when the worker is killed (mo-crash)
    campaign: int = 0  # messages draining meanwhile (mo-inbox)
    rate: float = 2000.0  # MO/s the simulator offers (mo-inbox); 0: all at once
    timeout: float = 120.0


def mo_stream(plan: MoPlan) -> list[tuple[str, str]]:
    """(sender, text) of every MO: ``TD`` twice for each long one, a number each."""
    out = []
    for i in range(plan.messages):
        if i % 3 != 2:
            text = "TD"
        elif i % 2:
            text = (f"long message {i}: please call me back about the broadband offer. " * 3).rstrip()
        else:
            text = f"第{i}条：请回电话，我想咨询宽带和流量套餐的变更。" * 3
        out.append((f"86137{i:08d}", text))
    return out


def inject(url: str, items: list[tuple[str, str]], *, threads: int, timeout: float,
           progress: list[int]) -> None:  # fmt: skip
    """POST every item once it is accepted (retrying while no worker is bound)."""
    from jingxin.errors import ChannelError
    from jingxin.smsc.mo import post_mo

    def one(item: tuple[str, str]) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                post_mo(url, source=item[0], destination=SERVICE, text=item[1])
                progress[0] += 1
                return
            except ChannelError:  # no receiver bound (the worker is restarting)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, items))


def counts(store, *, items: list[tuple[str, str]], smsc, source: str = "inbox") -> Report:
    """What the store (and the SMSC's record) say of the MO injected."""
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message, MoMessage, MoPartRow, OptOut

    expected = {(f"+{source}", text) for source, text in items}
    with store.sessions() as s:
        rows = s.execute(select(MoMessage.msisdn, MoMessage.text, MoMessage.complete)).all()
        parts = s.execute(select(func.count()).select_from(MoPartRow)).scalar_one()
        outcomes = dict(s.execute(_outcome_query()).all()) if _has_outcomes(s) else {}
        opt_outs = s.execute(select(OptOut.msisdn, func.count()).group_by(OptOut.msisdn)
                             .having(func.count() > 1)).all()  # fmt: skip
        replies = s.execute(select(Message.msisdn, Message.state).where(Message.source == source)).all()
    stored = {(m, t) for m, t, _ in rows}
    sent = smsc.submits()
    try:  # the simulator's own count of deliver_sm it sent again (receipts and MO)
        resent = json.loads(urllib.request.urlopen(f"{smsc.mo_url}/status", timeout=5).read())["receipts_resent"]
    except (OSError, ValueError, KeyError):
        resent = None
    reply_numbers = {m.lstrip("+") for m, _ in replies}
    return {
        "injected": len(items), "mo_messages": len(rows), "mo_parts": parts, "smsc_resent": resent,
        "lost": len(expected - stored), "stored_twice": len(rows) - len(stored),
        "incomplete": sum(1 for *_, complete in rows if not complete),
        "outcomes": outcomes, "opt_outs_twice": len(opt_outs),
        "replies": len(replies), "replies_open": sum(1 for _, st in replies if st in ("queued", "submitting", "submitted")),
        "replies_sent_twice": sum(1 for n in reply_numbers if sent.get(n, 0) > 1),
        # Replies whose submit was on the wire at the kill: failed, not resent (the
        # settings' `unresolved = {inbox = "fail"}`: a reply goes at most once).
        "replies_by_state": dict(Counter(st for _, st in replies)),
    }  # fmt: skip


def _has_outcomes(session) -> bool:
    from sqlalchemy import inspect

    return inspect(session.get_bind()).has_table("mo_outcomes")


def _outcome_query():
    from sqlalchemy import column, func, select, table

    outcomes = table("mo_outcomes", column("outcome"))
    return select(outcomes.c.outcome, func.count()).group_by(outcomes.c.outcome)


def stored_mo(store) -> int:
    """How many MO the store holds."""
    from sqlalchemy import func, select

    from jingxin.data.store.models import MoMessage

    with store.sessions() as s:
        return s.execute(select(func.count()).select_from(MoMessage)).scalar_one()


def started(store, processes: list) -> int:
    """Wait until the worker stores its first MO (its start-up and its handler processes'
    are then behind it: not in the CPU per MO); the MO stored by then."""
    wait_until("the worker storing MO", lambda: stored_mo(store) > 0, timeout=120,
               processes=processes, every=0.02)  # fmt: skip
    return stored_mo(store)


def settled(store, *, items: list[tuple[str, str]], source: str = "inbox") -> Callable[[], bool]:
    """Every MO stored, each with an outcome, every reply final."""
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message, MoMessage

    def check() -> bool:
        # Each count only once the one before is complete: while MO stream in, the poll
        # is one cheap count, not three scans competing with the worker being measured.
        with store.sessions() as s:
            stored = s.execute(select(func.count()).select_from(MoMessage)).scalar_one()
            if stored < len(items):
                return False
            handled = sum(dict(s.execute(_outcome_query()).all()).values()) if _has_outcomes(s) else stored
            if handled < stored:
                return False
            open_replies = s.execute(select(func.count()).where(
                Message.source == source, Message.state.in_(("queued", "submitting", "submitted")))).scalar_one()
        return open_replies == 0

    return check


def invariants(report: Report) -> list[str]:
    """One line per broken promise of the MO inbox; empty when the run is sound."""
    checks = [
        (report["lost"] == 0, f"lost: {report['lost']} MO injected were never stored"),
        (report["stored_twice"] == 0, f"stored twice: {report['stored_twice']} MO"),
        (report["opt_outs_twice"] == 0, f"handled twice: {report['opt_outs_twice']} opt-outs"),
        (report["replies_sent_twice"] == 0, f"replies sent twice: {report['replies_sent_twice']}"),
    ]
    return [line for ok, line in checks if not ok]


def _start(fleet: Fleet, store_url: str, name: str) -> tuple[Any, dict[str, str]]:
    smsc = fleet.smsc(latency=0.001, receipt_delay=0.01)
    env = worker_env(store_url=store_url, channels=[sim_channel(smsc.port)], worker_name="mo-worker")
    return smsc, env


def mo_crash(*, store_url: str, workdir: Path, plan: MoPlan = MoPlan()) -> Report:
    """kill -9 the worker while MO stream in; restart it; count what was lost or doubled."""
    from jingxin.bench.crash import open_empty_store

    store = open_empty_store(store_url)
    items = mo_stream(plan)
    progress = [0]
    try:
        with Fleet(workdir) as fleet:
            smsc, env = _start(fleet, store_url, "mo-crash")
            first = fleet.worker(env, "worker-1")
            feeder = threading.Thread(target=inject, args=(smsc.mo_url, items),
                                      kwargs={"threads": plan.threads, "timeout": plan.timeout,
                                              "progress": progress}, daemon=True)  # fmt: skip
            feeder.start()
            # Polled every 2 ms: a worker that stores fast let 4 clients inject the other
            # two thirds of 300 MO within the default 50 ms, and the kill came after them.
            wait_until("a third of the MO in", lambda: progress[0] >= plan.kill_at * plan.messages,
                       timeout=plan.timeout, processes=[first], every=0.002)  # fmt: skip
            kill_9(first)
            at_kill = progress[0]
            second = fleet.worker(env, "worker-2")
            feeder.join(plan.timeout)
            wait_until("every MO stored and handled", settled(store, items=items),
                       timeout=plan.timeout, processes=[second])  # fmt: skip
            report = {"scenario": "mo-crash", "plan": asdict(plan), "injected_at_kill": at_kill,
                      **counts(store, items=items, smsc=smsc)}  # fmt: skip
    finally:
        store.dispose()
    report["failures"] = invariants(report)
    return report


def mo_script(path: Path, items: list[tuple[str, str]], *, rate: float, tick: float = 0.005,
              service: str = SERVICE) -> Path:
    """The simulator's MO script for ``items``: ``rate`` MO/s, a group every ``tick``
    seconds (an asyncio sleep per MO would not keep 2,000/s); ``rate`` 0: no pauses."""
    per_tick = max(1, round(rate * tick)) if rate else len(items) or 1
    pause = per_tick / rate if rate else 0.0
    with open(path, "w", encoding="utf-8") as script:
        for i, (source, text) in enumerate(items):
            delay = pause if i and i % per_tick == 0 else 0.0
            script.write(f"{delay:.6f}, {source}, {service}, {text}\n")
    return path


def analyse_at(messages: int) -> int:
    """When a run of ``messages`` MO analyses its store on a server without autovacuum
    (:mod:`jingxin.bench.statistics`): at 1,000 stored, well inside the 2 s the steady
    figures leave out (a quarter of a smaller run)."""
    return max(1, min(1000, messages // 4))


def mo_inbox(*, store_url: str, workdir: Path, plan: MoPlan = MoPlan()) -> Report:
    """MO stored and handled per second by one worker at an offered rate while a campaign
    drains; PDU → stored and PDU → reply enqueued latency."""
    from jingxin.bench.crash import CrashPlan, open_empty_store, enqueue_campaign
    from jingxin.bench.cpu import cpu_per_mo
    from jingxin.bench.statistics import analysed_once

    store = open_empty_store(store_url)
    items = mo_stream(plan)
    script = mo_script(workdir / "mo-script.txt", items, rate=plan.rate)
    try:
        with Fleet(workdir) as fleet:
            if plan.campaign:
                enqueue_campaign(store, plan=CrashPlan(messages=plan.campaign, base=600.0))
            # The simulator plays the script as soon as the worker binds.
            smsc = fleet.smsc(latency=0.001, receipt_delay=0.01, flags=["--script", str(script)])
            env = worker_env(store_url=store_url, channels=[sim_channel(smsc.port)], worker_name="mo-worker")
            worker = fleet.worker(env, "worker-1")
            before = started(store, [worker])
            with analysed_once(store_url, mo=analyse_at(plan.messages)) as statistics, \
                    cpu_per_mo(workers=[worker.pid], smsc=smsc.process.pid,
                               store_url=store_url) as cpu:  # fmt: skip
                wait_until("every MO stored and handled", settled(store, items=items),
                           timeout=plan.timeout, processes=[worker], every=0.5)  # fmt: skip
                cpu["mo"] = len(items) - before
            report = {"scenario": "mo-inbox", "plan": asdict(plan), **figures(store),
                      **counts(store, items=items, smsc=smsc), "statistics": statistics,
                      "cpu_ms_per_mo": cpu}  # fmt: skip
    finally:
        store.dispose()
    report["failures"] = invariants(report)
    return report


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` quantile (nearest rank) of ``values`` in ms, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[int(share * (len(ordered) - 1))] * 1000, 1)


def figures(store, *, source: str = "inbox") -> Report:
    """Offered rate, storage and end-to-end rates and latencies, campaign progress."""
    from sqlalchemy import func, literal_column, select, text
    from sqlalchemy.orm import aliased

    from jingxin.data.store.models import DecisionRecord, Message, MoMessage, MoOutcome, MoPartRow

    reply = aliased(Message)
    with store.sessions() as s:
        first, last_in = s.execute(select(func.min(MoPartRow.received_at), func.max(MoPartRow.received_at))).one()
        stored = s.execute(select(MoMessage.id, MoMessage.received_at, MoMessage.stored_at)).all()
        handled = dict(s.execute(select(MoOutcome.mo_id, MoOutcome.handled_at)).all())
        answered = (reply.source == source) & (reply.source_id == func.cast(MoMessage.id, reply.source_id.type))
        # A reply is enqueued when the transaction that wrote it commits. The row's
        # created_at is its handler batch's clock, taken when the batch began - earlier by
        # the batch's own work. PostgreSQL knows the commit when track_commit_timestamp is
        # on: the decision row written with the reply (never updated) carries its xmin.
        committed = s.execute(text("SHOW track_commit_timestamp")).scalar_one() == "on"
        if committed:
            commit = func.min(func.pg_xact_commit_timestamp(literal_column("decisions.xmin")))
            replies = s.execute(select(MoMessage.received_at, commit)
                                .join(reply, answered)
                                .join(DecisionRecord, DecisionRecord.idempotency_key == reply.idempotency_key)
                                .group_by(MoMessage.id, MoMessage.received_at)).all()  # fmt: skip
        else:
            replies = s.execute(select(MoMessage.received_at, reply.created_at).join(reply, answered)).all()
        last_done = max(handled.values(), default=None)
        # When the last reply was final (its receipts in): the way out keeping up or not.
        last_final = s.execute(select(func.max(Message.finished_at))
                               .where(Message.source == source)).scalar_one()  # fmt: skip
        campaign = s.execute(select(func.count()).where(
            Message.source != source, Message.submitted_at >= first, Message.submitted_at <= last_done)
        ).scalar_one() if first and last_done else 0  # fmt: skip
    count = len(stored)
    last_stored = max((at for _, _, at in stored), default=None)

    def per_s(until) -> float | None:
        return round(count / max((until - first).total_seconds(), 1e-6), 1) if first and until else None

    return {
        "offered_per_s": round(count / max((last_in - first).total_seconds(), 1e-6), 1) if first else None,
        "mo_stored_per_s": per_s(last_stored),
        "store_latency_p50_ms": percentile([(at - got).total_seconds() for _, got, at in stored], 0.5),
        "store_latency_p99_ms": percentile([(at - got).total_seconds() for _, got, at in stored], 0.99),
        "mo_handled_per_s": per_s(last_done),
        # Replies delivered (receipts in) per second, first MO in → last reply final.
        "replies_final_per_s": per_s(last_final),
        "handled_latency_p99_ms": percentile(
            [(handled[i] - got).total_seconds() for i, got, _ in stored if i in handled], 0.99),
        "reply_latency_p50_ms": percentile([(made - got).total_seconds() for got, made in replies], 0.5),
        "reply_latency_p99_ms": percentile([(made - got).total_seconds() for got, made in replies], 0.99),
        # The same without the worker's first seconds (its first batches, cold: the SQL
        # and the plans are made on first use), for the steady state.
        "reply_latency_p99_after_2s_ms": percentile([(made - got).total_seconds() for got, made in replies
                                                     if first and got >= first + STEADY], 0.99),
        "campaign_submitted_meanwhile": campaign,
        "reply_enqueued_at": "commit" if committed else "batch start (track_commit_timestamp off)",
    }  # fmt: skip


def _command(bench_app: typer.Typer, name: str, scenario: Callable[..., Report], doc: str) -> None:
    def run(
        messages: int = typer.Option(20_000, min=1, help="MO to inject."),
        campaign: int = typer.Option(0, min=0, help="Messages draining meanwhile (mo-inbox)."),
        rate: float = typer.Option(2000.0, min=0, help="MO/s offered (mo-inbox; 0: all at once)."),
        store_url: str = typer.Option(None, help="An empty PostgreSQL database (default: a throwaway one)."),
        workdir: Path = typer.Option(None, help="Keep the logs here."),
    ) -> None:
        plan = MoPlan(messages=messages, campaign=campaign, rate=rate, timeout=max(120.0, messages / 100))
        run_scenario(name, scenario, plan=plan, store_url=store_url, workdir=workdir)

    run.__doc__ = doc
    bench_app.command(name)(run)


def register_commands(bench_app: typer.Typer) -> None:
    _command(bench_app, "mo-crash", mo_crash,
             "kill -9 the worker while MO stream in (PostgreSQL, real processes); count losses.")
    _command(bench_app, "mo-inbox", mo_inbox,
             "MO stored and handled per second by one worker at --rate MO/s while a campaign drains; "
             "PDU → stored and PDU → reply enqueued p50 / p99.")
