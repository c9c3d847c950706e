"""The CMPP side reached through the ``jingxin`` command: ``send`` on a CMPP channel,
``bench cmpp`` against a running ISMG, and ``bench cmpp-loopback`` end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from jingxin.channels.base import Channel
from jingxin.channels.cmpp import CmppChannel
from jingxin.channels.registry import build_channel
from jingxin.cli import app
from jingxin.config import ChannelSettings
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.cmpp_server import CmppSmsc, start_cmpp_server
from jingxin.smsc.record import Record

SP, SECRET = "901234", "s3cret"


class ThreadedIsmg:
    """The simulator's CMPP server on its own event loop, for commands that run asyncio.run."""

    def __init__(self) -> None:
        self.record = Record()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0
        self.smsc: CmppSmsc | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        behaviour = Behaviour(credentials={SP: SECRET}, receipt_delay=0.0)
        server, self.smsc = self.loop.run_until_complete(
            start_cmpp_server(host="127.0.0.1", port=0, behaviour=behaviour, record=self.record)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()
        self.smsc.close()
        self.loop.run_until_complete(asyncio.sleep(0.05))
        self.loop.close()

    def __enter__(self) -> ThreadedIsmg:
        self.thread.start()
        assert self.ready.wait(5), "CMPP server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def ismg() -> Iterator[ThreadedIsmg]:
    with ThreadedIsmg() as server:
        yield server


def test_registry_builds_a_cmpp_channel() -> None:
    settings = ChannelSettings(name="cm", protocol="cmpp", port=7890, system_id=SP, password=SECRET)
    channel = build_channel(settings)
    assert isinstance(channel, CmppChannel) and isinstance(channel, Channel)
    assert (channel.sp_id, channel.port) == (SP, 7890)


def test_registry_refuses_an_sp_id_longer_than_six() -> None:
    from jingxin.errors import ConfigError

    with pytest.raises(ConfigError, match="1–6 ASCII characters"):
        build_channel(ChannelSettings(name="cm", protocol="cmpp", system_id="jingxin"))


def test_jingxin_send_over_cmpp(ismg: ThreadedIsmg, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # Given a CMPP channel in the settings
    channels = [{"name": "cm", "protocol": "cmpp", "port": ismg.port, "system_id": SP,
                 "password": SECRET, "service_id": "JXTEST", "source_addr": "1069001"}]  # fmt: skip
    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    monkeypatch.setenv("JINGXIN_CHANNELS", json.dumps(channels))
    # When one message is sent through the command
    result = CliRunner().invoke(app, ["send", "--channel", "cm", "--to", "13800138000", "--text", "你好" * 40, "--wait", "3"])
    # Then two parts went out and both reports came back
    assert result.exit_code == 0, result.output
    submits = ismg.record.of("CMPP_SUBMIT")
    assert len(submits) == 2
    assert {(s.fields["service_id"], s.fields["src_id"], s.fields["pk_total"]) for s in submits} == {
        ("JXTEST", "1069001", 2)
    }
    for s in submits:
        assert f"receipt {s.fields['msg_id']}: DELIVRD" in result.output


def test_jingxin_bench_cmpp(ismg: ThreadedIsmg) -> None:
    result = CliRunner().invoke(app, [
        "bench", "cmpp", "--port", str(ismg.port), "--system-id", SP, "--password", SECRET,
        "--messages", "200", "--window", "8", "--receipts",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert (figures["messages"], figures["parts"], figures["receipts"], figures["errors"]) == (200, 200, 200, {})
    assert figures["submits_per_s"] > 0 and figures["p99_ms"] >= figures["p50_ms"]
    assert len(ismg.record.of("CMPP_SUBMIT")) == 200


def test_jingxin_bench_cmpp_reports_a_refused_connect(ismg: ThreadedIsmg) -> None:
    result = CliRunner().invoke(app, [
        "bench", "cmpp", "--port", str(ismg.port), "--system-id", SP, "--password", "nope",
        "--messages", "1",
    ])  # fmt: skip
    assert result.exit_code != 0
    assert "authentication failed" in str(result.exception)


def test_bench_cmpp_loopback_end_to_end() -> None:
    # The whole path: `jingxin bench` → child `jingxin smsc` → client → JSON line
    done = subprocess.run(
        [sys.executable, "-c", "from jingxin.cli import main; main()", "bench", "cmpp-loopback", "--scale", "300"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["benchmark"], figures["parts"], figures["receipts"], figures["errors"]) == (
        "cmpp-loopback", 300, 300, {},
    )
