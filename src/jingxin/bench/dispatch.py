"""Dispatch benchmarks: outbox enqueue, campaign to outbox, drain to the simulator.

The store is a temporary SQLite file unless ``JINGXIN_BENCH_STORE_URL`` names another
(e.g. an empty PostgreSQL database). Heavy imports stay inside the functions.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from jingxin.bench import benchmark
from jingxin.bench.harness import throwaway_database


def _store(tmp: str):
    from jingxin.data.store import open_store

    url = (
        os.environ.get("JINGXIN_BENCH_STORE_URL")
        or f"sqlite:///{Path(tmp) / 'bench.db'}"
    )
    return open_store(url, upgrade=True)


def _entries(n: int, *, prefix: str = "b", category: str = "marketing"):
    from jingxin.dispatch.outbox import OutboxEntry

    return (OutboxEntry(tenant_id="default", msisdn=f"+86139{i:08d}", category=category,
                        text="【精信】春季特惠，流量包五折。回T退订", idempotency_key=f"{prefix}{i}")
            for i in range(n))  # fmt: skip


@benchmark("outbox-enqueue", summary="bulk-insert N accepted messages into the outbox",
           default_scale=100_000)  # fmt: skip
def outbox_enqueue(scale: int) -> dict[str, Any]:
    from jingxin.dispatch.outbox import enqueue

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp)
        try:
            started = time.perf_counter()
            result = enqueue(store, entries=_entries(scale))
            seconds = time.perf_counter() - started
            again = time.perf_counter()
            dup = enqueue(store, entries=_entries(min(scale, 10_000)))
            dup_seconds = time.perf_counter() - again
        finally:
            store.dispose()
    return {"dialect": store.engine.dialect.name, "rows": result.inserted,
            "seconds": round(seconds, 2), "rows_per_s": round(scale / seconds),
            "duplicates_skipped": dup.duplicates, "duplicate_pass_s": round(dup_seconds, 2)}  # fmt: skip


@benchmark("dispatch-drain", summary="drain N messages to the in-process simulator (one worker)"
           " with OTPs injected; messages/s and OTP accept→submit latency", default_scale=5_000)  # fmt: skip
def dispatch_drain(scale: int) -> dict[str, Any]:
    import asyncio

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp)
        try:
            return asyncio.run(_drain(store, scale))
        finally:
            store.dispose()


async def _drain(store, scale: int) -> dict[str, Any]:
    import asyncio
    import statistics

    from sqlalchemy import func, select

    from jingxin.config import ChannelSettings, Settings
    from jingxin.data.store.models import Message, utc_now
    from jingxin.dispatch.bootstrap import build_worker, close_channels, start_channels
    from jingxin.dispatch.outbox import enqueue
    from jingxin.smsc.behaviour import Behaviour
    from jingxin.smsc.record import Record
    from jingxin.smsc.server import Simulator

    with store.sessions() as session:
        if session.scalar(select(func.count()).select_from(Message)):
            raise SystemExit(
                "dispatch-drain needs an empty outbox (JINGXIN_BENCH_STORE_URL)"
            )
    enqueue(store, entries=_entries(scale))
    async with Simulator(
        behaviour=Behaviour(receipt_delay=0.01), record=Record(keep=10_000)
    ) as sim:
        settings = Settings(channels=[ChannelSettings(name="sim", port=sim.smpp_port, window=100)],
                            dispatch={"worker_name": "bench", "max_in_flight": 400})  # fmt: skip
        worker = build_worker(settings, store)
        await start_channels(worker)
        started = time.perf_counter()
        stop = asyncio.Event()
        run = asyncio.create_task(worker.run(stop=stop))
        for k in range(20):  # one OTP every 100 ms while the backlog drains
            await asyncio.sleep(0.1)
            enqueue(store, entries=_entries(1, prefix=f"otp{k}-", category="otp"))
        while not worker._nothing_left(horizon=utc_now()):
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        stop.set()
        tally = await run
        await close_channels(worker)
    latencies = _otp_latencies(store)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"dialect": store.engine.dialect.name, "messages": tally.submitted,
            "seconds": round(seconds, 2), "messages_per_s": round(tally.submitted / seconds),
            "otp_p50_ms": round(q[49] * 1000, 1), "otp_p99_ms": round(q[98] * 1000, 1),
            "note": "seconds include waiting for the last receipts; OTP latency is "
                    "accepted (created_at) to submit_sm_resp (submitted_at), an upper bound"}  # fmt: skip


def _otp_latencies(store) -> list[float]:
    from sqlalchemy import select

    from jingxin.data.store.models import Message

    with store.sessions() as session:
        rows = session.execute(select(Message.created_at, Message.submitted_at)
                               .where(Message.category == "otp")).all()  # fmt: skip
    return [(sent - made).total_seconds() for made, sent in rows if sent is not None]


# --------------------------------------------------------------------------- PostgreSQL, processes



@benchmark("dispatch-drain-pg", summary="drain N marketing messages from PostgreSQL with 1 and 2 "
           "`jingxin worker` processes (JINGXIN_BENCH_WORKERS='1,2') to the simulator in another "
           "process, an OTP queued every 100 ms; messages/s and OTP accept→submit p50/p99",
           default_scale=100_000)  # fmt: skip
def dispatch_drain_pg(scale: int) -> dict[str, Any]:
    """One throwaway database per worker count (``bench_drain_<pid>`` on
    ``JINGXIN_BENCH_PG``, default the local server), dropped afterwards."""
    counts = _worker_counts(os.environ.get("JINGXIN_BENCH_WORKERS", "1,2"))
    figures: dict[str, Any] = {"dialect": "postgresql", "messages": scale,
                               "max_in_flight": _in_flight()}  # fmt: skip
    for workers in counts:
        with throwaway_database(prefix="bench_drain") as url:
            figures[f"workers_{workers}"] = _drain_processes(
                url, scale, workers=workers
            )
    return figures


def _worker_counts(text_value: str) -> list[int]:
    try:
        counts = [int(part) for part in text_value.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(n < 1 or n > 16 for n in counts):
        raise SystemExit(
            f"JINGXIN_BENCH_WORKERS={text_value!r}: expected worker counts such as '1,2'"
        )
    return counts


def _drain_processes(url: str, scale: int, *, workers: int) -> dict[str, Any]:
    from jingxin.data.store import open_store
    from jingxin.dispatch.outbox import enqueue
    from jingxin.smsc.spawn import free_port

    # Named, so that the workers' backends can be told from the benchmark's own.
    store = open_store(f"{url}?application_name=jingxin-bench", upgrade=True)
    try:
        enqueue(store, entries=_entries(scale))
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as processes:
            port = free_port()
            smsc = _spawn(processes, [sys.executable, "-m", "jingxin.smsc", "--smpp-port", str(port),
                                      "--receipt-delay", "0.01", "--keep", "1000"],
                          log=Path(tmp) / "smsc.log")  # fmt: skip
            _wait_listening(port, smsc)
            spawned = [smsc]
            for i in range(workers):
                env = _worker_env(url, port, tmp, name=f"bench-{i}")
                spawned.append(_spawn(processes, [_jingxin(), "worker"], env=env,
                                      log=Path(tmp) / f"worker-{i}.log"))  # fmt: skip
            accepting = sorted(_inject_otps_until_drained(store, scale, spawned, tmp))
            cpu = [_cpu_seconds(process.pid) for process in spawned]
            database_cpu = sum(_cpu_seconds(pid) for pid in _backend_pids(store))
        # CPU seconds per 1,000 messages: comparable between runs on a busy machine.
        return {**_drain_figures(store, scale), "otps": len(accepting),
                "otp_enqueue_max_ms": round(accepting[-1] * 1000, 1) if accepting else None,
                "smsc_cpu_ms_per_1k": round(cpu[0] / scale * 1e6),
                "worker_cpu_ms_per_1k": round(sum(cpu[1:]) / scale * 1e6),
                "postgres_cpu_ms_per_1k": round(database_cpu / scale * 1e6)}  # fmt: skip
    finally:
        store.dispose()


def _jingxin() -> str:
    return str(Path(sys.executable).with_name("jingxin"))


def _wait_listening(port: int, process) -> None:
    from jingxin.smsc.spawn import wait_listening

    try:
        wait_listening(port, process)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backend_pids(store) -> list[int]:
    """The PostgreSQL backends serving the workers (local server: their CPU is in /proc)."""
    from sqlalchemy import text as sql

    with store.engine.connect() as conn:
        return list(conn.execute(sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND application_name <> 'jingxin-bench'"
        )).scalars())  # fmt: skip


def _in_flight() -> int:
    """Each worker's ``max_in_flight`` (JINGXIN_BENCH_IN_FLIGHT, default 800). A worker's
    rate is about max_in_flight / (time a message holds a slot: the window, the SMSC's
    answer and the write-back, ~150 ms here): 400 held two workers near 4,400 msg/s, 800
    let them reach the CPU's limit. It is also the bound on resends after a kill -9."""
    return int(os.environ.get("JINGXIN_BENCH_IN_FLIGHT", "800"))


def _worker_env(url: str, port: int, tmp: str, *, name: str) -> dict[str, str]:
    import json

    return {
        **os.environ,
        "JINGXIN_STORE__URL": url,
        "JINGXIN_CONFIG": os.devnull,
        "JINGXIN_CHANNELS": json.dumps([{"name": "sim", "port": port, "window": 100}]),
        "JINGXIN_DISPATCH__WORKER_NAME": name,
        "JINGXIN_DISPATCH__MAX_IN_FLIGHT": str(_in_flight()),
    }


def _spawn(stack: ExitStack, command: list[str], *, log: Path, env=None):
    """Start ``command``; the stack stops it (TERM, then KILL) however the run ends."""
    import subprocess

    from jingxin.smsc.spawn import stop

    out = stack.enter_context(open(log, "w", encoding="utf-8"))  # noqa: SIM115
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    stack.callback(stop, process, timeout=15)
    return process


def _inject_otps_until_drained(store, scale: int, processes, tmp: str, *,
                               timeout: float = 900.0) -> list[float]:  # fmt: skip
    """Queue an OTP every 100 ms until every message is final; returns how long each
    enqueue took (accepting is part of the OTP's latency: created_at is taken first)."""
    from jingxin.dispatch.outbox import enqueue

    deadline = time.monotonic() + timeout
    accepting: list[float] = []
    # OTPs start with the drain: one queued while the workers start up waits for them.
    while not _claimed_any(store) and time.monotonic() < deadline:
        _check_alive(processes, tmp)
        time.sleep(0.02)
    while time.monotonic() < deadline:
        if _open_messages(store) == 0:
            return accepting
        _check_alive(processes, tmp)
        if _queued_marketing(store):
            started = time.perf_counter()
            enqueue(
                store,
                entries=_entries(1, prefix=f"otp{len(accepting)}-", category="otp"),
            )
            accepting.append(time.perf_counter() - started)
        time.sleep(0.1)
    raise SystemExit(
        f"dispatch-drain-pg: {scale} messages not drained in {timeout:.0f} s"
    )


def _check_alive(processes, tmp: str) -> None:
    for process in processes:
        if process.poll() is not None:
            logs = "\n".join(p.read_text()[-1500:] for p in Path(tmp).glob("*.log"))
            raise SystemExit(f"a benchmark process exited ({process.args}):\n{logs}")


def _claimed_any(store) -> bool:
    from sqlalchemy import select

    from jingxin.data.store.models import Message

    with store.sessions() as session:
        return session.scalar(select(Message.id).where(
            Message.state != "queued").limit(1)) is not None  # fmt: skip


def _open_messages(store) -> int:
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Message).where(
            Message.state.in_(("queued", "submitting", "submitted"))))  # fmt: skip


def _queued_marketing(store) -> bool:
    from sqlalchemy import select

    from jingxin.data.store.models import Message

    with store.sessions() as session:
        return session.scalar(select(Message.id).where(
            Message.state == "queued", Message.lane == 2).limit(1)) is not None  # fmt: skip


def _drain_figures(store, scale: int) -> dict[str, Any]:
    """Rates from the store's own timestamps: first claim to last submit / last receipt."""
    import statistics

    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    with store.sessions() as session:
        first, submitted, finished = session.execute(
            select(func.min(Message.submitting_at), func.max(Message.submitted_at),
                   func.max(Message.finished_at)).where(Message.category == "marketing")
        ).one()  # fmt: skip
        states = dict(session.execute(
            select(Message.state, func.count()).group_by(Message.state)).all())  # fmt: skip
    to_submit = (submitted - first).total_seconds()
    to_receipt = (finished - first).total_seconds()
    latencies = sorted(_otp_latencies(store))
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"submit_seconds": round(to_submit, 2),
            "messages_per_s": round(scale / to_submit),
            "receipt_seconds": round(to_receipt, 2),
            "messages_per_s_with_receipts": round(scale / to_receipt),
            "otp_p50_ms": round(q[49] * 1000, 1), "otp_p99_ms": round(q[98] * 1000, 1),
            "otp_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
            "otp_claim_p99_ms": _otp_claim_p99_ms(store), "states": states}  # fmt: skip


def _otp_claim_p99_ms(store) -> float:
    """The claim's share of the OTP latency: accepted (created_at) to claimed (submitting_at)."""
    import statistics

    from sqlalchemy import select

    from jingxin.data.store.models import Message

    with store.sessions() as session:
        rows = session.execute(select(Message.created_at, Message.submitting_at)
                               .where(Message.category == "otp")).all()  # fmt: skip
    waits = [
        (claimed - made).total_seconds()
        for made, claimed in rows
        if claimed is not None
    ]
    if len(waits) < 2:
        return 0.0
    return round(statistics.quantiles(waits, n=100)[98] * 1000, 1)
