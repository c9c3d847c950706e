"""What one flush of the MO store costs: ``jingxin bench mo-store``.

``jingxin bench mo-inbox`` measures the way back end to end, where the simulator, the
worker, its handler processes and PostgreSQL share two cores and a run's p99 moves by
half from one run to the next. This one times only
:func:`~jingxin.dispatch.mo_inbox.store_parts`, in process, the way the worker's MO lane
calls it: one autocommit statement a flush of single-part SMPP MO (no SMSC id), each
flush carrying the acknowledgements of the flush before (as the channel reports them
once its deliver_sm_resps are written).

- ``--repeats``: the share of each flush that repeats a text of the flush before, from the
  same number (a subscriber's ``YE`` twice, acknowledged in between): each must be
  stored again as a message of its own.
- The first 50 flushes warm the statement; then the store is analysed, as a served one
  is; the rest are timed: wall time per flush at p50 / p90 / p99 and this process's CPU
  per flush (PostgreSQL's share is in the wall time only).

Every MO must be stored once, and after the last flush only its own parts may wait for
an acknowledgement (``mo_unacked``); the report's ``failures`` say what did not hold.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

Report = dict[str, Any]
WARM = 50  # flushes before the store is analysed and the timing starts


@dataclass(frozen=True, slots=True)
class MoStorePlan:
    flushes: int = 600
    size: int = 130  # MO a flush (what a flush holds at 2,000 MO/s on a busy two-core machine)
    repeats: float = 0.0  # share of a flush repeating a text of the flush before


def mo_store_bench(*, store_url: str, workdir: Path, plan: MoStorePlan = MoStorePlan()) -> Report:
    """Time ``store_parts`` over ``plan.flushes`` flushes (see the module)."""
    from sqlalchemy import func, select

    from jingxin.bench.crash import open_empty_store
    from jingxin.bench.hall_batch import analyse
    from jingxin.data.store.models import MoMessage, MoUnacked
    from jingxin.dispatch.mo_inbox import InboxRules, store_parts
    from jingxin.domain.sms import MoPart

    store = open_empty_store(store_url)
    rules = InboxRules()
    start = datetime.now(UTC)
    walls: list[float] = []
    cpu = 0.0
    previous: list[tuple[str, MoPart]] = []
    n = stored = 0
    try:
        for flush in range(WARM + plan.flushes):
            repeats = int(len(previous) * plan.repeats)
            items = []
            for i in range(plan.size):
                n += 1
                at = start + timedelta(microseconds=n * 500)
                if i < repeats:  # the same text from the same number again, after its ack
                    _, before = previous[i]
                    source, payload = before.source, before.payload
                else:
                    source, payload = f"86137{n:08d}", b"TD" if n % 3 else b"CXYE please"
                items.append(("sim", MoPart(protocol="smpp", source=source, destination="10690001",
                                            coding=0, payload=payload, received_at=at)))  # fmt: skip
            acks = [(0, channel, part) for channel, part in previous]
            began, used = time.perf_counter(), time.process_time()
            with store.autocommit() as conn:
                tally = store_parts(conn, items=items, now=datetime.now(UTC), rules=rules,
                                    expire=False, acks=acks)  # fmt: skip
            if flush >= WARM:
                walls.append(time.perf_counter() - began)
                cpu += time.process_time() - used
            stored += tally.stored
            previous = items
            if flush == WARM - 1:
                analyse(store_url)
        with store.sessions() as session:
            messages = session.execute(select(func.count()).select_from(MoMessage)).scalar_one()
            waiting = session.execute(select(func.count()).select_from(MoUnacked)).scalar_one()
    finally:
        store.dispose()
    walls.sort()

    def at(q: float) -> float:
        return round(walls[min(len(walls) - 1, int(len(walls) * q))] * 1000, 2)

    report: Report = {
        "scenario": "mo-store", "plan": asdict(plan),
        "wall_p50_ms": at(0.5), "wall_p90_ms": at(0.9), "wall_p99_ms": at(0.99),
        "cpu_ms_per_flush": round(cpu / plan.flushes * 1000, 3),
        "wall_us_per_mo": round(walls[len(walls) // 2] / plan.size * 1e6, 1),
        "mo_injected": n, "mo_stored": stored, "mo_messages": messages,
        "waiting_for_ack": waiting,
    }  # fmt: skip
    report["failures"] = [
        *([f"{n - messages} of {n} MO not stored as messages (repeats taken for redeliveries?)"]
          if messages != n else []),
        *([f"{waiting} parts wait for an acknowledgement; only the last flush's {plan.size} may"]
          if waiting != plan.size else []),
    ]  # fmt: skip
    return report


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("mo-store")
    def mo_store(
        flushes: int = typer.Option(600, min=5, help="Timed flushes."),
        size: int = typer.Option(130, min=1, max=5000, help="Single-part MO a flush."),
        repeats: float = typer.Option(0.0, min=0.0, max=1.0,
                                      help="Share of a flush repeating a text of the flush before."),
        store_url: str = typer.Option(None, help="An empty PostgreSQL database (default: a throwaway one)."),
    ) -> None:
        """Wall and CPU time of one flush of the MO store (SMPP MO, each flush acknowledging
        the one before), in process on PostgreSQL."""
        from jingxin.bench.harness import run_scenario

        plan = MoStorePlan(flushes=flushes, size=size, repeats=repeats)
        run_scenario("mo-store", mo_store_bench, plan=plan, store_url=store_url, workdir=None)
