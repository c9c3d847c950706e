"""API routes: who am I; tenants, users, API keys, log-in and log-out; the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from jingxin.access.principal import Principal
from jingxin.api.auth import principal

router = APIRouter(prefix="/api/v1")


@router.get("/me", tags=["accounts"])
async def me(who: Principal = Depends(principal)) -> dict[str, Any]:
    """The caller: tenant, role, actor and permissions."""
    return {"tenant": who.tenant_id, "role": who.role, "actor": who.actor,
            "permissions": sorted(who.permissions)}  # fmt: skip
