"""Tenants: the operator itself and every enterprise that sends through it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, utc_now

DEFAULT_TENANT_ID = "operator"
DEFAULT_TIMEZONE = "Asia/Shanghai"


class Tenant(Base):
    """One sender: its signature, consent policy and per-tenant policy overrides."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    signature: Mapped[str] = mapped_column(String(64))  # e.g. 【中国移动】
    # The tenant's recorded policy that its own subscribers consented by contract.
    implied_consent: Mapped[bool] = mapped_column(default=False)
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    note: Mapped[str | None] = mapped_column(Text, default=None)
