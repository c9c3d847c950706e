"""Reading and creating tenants; every store has at least the operator itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import DEFAULT_TENANT_ID, DEFAULT_TIMEZONE, Tenant
from jingxin.errors import StoreError

DEFAULT_TENANT_NAME = "本网运营商"
DEFAULT_SIGNATURE = "【中国移动】"


def get_tenant(session: Session, *, tenant_id: str) -> Tenant | None:
    """The tenant with this id, or None."""
    with store_errors(f"reading tenant {tenant_id!r}"):
        return session.get(Tenant, tenant_id)


def list_tenants(session: Session) -> list[Tenant]:
    """Every tenant, by id."""
    with store_errors("listing tenants"):
        return list(session.scalars(select(Tenant).order_by(Tenant.id)))


def create_tenant(
    session: Session,
    *,
    tenant_id: str,
    name: str,
    signature: str,
    implied_consent: bool = False,
    timezone: str = DEFAULT_TIMEZONE,
    settings: dict[str, Any] | None = None,
) -> Tenant:
    """Add a tenant; a duplicate id raises :class:`~jingxin.errors.StoreError`."""
    tenant = Tenant(
        id=tenant_id,
        name=name,
        signature=signature,
        implied_consent=implied_consent,
        timezone=timezone,
        settings=dict(settings or {}),
    )
    with store_errors(f"creating tenant {tenant_id!r}"):
        session.add(tenant)
        session.flush()
    return tenant


def ensure_default_tenant(session: Session) -> Tenant:
    """The operator's own tenant, created on first use.

    The operator messages its own subscribers under their service contract, so its
    recorded policy is implied consent for notifications and care.
    """
    existing = get_tenant(session, tenant_id=DEFAULT_TENANT_ID)
    if existing is not None:
        return existing
    try:
        # A savepoint: two processes meeting a new store at once (a worker's handler
        # processes, two workers) both find no tenant; the one that loses the insert
        # reads the winner's row instead of failing its batch.
        with session.begin_nested():
            return create_tenant(session, tenant_id=DEFAULT_TENANT_ID, name=DEFAULT_TENANT_NAME,
                                 signature=DEFAULT_SIGNATURE, implied_consent=True)  # fmt: skip
    except StoreError:
        winner = get_tenant(session, tenant_id=DEFAULT_TENANT_ID)
        if winner is None:
            raise
        return winner
