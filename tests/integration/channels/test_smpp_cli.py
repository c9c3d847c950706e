"""The SMPP commands end to end: `jingxin smsc` (a real process), `smsc mo`, `send`, `bench smpp`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import smpplib.client
from typer.testing import CliRunner

from jingxin.cli import app

pytestmark = pytest.mark.timeout(60)
runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _jingxin() -> str:
    local = Path(sys.executable).parent / "jingxin"
    return str(local) if local.exists() else (shutil.which("jingxin") or "jingxin")


@pytest.fixture(scope="module")
def smsc() -> Iterator[dict[str, int]]:
    """`jingxin smsc` in its own process, on free ports."""
    ports = {"smpp": _free_port(), "http": _free_port()}
    command = [_jingxin(), "smsc", "--no-cmpp", "--smpp-port", str(ports["smpp"]), "--http-port",
               str(ports["http"]), "--receipt-delay", "0.05", "--status-mix", "DELIVRD=1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("http listening" in line for line in seen):
            seen.append(process.stdout.readline())
        assert any(f"smpp listening on 127.0.0.1:{ports['smpp']}" in line for line in seen), seen
        yield ports
    finally:
        process.terminate()
        process.wait(10)


def _env(smsc: dict[str, int]) -> dict[str, str]:
    return {
        "JINGXIN_CHANNELS": json.dumps([{"name": "sim-smpp", "port": smsc["smpp"]}]),
        "JINGXIN_SMSC__HTTP_PORT": str(smsc["http"]),
        "JINGXIN_CONFIG": os.devnull,
    }


def test_send_prints_ids_and_the_receipt(smsc: dict[str, int]) -> None:
    result = runner.invoke(app, ["send", "--to", "8613800138000", "--text", "您的话费余额为 12.30 元" * 5, "--wait", "5"],
                           env=_env(smsc))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "submitted 2 part(s)" in result.output
    assert result.output.count("DELIVRD") == 2


def test_send_to_an_unknown_channel_names_the_known_ones(smsc: dict[str, int]) -> None:
    result = runner.invoke(app, ["send", "--channel", "nope", "--to", "1", "--text", "x"], env=_env(smsc))
    assert result.exit_code != 0
    assert "known: sim-smpp" in str(result.exception)


def test_smsc_mo_reaches_a_bound_receiver(smsc: dict[str, int]) -> None:
    # Given a third-party ESME bound as receiver
    received = []
    client = smpplib.client.Client("127.0.0.1", smsc["smpp"], timeout=5, allow_unknown_opt_params=True)
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.connect()
    client.bind_receiver(system_id="hall", password="")
    try:
        # When an MO is injected from the command line
        result = runner.invoke(app, ["smsc", "mo", "--from", "8613800138000", "--to", "10086", "--text", "41"], env=_env(smsc))
        assert result.exit_code == 0, result.output
        assert "in 1 part(s)" in result.output
        while not received:
            client.read_once()
    finally:
        client.disconnect()
    # Then it arrives as a deliver_sm from the subscriber to the service number
    assert (received[0].source_addr, received[0].destination_addr, received[0].short_message) == (
        b"8613800138000", b"10086", b"41")  # fmt: skip


def test_bench_smpp_ends_with_one_json_line(smsc: dict[str, int]) -> None:
    result = runner.invoke(app, ["bench", "smpp", "--port", str(smsc["smpp"]), "--messages", "300", "--receipts"],
                           env=_env(smsc))  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert (figures["ok"], figures["receipts"], figures["errors"]) == (300, 300, {})
    assert figures["p50_ms"] <= figures["p99_ms"]


def test_smsc_plays_a_subscriber_script_once_bound(tmp_path: Path) -> None:
    script = tmp_path / "subscribers.txt"
    script.write_text("# delay, from, to, text\n0, 8613800138000, 10086, 41\n0.1, 8613900139000, 10086, 42\n")
    port = _free_port()
    command = [_jingxin(), "smsc", "--no-cmpp", "--smpp-port", str(port), "--http-port", "0", "--script", str(script)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    received = []
    try:
        assert process.stdout is not None
        while "smpp listening" not in (line := process.stdout.readline()):
            assert line, "simulator exited"
        client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
        client.set_message_received_handler(lambda pdu: received.append(pdu))
        client.connect()
        client.bind_receiver(system_id="hall", password="")
        while len(received) < 2:
            client.read_once()
        client.disconnect()
    finally:
        process.terminate()
        process.wait(10)
    assert [(m.source_addr, m.short_message) for m in received] == [(b"8613800138000", b"41"), (b"8613900139000", b"42")]


def test_bench_smpp_loopback_compares_with_smpplib() -> None:
    # The registered benchmark starts its own simulator process; a tiny scale for a sanity run
    result = runner.invoke(app, ["bench", "smpp-loopback", "--scale", "200"], env={"JINGXIN_CONFIG": os.devnull})
    assert result.exit_code == 0, result.output
    figures = json.loads([line for line in result.output.splitlines() if line.startswith("{")][-1])
    assert figures["ours"]["ok"] == 200 and figures["ours_receipts"]["receipts"] == 200
    assert figures["smpplib"]["submits_per_s"] > 0 and figures["ratio_vs_smpplib"] > 0
    assert figures["round_trip_p50_ms"] > 0
