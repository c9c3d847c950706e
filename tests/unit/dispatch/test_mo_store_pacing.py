"""Around the MO store: a NUL character is kept as hex (PostgreSQL text cannot hold it, and
a flush that fails on it would fail forever), the worker's flush asks for expiry only on
sweeps, and the mo-inbox benchmark offers MO at the rate it says (its script, and the
simulator keeping the script's schedule)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from dispatch_fakes import HappyChannel, make_worker
from mo_parts import T0, smpp_parts

from jingxin.bench.mo import MoPlan, mo_script, mo_stream, percentile
from jingxin.dispatch import worker as worker_module
from jingxin.dispatch.mo_text import mo_text
from jingxin.smsc import mo as smsc_mo
from jingxin.smsc.mo import ScriptLine, read_script, run_script


def test_a_nul_character_makes_the_text_undecodable() -> None:
    # Given UCS-2 "A", NUL, "B" / Then it is kept as hex, not as text with a NUL in it
    assert mo_text(protocol="smpp", coding=8, payload=b"\x00A\x00\x00\x00B") == ("004100000042", True)
    assert mo_text(protocol="smpp", coding=8, payload=b"\x00A\x00B") == ("AB", False)


async def test_the_worker_expires_waiting_groups_only_on_sweeps(store, monkeypatch) -> None:
    seen: list[bool] = []
    real = worker_module.store_parts

    def spy(conn, **kwargs):
        seen.append(kwargs["expire"])
        return real(conn, **kwargs)

    monkeypatch.setattr(worker_module, "store_parts", spy)
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    worker.on_mo_stored = None
    # Given a part arriving / When flushed, then swept
    worker.mo_inbox.handler("happy")(smpp_parts("TD", at=T0)[0])
    worker.flush()
    worker.flush(sweep=True)
    # Then only the sweep asked for every expired group
    assert seen == [False, True]


def test_the_script_offers_the_rate_in_ticks(tmp_path: Path) -> None:
    # Given 100 MO at 2,000/s in 5 ms ticks
    items = mo_stream(MoPlan(messages=100))
    lines = read_script(mo_script(tmp_path / "s.txt", items, rate=2000, tick=0.005))
    # Then ten to a tick, a pause before each new tick: 45 ms from first to last
    assert [line.text for line in lines] == [text for _, text in items]
    assert sum(1 for line in lines if line.delay) == 9
    assert abs(sum(line.delay for line in lines) - 0.045) < 1e-9
    # And rate 0 offers everything at once
    assert all(line.delay == 0 for line in read_script(mo_script(tmp_path / "b.txt", items, rate=0)))


def test_the_simulator_keeps_the_scripts_schedule(monkeypatch) -> None:
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        await real_sleep(seconds)

    monkeypatch.setattr(smsc_mo.asyncio, "sleep", sleep)

    def inject(**_: str) -> int:
        time.sleep(0.02)  # injecting takes time
        return 1

    # Given lines 50 ms apart and injecting that takes 20 ms
    lines = [ScriptLine(0.05, "8613800000001", "10690001", "hi") for _ in range(3)]
    asyncio.run(run_script(lines, inject))
    # Then the pauses after the first shrink by the time injecting took
    assert asked[0] <= 0.05 and all(pause < 0.04 for pause in asked[1:]), asked


def test_percentiles_are_nearest_rank_in_ms() -> None:
    assert percentile([], 0.99) is None
    assert percentile([0.001 * i for i in range(1, 101)], 0.99) == 99.0
