"""``jingxin bench geofence-e2e``: event → submit_sm through every real part.

A synthetic warehouse (the journeys bench's cache, ``--subscribers``), ``--fences`` fences
of three cells each (no dwell, all day, residents repeat) applied to an empty PostgreSQL
store, and three processes of their own (:mod:`jingxin.bench.harness`): the SMSC
simulator, a worker sending to it, and ``jingxin fence run --redis`` reading the Redis
streams. This process publishes location events into the streams at ``--rate`` events/s
for ``--seconds`` (each stamped with the wall clock when it is written); ``--trigger-share``
of them enter a fence, each from a number of its own, the rest move between ordinary cells.

Every offer's idempotency key names the stay's entry time, which is the event's time here
(no dwell), so event → submit is ``messages.submitted_at - entered_ms`` exactly, per offer.
Reported: the offered event rate (measured, not assumed), offers expected / queued /
submitted, event → queued and event → submitted at p50 / p99 / max, and the streams'
backlog when publishing stopped. The goal: p99 event → submit ≤ 1 s at 50,000 events/s.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import numpy as np

Report = dict[str, Any]
PREFIX = "jingxin:bench:loc"


@dataclass(frozen=True, slots=True)
class E2ePlan:
    rate: float = 50_000.0  # events/s offered
    seconds: float = 30.0
    subscribers: int = 200_000
    fences: int = 300
    trigger_share: float = 0.005  # share of the events that enter a fence
    streams: int = 4
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache_dir: str = "var/bench-cache"
    timeout: float = 180.0


def _fences(warehouse_path: Path, n: int, seed: int = 7) -> tuple[list[Any], np.ndarray]:
    """``n`` fences of three distinct cells, and the cells in no fence."""
    import numpy as np

    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.geofence.types import Fence

    wh = open_duckdb(warehouse_path, read_only=True)
    try:
        ids = np.asarray(wh.table("cells").select("cell_id").to_pyarrow()["cell_id"].to_pylist())
    finally:
        wh.close()
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(ids))
    if 3 * n > len(ids) // 2:
        raise typer.BadParameter(f"--fences: {n} fences of 3 cells need {6 * n} cells, the "
                                 f"warehouse has {len(ids)}")  # fmt: skip
    fences = [Fence(code=f"bench-{i:05d}", name=f"围栏{i}", scenario="mall",
                    cells=tuple(sorted(ids[picked[3 * i:3 * i + 3]])), template="fence.generic",
                    dwell_seconds=0, residents="repeat", cap_per_day=1,
                    variables={"offer": "到店出示短信享9折", "order_code": "DD9Z"},
                    holdout=0.0)  # every offer the script causes is counted: none held out
              for i in range(n)]  # fmt: skip
    return fences, ids[picked[3 * n:]]


def _events(plan: E2ePlan, msisdns: np.ndarray, fences: list[Any], plain: np.ndarray,
            seed: int = 11) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """(msisdn, cell) of every event in publishing order, and how many enter a fence: the
    entering ones from numbers of their own, spread evenly through the run."""
    import numpy as np

    rng = np.random.default_rng(seed)
    total = int(plan.rate * plan.seconds)
    entering = min(int(total * plan.trigger_share), len(msisdns) // 2)
    order = rng.permutation(len(msisdns))
    movers, enterers = order[entering:], order[:entering]
    numbers = msisdns[movers[rng.integers(0, len(movers), total)]]
    cells = plain[rng.integers(0, len(plain), total)].astype(object)
    where = np.linspace(0, total - 1, entering).astype(np.int64) if entering else np.empty(0, int)
    fence_cells = np.array([f.cells[0] for f in fences], dtype=object)
    numbers[where] = msisdns[enterers]
    cells[where] = fence_cells[rng.integers(0, len(fences), entering)]
    return numbers, cells, entering


def _publish(client: Any, plan: E2ePlan, numbers: np.ndarray, cells: np.ndarray) -> dict[str, Any]:
    """Publish at ``plan.rate`` in slices every 10 ms, each stamped now; the measured rate."""
    import numpy as np

    from jingxin.geofence.streams import publish
    from jingxin.geofence.types import EventBatch

    tick = 0.01
    per_tick = max(1, int(plan.rate * tick))
    started = time.perf_counter()
    sent = 0
    kind = np.zeros(per_tick, np.uint8)
    while sent < len(numbers):
        due = started + (sent / plan.rate)
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        part = slice(sent, min(sent + per_tick, len(numbers)))
        n = part.stop - part.start
        now = int(time.time() * 1000)
        batch = EventBatch(numbers[part], list(cells[part]), np.full(n, now, np.int64), kind[:n])
        publish(client, batch, prefix=PREFIX, shards=plan.streams, maxlen=5_000_000)
        sent += n
    seconds = time.perf_counter() - started
    return {"events": sent, "publish_seconds": round(seconds, 2),
            "offered_per_s": round(sent / seconds, 1)}  # fmt: skip


def _latencies(store: Any, *, warm_up: str) -> dict[str, Any]:
    """Event → queued and → submitted per offer, the warm-up offer (key ``warm_up``,
    entered before the matcher was up) left out."""
    from sqlalchemy import select

    from jingxin.bench.mo import percentile
    from jingxin.data.store.models import Message

    with store.sessions() as s:
        rows = s.execute(select(Message.idempotency_key, Message.created_at, Message.submitted_at,
                                Message.state).where(Message.source == "fence")).all()  # fmt: skip
    queued, submitted = [], []
    sent_count = sum(sent is not None for _, _, sent, _ in rows)
    for key, created, sent, _state in rows:
        if f":{warm_up}:" in key:
            continue
        entered = int(key.rsplit(":", 1)[1]) / 1000
        queued.append(created.timestamp() - entered)
        if sent is not None:
            submitted.append(sent.timestamp() - entered)
    return {"offers": len(rows), "offers_submitted": sent_count,
            "event_to_queued_p50_ms": percentile(queued, 0.5),
            "event_to_queued_p99_ms": percentile(queued, 0.99),
            "event_to_submit_p50_ms": percentile(submitted, 0.5),
            "event_to_submit_p99_ms": percentile(submitted, 0.99),
            "event_to_submit_max_ms": percentile(submitted, 1.0)}  # fmt: skip


def _submitted(store: Any) -> int:
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    with store.sessions() as s:
        return s.execute(select(func.count()).where(
            Message.source == "fence", Message.submitted_at.is_not(None))).scalar_one()  # fmt: skip


def geofence_e2e(*, store_url: str, workdir: Path, plan: E2ePlan = E2ePlan()) -> Report:
    from jingxin.bench.crash import open_empty_store
    from jingxin.bench.harness import Fleet, child_env, sim_channel, wait_until, worker_env
    from jingxin.bench.journeys import cached_warehouse
    from jingxin.content import catalog
    from jingxin.content.library import starter_library
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.geofence import registry
    from jingxin.geofence.directory import Directory
    from jingxin.geofence.streams import connect

    warehouse_path, _ = cached_warehouse(plan.subscribers, Path(plan.cache_dir), rebuild=False)
    fences, plain = _fences(warehouse_path, plan.fences)
    wh = open_duckdb(warehouse_path, read_only=True)
    try:
        msisdns = Directory.from_warehouse(wh).msisdn
    finally:
        wh.close()
    numbers, cells, entering = _events(plan, msisdns, fences, plain)
    shutil.rmtree(workdir / "checkpoints", ignore_errors=True)  # a kept --workdir's last run
    store = open_empty_store(store_url)
    client = connect(plan.redis_url)
    for key in client.scan_iter(f"{PREFIX}:*"):
        client.delete(key)
    try:
        with store.transaction() as session:
            ensure_default_tenant(session)
            catalog.seed_library(session, documents=starter_library(), approve_as="bench",
                                 reviewer=None)  # fmt: skip
        registry.apply(store, fences)
        no_quiet = {"JINGXIN_POLICY__QUIET_START": "00:00", "JINGXIN_POLICY__QUIET_END": "00:00"}
        with Fleet(workdir) as fleet:
            smsc = fleet.smsc(latency=0.001, receipt_delay=0.01)
            env = worker_env(store_url=store_url, channels=[sim_channel(smsc.port)],
                             worker_name="fence-worker", extra=no_quiet)  # fmt: skip
            worker = fleet.worker(env, "worker")
            matcher_env = child_env(
                JINGXIN_STORE__URL=store_url, JINGXIN_WAREHOUSE__PATH=str(warehouse_path),
                JINGXIN_REDIS__URL=plan.redis_url, JINGXIN_GEOFENCE__STREAM_PREFIX=PREFIX,
                JINGXIN_GEOFENCE__STREAMS=str(plan.streams), JINGXIN_GEOFENCE__BLOCK_MS="20",
                JINGXIN_GEOFENCE__CHECKPOINT_DIR=str(workdir / "checkpoints"),
                JINGXIN_GEOFENCE__ROAMING="false", **no_quiet)  # fmt: skip
            matcher = fleet.process(matcher_env, "matcher", "fence", "run", "--redis")
            _warm_up(client, plan, store, fences, msisdns, [worker, matcher])
            published = _publish(client, plan, numbers, cells)
            backlog = _backlog(client, plan)
            wait_until("every offer submitted", lambda: _submitted(store) >= entering + 1,
                       timeout=plan.timeout, processes=[worker, matcher], every=0.5)  # fmt: skip
            report = {"scenario": "geofence-e2e", "plan": asdict(plan), **published,
                      "offers_expected": entering, "stream_backlog_at_end": backlog,
                      **_latencies(store, warm_up=str(msisdns[-1]))}  # fmt: skip
    finally:
        for key in client.scan_iter(f"{PREFIX}:*"):
            client.delete(key)
        client.close()
        store.dispose()
    p99 = report.get("event_to_submit_p99_ms")
    report["failures"] = [line for ok, line in (
        (report["offers"] == entering + 1, f"offers: {report['offers']} for {entering + 1} entries"),
        (p99 is not None, "no offer was submitted"),
    ) if not ok]  # fmt: skip
    report["goal_met"] = p99 is not None and p99 <= 1000 and published["offered_per_s"] >= 0.95 * plan.rate
    return report


def _warm_up(client: Any, plan: E2ePlan, store: Any, fences: list[Any], msisdns: np.ndarray,
             processes: list[Any]) -> None:  # fmt: skip
    """One entry from the last number, until its offer is submitted: everything is up."""
    import numpy as np

    from jingxin.bench.harness import wait_until
    from jingxin.geofence.streams import publish
    from jingxin.geofence.types import EventBatch

    def sent() -> bool:
        batch = EventBatch(msisdns[-1:], [fences[-1].cells[0]], np.array([int(time.time() * 1000)]),
                           np.zeros(1, np.uint8))  # fmt: skip
        if not sent.published:
            publish(client, batch, prefix=PREFIX, shards=plan.streams, maxlen=5_000_000)
            sent.published = True
        return _submitted(store) >= 1

    sent.published = False
    wait_until("the matcher and the worker up (one warm-up offer submitted)", sent,
               timeout=plan.timeout, processes=processes, every=0.25)  # fmt: skip


def _backlog(client: Any, plan: E2ePlan) -> int:
    from jingxin.geofence.streams import stream_stats

    stats = stream_stats(client, prefix=PREFIX, shards=plan.streams, group="jingxin-geofence")
    return int(sum((row.get("lag") or 0) for row in stats))


def register_commands(bench_app: typer.Typer) -> None:
    from jingxin.bench.harness import run_scenario

    @bench_app.command("geofence-e2e")
    def geofence_e2e_command(
        rate: float = typer.Option(50_000.0, min=1, help="Location events/s offered."),
        seconds: float = typer.Option(30.0, min=1, help="How long events are published."),
        subscribers: int = typer.Option(200_000, min=1000, help="Synthetic subscribers."),
        fences: int = typer.Option(300, min=1, help="Fences of three cells each."),
        trigger_share: float = typer.Option(0.005, min=0, max=0.5, help="Events entering a fence."),
        streams: int = typer.Option(4, min=1, help="Redis streams the numbers are sharded over."),
        redis_url: str = typer.Option(os.environ.get("JINGXIN_REDIS__URL", "redis://127.0.0.1:6379/0"),
                                      help="Redis for the streams (keys under jingxin:bench:loc)."),
        cache_dir: Path = typer.Option(Path("var/bench-cache"), help="Where warehouses are cached."),
        store_url: str = typer.Option(None, help="An empty PostgreSQL database (default: a throwaway one)."),
        workdir: Path = typer.Option(None, help="Keep the logs here."),
    ) -> None:
        """Event → submit_sm through Redis Streams, the matcher, the delivery entry, a
        worker and the simulator: p50 / p99 at --rate events/s (goal: p99 ≤ 1 s at 50k/s)."""
        plan = E2ePlan(rate=rate, seconds=seconds, subscribers=subscribers, fences=fences,
                       trigger_share=trigger_share, streams=streams, redis_url=redis_url,
                       cache_dir=str(cache_dir))  # fmt: skip
        run_scenario("geofence-e2e", geofence_e2e, plan=plan, store_url=store_url, workdir=workdir)
