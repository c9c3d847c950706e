"""Builds a worker from :class:`~jingxin.config.Settings` - the one place that wires dispatch.

Every channel hands receipts to the worker's receipt inbox and each MO PDU to its MO
inbox (``on_mo_part``: acknowledged only after commit); the MO handlers of
:mod:`jingxin.dispatch.handlers` (``run_pending`` with the default registry) run after
each MO commit.

Tests call :func:`build_worker` with their own ``channel_factory`` (fakes) instead of
patching; the CLI calls it with the real registry.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any
from datetime import timedelta

from jingxin.channels.base import Channel
from jingxin.config import ChannelSettings, Settings
from jingxin.data.store.engine import Store
from jingxin.data.store.models import CLAIM_ORDER
from jingxin.dispatch.inbox import MoInbox
from jingxin.dispatch.metrics import DispatchMetrics
from jingxin.dispatch.mo_inbox import InboxRules
from jingxin.dispatch.ratelimit import LocalTokenBucket, RateLimiter, RedisTokenBucket
from jingxin.dispatch.retry import RetryPolicy
from jingxin.dispatch.routing import Router, bound_probe, rules_from
from jingxin.dispatch.worker import ReceiptInbox, Worker, WorkerConfig
from jingxin.errors import ConfigError

ChannelFactory = Callable[..., Channel]


def worker_config(
    settings: Settings, *, lanes: Sequence[int] | None = None
) -> WorkerConfig:
    d = settings.dispatch
    return WorkerConfig(
        name=d.worker_name or socket.gethostname(),
        max_in_flight=d.max_in_flight,
        lanes=tuple(lanes) if lanes else CLAIM_ORDER,
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
        mo_first_share=d.mo_first_share,
        inbox_rules=InboxRules(
            part_timeout=timedelta(seconds=settings.inbox.part_timeout_seconds),
            duplicate_window=timedelta(seconds=settings.inbox.duplicate_window_seconds),
        ),
    )


def build_worker(
    settings: Settings, store: Store, *, channel_factory: ChannelFactory | None = None,
    lanes: Sequence[int] | None = None, metrics: DispatchMetrics | None = None,
    on_mo_stored: Callable[[], Any] | None = None,
) -> Worker:  # fmt: skip
    """A worker with one (not yet started) channel per ``[[channels]]`` entry.

    ``on_mo_stored`` runs after every MO commit; by default the MO handlers
    (:func:`mo_handlers`)."""
    if channel_factory is None:
        from jingxin.channels.registry import build_channel

        channel_factory = build_channel
    inbox = ReceiptInbox()
    mo_inbox = MoInbox()
    channels: dict[str, Channel] = {}
    for channel_settings in settings.channels:
        channels[channel_settings.name] = channel_factory(
            channel_settings, on_receipt=inbox.handler(channel_settings.name),
            on_mo_part=mo_inbox.handler(channel_settings.name),
        )  # fmt: skip
    router = Router(
        rules=rules_from(settings.dispatch.routes), channels=list(channels),
        bound=bound_probe(channels), error_limit=settings.dispatch.error_rate_limit,
    )  # fmt: skip
    limiter: RateLimiter = (
        RedisTokenBucket(settings.redis.url)
        if settings.redis.url
        else LocalTokenBucket()
    )
    if on_mo_stored is None:
        on_mo_stored = default_handlers(settings, store)
    return Worker(store=store, channels=channels, router=router, inbox=inbox,
                  config=worker_config(settings, lanes=lanes), limiter=limiter,
                  metrics=metrics, mo_inbox=mo_inbox, on_mo_stored=on_mo_stored)  # fmt: skip


def default_handlers(settings: Settings, store: Store) -> Any:
    """The worker's MO handlers where ``[inbox] handler_mode`` puts them: in a child
    process (:class:`~jingxin.dispatch.handler_process.HandlerProcess`, started here, so
    the first MO does not wait for it) or in the worker (:func:`mo_handlers`)."""
    mode = settings.inbox.handler_mode
    if mode == "auto":
        mode = "process" if store.engine.dialect.name == "postgresql" else "thread"
    if mode == "thread":
        return mo_handlers(settings, store)
    from jingxin.dispatch.handler_process import HandlerProcess, HandlerProcesses

    if store.engine.dialect.name != "postgresql":
        raise ConfigError("inbox.handler_mode: 'process' needs PostgreSQL; SQLite allows one "
                          "writer at a time (use 'auto' or 'thread')")  # fmt: skip
    url = store.engine.url.render_as_string(hide_password=False)
    count = settings.inbox.handler_processes
    runner: Any = HandlerProcess(settings, store_url=url)
    if count > 1:
        runner = HandlerProcesses([runner, *(HandlerProcess(settings, store_url=url)
                                             for _ in range(count - 1))])  # fmt: skip
    runner.start()
    # The worker still stores the MO (and parses their numbers) itself: warm that here too.
    from jingxin.dispatch import handlers

    handlers.warm_up()
    return runner


def mo_handlers(settings: Settings, store: Store, *, limit: int = 64,
                most: int = 256) -> MoHandlerRunner:  # fmt: skip
    """``run_pending`` over the default registry (unsubscribe words, ``[inbox]`` replies,
    the hall), as the worker calls it after each MO commit (see :class:`MoHandlerRunner`)."""
    from jingxin.dispatch import handlers

    registry = handlers.default_registry(settings)
    context = handlers.HandlerContext.from_settings(settings, store=store)
    handlers.warm_up()
    return MoHandlerRunner(store, registry=registry, context=context, limit=limit, most=most)


class MoHandlerRunner:
    """The worker's MO handlers.

    Called with no argument: at most ``limit`` pending MO per call while the handlers keep
    up, so a new MO never waits behind a long batch; while they are behind (a call stopped
    at its limit) the batch doubles up to ``most``, since a bigger batch spreads each
    statement over more MO. Returns true when it stopped at the limit (the worker calls
    again straight away). :meth:`handle_ids`: the MO this worker just stored, by id, in
    batches of ``most`` - what the worker asks first, so that several workers share the
    way back."""

    def __init__(self, store: Store, *, registry: Any, context: Any, limit: int,
                 most: int) -> None:  # fmt: skip
        self.store, self.registry, self.context = store, registry, context
        self.limit, self.most, self.batch = limit, most, limit

    def __call__(self) -> bool:
        from jingxin.dispatch import handlers

        tally = handlers.run_pending(self.store, registry=self.registry, context=self.context,
                                     limit=self.batch)  # fmt: skip
        behind = tally.total >= self.batch
        self.batch = min(self.batch * 2, self.most) if behind else self.limit
        return behind

    def handle_ids(self, ids: Sequence[int]) -> None:
        from jingxin.dispatch import handlers

        for start in range(0, len(ids), self.most):
            chunk = list(ids[start:start + self.most])
            handlers.run_pending(self.store, registry=self.registry, context=self.context,
                                 limit=len(chunk), ids=chunk)  # fmt: skip


def warm_statements(runner: MoHandlerRunner) -> None:
    """Run the handlers' hot reads once on nothing (no MO has id 0; no number has the
    warm-up key), so their statements are compiled, the pool connected and the policy
    state's union prepared before the first MO: a cold handler process answered its first
    batch 25-30 ms slower than the next. Read-only; a failure is logged and left to the
    first real batch."""
    from datetime import UTC, datetime

    from jingxin.data.store.policy_state import load_many

    try:
        runner.handle_ids([0])
        with runner.store.engine.connect() as connection:
            load_many(connection, pairs=[("+8613800138000", "warm-up")],
                      tenants=["operator"], now=datetime.now(UTC))  # fmt: skip
    except Exception:  # noqa: BLE001 - a warm-up is no reason not to start
        logging.getLogger(__name__).warning("warming the MO handlers' statements failed",
                                            exc_info=True)  # fmt: skip


def freeze_heap() -> None:
    """Once a worker process is built: move every object made so far (modules, settings,
    the handler registry, the SQL caches warmed so far: about a million) into the
    collector's permanent generation. Without it each full collection walked them all
    with every lane of the process stopped - 100-150 ms, several times a minute under
    load, each one a step in the MO latency (docs/dispatch.md)."""
    import gc

    gc.collect()
    gc.freeze()


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
    """Close the channels, the rate limiter and the MO handler process, if any."""
    close_handlers = getattr(worker.on_mo_stored, "close", None)
    if close_handlers is not None:
        await asyncio.to_thread(close_handlers)
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
