"""Building a worker from settings: routes, tariffs, lanes; bad config named."""

from __future__ import annotations

import pytest
from dispatch_fakes import HappyChannel, entries, states
from sqlalchemy import func, select

from jingxin.config import ChannelSettings, Settings
from jingxin.data.store.models import Message
from jingxin.dispatch.bootstrap import build_worker
from jingxin.dispatch.claim import lanes_of
from jingxin.dispatch.outbox import OutboxEntry, enqueue
from jingxin.errors import ConfigError, InputError


def fake_factory(settings: ChannelSettings, *, on_receipt=None, on_mo=None, on_mo_part=None):
    return HappyChannel(settings.name, on_receipt=on_receipt)


def two_channels(**dispatch) -> Settings:
    return Settings(
        channels=[ChannelSettings(name="cm"), ChannelSettings(name="rest")],
        dispatch={"worker_name": "b", "flush_interval": 0.01, **dispatch},
    )


async def test_routes_and_tariffs_from_settings(store) -> None:
    # Given China Mobile numbers routed to "cm" (0.04/part) and the rest to "rest" (0.05/part)
    settings = two_channels(
        routes=[{"channel": "cm", "carriers": ["china_mobile"]}, {"channel": "rest"}],
        tariffs={"cm": 0.04, "rest": 0.05},
    )
    enqueue(store, entries=entries(2))  # +86138...: China Mobile
    unicom = [OutboxEntry(tenant_id="default", msisdn=f"+8618600000{i:03d}", category="otp",
                          text="123456", idempotency_key=f"u{i}") for i in range(3)]  # fmt: skip
    enqueue(store, entries=unicom)
    worker = build_worker(settings, store, channel_factory=fake_factory)
    # When the worker drains
    await worker.run(once=True, linger=2)
    # Then each carrier's messages left by its channel and cost parts × that tariff
    assert states(store) == {"delivered": 5}
    assert (
        len(worker.channels["cm"].sent) == 2 and len(worker.channels["rest"].sent) == 3
    )
    with store.sessions() as s:
        costs = dict(s.execute(select(Message.channel, func.sum(Message.cost))
                               .group_by(Message.channel)).all())  # fmt: skip
    assert costs == pytest.approx({"cm": 0.08, "rest": 0.15})


def test_a_route_to_an_unknown_channel_is_refused(store) -> None:
    with pytest.raises(
        ConfigError, match=r"dispatch.routes\[0\]: unknown channel 'cmpp'"
    ):
        build_worker(
            two_channels(routes=[{"channel": "cmpp"}]),
            store,
            channel_factory=fake_factory,
        )


@pytest.mark.parametrize(("names", "lanes"), [
    (None, (0, 3, 1, 2)),  # OTPs, the way back's replies, notifications, marketing
    (["marketing", "otp"], (0, 2)),
    (["notification", "reply"], (3, 1)),
])  # fmt: skip
def test_lanes_by_name(names, lanes) -> None:
    assert lanes_of(names) == lanes


def test_an_unknown_lane_is_named() -> None:
    with pytest.raises(InputError, match=r"unknown lane\(s\) sms: use otp, reply, notification, marketing"):
        lanes_of(["sms"])
