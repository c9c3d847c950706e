"""A short SP_Id logs in to the simulator's CMPP server with either authenticator form,
and the client sends the form its ``sp_id_padding`` option names."""

from __future__ import annotations

import asyncio

import pytest

from jingxin.channels.cmpp import CmppChannel, CmppOptions, LinkOptions, auth
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.cmpp_server import start_cmpp_server
from jingxin.smsc.record import Record

SHORT_SP, SECRET = "90100", "s3cret"
FAST = LinkOptions(window=4, connect_timeout=2, response_timeout=2, active_test_interval=5,
                   terminate_timeout=0.5)


@pytest.mark.parametrize("padding", ["none", "nul"])
async def test_a_short_sp_id_logs_in_with_either_padding(padding, monkeypatch):
    # Given the simulator knowing a 5-character SP_Id, and a spy on the authenticator
    sent: list[bytes] = []
    real = auth.authenticator_source

    def spy(**kwargs):
        digest = real(**kwargs)
        sent.append(digest)
        return digest

    monkeypatch.setattr(auth, "authenticator_source", spy)
    record = Record()
    server, smsc = await start_cmpp_server(
        host="127.0.0.1", port=0, behaviour=Behaviour(credentials={SHORT_SP: SECRET}),
        record=record)
    port = server.sockets[0].getsockname()[1]
    channel = CmppChannel(name="ismg", host="127.0.0.1", port=port, sp_id=SHORT_SP,
                          secret=SECRET, source_addr="10690000",
                          options=CmppOptions(link=FAST, sp_id_padding=padding))
    try:
        # When the channel connects
        await asyncio.wait_for(channel.start(), 3)
        # Then the login is accepted, with the authenticator of the padding asked for
        (connect,) = record.of("CMPP_CONNECT")
        assert connect.fields["status"] == 0
        expected_source = SHORT_SP.ljust(6, "\0") if padding == "nul" else SHORT_SP
        assert sent[0] == real(source_addr=expected_source, secret=SECRET,
                               timestamp=connect.fields["timestamp"])
        await asyncio.wait_for(channel.close(), 5)
    finally:
        server.close()
        smsc.close()
        await asyncio.wait_for(server.wait_closed(), 2)
