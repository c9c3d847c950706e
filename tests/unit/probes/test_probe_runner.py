"""Dial tests against the real simulator and fake halls named for their behaviour: a hall
that answers right, wrong, slowly or not at all, and a simulator that is not there."""

from __future__ import annotations

import asyncio
import logging

import pytest
from probe_fakes import FakeHall, balance_hall, closed_port, probe
from sqlalchemy import select

from jingxin.data.store.engine import open_store
from jingxin.data.store.models.hall import ProbeRun
from jingxin.probes import ProbeMetrics, SimulatorChannel, run_and_record, run_probes
from jingxin.smsc.server import Simulator

pytestmark = pytest.mark.timeout(30)


def wrong_hall(text: str) -> tuple[str | None, float]:
    return "未能识别您的指令，回复0查看菜单", 0.0


def slow_hall(text: str) -> tuple[str | None, float]:
    return "您的余额12元。", 0.4


def silent_hall(text: str) -> tuple[str | None, float]:
    return None, 0.0


def keyword_hall(text: str) -> tuple[str | None, float]:
    """YE answered late, LL at once: a reply to the wrong MO would be seen first."""
    return ("您的余额12元。", 0.3) if text == "YE" else ("本月已用流量1.2GB。", 0.0)


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "probes.db"))
    yield opened
    opened.dispose()


async def run(answer, probes, *, timeout: float = 2.0, **kwargs):
    async with Simulator(http_port=0) as sim, FakeHall(sim.smpp_port, answer) as hall:
        channel = SimulatorChannel(f"http://127.0.0.1:{sim.http_port}")
        report = await run_probes(probes, channel=channel, timeout=timeout, **kwargs)
        return report, hall


async def test_a_right_reply_in_time_passes() -> None:
    report, hall = await run(balance_hall, [probe()])
    [result] = report.results
    assert report.ok and result.ok and result.reason is None and hall.heard == ["CXYE"]
    assert result.reply_text == "【中国移动】您的余额12元。" and 0 < result.latency_ms < 2000


async def test_a_wrong_reply_fails_quoting_it_and_the_pattern() -> None:
    report, _ = await run(wrong_hall, [probe()])
    [result] = report.results
    assert not report.ok and result.reply_text == "未能识别您的指令，回复0查看菜单"
    assert result.reason == "reply '未能识别您的指令，回复0查看菜单' does not match /余额\\d+元/"


async def test_a_slow_reply_fails_on_latency() -> None:
    report, _ = await run(slow_hall, [probe(max_latency_ms=200)])
    [result] = report.results
    assert result.reply_text == "您的余额12元。" and result.latency_ms >= 400
    assert result.reason == f"latency {result.latency_ms:.0f} ms > 200 ms"


async def test_no_reply_fails_after_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    report, hall = await run(silent_hall, [probe()], timeout=0.6)
    [result] = report.results
    assert hall.heard == ["CXYE"] and result.reason == "no reply within 0.6 s"
    assert (result.reply_text, result.latency_ms) == (None, None)
    assert 0.6 <= loop.time() - start < 3.0


async def test_an_unreachable_simulator_fails_every_probe_once_without_sending() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    report = await run_probes([probe("a"), probe("b")], channel=SimulatorChannel(url), timeout=5.0)
    assert report.unreachable is not None and report.unreachable.startswith(f"simulator at {url} not reachable")
    assert [r.reason for r in report.results] == [report.unreachable] * 2


async def test_a_simulator_with_no_worker_bound_fails_the_probe_saying_so() -> None:
    async with Simulator(http_port=0) as sim:
        channel = SimulatorChannel(f"http://127.0.0.1:{sim.http_port}")
        report = await run_probes([probe()], channel=channel, timeout=1.0)
    assert report.unreachable is None
    assert "refused POST /mo (409): no client is bound to receive MO messages" in report.results[0].reason


async def test_probes_of_one_number_take_turns_and_others_run_at_once() -> None:
    # Given two probes from one number (YE answered after 0.3 s, LL at once) and a third
    # number whose hall answers after 0.3 s
    probes = [probe("ye", text="YE", expect="余额"), probe("ll", text="LL", expect="流量"),
              probe("other", text="YE", expect="余额", msisdn="+8613900000002")]  # fmt: skip
    loop = asyncio.get_running_loop()
    start = loop.time()
    report, hall = await run(keyword_hall, probes)
    # Then each probe saw its own reply (LL's did not answer YE), in settings order
    assert [(r.probe, r.ok) for r in report.results] == [("ye", True), ("ll", True), ("other", True)]
    # And the third number did not wait for the first: ~0.3 s, not 0.6 s, in all
    assert loop.time() - start < 0.55 + 0.5  # two simulator starts are in the measured time too
    assert sorted(hall.heard) == ["LL", "YE", "YE"]


async def test_a_run_is_logged_counted_and_recorded(store, caplog) -> None:
    caplog.set_level(logging.INFO, logger="jingxin.probes")
    metrics = ProbeMetrics()
    probes = [probe("ye", text="YE", expect="余额"), probe("menu", text="LL", expect="菜单",
                                                            msisdn="+8613900000002")]  # fmt: skip
    async with Simulator(http_port=0) as sim, FakeHall(sim.smpp_port, keyword_hall):
        channel = SimulatorChannel(f"http://127.0.0.1:{sim.http_port}")
        report = await run_and_record(probes, channel=channel, store=store, timeout=2.0, metrics=metrics)
    # Then the failure is an ERROR naming the probe, the pass an INFO
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["probe menu failed: reply '本月已用流量1.2GB。' does not match /菜单/"]
    # And the metrics count it
    text = metrics.render().decode()
    assert 'jingxin_probe_failures_total{probe="menu"} 1.0' in text
    assert 'jingxin_probe_last_ok{probe="menu"} 0.0' in text and 'jingxin_probe_last_ok{probe="ye"} 1.0' in text
    assert 'jingxin_probe_failures_total{probe="ye"}' not in text
    # And one row per probe is stored under the run's id
    with store.sessions() as session:
        rows = session.scalars(select(ProbeRun).order_by(ProbeRun.probe)).all()
    assert [(r.run_id, r.probe, r.ok, r.sent_text, r.expect) for r in rows] == [
        (report.run_id, "menu", False, "LL", "菜单"), (report.run_id, "ye", True, "YE", "余额")]
    assert rows[1].latency_ms >= 300 and rows[1].reply_text == "您的余额12元。" and rows[0].reason
