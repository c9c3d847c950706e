"""The SMS business hall under load: ``jingxin bench hall``.

Like ``mo-inbox`` (:mod:`jingxin.bench.mo`): ``jingxin smsc`` plays a script of MO at an
offered rate (``--rate``, default the goal's 2,000/s) into one ``jingxin worker`` on an
empty PostgreSQL store, here all to the hall's service number (10086), with the BOSS
stand-in in the same store: the packaged catalogue and one prepaid account per number.
Each number sends one command, in the mix a hall sees (:data:`MIX`): the menu, zones 41,
42 and 43, balance, usage and plan queries, points, an order request (a quote and a
pending confirmation written to its session), a complaint, garbage.

Reported: MO stored and handled per second, PDU received → reply enqueued at p50 / p99
(the first part's ``received_at`` → the hall reply's ``created_at``), and the invariants
of the inbox (nothing lost, nothing stored or replied twice), plus one check of the hall's
own: every MO has exactly one ``hall_interactions`` row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import typer

from jingxin.bench.harness import Fleet, run_scenario, sim_channel, wait_until, worker_env
from jingxin.bench.mo import (analyse_at, counts, figures, invariants, mo_script, settled,
                              started)

Report = dict[str, Any]
HALL = "10086"
# (share, text) of what subscribers send the hall; {n} is the sender's index.
MIX = ((0.10, "0"), (0.12, "41"), (0.12, "42"), (0.04, "43"), (0.20, "YE"), (0.14, "LL"),
       (0.10, "TC"), (0.06, "JF"), (0.06, "KTLL10"), (0.02, "投诉 短信太多"),
       (0.04, "你好，在吗"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class HallPlan:
    messages: int = 20_000
    rate: float = 2000.0  # MO/s offered; 0: all at once (capacity from a backlog)
    campaign: int = 0  # notifications draining meanwhile
    workers: int = 1  # `jingxin worker` processes bound to the simulator (MO spread over them)
    timeout: float = 180.0


def hall_stream(plan: HallPlan) -> list[tuple[str, str]]:
    """(sender, text) of every MO: the :data:`MIX` spread evenly, a number each."""
    texts, acc = [], 0.0
    for share, text in MIX:
        acc += share
        texts.append((acc, text))
    out = []
    for i in range(plan.messages):
        where = ((i * 0.6180339887) % 1.0) * acc  # evenly spread, deterministic
        text = next(t for bound, t in texts if where < bound)
        out.append((f"86139{i:08d}", text))
    return out


def seed_boss(store, items: list[tuple[str, str]]) -> None:
    """The packaged catalogue and a prepaid account with 100 yuan for every sender."""
    from sqlalchemy import insert

    from jingxin.data.store.models import BossAccount
    from jingxin.hall.seed import load_catalogue, seed_products

    seed_products(store, load_catalogue())
    rows = [{"msisdn": f"+{source}", "plan_id": "P4G-058", "plan_name": "4G畅享58元",
             "payment": "prepaid", "status": "active", "star_level": 3, "balance_fen": 10_000,
             "data_quota_mb": 10_240, "data_used_mb": i % 9000, "voice_quota_min": 500,
             "voice_used_min": i % 400, "sms_quota": 100, "sms_used": i % 80}
            for i, (source, _) in enumerate(items)]  # fmt: skip
    with store.transaction() as session:
        for at in range(0, len(rows), 5000):
            session.execute(insert(BossAccount), rows[at:at + 5000])


def interactions_per_mo(store) -> dict[str, int]:
    """MO without a hall interaction, and MO with more than one (both must be 0)."""
    from sqlalchemy import func, select

    from jingxin.data.store.models import HallInteraction, MoMessage

    with store.sessions() as s:
        missing = s.execute(select(func.count()).select_from(MoMessage).where(
            ~MoMessage.id.in_(select(HallInteraction.mo_id)))).scalar_one()  # fmt: skip
        twice = s.execute(select(func.count()).select_from(
            select(HallInteraction.mo_id).group_by(HallInteraction.mo_id)
            .having(func.count() > 1).subquery())).scalar_one()  # fmt: skip
    return {"without_interaction": missing, "interactions_twice": twice}


def hall_bench(*, store_url: str, workdir: Path, plan: HallPlan = HallPlan()) -> Report:
    """MO through the hall per second by one worker at an offered rate; PDU → reply."""
    from jingxin.bench.crash import CrashPlan, enqueue_campaign, open_empty_store
    from jingxin.bench.cpu import cpu_per_mo
    from jingxin.bench.statistics import analysed_once

    store = open_empty_store(store_url)
    items = hall_stream(plan)
    seed_boss(store, items)
    script = mo_script(workdir / "hall-script.txt", items, rate=plan.rate, service=HALL)
    try:
        with Fleet(workdir) as fleet:
            if plan.campaign:
                enqueue_campaign(store, plan=CrashPlan(messages=plan.campaign, base=600.0))
            smsc = fleet.smsc(latency=0.001, receipt_delay=0.01, flags=["--script", str(script)])
            workers = [fleet.worker(worker_env(store_url=store_url,
                                               channels=[sim_channel(smsc.port)],
                                               worker_name=f"hall-worker-{n}"), f"worker-{n}")
                       for n in range(1, plan.workers + 1)]  # fmt: skip
            before = started(store, workers)
            with analysed_once(store_url, mo=analyse_at(plan.messages)) as statistics, \
                    cpu_per_mo(workers=[w.pid for w in workers], smsc=smsc.process.pid,
                               store_url=store_url) as cpu:  # fmt: skip
                wait_until("every MO answered by the hall",
                           settled(store, items=items, source="hall"),
                           timeout=plan.timeout, processes=workers, every=0.5)  # fmt: skip
                cpu["mo"] = len(items) - before
            report = {"scenario": "hall", "plan": asdict(plan), **figures(store, source="hall"),
                      **counts(store, items=items, smsc=smsc, source="hall"),
                      **interactions_per_mo(store), "statistics": statistics,
                      "cpu_ms_per_mo": cpu}  # fmt: skip
    finally:
        store.dispose()
    report["failures"] = invariants(report) + [
        f"{report[k]} MO {k.replace('_', ' ')}" for k in ("without_interaction", "interactions_twice")
        if report[k]]  # fmt: skip
    return report


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("hall")
    def hall(
        messages: int = typer.Option(20_000, min=1, help="MO to send the hall."),
        rate: float = typer.Option(2000.0, min=0, help="MO/s offered (0: all at once)."),
        campaign: int = typer.Option(0, min=0, help="Notifications draining meanwhile."),
        workers: int = typer.Option(1, min=1, max=8, help="Worker processes (MO spread over them)."),
        store_url: str = typer.Option(None, help="An empty PostgreSQL database (default: a throwaway one)."),
        workdir: Path = typer.Option(None, help="Keep the logs here."),
    ) -> None:
        """MO through the SMS business hall per second by one worker at --rate MO/s (BOSS in
        the store); PDU → reply enqueued p50 / p99."""
        plan = HallPlan(messages=messages, rate=rate, campaign=campaign, workers=workers,
                        timeout=max(180.0, messages / 100))  # fmt: skip
        run_scenario("hall", hall_bench, plan=plan, store_url=store_url, workdir=workdir)
