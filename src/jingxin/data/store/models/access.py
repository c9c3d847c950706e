"""Who may use the API and the console, and what is pushed back to enterprises.

- :class:`User`: a person with a console log-in (argon2 password hash) and one role in one
  tenant;
- :class:`ApiKey`: a machine's credential. The key is ``jx_<prefix>_<secret>``; only the
  prefix (public, unique, shown in listings) and a SHA-256 of the whole key are stored. A
  key is 32 random bytes, so a fast hash is enough (a password hash is for guessable
  secrets, and would cost ~50 ms on every request);
- :class:`ConsoleSession`: a signed-in browser; the cookie carries a random token, the
  store its SHA-256, the CSRF token forms must echo, and when it expires;
- :class:`CallbackEndpoint` / :class:`CallbackDelivery`: an enterprise's callback URL and
  the durable queue of receipts and MO pushed to it (signed with HMAC, retried with
  back-off, never sent twice once acknowledged).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, utc_now

CALLBACK_KINDS = ("receipt", "mo")
CALLBACK_STATES = ("pending", "delivered", "dead")


class User(Base):
    """A console user: one role in one tenant."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # log-in name, lower case
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # one of jingxin.access.roles.ROLES
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, PHC string
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class ApiKey(Base):
    """An API key of a tenant; the secret itself is never stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # public part, in listings
    key_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the whole key
    role: Mapped[str] = mapped_column(String(16), default="api-client")
    rate_per_second: Mapped[float] = mapped_column(default=100.0)  # requests/s, per key
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class ConsoleSession(Base):
    """A signed-in browser; ``id`` is the SHA-256 of the cookie's token."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class CallbackEndpoint(Base):
    """Where a tenant wants its receipts and MO pushed, and the secret they are signed with."""

    __tablename__ = "callback_endpoints"

    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"),
                                           primary_key=True)  # fmt: skip
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))  # HMAC-SHA256 key (shown once)
    kinds: Mapped[str] = mapped_column(String(32), default="receipt,mo")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class CallbackDelivery(Base):
    """One receipt or MO to push to a tenant's callback URL: the durable queue's row."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (Index("ix_callback_deliveries_state_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # one of CALLBACK_KINDS
    event_key: Mapped[str] = mapped_column(String(200), unique=True)  # e.g. "receipt:<part id>"
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # CALLBACK_STATES
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_status: Mapped[int | None] = mapped_column(default=None)  # HTTP status of the last try
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
