"""API keys: ``jx_<prefix>_<secret>``, stored as the prefix and a SHA-256 of the whole key.

The prefix (8 base62 characters) is public: listings, logs and the audit log show it. The
secret is 32 random bytes, shown once when the key is made. A fast hash suffices for a
random 256-bit secret (nobody can guess it to brute-force the hash); a password hash would
cost ~50 ms per request. Lookups go by the unique prefix, then compare hashes in constant
time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jingxin.access.roles import check_role
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import ApiKey, Tenant, utc_now
from jingxin.errors import InputError

ALPHABET = string.ascii_letters + string.digits
PREFIX_LENGTH = 8


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_key(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "jx" or len(parts[1]) != PREFIX_LENGTH or not parts[2]:
        return None
    return parts[1]


def create_key(session: Session, *, tenant_id: str, name: str, role: str = "api-client",
               rate_per_second: float = 100.0, expires_at: datetime | None = None,
               created_by: str = "") -> tuple[ApiKey, str]:
    """A new key of ``tenant_id``: the row, and the key itself (shown once, never stored)."""
    check_role(role)
    if not name.strip():
        raise InputError("name: give the key a name (what uses it)")
    if len(name.strip()) > 200:
        raise InputError("name: at most 200 characters")
    if not rate_per_second > 0:  # also refuses NaN
        raise InputError("rate_per_second: must be more than 0")
    if session.get(Tenant, tenant_id) is None:
        raise InputError(f"tenant: no tenant {tenant_id!r}")
    prefix = "".join(secrets.choice(ALPHABET) for _ in range(PREFIX_LENGTH))
    key = f"jx_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(tenant_id=tenant_id, name=name.strip(), prefix=prefix, key_hash=key_hash(key),
                 role=role, rate_per_second=rate_per_second, expires_at=expires_at,
                 created_by=created_by)  # fmt: skip
    with store_errors(f"creating API key {name!r}"):
        session.add(row)
        session.flush()
    return row, key


@dataclass(frozen=True, slots=True)
class KeyCheck:
    key: ApiKey | None
    problem: str | None  # why it does not work: "unknown", "revoked", "expired"


def check_key(session: Session, key: str, *, now: datetime | None = None) -> KeyCheck:
    """The key row if ``key`` is valid now, else why not."""
    prefix = split_key(key)
    if prefix is None:
        return KeyCheck(None, "unknown")
    with store_errors("checking an API key"):
        row = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None or not hmac.compare_digest(row.key_hash, key_hash(key)):
        return KeyCheck(None, "unknown")
    if row.revoked_at is not None:
        return KeyCheck(None, "revoked")
    if row.expires_at is not None and row.expires_at <= (now or utc_now()):
        return KeyCheck(None, "expired")
    return KeyCheck(row, None)


def list_keys(session: Session, *, tenant_id: str | None) -> list[ApiKey]:
    """The keys of a tenant (None: every tenant's), newest first."""
    query = select(ApiKey).order_by(ApiKey.id.desc())
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    with store_errors("listing API keys"):
        return list(session.scalars(query))


def find_key(session: Session, *, tenant_id: str | None, key_id: int | None = None,
             prefix: str | None = None) -> ApiKey | None:
    """The key with this id or prefix (of ``tenant_id`` unless None), else None."""
    with store_errors("reading an API key"):
        if key_id is not None:
            row = session.get(ApiKey, key_id)
        else:
            row = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        return None
    return row


def revoke_key(session: Session, *, key_id: int, tenant_id: str | None,
               now: datetime | None = None) -> ApiKey | None:
    """Revoke a key (of ``tenant_id`` unless None); None when there is no such key.
    Revoking a revoked key changes nothing. The API's key cache must then forget the
    prefix (``KeyCache.forget``) for it to take effect at once."""
    row = find_key(session, tenant_id=tenant_id, key_id=key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = now or utc_now()
        session.flush()
    return row
