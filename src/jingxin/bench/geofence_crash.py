"""``jingxin bench geofence-crash``: kill -9 the fence matcher mid-stream and check its promise.

The promise (docs/geofence.md, :mod:`jingxin.geofence.runner`): a restarted matcher neither
re-sends nor forgets who is inside; no offer is sent twice for one entry. Checked with real
processes (:mod:`jingxin.bench.harness`) on an empty PostgreSQL store and Redis Streams:

1. fences from the warehouse's cells (half on entry, half after two minutes of event
   time; one offer per subscriber per fence per day, residents like anyone), the starter
   templates approved;
2. a script of location events, computed here with the offers it must cause: each of
   ``subscribers`` numbers is seen outside, enters a fence, moves between its cells past the
   dwell; some leave, and some of those come back the same day (capped: no second offer);
   other numbers move between cells in no fence up to ``events`` in all. Event times lie in
   today's past, so caps count one local day; quiet hours are off (as in geofence-e2e);
3. ``jingxin fence run --redis`` (checkpoints every ``checkpoint_seconds``) reads what this
   process publishes; at ``kill_at`` of the events, once offers exist, a checkpoint holds
   open stays and entries are read but not acknowledged, it is killed with -9; a new one
   under the same settings waits for the dead one's lease to expire, restores the
   checkpoint, replays the pending entries and reads the rest.

The report compares the outbox with the script's offers, keyed ``fence:<code>:<number>:
<entered ms>``: missing (an expected stay with no message), extra (a key the script never
made: a forgotten stay re-entered gets a new entry time, a forgotten cap a second offer),
doubles (a number with two fence messages). Besides: who is inside at the end against the
script, and the offers re-asked after the restart (``duplicate`` at the delivery entry)
against those the dead matcher queued after its last checkpoint: exactly those.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import numpy as np

from jingxin.bench.geofence_script import DWELL_S, Script, build_script, script_start

Report = dict[str, Any]
PREFIX = "jingxin:bench:fence-crash"
REDIS_URL = "redis://127.0.0.1:6379/0"
@dataclass(frozen=True, slots=True)
class FenceCrashPlan:
    subscribers: int = 20_000  # numbers the script sends into fences
    events: int = 300_000  # events in all; the rest move between cells in no fence
    kill_at: float = 0.5  # share of the events published when the matcher is killed
    streams: int = 4
    fences: int = 20  # of three cells each; every other one with DWELL_S
    leave_share: float = 0.5  # of the subscribers, leave after their stay
    return_share: float = 0.5  # of those who leave, come back the same day
    rate: float = 20_000.0  # events/s published
    warehouse: str | None = None  # a DuckDB file; None: the cached synthetic one
    warehouse_subscribers: int = 200_000  # its size, when cached
    cache_dir: str = "var/bench-cache"
    redis_url: str = REDIS_URL
    checkpoint_seconds: float = 0.5
    lease_seconds: float = 2.0
    batch_size: int = 5000
    timeout: float = 120.0
    seed: int = 5


# --------------------------------------------------------------------------- the run


def geofence_crash(*, store_url: str, workdir: Path,
                   plan: FenceCrashPlan = FenceCrashPlan()) -> Report:  # fmt: skip
    from jingxin.bench.crash import open_empty_store
    from jingxin.config import GeofenceSettings, PolicySettings, Settings
    from jingxin.geofence.runner import checkpoint_path
    from jingxin.geofence.streams import connect

    warehouse, fences, plain, numbers = _world(plan)
    script = build_script(plan, fences, plain, numbers,
                          script_start(datetime.now().astimezone(),
                                       PolicySettings().default_timezone))  # fmt: skip
    checkpoints = workdir.resolve() / "checkpoints"  # the child's home is not ours
    shutil.rmtree(checkpoints, ignore_errors=True)  # a kept --workdir's last run
    checkpoint = checkpoint_path(Settings(geofence=GeofenceSettings(
        checkpoint_dir=str(checkpoints))), list(range(plan.streams)))  # fmt: skip
    store = open_empty_store(store_url)
    client = connect(plan.redis_url)
    _clear(client)
    try:
        _prepare(store, fences)
        env = _matcher_env(plan, store_url=store_url, warehouse=warehouse,
                           checkpoints=checkpoints)  # fmt: skip
        run = _kill_and_restart(store, client, plan, script, env=env, workdir=workdir,
                                checkpoint=checkpoint)  # fmt: skip
        report = _report(store, script, plan, checkpoint, run=run, workdir=workdir)
    finally:
        _clear(client)
        client.close()
        store.dispose()
    report["failures"] = invariants(report)
    return report


def _matcher_env(plan: FenceCrashPlan, *, store_url: str, warehouse: Path,
                 checkpoints: Path) -> dict[str, str]:  # fmt: skip
    from jingxin.bench.harness import child_env

    return child_env(
        JINGXIN_STORE__URL=store_url, JINGXIN_WAREHOUSE__PATH=str(warehouse),
        JINGXIN_REDIS__URL=plan.redis_url, JINGXIN_GEOFENCE__STREAM_PREFIX=PREFIX,
        JINGXIN_GEOFENCE__STREAMS=str(plan.streams), JINGXIN_GEOFENCE__BLOCK_MS="20",
        JINGXIN_GEOFENCE__BATCH_SIZE=str(plan.batch_size),
        JINGXIN_GEOFENCE__CHECKPOINT_DIR=str(checkpoints),
        JINGXIN_GEOFENCE__CHECKPOINT_SECONDS=str(plan.checkpoint_seconds),
        JINGXIN_GEOFENCE__LEASE_SECONDS=str(plan.lease_seconds),
        JINGXIN_GEOFENCE__ROAMING="false",
        # quiet hours off, as in geofence-e2e: offers are queued whatever the time of day
        JINGXIN_POLICY__QUIET_START="00:00", JINGXIN_POLICY__QUIET_END="00:00")  # fmt: skip


def _kill_and_restart(store: Any, client: Any, plan: FenceCrashPlan, script: Script, *,
                      env: dict[str, str], workdir: Path, checkpoint: Path) -> Report:  # fmt: skip
    """The two matchers (module docstring, step 3); what the kill hit and how it ended."""
    from jingxin.bench.harness import Fleet, RunFailed, kill_9, terminate

    cut = int(len(script.ts) * plan.kill_at)
    with Fleet(workdir) as fleet:
        first = fleet.process(env, "matcher-1", "fence", "run", "--redis")
        _wait(plan, "the first matcher reading", lambda: _group(client, plan)["reading"], [first])
        _publish(client, plan, script, 0, cut)
        _wait(plan, "an offer before the kill", lambda: _offers(store) > 0, [first])
        # A checkpoint with stays open in it, or the kill proves no restore: on busy cores
        # the first offer can come before the first checkpoint is written.
        _wait(plan, "a checkpoint before the kill", lambda: _checkpointed(checkpoint)["inside"] > 0,
              [first])  # fmt: skip
        pending = _kill_point(client, plan, first)
        kill_9(first)
        killed = time.monotonic()
        _wait(plan, "the dead matcher's lease to expire", lambda: _lease_free(client, plan), [])
        lease_s = time.monotonic() - killed
        # nothing writes now: the outbox and the checkpoint as the kill left them
        at_kill = {"events_published": cut, "entries_pending": pending, "offers": _offers(store),
                   "checkpoint": _checkpointed(checkpoint), "lease_expired_after_s":
                   round(lease_s, 2)}  # fmt: skip
        second = fleet.process(env, "matcher-2", "fence", "run", "--redis")
        _publish(client, plan, script, cut, len(script.ts))
        drained = True
        try:
            _wait(plan, "every offer queued and every event acknowledged", lambda: (
                _offers(store) >= len(script.expected) and _group(client, plan)["drained"]),
                [second])  # fmt: skip
        except RunFailed:
            if second.poll() is not None:
                raise
            drained = False  # reported: what is missing says more than a time-out
        exit_code = terminate(second)
    return {"at_kill": at_kill, "drained": drained, "second_exit": exit_code,
            "restart_seconds": round(time.monotonic() - killed, 2)}


def _world(plan: FenceCrashPlan) -> tuple[Path, list[Any], np.ndarray, np.ndarray]:
    """The warehouse, the fences over its cells (every other one with a dwell), the cells
    in no fence, and its subscribers' numbers."""
    from jingxin.bench.geofence_e2e import _fences
    from jingxin.bench.journeys import cached_warehouse
    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.geofence.directory import Directory

    if plan.warehouse:
        warehouse = Path(plan.warehouse)
    else:
        warehouse, _ = cached_warehouse(plan.warehouse_subscribers, Path(plan.cache_dir),
                                        rebuild=False)  # fmt: skip
    fences, plain = _fences(warehouse, plan.fences, seed=plan.seed)
    fences = [dataclasses.replace(f, dwell_seconds=DWELL_S if i % 2 else 0)
              for i, f in enumerate(fences)]  # fmt: skip
    wh = open_duckdb(warehouse, read_only=True)
    try:
        numbers = Directory.from_warehouse(wh).msisdn
    finally:
        wh.close()
    return warehouse, fences, plain, numbers


def _prepare(store: Any, fences: list[Any]) -> None:
    from jingxin.content import catalog
    from jingxin.content.library import starter_library
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.geofence import registry

    with store.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=starter_library(), approve_as="bench",
                             reviewer=None)  # fmt: skip
    registry.apply(store, fences)


def _publish(client: Any, plan: FenceCrashPlan, script: Script, start: int, stop: int) -> None:
    """Events ``start:stop`` of the script at ``plan.rate`` events/s, in 20 ms slices."""
    import numpy as np

    from jingxin.geofence.streams import publish
    from jingxin.geofence.types import EventBatch

    tick = 0.02
    step = max(1, int(plan.rate * tick))
    began = time.perf_counter()
    for at in range(start, stop, step):
        pause = began + (at - start) / plan.rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        part = slice(at, min(at + step, stop))
        batch = EventBatch(script.msisdn[part], list(script.cell[part]), script.ts[part],
                           np.zeros(part.stop - part.start, np.uint8))  # fmt: skip
        publish(client, batch, prefix=PREFIX, shards=plan.streams, maxlen=10_000_000)


def _wait(plan: FenceCrashPlan, what: str, done: Any, processes: list[Any]) -> None:
    from jingxin.bench.harness import wait_until

    wait_until(what, done, timeout=plan.timeout, processes=processes, every=0.02)


def _kill_point(client: Any, plan: FenceCrashPlan, process: Any) -> int:
    """Wait (a few checkpoint periods at most) for entries read but not acknowledged, so
    that the kill leaves some to replay; how many there are (0: the matcher had caught up
    and checkpointed everything)."""
    deadline = time.monotonic() + 3 * plan.checkpoint_seconds
    while True:
        pending = _group(client, plan)["pending"]
        if pending or time.monotonic() > deadline or process.poll() is not None:
            return pending
        time.sleep(0.005)


def _group(client: Any, plan: FenceCrashPlan) -> dict[str, Any]:
    """The consumer group over the streams: ``reading`` (a matcher joined: it is up),
    ``pending`` (entries read, not acknowledged) and ``drained`` (every entry read and
    acknowledged: a checkpoint holds it)."""
    from jingxin.config import GeofenceSettings
    from jingxin.geofence.streams import stream_stats

    streams = stream_stats(client, prefix=PREFIX, shards=plan.streams,
                           group=GeofenceSettings().group)  # the matcher's: the default
    return {"reading": bool(streams[0]["consumers"]),
            "pending": sum(int(s["pending"] or 0) for s in streams),
            "drained": all(s["pending"] == 0 and s["last_delivered_id"] == s["last_entry_id"]
                           for s in streams)}  # fmt: skip


def _lease_free(client: Any, plan: FenceCrashPlan) -> bool:
    """No shard of the streams is leased (the dead matcher's lease expired)."""
    from jingxin.geofence.streams import ShardLease

    naming = ShardLease(client, prefix=PREFIX, owner="bench", ttl_ms=1)  # its key names only
    return not client.exists(*(naming.key(k) for k in range(plan.streams)))


def _clear(client: Any) -> None:
    for key in client.scan_iter(f"{PREFIX}:*"):
        client.delete(key)


def _offers(store: Any) -> int:
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    with store.sessions() as s:
        return s.execute(select(func.count()).where(Message.source == "fence")).scalar_one()


def _checkpointed(path: Path) -> dict[str, Any]:
    """What a checkpoint holds: events and offers queued (totals), stays open now (zeros
    before the first one)."""
    from jingxin.geofence.state import MatcherState

    if not path.exists():
        return {"events": 0, "offers_queued": 0, "inside": 0, "counts": {}}
    state, extra = MatcherState.load(path)
    counts = dict(extra.get("counts") or {})
    return {"events": counts.get("events", 0), "offers_queued": counts.get("offer_queued", 0),
            "inside": len(state.open_key), "counts": counts}  # fmt: skip


# --------------------------------------------------------------------------- the report


def _report(store: Any, script: Script, plan: FenceCrashPlan, checkpoint: Path, *,
            run: Report, workdir: Path) -> Report:  # fmt: skip
    """The outbox and the decisions against the script; the kill and the restart."""
    from collections import Counter

    from sqlalchemy import select

    from jingxin.data.store.models import DecisionRecord, Message

    with store.sessions() as s:
        rows = s.execute(select(Message.idempotency_key, Message.msisdn)
                         .where(Message.source == "fence")).all()  # fmt: skip
        # a refused offer leaves only its decision: a key no message shows
        decided = set(s.scalars(select(DecisionRecord.idempotency_key)
                                .where(DecisionRecord.source == "fence")))  # fmt: skip
    keys = {key for key, _ in rows}
    per_number = Counter(msisdn for _, msisdn in rows)
    end = _checkpointed(checkpoint)
    at_kill = run["at_kill"]
    logs = {name: _log(workdir / f"{name}.log") for name in ("matcher-1", "matcher-2")}
    return {
        "scenario": "geofence-crash", "plan": asdict(plan), "events": len(script.ts),
        "offers_expected": len(script.expected), "messages": len(rows),
        "missing": len(script.expected - keys), "extra": len((keys | decided) - script.expected),
        "doubles": sum(n - 1 for n in per_number.values() if n > 1),
        "inside_at_end": end["inside"], "inside_expected": script.inside_at_end,
        "capped": end["counts"].get("capped", 0), "capped_expected": script.returners,
        "at_kill": at_kill,
        # queued by the dead matcher after its last checkpoint: the restart must ask again
        "queued_after_last_checkpoint": at_kill["offers"] - at_kill["checkpoint"]["offers_queued"],
        "after_restart": {
            "restored": logs["matcher-2"]["restored"],
            "restored_inside": logs["matcher-2"]["restored_inside"],
            "offers_queued": len(rows) - at_kill["offers"],
            "offers_duplicate": end["counts"].get("offer_duplicate", 0),
            "events_replayed": end["counts"].get("replayed", 0),
            "events_acked_unreplayed": end["counts"].get("checkpointed", 0)},
        "drained": run["drained"], "second_exit": run["second_exit"],
        "restart_seconds": run["restart_seconds"], "counts": end["counts"], "logs": logs,
    }  # fmt: skip


_RESTORED = re.compile(r"fence matcher: restored .* \((\d+) inside")


def _log(path: Path) -> dict[str, Any]:
    """A matcher's JSON log: records, non-JSON lines, full numbers, the restore line."""
    from jingxin.bench.harness import scan_log

    scan = scan_log(path)
    found = [m for r in scan.records if (m := _RESTORED.match(str(r["msg"])))]
    return {"records": len(scan.records), "bad_lines": scan.bad_lines, "leaks": scan.leaks,
            "restored": bool(found), "restored_inside": int(found[0][1]) if found else None}


def invariants(report: Report) -> list[str]:
    """What in ``report`` breaks the promise (or shows the kill missed), one line each."""
    at_kill, after = report["at_kill"], report["after_restart"]
    expected = report["offers_expected"]
    checks = [
        (report["missing"] == 0, (f"missing: {report['missing']} of {expected} expected "
                                  "offers never queued (a stay forgotten)")),
        (report["extra"] == 0, (f"extra: {report['extra']} offers the script never caused "
                                "(a stay or a cap forgotten: a new entry time, a 2nd offer)")),
        (report["doubles"] == 0, f"doubles: {report['doubles']} numbers offered twice"),
        (after["restored"], "the second matcher did not restore the checkpoint"),
        (report["inside_at_end"] == report["inside_expected"],
         (f"inside at the end: {report['inside_at_end']}, the script leaves "
          f"{report['inside_expected']}")),
        (report["capped"] == report["capped_expected"],
         f"capped: {report['capped']} re-entries, the script has {report['capped_expected']}"),
        (after["offers_duplicate"] == report["queued_after_last_checkpoint"],
         (f"re-asked after the restart: {after['offers_duplicate']}, queued after the last "
          f"checkpoint: {report['queued_after_last_checkpoint']}")),
        (0 < at_kill["offers"] < expected,
         f"the kill did not land mid-stream: {at_kill['offers']} of {expected} offers queued"),
        (report["drained"], "not every event was acknowledged within the time-out"),
        (report["second_exit"] == 0, f"the second matcher exited with {report['second_exit']}"),
    ]  # fmt: skip
    for name, log in report["logs"].items():
        checks.append((log["leaks"] == 0, f"{name}.log: {log['leaks']} full numbers"))
    return [text for ok, text in checks if not ok]


# --------------------------------------------------------------------------- the command


def register_commands(bench_app: typer.Typer) -> None:
    from jingxin.bench.harness import run_scenario

    @bench_app.command("geofence-crash")
    def geofence_crash_command(
        subscribers: int = typer.Option(20_000, min=1, help="Numbers sent into fences."),
        events: int = typer.Option(300_000, min=1, help="Events in all (the rest: elsewhere)."),
        kill_at: float = typer.Option(0.5, "--kill-at", min=0.01, max=0.99,
                                      help="Share of the events published at the kill."),
        streams: int = typer.Option(4, min=1, help="Redis streams the numbers are sharded over."),
        fences: int = typer.Option(20, min=2, help="Fences of three cells; every other dwells."),
        rate: float = typer.Option(20_000.0, min=1, help="Events/s published."),
        warehouse: Path = typer.Option(None, help="A DuckDB warehouse (default: the cached "
                                       "synthetic one of --warehouse-subscribers)."),
        warehouse_subscribers: int = typer.Option(200_000, min=1000, help="Its size, cached."),
        cache_dir: Path = typer.Option(Path("var/bench-cache"), help="Where it is cached."),
        redis_url: str = typer.Option(os.environ.get("JINGXIN_REDIS__URL", REDIS_URL),
                                      help=f"Redis for the streams (keys under {PREFIX})."),
        store_url: str = typer.Option(None, help="An empty PostgreSQL database (default: a "
                                      "throwaway one)."),
        workdir: Path = typer.Option(None, help="Keep the logs and the checkpoints here."),
    ) -> None:
        """kill -9 the fence matcher mid-stream (PostgreSQL, Redis, real processes); restart:
        no offer missing, none extra, none twice, who is inside kept."""
        plan = FenceCrashPlan(subscribers=subscribers, events=events, kill_at=kill_at,
                              streams=streams, fences=fences, rate=rate,
                              warehouse=str(warehouse) if warehouse else None,
                              warehouse_subscribers=warehouse_subscribers,
                              cache_dir=str(cache_dir), redis_url=redis_url)  # fmt: skip
        run_scenario("geofence-crash", geofence_crash, plan=plan, store_url=store_url,
                     workdir=workdir)  # fmt: skip
