"""Who is asking: a console user or an API key, its tenant, role and permissions."""

from __future__ import annotations

from dataclasses import dataclass, field

from jingxin.access.roles import permissions_of
from jingxin.data.store.models import DEFAULT_TENANT_ID
from jingxin.logs import mask


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    role: str
    actor: str  # "user:alice" or "key:<prefix>": what the audit log and the logs name
    user_id: int | None = None
    key_id: int | None = None
    key_prefix: str | None = None
    csrf_token: str | None = None  # console sessions only: forms and fetches echo it
    rate_per_second: float | None = None  # API keys only
    permissions: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, *, tenant_id: str, role: str, actor: str, **rest: object) -> Principal:
        perms = permissions_of(role, operator=tenant_id == DEFAULT_TENANT_ID)
        return cls(tenant_id=tenant_id, role=role, actor=actor, permissions=perms,
                   **rest)  # type: ignore[arg-type]  # fmt: skip

    @property
    def operator(self) -> bool:
        """Is this the operator's own tenant (not an enterprise)?"""
        return self.tenant_id == DEFAULT_TENANT_ID

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def number(self, msisdn: str | None) -> str | None:
        """``msisdn`` whole for those with ``numbers.view``, masked for everyone else."""
        if msisdn is None or self.can("numbers.view"):
            return msisdn
        return mask(msisdn)
