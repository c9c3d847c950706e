"""What one batch of the hall costs the handlers: ``jingxin bench hall-batch``.

``jingxin bench hall`` measures the way back end to end, where every process shares
the machine and a run's p99 moves by half from one run to the next. This one measures
the part the handler processes play, alone and in process. It runs
:class:`~jingxin.dispatch.bootstrap.MoHandlerRunner`'s ``handle_ids``, which a
handler process runs for each batch the worker hands it, over batches of each size in
``--sizes``. The store is the ``hall`` bench's: the packaged catalogue and a prepaid
account per number, the MO rows written as the worker stores them, the mix of
:data:`jingxin.bench.hall.MIX`.

- It warms the statements, then analyses the store once, as a served store is.
- The sizes take turns, batch by batch. For each size it reports the wall time per
  batch at p50 / p99 and the CPU per batch and per MO (this process only: PostgreSQL's
  share is not in it).
- The CPU splits into a cost per MO (the slope between the two largest sizes) and a
  fixed cost per batch (what the smallest batch costs beyond its MO).
  ``fixed_in_mo`` is their ratio: how many MO's own work a batch pays before its first
  MO.

Every MO must end with one ``handled`` outcome, one hall interaction and one reply;
the report's ``failures`` say which did not.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

Report = dict[str, Any]
WARM = 400  # MO answered in batches of 20 before anything is timed, then ANALYZE


@dataclass(frozen=True, slots=True)
class HallBatchPlan:
    sizes: tuple[int, ...] = (1, 10, 40)
    batches: int = 200  # timed batches per size


def insert_mo(store, items: list[tuple[str, str]], *, service: str) -> list[int]:
    """One stored, complete, single-part MO per (sender, text), as the worker stores
    them; their ids, in order."""
    from sqlalchemy import insert, select

    from jingxin.data.store.models import MoMessage

    now = datetime.now(UTC)
    rows = [{"channel": "sim", "msisdn": f"+{sender}", "service_number": service, "text": text,
             "coding": 8, "parts": 1, "parts_expected": 1, "complete": True,
             "undecodable": False, "received_at": now, "stored_at": now,
             "dedup_key": f"hall-batch:{i}"} for i, (sender, text) in enumerate(items)]  # fmt: skip
    with store.transaction() as session:
        for at in range(0, len(rows), 5000):
            session.execute(insert(MoMessage), rows[at:at + 5000])
    with store.sessions() as session:
        return list(session.execute(select(MoMessage.id).order_by(MoMessage.id)).scalars())


def split_cost(cpu_per_batch: dict[int, float]) -> tuple[float | None, float]:
    """(fixed CPU per batch, CPU per MO) from the CPU per batch at each size: per MO, the
    slope between the two largest sizes (where a batch is mostly its MO); fixed, what the
    smallest batch costs beyond its MO. One size: no fixed cost can be told apart."""
    sizes = sorted(cpu_per_batch)
    if len(sizes) < 2:
        return None, cpu_per_batch[sizes[0]] / sizes[0]
    a, b = sizes[-2], sizes[-1]
    per_mo = (cpu_per_batch[b] - cpu_per_batch[a]) / (b - a)
    return cpu_per_batch[sizes[0]] - per_mo * sizes[0], per_mo


def hall_batch_bench(*, store_url: str, workdir: Path, plan: HallBatchPlan = HallBatchPlan()) -> Report:
    """Time ``handle_ids`` over batches of each size in ``plan.sizes`` (see the module)."""
    from jingxin.bench.crash import open_empty_store
    from jingxin.bench.hall import HALL, HallPlan, hall_stream, interactions_per_mo, seed_boss
    from jingxin.config import load_settings
    from jingxin.dispatch.bootstrap import mo_handlers, warm_statements

    store = open_empty_store(store_url)
    try:
        total = WARM + plan.batches * sum(plan.sizes)
        items = hall_stream(HallPlan(messages=total))
        seed_boss(store, items)
        ids = insert_mo(store, items, service=HALL)
        settings = load_settings(store={"url": store_url})
        runner = mo_handlers(settings, store)
        warm_statements(runner)
        for at in range(0, WARM, 20):
            runner.handle_ids(ids[at:at + 20])
        analyse(store_url)
        rest = ids[WARM:]
        # The sizes take turns, batch by batch, so that a drift of the machine or of the
        # store's size over the run weighs on each size alike.
        order = sorted(set(plan.sizes))
        walls: dict[int, list[float]] = {size: [] for size in order}
        cpus = dict.fromkeys(order, 0.0)
        for _ in range(plan.batches):
            for size in order:
                batch, rest = rest[:size], rest[size:]
                cpu, began = time.process_time(), time.perf_counter()
                runner.handle_ids(batch)
                walls[size].append(time.perf_counter() - began)
                cpus[size] += time.process_time() - cpu
        sizes: dict[str, Any] = {}
        for size in order:
            wall = sorted(walls[size])
            sizes[str(size)] = {
                "wall_p50_ms": round(wall[len(wall) // 2] * 1000, 2),
                "wall_p99_ms": round(wall[min(len(wall) - 1, int(len(wall) * 0.99))] * 1000, 2),
                "cpu_ms_per_batch": round(cpus[size] / plan.batches * 1000, 3),
                "cpu_ms_per_mo": round(cpus[size] / plan.batches / size * 1000, 3)}  # fmt: skip
        fixed, per_mo = split_cost({int(k): v["cpu_ms_per_batch"] for k, v in sizes.items()})
        report: Report = {
            "scenario": "hall-batch", "plan": asdict(plan), "sizes": sizes,
            "cpu_fixed_ms_per_batch": None if fixed is None else round(fixed, 3),
            "cpu_ms_per_mo": round(per_mo, 3),
            "fixed_in_mo": round(fixed / per_mo, 1) if fixed is not None and per_mo > 0 else None,
            **answered(store, expected=total), **interactions_per_mo(store)}  # fmt: skip
    finally:
        store.dispose()
    report["failures"] = [
        f"{report[k]} MO {k.replace('_', ' ')}" for k in
        ("not_handled", "without_reply", "without_interaction", "interactions_twice") if report[k]]  # fmt: skip
    return report


def answered(store, *, expected: int) -> dict[str, int]:
    """MO without a ``handled`` outcome, and MO without a hall reply in the outbox."""
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message, MoOutcome

    with store.sessions() as s:
        handled = s.execute(select(func.count()).select_from(MoOutcome)
                            .where(MoOutcome.outcome == "handled")).scalar_one()  # fmt: skip
        replies = s.execute(select(func.count(func.distinct(Message.source_id)))
                            .where(Message.source == "hall")).scalar_one()  # fmt: skip
    return {"not_handled": expected - handled, "without_reply": expected - replies}


def analyse(store_url: str) -> None:
    """``ANALYZE`` the store, whatever the server's autovacuum: a store in service has been
    analysed long before it holds what this bench puts in it in seconds."""
    import psycopg

    from jingxin.bench.harness import libpq_url

    with psycopg.connect(libpq_url(store_url), autocommit=True) as conn:
        conn.execute("ANALYZE")


def sizes_option(value: str) -> tuple[int, ...]:
    """``--sizes 1,10,40`` → (1, 10, 40); anything else is a clear error."""
    try:
        sizes = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give batch sizes as whole numbers, e.g. 1,10,40") from None
    if not sizes or any(s < 1 or s > 256 for s in sizes):
        raise typer.BadParameter(f"{value!r}: each batch size is 1 to 256 MO")
    return sizes


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("hall-batch")
    def hall_batch(
        sizes: str = typer.Option("1,10,40", help="Batch sizes to time, comma-separated (1-256)."),
        batches: int = typer.Option(200, min=5, help="Timed batches per size."),
        store_url: str = typer.Option(None, help="An empty PostgreSQL database (default: a throwaway one)."),
    ) -> None:
        """CPU and wall time of one handler batch of the hall, in process, by batch size:
        the fixed cost per batch and the cost per MO."""
        from jingxin.bench.harness import run_scenario

        plan = HallBatchPlan(sizes=sizes_option(sizes), batches=batches)
        run_scenario("hall-batch", hall_batch_bench, plan=plan, store_url=store_url, workdir=None)
