"""The dashboard (``dashboard.read``): the caller's tenant's day, the channels, its queue.

``GET /dashboard`` answers

- ``today``: the tenant's messages sent (``submitted_at`` today), delivered and failed
  (their final state reached today), clicks on their short links (bots aside) and MO
  counted for it (``mo_outcomes``), today being the tenant's own calendar day
  (``tenants.timezone``);
- ``channels``: the ``[[channels]]`` of the settings and whether the worker has each one
  bound, read from the worker's Prometheus metrics (``[dispatch] metrics_port``, on
  127.0.0.1) and kept :data:`HEALTH_SECONDS`; without that port, or when the worker does
  not answer, ``healthy`` is null and ``health`` says why. Hosts and ports are shown to
  the operator only;
- ``queues``: the tenant's messages waiting in the outbox (state ``queued``), per lane.

Every figure is one aggregate query over a range of an index's leading columns
(``messages``: ``state``; per tenant and day - see the report of issue #17 for the indexes
the day's counts want on a large store).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jingxin.access.principal import Principal
from jingxin.api.auth import allow
from jingxin.config import Settings
from jingxin.data.store.models import CLAIM_ORDER, LANE_NAMES, LinkClick, Message, MoOutcome, Tenant

router = APIRouter(prefix="/api/v1", tags=["dashboard"])

HEALTH_SECONDS = 5.0  # the worker's metrics are read at most this often


class Today(BaseModel):
    day: str = Field(description="The tenant's calendar day (YYYY-MM-DD)")
    timezone: str
    sent: int = Field(description="Messages submitted to an SMSC today")
    delivered: int = Field(description="Messages delivered today (by receipt)")
    failed: int = Field(description="Messages that reached a failed state today "
                                    "(undeliverable, expired, rejected, failed)")
    clicks: int = Field(description="Clicks on the tenant's short links today, bots aside")
    replies: int = Field(description="MO counted for the tenant today")


class ChannelOut(BaseModel):
    name: str
    protocol: str
    host: str | None = Field(None, description="The operator only")
    port: int | None = Field(None, description="The operator only")
    healthy: bool | None = Field(description="Bound by the worker (None: unknown)")
    health: str = Field(description="bound, not bound, or why it is unknown")
    submits: dict[str, float] | None = Field(
        None, description="Submit outcomes since the worker started, by status")


class QueueOut(BaseModel):
    lane: str
    depth: int = Field(description="The tenant's messages queued in this lane")


class Dashboard(BaseModel):
    today: Today
    channels: list[ChannelOut]
    queues: list[QueueOut]


def tenant_zone(request: Request, who: Principal) -> str:
    """The caller's tenant's time zone (else ``[policy] default_timezone``)."""
    with request.app.state.store.transaction() as session:
        tenant = session.get(Tenant, who.tenant_id)
        zone = tenant.timezone if tenant is not None else None
    return zone or request.app.state.settings.policy.default_timezone


def day_bounds(zone: str, now: datetime) -> tuple[str, datetime, datetime]:
    """Today in ``zone``: its date and its start and end as UTC instants."""
    local = now.astimezone(ZoneInfo(zone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)  # wall-clock arithmetic: a DST day is 23 or 25 hours
    return start.date().isoformat(), start.astimezone(UTC), end.astimezone(UTC)


def day_figures(session: Session, *, tenant_id: str, start: datetime,
                end: datetime) -> dict[str, int]:  # fmt: skip
    """Sent, delivered, failed, clicks and replies of ``tenant_id`` in [start, end)."""
    from jingxin.dispatch.outbox import FINAL_STATES

    mine = Message.tenant_id == tenant_id
    sent = session.scalar(select(func.count()).select_from(Message).where(
        mine, Message.submitted_at >= start, Message.submitted_at < end))  # fmt: skip
    finished = dict(session.execute(
        select(Message.state, func.count()).where(
            mine, Message.finished_at >= start, Message.finished_at < end,
            Message.state.in_(FINAL_STATES)).group_by(Message.state)).all())  # fmt: skip
    clicks = session.scalar(
        select(func.count()).select_from(LinkClick)
        .join(Message, Message.id == LinkClick.message_id)
        .where(mine, LinkClick.at >= start, LinkClick.at < end, LinkClick.bot.is_(False)))  # fmt: skip
    replies = session.scalar(select(func.count()).select_from(MoOutcome).where(
        MoOutcome.tenant_id == tenant_id, MoOutcome.handled_at >= start,
        MoOutcome.handled_at < end))  # fmt: skip
    return {"sent": int(sent or 0), "delivered": int(finished.get("delivered", 0)),
            "failed": sum(int(n) for state, n in finished.items() if state != "delivered"),
            "clicks": int(clicks or 0), "replies": int(replies or 0)}  # fmt: skip


def queue_depths(session: Session, *, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's queued messages per lane (every lane, 0 when empty), by priority."""
    counts = dict(session.execute(
        select(Message.lane, func.count()).where(Message.state == "queued",
                                                 Message.tenant_id == tenant_id)
        .group_by(Message.lane)).all())  # fmt: skip
    return [{"lane": LANE_NAMES[lane], "depth": int(counts.get(lane, 0))}
            for lane in CLAIM_ORDER]  # fmt: skip


class ChannelHealth:
    """What the worker's metrics say of the channels, read at most every ``seconds``."""

    def __init__(self, *, seconds: float = HEALTH_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._read: tuple[float, str, Any] | None = None  # (when, url, states or error)

    def states(self, settings: Settings) -> dict[str, Any] | str:
        """Channel states by name, or why they are not known."""
        from jingxin.dispatch.metrics import read_channels
        from jingxin.errors import ChannelError

        port = settings.dispatch.metrics_port
        if not port:
            return "unknown: the worker exposes no metrics ([dispatch] metrics_port)"
        url = f"http://127.0.0.1:{port}/metrics"
        with self._lock:
            if self._read and self._read[1] == url and time.monotonic() - self._read[0] < self.seconds:
                return self._read[2]
            try:
                found: dict[str, Any] | str = read_channels(url)
            except ChannelError:
                found = f"unknown: the worker's metrics at {url} did not answer"
            self._read = (time.monotonic(), url, found)
            return found


def channels(request: Request, who: Principal) -> list[dict[str, Any]]:
    """The settings' channels with what the worker says of each (read through the app's
    :class:`ChannelHealth`)."""
    settings: Settings = request.app.state.settings
    health = getattr(request.app.state, "channel_health", None)
    if health is None:
        health = request.app.state.channel_health = ChannelHealth()
    states = health.states(settings)
    out = []
    for channel in settings.channels:
        state = states.get(channel.name) if isinstance(states, dict) else None
        if state is not None:
            healthy, health = state.bound, "bound" if state.bound else "not bound"
        else:
            healthy = None
            health = states if isinstance(states, str) else "unknown: the worker does not use it"
        row: dict[str, Any] = {"name": channel.name, "protocol": channel.protocol,
                               "healthy": healthy, "health": health}  # fmt: skip
        if who.operator:
            row.update(host=channel.host, port=channel.port,
                       submits=dict(state.submits) if state is not None else None)  # fmt: skip
        elif healthy is None:
            row["health"] = "unknown"
        out.append(row)
    return out


@router.get("/dashboard", response_model=Dashboard)
def dashboard(request: Request, who: Principal = Depends(allow("dashboard.read"))) -> dict[str, Any]:
    """Today's figures of the caller's tenant (in its time zone), the channels and their
    health, and the tenant's outbox queue per lane."""
    zone = tenant_zone(request, who)
    day, start, end = day_bounds(zone, datetime.now(UTC))
    with request.app.state.store.transaction() as session:
        figures = day_figures(session, tenant_id=who.tenant_id, start=start, end=end)
        queues = queue_depths(session, tenant_id=who.tenant_id)
    return {"today": {"day": day, "timezone": zone, **figures},
            "channels": channels(request, who), "queues": queues}
