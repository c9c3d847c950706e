"""CPU per MO in a way-back benchmark, by part: the worker, its handler processes,
PostgreSQL's backends of the store, the SMSC simulator.

At 2,000 MO/s on two cores the way back keeps the machine busy, and its latency is then
mostly waiting for a core: a run's p99 moves by half between two runs of the same build.
The CPU a reply costs, summed over the processes that make it, moves much less, and it
is what decides how close to the cores' limit a rate runs. Linux only (``/proc``), the
database server on this machine (loopback, as the benchmarks run): elsewhere the figures
are left out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU of ``pid`` so far (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields follow its last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the handler processes of a worker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(p) for p in task.read_text().split())
        except OSError:
            continue
    return found


def backends(store_url: str) -> list[int]:
    """The server processes of the store's database (all its connections)."""
    import psycopg

    from jingxin.bench.harness import libpq_url

    plain = libpq_url(store_url)
    with psycopg.connect(plain, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()").fetchall()  # fmt: skip
    return [pid for (pid,) in rows]


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores; not idle, not waiting for IO)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS  # idle, iowait out; guests are in user


def _parts(workers: Iterable[int], smsc: int | None, store_url: str) -> dict[str, list[int]]:
    workers = list(workers)
    return {"worker": workers, "handlers": [c for w in workers for c in children(w)],
            "postgres": backends(store_url), "smsc": [smsc] if smsc else []}


def _total(pids: Iterable[int], seen: dict[int, float]) -> float:
    total = 0.0
    for pid in pids:
        now = cpu_seconds(pid)
        if now is not None:
            total += now - seen.get(pid, 0.0)
    return total


@contextmanager
def cpu_per_mo(*, workers: Iterable[int], smsc: int | None, store_url: str) -> Iterator[dict[str, Any]]:
    """Around the block: the CPU each part spent, per MO, in ms (the block sets the yielded
    report's ``"mo"`` to the number of MO it saw through; without it nothing is
    reported). A process started during the
    block (a backend's new connection) counts from its start; one that ended during it is
    missed (its CPU is not readable after it exits)."""
    report: dict[str, Any] = {}
    if not Path("/proc/self/stat").exists():
        yield report
        return
    workers = list(workers)
    first = _parts(workers, smsc, store_url)
    start = {pid: cpu_seconds(pid) or 0.0 for pids in first.values() for pid in pids}
    machine, began = machine_busy_seconds(), time.monotonic()
    yield report
    mo = report.pop("mo", 0)
    if not mo:
        return
    last = _parts(workers, smsc, store_url)
    spent = {part: _total(set(first[part]) | set(last[part]), start) for part in last}
    report.update({f"{part}_ms": round(seconds * 1000 / mo, 3) for part, seconds in spent.items()})
    report["total_ms"] = round(sum(spent.values()) * 1000 / mo, 3)
    # The whole machine over the same time (the bench's own polling and the rest of the
    # machine included): what the parts leave out, and a check on them.
    report["machine_ms"] = round((machine_busy_seconds() - machine) * 1000 / mo, 3)
    report["seconds"] = round(time.monotonic() - began, 1)  # first MO stored → all settled
