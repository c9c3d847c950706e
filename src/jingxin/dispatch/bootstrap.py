"""Builds a worker from :class:`~jingxin.config.Settings` - the one place that wires dispatch.

Tests call :func:`build_worker` with their own ``channel_factory`` (fakes) instead of
patching; the CLI calls it with the real registry.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from datetime import timedelta

from jingxin.channels.base import Channel
from jingxin.config import ChannelSettings, Settings
from jingxin.data.store.engine import Store
from jingxin.dispatch.metrics import DispatchMetrics
from jingxin.dispatch.ratelimit import LocalTokenBucket, RateLimiter, RedisTokenBucket
from jingxin.dispatch.retry import RetryPolicy
from jingxin.dispatch.routing import Router, bound_probe, rules_from
from jingxin.dispatch.worker import ReceiptInbox, Worker, WorkerConfig

ChannelFactory = Callable[..., Channel]


def worker_config(
    settings: Settings, *, lanes: Sequence[int] | None = None
) -> WorkerConfig:
    d = settings.dispatch
    return WorkerConfig(
        name=d.worker_name or socket.gethostname(),
        max_in_flight=d.max_in_flight,
        lanes=tuple(lanes) if lanes else (0, 1, 2),
        flush_interval=d.flush_interval,
        stale_after=timedelta(seconds=d.stale_after),
        no_receipt_grace=timedelta(seconds=d.receipt_grace),
        retry=RetryPolicy(
            base=d.retry_base,
            max_delay=d.retry_max,
            max_attempts=d.max_attempts,
            unresolved=dict(d.unresolved),
        ),
        tps=dict(d.tps),
        tariffs=dict(d.tariffs),
        invalid_after=d.invalid_after,
        invalid_statuses=tuple(d.invalid_statuses),
        windows={c.name: c.window for c in settings.channels},
    )


def build_worker(
    settings: Settings, store: Store, *, channel_factory: ChannelFactory | None = None,
    lanes: Sequence[int] | None = None, metrics: DispatchMetrics | None = None,
) -> Worker:  # fmt: skip
    """A worker with one (not yet started) channel per ``[[channels]]`` entry."""
    if channel_factory is None:
        from jingxin.channels.registry import build_channel

        channel_factory = build_channel
    inbox = ReceiptInbox()
    channels: dict[str, Channel] = {}
    for channel_settings in settings.channels:
        channels[channel_settings.name] = channel_factory(
            channel_settings, on_receipt=inbox.handler(channel_settings.name)
        )
    router = Router(
        rules=rules_from(settings.dispatch.routes), channels=list(channels),
        bound=bound_probe(channels), error_limit=settings.dispatch.error_rate_limit,
    )  # fmt: skip
    limiter: RateLimiter = (
        RedisTokenBucket(settings.redis.url)
        if settings.redis.url
        else LocalTokenBucket()
    )
    return Worker(store=store, channels=channels, router=router, inbox=inbox,
                  config=worker_config(settings, lanes=lanes), limiter=limiter,
                  metrics=metrics)  # fmt: skip


async def start_channels(worker: Worker) -> list[str]:
    """Start every channel; one that will not bind is logged and left to fail-over."""
    from jingxin.errors import ChannelError

    failed = []
    for name, channel in worker.channels.items():
        try:
            await channel.start()
        except ChannelError as exc:
            logging.getLogger(__name__).error("channel %s did not start: %s", name, exc)
            failed.append(name)
    if len(failed) == len(worker.channels):
        raise ChannelError(f"no channel could be started ({', '.join(failed)})")
    return failed


async def close_channels(worker: Worker) -> None:
    for channel in worker.channels.values():
        try:
            await channel.close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort; we are stopping anyway
            logging.getLogger(__name__).warning(
                "closing channel %s: %s", channel.name, exc
            )
    close = getattr(worker.limiter, "close", None)
    if close is not None:
        await close()


def channel_names(channels: Sequence[ChannelSettings]) -> list[str]:
    return [c.name for c in channels]
