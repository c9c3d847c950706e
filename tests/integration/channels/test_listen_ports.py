"""A port already in use is one clear line naming the listener, for every listener."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from jingxin.errors import ChannelError, ConfigError


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port somebody else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(("listener", "flag"), [("smpp", "--smpp-port"),
                                                ("cmpp", "--cmpp-port"),
                                                ("http", "--http-port")])  # fmt: skip
def test_simulator_names_the_listener_whose_port_is_taken(taken: int, listener: str,
                                                          flag: str) -> None:
    from jingxin.smsc.server import Simulator

    # Given every listener on a free port but one, whose port is taken
    ports = {"smpp_port": 0, "cmpp_port": 0, "http_port": 0, f"{listener}_port": taken}
    simulator = Simulator(**ports)
    # When it starts, Then one line names that listener, the port and the flag to change
    with pytest.raises(ChannelError) as caught:
        asyncio.run(simulator.start())
    message = str(caught.value)
    assert f"127.0.0.1:{taken}: the port is already in use" in message and flag in message
    assert "\n" not in message
    # And nothing it opened before stays open
    assert all(not server.is_serving() for server in simulator._servers)


def test_metrics_port_in_use_names_the_setting(taken: int) -> None:
    from jingxin.dispatch.metrics import DispatchMetrics

    with pytest.raises(ConfigError, match=f"127.0.0.1:{taken}: the port is already in use; "
                                          "change dispatch.metrics_port"):
        DispatchMetrics().serve(taken)
