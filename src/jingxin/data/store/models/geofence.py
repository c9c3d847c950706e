"""Tables of the geofences (migration 0010, ``jingxin.geofence``).

* :class:`FenceRow` - one fence as staff defined it (``jingxin fence apply FILE`` or
  ``jingxin fence add``): its definition as data (``definition``, the validated YAML
  mapping: scenario, cells or a centre and radius, hours, segment, template, caps, dwell,
  residents) and the cells it resolved to against the cell table when it was saved
  (``cells``), so every matcher process on every machine sees the same fence. ``version``
  goes up on each change; a matcher reloads fences whose version moved.

The matcher's per-subscriber state is not here: it is columnar arrays checkpointed to
files (``[geofence] checkpoint_dir``); an offer's record is its outbox row (source
``fence``, source id the fence code) and its decision row, like every other sender's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, JsonDoc, utc_now
from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID


class FenceRow(Base):
    """One geofence."""

    __tablename__ = "fences"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    code: Mapped[str] = mapped_column(String(64))  # e.g. "pvg-t2-departure"
    name: Mapped[str] = mapped_column(String(128))
    scenario: Mapped[str] = mapped_column(String(32))  # SCENARIOS in geofence.types
    definition: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    cells: Mapped[list[str]] = mapped_column(JsonDoc)  # resolved cell ids, sorted
    enabled: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
