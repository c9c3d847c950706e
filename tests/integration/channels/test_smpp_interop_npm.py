"""Interop: our ESME against a third-party SMPP server (npm `smpp`, tests/peers/smpp_server.js)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jingxin.channels.smpp.channel import SmppChannel
from jingxin.channels.smpp.session import SessionConfig
from jingxin.domain.sms import OutboundSms, ReceiptStatus

pytestmark = [pytest.mark.peer, pytest.mark.timeout(60)]
PEERS = Path(__file__).resolve().parents[2] / "peers"


def _missing(reason: str) -> None:
    """Skip on a developer's machine, fail in CI (the rule of tests/conftest.py)."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: peer tests must run)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def npm_smpp_server() -> Iterator[int]:
    """The npm smpp peer on a free loopback port (skips without node or the package)."""
    node = shutil.which("node")
    if node is None:
        _missing("node is not installed (needed for the npm smpp peer)")
    if not (PEERS / "node_modules" / "smpp" / "package.json").exists():
        _missing("npm smpp is not installed: run tests/peers/install.sh")
    port = _free_port()
    process = subprocess.Popen([node, str(PEERS / "smpp_server.js"), str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("listening"):
            pytest.fail(f"npm smpp peer did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
        yield port
    finally:
        process.terminate()
        process.wait(5)


async def test_our_esme_against_npm_smpp(npm_smpp_server: int) -> None:
    receipts: list = []
    channel = SmppChannel(name="npm", config=SessionConfig(port=npm_smpp_server, enquire_link_interval=0.3),
                          source_addr="10690000", on_receipt=receipts.append)  # fmt: skip
    await channel.start()
    # When we submit a short and a two-part message
    short = await channel.submit(OutboundSms(destination="8613800138000", text="hello npm"))
    long = await channel.submit(OutboundSms(destination="8613800138000", text="x" * 200))
    ids = {*short.message_ids, *long.message_ids}
    assert len(ids) == 3 and all(i.startswith("npm") for i in ids)

    # Then a receipt arrives for every part, and the link survives an enquire_link round
    async def all_receipts() -> None:
        while {r.message_id for r in receipts} < ids:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(all_receipts(), 10)
    assert {r.status for r in receipts} == {ReceiptStatus.DELIVERED}
    await asyncio.sleep(0.8)
    assert channel.session is not None and channel.session.is_open
    await channel.close()
