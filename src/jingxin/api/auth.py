"""Who is calling, and may they: the FastAPI dependencies every API route uses.

Credentials, in this order:

- an API key, ``Authorization: Bearer jx_...`` or ``X-API-Key: jx_...``: checked against
  the store (cached here for :data:`KEY_CACHE_SECONDS`; a revocation through this process
  takes effect at once, through another within that time), then rate-limited per key
  (429 with ``Retry-After``);
- a console session cookie (:data:`SESSION_COOKIE`): for anything but GET/HEAD/OPTIONS the
  request must also carry the session's CSRF token, in the ``X-CSRF-Token`` header or a
  ``csrf_token`` form field (403 otherwise).

No credentials, or an unknown, revoked or expired key: 401 saying which. A principal
without the permission a route needs: 403 naming it. Routes take the principal with
``who: Principal = Depends(allow("campaigns.write"))`` and scope every query by
``who.tenant_id``; something of another tenant is answered 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request

from jingxin.access.keys import check_key, key_hash, split_key
from jingxin.access.principal import Principal
from jingxin.access.sessions import find_session
from jingxin.api.errors import ApiError
from jingxin.api.ratelimit import KeyLimiter
from jingxin.data.store import Store
from jingxin.data.store.models import utc_now

SESSION_COOKIE = "jx_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
KEY_CACHE_SECONDS = 5.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class KeyCache:
    """Checked keys by their hash for a few seconds: a send at 1,000 requests/s must not
    read the store to authenticate each one. Also writes ``last_used_at`` when it
    refreshes an entry (so at most once per key per :data:`KEY_CACHE_SECONDS`)."""

    def __init__(self, store: Store, *, seconds: float = KEY_CACHE_SECONDS) -> None:
        self.store = store
        self.seconds = seconds
        self._entries: dict[str, tuple[Principal | str, float]] = {}
        self._lock = threading.Lock()

    def cached(self, digest: str) -> Principal | str | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def load(self, key: str) -> Principal | str:
        """The key's principal, or why it does not work ("unknown", "revoked", "expired")."""
        with self.store.transaction() as session:
            checked = check_key(session, key)
            if checked.key is None:
                found: Principal | str = checked.problem or "unknown"
            else:
                row = checked.key
                row.last_used_at = utc_now()
                found = Principal.of(tenant_id=row.tenant_id, role=row.role,
                                     actor=f"key:{row.prefix}", key_id=row.id,
                                     key_prefix=row.prefix,
                                     rate_per_second=row.rate_per_second)  # fmt: skip
        with self._lock:
            self._entries[key_hash(key)] = (found, time.monotonic() + self.seconds)
        return found

    def forget(self, prefix: str | None = None) -> None:
        """Drop cached keys (one prefix's, or all): after a revocation or a change."""
        with self._lock:
            if prefix is None:
                self._entries.clear()
                return
            for digest, (found, _) in list(self._entries.items()):
                if isinstance(found, Principal) and found.key_prefix == prefix:
                    del self._entries[digest]


def _key_of(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "Authorization: use 'Bearer <API key>'",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        return value.strip()
    return request.headers.get("x-api-key")


async def _from_key(request: Request, key: str) -> Principal:
    state = request.app.state
    if split_key(key) is None:
        raise ApiError(401, "the API key is malformed (keys look like jx_XXXXXXXX_...)",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    cache: KeyCache = state.key_cache
    found = cache.cached(key_hash(key))
    if found is None:
        found = await asyncio.to_thread(cache.load, key)
    if isinstance(found, str):
        words = {"unknown": "the API key is not known", "revoked": "the API key was revoked",
                 "expired": "the API key has expired"}  # fmt: skip
        raise ApiError(401, words.get(found, found), headers={"WWW-Authenticate": "Bearer"})
    limiter: KeyLimiter = state.key_limiter
    wait = limiter.take(found.key_id or 0, found.rate_per_second or 1.0,
                        cost=float(getattr(request.state, "rate_cost", 1.0)))  # fmt: skip
    if wait > 0:
        raise ApiError(429, f"too many requests for key {found.key_prefix}: its limit is "
                       f"{found.rate_per_second:g}/s; retry in {wait:.2f} s",
                       headers={"Retry-After": str(max(1, math.ceil(wait)))})  # fmt: skip
    return found


async def _from_session(request: Request, token: str) -> Principal:
    store: Store = request.app.state.store

    def load() -> Principal | None:
        with store.transaction() as session:
            found = find_session(session, token)
            if found is None:
                return None
            row, user = found
            return Principal.of(tenant_id=user.tenant_id, role=user.role,
                                actor=f"user:{user.username}", user_id=user.id,
                                csrf_token=row.csrf_token)  # fmt: skip

    who = await asyncio.to_thread(load)
    if who is None:
        raise ApiError(401, "your session has expired; log in again")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER.lower())
        if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not sent or not hmac.compare_digest(sent, who.csrf_token or ""):
            raise ApiError(403, "the form's CSRF token is missing or stale; reload the page")
    return who


async def principal(request: Request) -> Principal:
    """The caller, or 401. Cached on the request (several dependencies may ask)."""
    known = getattr(request.state, "principal", None)
    if known is not None:
        return known
    key = _key_of(request)
    if key:
        who = await _from_key(request, key)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise ApiError(401, "log in, or send an API key (Authorization: Bearer jx_...)",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        who = await _from_session(request, token)
    request.state.principal = who
    return who


def allow(*permissions: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency: the caller, if they hold every one of ``permissions`` (else 403)."""

    async def dependency(who: Principal = Depends(principal)) -> Principal:
        missing = [name for name in permissions if not who.can(name)]
        if missing:
            raise ApiError(403, f"the role {who.role!r} may not do this (needs "
                           f"{', '.join(missing)})")  # fmt: skip
        return who

    dependency.permissions = frozenset(permissions)  # type: ignore[attr-defined]  # for the tests
    return dependency


def audit(session: Any, who: Principal, action: str, object_type: str, object_id: object,
          detail: dict[str, Any] | None = None) -> None:
    """Record an action of ``who`` in the audit log (in the caller's transaction)."""
    from jingxin.data.store.audit import record_action

    record_action(session, actor=who.actor, action=action, object_type=object_type,
                  object_id=str(object_id), detail=detail, tenant_id=who.tenant_id)  # fmt: skip
