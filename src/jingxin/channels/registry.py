"""Build a :class:`~jingxin.channels.base.Channel` from its :class:`ChannelSettings`.

The one place that maps ``protocol = "smpp" | "cmpp"`` to an implementation; dispatch and
the CLI ask here and never construct protocol classes themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from jingxin.channels.base import Channel, MoHandler, MoPartHandler, ReceiptHandler
from jingxin.config import ChannelSettings
from jingxin.errors import ConfigError


def find_channel(channels: Sequence[ChannelSettings], name: str) -> ChannelSettings:
    """The settings of channel ``name``; ConfigError lists the known names."""
    for channel in channels:
        if channel.name == name:
            return channel
    known = ", ".join(c.name for c in channels) or "none"
    raise ConfigError(f"no channel named {name!r} in the settings (known: {known})")


def build_channel(
    settings: ChannelSettings,
    *,
    on_receipt: ReceiptHandler | None = None,
    on_mo: MoHandler | None = None,
    on_mo_part: MoPartHandler | None = None,
) -> Channel:
    """A not-yet-started channel for ``settings``."""
    if settings.protocol == "smpp":
        return _smpp(settings, on_receipt=on_receipt, on_mo=on_mo, on_mo_part=on_mo_part)
    if settings.protocol == "cmpp":
        from jingxin.channels.cmpp.client import from_settings

        return from_settings(settings, on_receipt=on_receipt, on_mo=on_mo, on_mo_part=on_mo_part)
    raise ConfigError(f"channel {settings.name!r}: protocol {settings.protocol!r} is not available")


def _smpp(settings: ChannelSettings, *, on_receipt: ReceiptHandler | None, on_mo: MoHandler | None,
          on_mo_part: MoPartHandler | None = None) -> Channel:  # fmt: skip
    from jingxin.channels.smpp.channel import SmppChannel
    from jingxin.channels.smpp.session import SessionConfig

    config = SessionConfig(
        host=settings.host,
        port=settings.port,
        system_id=settings.system_id,
        password=settings.password,
        window=settings.window,
        tps=settings.tps,
    )
    return SmppChannel(
        name=settings.name,
        config=config,
        source_addr=settings.source_addr,
        long_messages=settings.long_messages,
        on_receipt=on_receipt,
        on_mo=on_mo,
        on_mo_part=on_mo_part,
    )
