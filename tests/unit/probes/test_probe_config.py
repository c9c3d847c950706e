"""Probe settings are checked at load, a reply is judged by pattern and latency, and the
history's numbers (percentiles, spans) are the ones an operator expects."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from jingxin.cli.probe import parse_since
from jingxin.config import ProbeSettings
from jingxin.errors import ConfigError, InputError
from jingxin.probes import Probe, judge, load_probes
from jingxin.probes.history import percentile


def entries(*expects: str) -> list[ProbeSettings]:
    return [ProbeSettings(name=f"p{i}", text="CXYE", expect=expect) for i, expect in enumerate(expects)]


def test_an_invalid_pattern_names_the_entry_and_its_field() -> None:
    # Given a second probe whose pattern does not compile
    with pytest.raises(ConfigError) as info:
        load_probes(entries(r"余额\d+", r"余额(\d+"))
    # Then the error names probes[1].expect and quotes the pattern
    assert "probes[1].expect" in str(info.value) and "余额(\\d+" in str(info.value)


def test_two_probes_with_one_name_are_refused() -> None:
    twice = [ProbeSettings(name="ye", text="YE", expect="x"), ProbeSettings(name="ye", text="LL", expect="y")]
    with pytest.raises(ConfigError, match=r"probes\[1\]\.name: 'ye' is already the name of probes\[0\]"):
        load_probes(twice)


def test_probes_are_chosen_by_name_in_settings_order_and_unknown_names_listed() -> None:
    configured = entries("a", "b", "c")
    assert [p.name for p in load_probes(configured, names=["p2", "p0"])] == ["p0", "p2"]
    with pytest.raises(ConfigError, match=r"no probe named 'nope' \(configured: p0, p1, p2\)"):
        load_probes(configured, names=["nope"])


def test_a_valid_probe_is_compiled_once() -> None:
    [probe] = load_probes(entries(r"余额\d+元"))
    assert isinstance(probe.expect, re.Pattern) and probe.expect.search("您的余额12元")


BALANCE = Probe("balance", "+8613900000001", "10086", "CXYE", re.compile(r"余额\d+元"), 500)


@pytest.mark.parametrize(("reply", "latency", "reason"), [
    ("您的余额12元。", 120.0, None),
    ("您的余额12元。", 500.0, None),  # the bound itself passes
    ("您的余额12元。", 812.4, "latency 812 ms > 500 ms"),
    ("未能识别，回复0查看菜单", 30.0, "reply '未能识别，回复0查看菜单' does not match /余额\\d+元/"),
    ("未能识别", 900.0, "reply '未能识别' does not match /余额\\d+元/; latency 900 ms > 500 ms"),
    (None, None, "no reply within 10 s"),
    ("长" * 80, 10.0, f"reply '{'长' * 59}…' does not match /余额\\d+元/"),
])  # fmt: skip
def test_a_reply_is_judged_by_pattern_and_latency(reply, latency, reason) -> None:
    assert judge(BALANCE, reply, latency, timeout=10.0) == reason


def test_the_pattern_is_searched_not_matched_whole() -> None:
    assert judge(BALANCE, "【中国移动】尊敬的客户，您的余额8元", 1.0, timeout=1.0) is None


@pytest.mark.parametrize(("values", "p50", "p95"), [
    ([], None, None),
    ([40.0], 40.0, 40.0),
    ([float(v) for v in range(1, 21)], 10.0, 19.0),  # nearest rank: measured values only
    ([300.0, 100.0, 200.0], 200.0, 300.0),
])  # fmt: skip
def test_percentiles_are_nearest_rank(values, p50, p95) -> None:
    assert (percentile(values, 50), percentile(values, 95)) == (p50, p95)


def test_since_reads_spans_and_instants() -> None:
    now = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("12h", now=now) == now - timedelta(hours=12)
    assert parse_since(" 30m ", now=now) == now - timedelta(minutes=30)
    assert parse_since("2026-11-20T08:00:00+08:00") == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    with pytest.raises(InputError, match="--since: 'last week' is neither a span"):
        parse_since("last week")
