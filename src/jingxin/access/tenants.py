"""Adding a tenant (an enterprise that sends through the operator): the rules its id,
signature and zone must follow, checked the same for ``POST /api/v1/tenants`` and
``jingxin tenants add``. The rows themselves are :mod:`jingxin.data.store.tenants`'."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from jingxin.errors import ConflictError
from jingxin.data.store.models import DEFAULT_TIMEZONE, Tenant
from jingxin.data.store.tenants import create_tenant, get_tenant
from jingxin.errors import InputError

TENANT_ID = re.compile(r"[a-z][a-z0-9-]{0,62}[a-z0-9]")
# 【签名】: what the carriers require at the head of every message; 2-20 characters inside.
SIGNATURE = re.compile(r"【[^【】\s][^【】]{0,18}[^【】\s]】")
NAME_MAX = 200


def check_tenant_id(tenant_id: str, *, field: str = "id") -> str:
    if not TENANT_ID.fullmatch(tenant_id):
        raise InputError(f"{field}: 2-64 lower-case letters, digits or '-', starting with a "
                         f"letter and not ending with '-' (got {tenant_id!r})")  # fmt: skip
    return tenant_id


def check_signature(signature: str, *, field: str = "signature") -> str:
    text = signature.strip()
    if not SIGNATURE.fullmatch(text):
        raise InputError(f"{field}: write the signature in 【】 with 2-20 characters inside, "
                         f"e.g. 【爱客美】 (got {signature!r})")  # fmt: skip
    return text


def check_timezone(timezone: str, *, field: str = "timezone") -> str:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{field}: {timezone!r} is not a time zone (e.g. Asia/Shanghai)"
                         ) from None  # fmt: skip
    return timezone


def add_tenant(session: Session, *, tenant_id: str, name: str, signature: str,
               implied_consent: bool = False, timezone: str = DEFAULT_TIMEZONE) -> Tenant:
    """A new tenant, once every field is checked; an id in use is a ConflictError."""
    check_tenant_id(tenant_id)
    if not name.strip() or len(name.strip()) > NAME_MAX:
        raise InputError(f"name: 1-{NAME_MAX} characters, please (the enterprise's name)")
    signature = check_signature(signature)
    check_timezone(timezone)
    if get_tenant(session, tenant_id=tenant_id) is not None:
        raise ConflictError(f"id: there is already a tenant {tenant_id!r}")
    return create_tenant(session, tenant_id=tenant_id, name=name.strip(), signature=signature,
                         implied_consent=implied_consent, timezone=timezone)  # fmt: skip
