"""Routing by range and carrier, health, fail-over; token buckets."""

from __future__ import annotations

import pytest
from dispatch_fakes import HappyChannel, UnboundChannel, entries, make_worker, states

from jingxin.dispatch.ratelimit import LocalTokenBucket
from jingxin.dispatch.routing import Router, RouteRule
from jingxin.errors import ConfigError, Retry

RULES = [
    RouteRule("cmpp-cm", carriers=("china_mobile",), backup="smpp-main"),
    RouteRule("smpp-vip", prefixes=("+86133",)),
    RouteRule("smpp-main"),
]
CHANNELS = ["cmpp-cm", "smpp-vip", "smpp-main"]


@pytest.mark.parametrize(
    ("msisdn", "channel"),
    [
        ("+8613800000000", "cmpp-cm"),  # 138: China Mobile
        ("+8613300000000", "smpp-vip"),  # 133: China Telecom, by prefix
        ("+8618600000000", "smpp-main"),  # 186: China Unicom, the catch-all
    ],
)
def test_rules_pick_by_carrier_then_prefix(msisdn: str, channel: str) -> None:
    assert Router(rules=RULES, channels=CHANNELS).route(msisdn) == channel


def test_an_unbound_channel_fails_over_to_its_backup() -> None:
    bound = {"cmpp-cm": False, "smpp-vip": True, "smpp-main": True}
    router = Router(rules=RULES, channels=CHANNELS, bound=bound.__getitem__)
    assert router.route("+8613800000000") == "smpp-main"
    bound["smpp-main"] = False
    with pytest.raises(Retry, match="cmpp-cm is down and so is smpp-main"):
        router.route("+8613800000000")


def test_a_high_error_rate_fails_over_then_recovers_after_cooldown() -> None:
    now = [0.0]
    router = Router(rules=RULES, channels=CHANNELS, clock=lambda: now[0])
    for _ in range(20):
        router.record("cmpp-cm", ok=False)
    assert router.route("+8613800000000") == "smpp-main"
    now[0] = 11.0  # past the cool-down: tried again
    assert router.route("+8613800000000") == "cmpp-cm"


def test_an_unknown_channel_in_a_rule_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"dispatch.routes\[0\]: unknown channel 'nope'"
    ):
        Router(rules=[RouteRule("nope")], channels=["a"])


async def test_the_worker_sends_through_the_backup_while_the_primary_is_down(
    store,
) -> None:
    enqueue_rules = [RouteRule("down", backup="up")]
    from jingxin.dispatch.outbox import enqueue

    enqueue(store, entries=entries(5))
    worker, ch = make_worker(
        store,
        {"down": (UnboundChannel, {}), "up": (HappyChannel, {})},
        rules=enqueue_rules,
    )
    await worker.run(once=True, linger=2)
    assert states(store) == {"delivered": 5}
    assert len(ch["up"].sent) == 5


def test_the_local_bucket_allows_a_burst_then_paces() -> None:
    bucket = LocalTokenBucket()
    waits = [bucket.wait_for("c", rate=10, tokens=1, now=0.0) for _ in range(12)]
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(0.1) and waits[11] == pytest.approx(0.2)
    assert bucket.wait_for("c", rate=10, tokens=1, now=5.0) == 0.0


async def test_with_no_channel_bound_nothing_is_claimed_until_one_binds(store) -> None:
    import asyncio

    from sqlalchemy import select

    from jingxin.data.store.models import Message
    from jingxin.dispatch.outbox import enqueue

    # Given five messages and a worker whose only channel is down (the SMSC went away)
    enqueue(store, entries=entries(5))
    worker, ch = make_worker(store, {"down": (UnboundChannel, {})})
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop=stop))
    await asyncio.sleep(0.3)
    # Then nothing is claimed, tried or counted as an attempt: all wait queued
    assert worker.tally.claimed == 0 and ch["down"].sent == []
    with store.sessions() as s:
        assert s.scalars(select(Message.attempts)).all() == [0] * 5
    assert states(store) == {"queued": 5}
    # When the channel binds again, the held messages go out
    ch["down"].bound = True
    ch["down"].submit = HappyChannel.submit.__get__(ch["down"])
    for _ in range(200):
        if states(store) == {"delivered": 5}:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await run
    assert states(store) == {"delivered": 5}


class StallingChannel(HappyChannel):
    """Holds every submit until ``release`` is set. Counts how often the worker asks
    whether it is bound: a worker that asks 10,000 times while the re-bind (a task on the
    same loop, as the real channel's supervisor is) never gets to run is spinning."""

    SPIN = 10_000

    def __init__(self, name: str = "stalling", **kw) -> None:
        self.release = None
        self.polls = 0
        super().__init__(name, **kw)

    @property
    def bound(self) -> bool:
        self.polls += 1
        if self.polls > self.SPIN:
            raise RuntimeError(f"the worker asked {self.SPIN} times whether {self.name} is "
                               "bound without letting the loop run")  # fmt: skip
        return self._bound

    @bound.setter
    def bound(self, value: bool) -> None:
        self._bound, self.polls = value, 0

    async def submit(self, message):
        await self.release.wait()
        return await super().submit(message)


async def test_a_link_lost_with_submits_in_flight_lets_the_channel_re_bind(store) -> None:
    import asyncio

    from jingxin.dispatch.outbox import enqueue

    # Given five submits on the wire (a third of the way through a campaign)
    enqueue(store, entries=entries(5))
    worker, ch = make_worker(store, {"sim": (StallingChannel, {})})
    channel = ch["sim"]
    channel.release = asyncio.Event()
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop=stop))
    for _ in range(200):
        if len(worker._in_flight) == 5:
            break
        await asyncio.sleep(0.01)
    assert worker.tally.claimed == 5
    # When the link drops, and the channel's re-bind is a task on the worker's loop
    channel.bound = False

    async def re_bind() -> None:
        await asyncio.sleep(0.05)
        channel.bound = True
        channel.release.set()

    rebinding = asyncio.create_task(re_bind())
    # Then the worker waits for it without starving it (it once spun between an empty
    # claim and an empty wait, and the link never came back), and the five go out
    for _ in range(300):
        if run.done() or states(store) == {"delivered": 5}:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(run, rebinding)
    assert states(store) == {"delivered": 5}
