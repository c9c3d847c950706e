"""API routes: who am I; log-in and log-out; tenants, users, API keys; the audit log.

Every route calls the functions ``jingxin users``, ``jingxin keys`` and ``jingxin
tenants`` call (:mod:`jingxin.access`), so a rule refuses with the same words here as in
the CLI: bad input 422 naming the field, a clash with what exists (a taken username, a
tenant id in use, an admin locking themselves out) 409. Users and keys are those of the
caller's tenant; the operator's admin (``tenants.manage``) may name another with
``tenant``. Something of another tenant answers 404, as if it did not exist. Every change
is in the audit log, in the same transaction. Password hashes and key hashes never leave
the store; a new key is shown once, in the answer that creates it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jingxin.errors import ConflictError
from jingxin.access.keys import create_key, list_keys, revoke_key
from jingxin.access.logins import LoginRefused, TooManyLogins, log_in
from jingxin.access.passwords import MIN_LENGTH
from jingxin.access.principal import Principal
from jingxin.access.roles import ROLES
from jingxin.access.sessions import close_session
from jingxin.access.tenants import add_tenant
from jingxin.access.users import create_user, find_user, list_users, update_user
from jingxin.api import errors
from jingxin.api.auth import SESSION_COOKIE, allow, audit, principal
from jingxin.api.errors import ApiError
from jingxin.api.limits import BIGINT_MAX, OFFSET_MAX
from jingxin.data.store.models import (
    DEFAULT_TIMEZONE,
    ApiKey,
    AuditEntry,
    Tenant,
    User,
    utc_now,
)
from jingxin.data.store.tenants import get_tenant, list_tenants
from jingxin.errors import InputError

router = APIRouter(prefix="/api/v1")

RoleName = Literal[ROLES]  # type: ignore[valid-type]
Limit = Query(50, ge=1, le=500, description="At most this many items.")
Offset = Query(0, ge=0, le=OFFSET_MAX, description="Skip this many items first.")
UserId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The user's id.")]
KeyId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The key's id.")]
TenantQuery = Query(None, description="Another tenant's (the operator's admin only).")


def _error(description: str) -> dict[str, Any]:
    return {"description": description + ' (body: {"error": {"status", "code", "message"}})'}


UNAUTHORIZED = {401: _error("No credentials, or an unknown, revoked or expired one")}
FORBIDDEN = {403: _error("The caller's role lacks the permission, or the CSRF token is "
                         "missing")}  # fmt: skip
NOT_FOUND = {404: _error("No such id in the caller's tenant")}
CONFLICT = {409: _error("Clashes with what exists; the message says what to do")}


# ----------------------------------------------------------------------------- schemas


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginUser(BaseModel):
    username: str
    display_name: str
    role: str
    tenant: str


class LoginAnswer(BaseModel):
    csrf_token: str = Field(description="Echo it in X-CSRF-Token on every unsafe request.")
    user: LoginUser


class TenantBody(Strict):
    id: str = Field(min_length=2, max_length=64, description="Slug: a-z, 0-9, '-'.")
    name: str = Field(min_length=1, max_length=200)
    signature: str = Field(min_length=1, max_length=64, description="e.g. 【爱客美】")
    implied_consent: bool = False
    timezone: str = Field(DEFAULT_TIMEZONE, max_length=64)


class TenantView(BaseModel):
    id: str
    name: str
    signature: str
    implied_consent: bool
    timezone: str
    created_at: datetime

    @classmethod
    def of(cls, row: Tenant) -> TenantView:
        return cls(id=row.id, name=row.name, signature=row.signature,
                   implied_consent=row.implied_consent, timezone=row.timezone,
                   created_at=row.created_at)  # fmt: skip


class TenantList(BaseModel):
    items: list[TenantView]
    total: int


class UserBody(Strict):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=MIN_LENGTH, max_length=1024)
    role: RoleName
    display_name: str = Field("", max_length=200)
    tenant: str | None = Field(None, description="Default: the caller's tenant.")


class UserPatch(Strict):
    role: RoleName | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=MIN_LENGTH, max_length=1024,
                                 description="A new password; closes the user's sessions.")
    display_name: str | None = Field(None, max_length=200)


class UserView(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    tenant: str
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, row: User) -> UserView:
        return cls(id=row.id, username=row.username, display_name=row.display_name,
                   role=row.role, tenant=row.tenant_id, disabled=row.disabled,
                   created_at=row.created_at, last_login_at=row.last_login_at)  # fmt: skip


class UserList(BaseModel):
    items: list[UserView]
    total: int


class KeyBody(Strict):
    name: str = Field(min_length=1, max_length=200, description="What uses the key.")
    role: RoleName = "api-client"
    rate_per_second: float | None = Field(None, gt=0, le=100_000,
                                          description="Default: [api] key_rate_per_second.")
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Default: never.")
    tenant: str | None = Field(None, description="Default: the caller's tenant.")


class KeyView(BaseModel):
    id: int
    prefix: str = Field(description="The public part of the key: jx_<prefix>_...")
    name: str
    role: str
    tenant: str
    rate_per_second: float
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def fields_of(cls, row: ApiKey) -> dict[str, Any]:
        return dict(id=row.id, prefix=row.prefix, name=row.name, role=row.role,
                    tenant=row.tenant_id, rate_per_second=row.rate_per_second,
                    created_by=row.created_by, created_at=row.created_at,
                    expires_at=row.expires_at, revoked_at=row.revoked_at,
                    last_used_at=row.last_used_at)  # fmt: skip

    @classmethod
    def of(cls, row: ApiKey) -> KeyView:
        return cls(**cls.fields_of(row))


class NewKey(KeyView):
    key: str = Field(description="The key itself: shown this once, never stored.")


class KeyList(BaseModel):
    items: list[KeyView]
    total: int


class AuditView(BaseModel):
    id: int
    at: datetime
    actor: str
    tenant: str | None
    action: str
    object_type: str
    object_id: str
    detail: dict[str, Any]


class AuditList(BaseModel):
    items: list[AuditView]
    total: int


# ----------------------------------------------------------------------------- helpers


@contextmanager
def _refusals() -> Iterator[None]:
    """The domain's refusals as answers: a clash 409, bad input 422, naming the field
    (our messages open with it: ``"role: unknown role ..."``)."""
    try:
        yield
    except InputError as exc:
        head, sep, _ = str(exc).partition(":")
        field = f"body.{head}" if sep and head.isidentifier() else None
        status = 409 if isinstance(exc, ConflictError) else 422
        raise ApiError(status, str(exc), field=field) from exc


def _acting_tenant(session: Session, who: Principal, tenant: str | None) -> str:
    """The tenant a request works in: the caller's, or another one for the operator's
    admin (``tenants.manage``); for anyone else another tenant does not exist."""
    if tenant is None or tenant == who.tenant_id:
        return who.tenant_id
    if not who.can("tenants.manage") or get_tenant(session, tenant_id=tenant) is None:
        raise errors.not_found("tenant", tenant)
    return tenant


def _page(items: list[Any], limit: int, offset: int) -> list[Any]:
    return items[offset : offset + limit]


# ----------------------------------------------------------------------------- who am I


class MeView(BaseModel):
    tenant: str
    role: str
    actor: str = Field(description='"user:<name>" or "key:<prefix>", as the audit log names it')
    permissions: list[str]


@router.get("/me", tags=["accounts"], response_model=MeView, responses=UNAUTHORIZED)
async def me(who: Principal = Depends(principal)) -> MeView:
    """The caller: tenant, role, actor and permissions."""
    return MeView(tenant=who.tenant_id, role=who.role, actor=who.actor,
                  permissions=sorted(who.permissions))  # fmt: skip


# ----------------------------------------------------------------------------- log-in


@router.post("/auth/login", tags=["accounts"], response_model=LoginAnswer,
             responses={401: _error("Wrong username or password"),
                        429: _error("Too many failed log-ins for this username; see "
                                    "Retry-After")})  # fmt: skip
def login(body: LoginBody, request: Request, response: Response) -> LoginAnswer:
    """Log in to the console: sets the HttpOnly session cookie ``jx_session`` and answers
    the CSRF token to echo in ``X-CSRF-Token`` on every POST, PUT, PATCH and DELETE.
    A wrong name, a wrong password and a disabled account all answer the same 401; after
    5 failures for one username within 5 minutes, 429 until the oldest ages out."""
    settings = request.app.state.settings
    minutes = settings.api.session_minutes
    try:
        done = log_in(request.app.state.store, username=body.username, password=body.password,
                      minutes=minutes, throttle=request.app.state.login_throttle)  # fmt: skip
    except TooManyLogins as exc:
        raise ApiError(429, str(exc),
                       headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
                       ) from exc  # fmt: skip
    except LoginRefused as exc:
        raise ApiError(401, str(exc)) from exc
    response.set_cookie(SESSION_COOKIE, done.token, max_age=minutes * 60, path="/",
                        httponly=True, samesite="lax",
                        secure=settings.api.secure_cookies)  # fmt: skip
    return LoginAnswer(csrf_token=done.csrf_token,
                       user=LoginUser(username=done.username, display_name=done.display_name,
                                      role=done.role, tenant=done.tenant_id))  # fmt: skip


@router.post("/auth/logout", tags=["accounts"], status_code=204, response_class=Response,
             responses={**UNAUTHORIZED, **FORBIDDEN,
                        400: _error("Called with an API key, not a session")})  # fmt: skip
def logout(request: Request, who: Principal = Depends(principal)) -> Response:
    """Log out: closes the console session (its cookie no longer works, even if kept)
    and clears the cookie. Needs the CSRF token like any other POST."""
    token = request.cookies.get(SESSION_COOKIE)
    if who.user_id is None or who.key_id is not None or not token:
        raise ApiError(400, "log-out ends a console session; an API key is revoked with "
                       "DELETE /api/v1/keys/{id}")  # fmt: skip
    with request.app.state.store.transaction() as session:
        close_session(session, token)
        audit(session, who, "logout", "user", who.user_id)
    answer = Response(status_code=204)
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                         secure=request.app.state.settings.api.secure_cookies)  # fmt: skip
    return answer


# ----------------------------------------------------------------------------- tenants


@router.get("/tenants", tags=["accounts"], response_model=TenantList, responses=UNAUTHORIZED)
def get_tenants(request: Request, who: Principal = Depends(principal),
                limit: int = Limit, offset: int = Offset) -> TenantList:
    """The tenants the caller may see: every one for the operator's own staff and keys,
    only its own for an enterprise."""
    with request.app.state.store.transaction() as session:
        rows = [t for t in list_tenants(session) if who.operator or t.id == who.tenant_id]
        return TenantList(items=[TenantView.of(t) for t in _page(rows, limit, offset)],
                          total=len(rows))  # fmt: skip


@router.post("/tenants", tags=["accounts"], status_code=201, response_model=TenantView,
             responses={**UNAUTHORIZED, **FORBIDDEN, **CONFLICT})  # fmt: skip
def post_tenant(body: TenantBody, request: Request,
                who: Principal = Depends(allow("tenants.manage"))) -> TenantView:
    """Add an enterprise tenant (the operator's admin only). The id is a slug (2-64
    characters: a-z, 0-9, '-'); the signature is the 【...】 its messages carry (2-20
    characters inside); the time zone an IANA name. An id in use: 409."""
    with _refusals(), request.app.state.store.transaction() as session:
        row = add_tenant(session, tenant_id=body.id, name=body.name, signature=body.signature,
                         implied_consent=body.implied_consent,
                         timezone=body.timezone)  # fmt: skip
        audit(session, who, "create", "tenant", row.id,
              {"name": row.name, "signature": row.signature,
               "implied_consent": row.implied_consent, "timezone": row.timezone})  # fmt: skip
        return TenantView.of(row)


@router.get("/tenants/{tenant_id}", tags=["accounts"], response_model=TenantView,
            responses={**UNAUTHORIZED, **NOT_FOUND})  # fmt: skip
def get_one_tenant(tenant_id: str, request: Request,
                   who: Principal = Depends(principal)) -> TenantView:
    """One tenant: any for the operator's staff, an enterprise's own only (others: 404)."""
    with request.app.state.store.transaction() as session:
        row = get_tenant(session, tenant_id=tenant_id)
        if row is None or not (who.operator or row.id == who.tenant_id):
            raise errors.not_found("tenant", tenant_id)
        return TenantView.of(row)


# ----------------------------------------------------------------------------- users


@router.get("/users", tags=["accounts"], response_model=UserList,
            responses={**UNAUTHORIZED, **FORBIDDEN, **NOT_FOUND})  # fmt: skip
def get_users(request: Request, who: Principal = Depends(allow("users.manage")),
              tenant: str | None = TenantQuery, limit: int = Limit,
              offset: int = Offset) -> UserList:
    """The console users of the caller's tenant (or ``tenant``'s, for the operator's
    admin), by username."""
    with request.app.state.store.transaction() as session:
        rows = list_users(session, tenant_id=_acting_tenant(session, who, tenant))
        return UserList(items=[UserView.of(u) for u in _page(rows, limit, offset)],
                        total=len(rows))  # fmt: skip


@router.post("/users", tags=["accounts"], status_code=201, response_model=UserView,
             responses={**UNAUTHORIZED, **FORBIDDEN, **NOT_FOUND, **CONFLICT})  # fmt: skip
def post_user(body: UserBody, request: Request,
              who: Principal = Depends(allow("users.manage"))) -> UserView:
    """Add a console user to the caller's tenant (or to ``tenant``, for the operator's
    admin). Usernames are unique across tenants (a taken one: 409); passwords have at
    least 10 characters."""
    with _refusals(), request.app.state.store.transaction() as session:
        tenant_id = _acting_tenant(session, who, body.tenant)
        user = create_user(session, tenant_id=tenant_id, username=body.username,
                           password=body.password, role=body.role,
                           display_name=body.display_name)  # fmt: skip
        audit(session, who, "create", "user", user.id,
              {"username": user.username, "role": user.role, "tenant": tenant_id})  # fmt: skip
        return UserView.of(user)


@router.patch("/users/{user_id}", tags=["accounts"], response_model=UserView,
              responses={**UNAUTHORIZED, **FORBIDDEN, **NOT_FOUND, **CONFLICT})  # fmt: skip
def patch_user(user_id: UserId, body: UserPatch, request: Request,
               who: Principal = Depends(allow("users.manage"))) -> UserView:
    """Change a user's role, name or password, or disable / enable them. A new password
    or disabling closes their open sessions. Admins cannot disable themselves or give up
    their own admin role (409: ask another admin)."""
    if body.model_dump(exclude_none=True) == {}:
        raise ApiError(422, "give at least one of role, disabled, password, display_name")
    keep = request.cookies.get(SESSION_COOKIE) if who.user_id == user_id else None
    with _refusals(), request.app.state.store.transaction() as session:
        scope = None if who.can("tenants.manage") else who.tenant_id
        user = find_user(session, user_id=user_id, tenant_id=scope)
        if user is None:
            raise errors.not_found("user", user_id)
        changed = update_user(session, user=user, by_user_id=who.user_id, role=body.role,
                              disabled=body.disabled, password=body.password,
                              display_name=body.display_name, keep_session=keep)  # fmt: skip
        if changed:
            audit(session, who, "update", "user", user.id,
                  {"username": user.username, **changed})  # fmt: skip
        return UserView.of(user)


# ----------------------------------------------------------------------------- keys


@router.get("/keys", tags=["accounts"], response_model=KeyList,
            responses={**UNAUTHORIZED, **FORBIDDEN, **NOT_FOUND})  # fmt: skip
def get_keys(request: Request, who: Principal = Depends(allow("keys.manage")),
             tenant: str | None = TenantQuery, limit: int = Limit,
             offset: int = Offset) -> KeyList:
    """The API keys of the caller's tenant, newest first: prefix, name, role, rate,
    created, expires, revoked, last used (at most every few seconds) - never the key."""
    with request.app.state.store.transaction() as session:
        rows = list_keys(session, tenant_id=_acting_tenant(session, who, tenant))
        return KeyList(items=[KeyView.of(k) for k in _page(rows, limit, offset)],
                       total=len(rows))  # fmt: skip


@router.post("/keys", tags=["accounts"], status_code=201, response_model=NewKey,
             responses={**UNAUTHORIZED, **FORBIDDEN, **NOT_FOUND})  # fmt: skip
def post_key(body: KeyBody, request: Request,
             who: Principal = Depends(allow("keys.manage"))) -> NewKey:
    """Make an API key: the answer's ``key`` is shown this once (store it now); listings
    show its ``prefix``. Send it as ``Authorization: Bearer <key>``."""
    settings = request.app.state.settings
    rate = body.rate_per_second or settings.api.key_rate_per_second
    expires = utc_now() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with _refusals(), request.app.state.store.transaction() as session:
        tenant_id = _acting_tenant(session, who, body.tenant)
        row, key = create_key(session, tenant_id=tenant_id, name=body.name, role=body.role,
                              rate_per_second=rate, expires_at=expires,
                              created_by=who.actor)  # fmt: skip
        audit(session, who, "create", "api_key", row.id,
              {"prefix": row.prefix, "name": row.name, "role": row.role, "tenant": tenant_id,
               "rate_per_second": rate,
               "expires_at": expires.isoformat() if expires else None})  # fmt: skip
        return NewKey(key=key, **KeyView.fields_of(row))


@router.delete("/keys/{key_id}", tags=["accounts"], response_model=KeyView,
               responses={**UNAUTHORIZED, **FORBIDDEN, **NOT_FOUND})  # fmt: skip
def delete_key(key_id: KeyId, request: Request,
               who: Principal = Depends(allow("keys.manage"))) -> KeyView:
    """Revoke a key, at once (401 "revoked" from the next request); revoking it again
    changes nothing."""
    with request.app.state.store.transaction() as session:
        scope = None if who.can("tenants.manage") else who.tenant_id
        already = (row := session.get(ApiKey, key_id)) is not None and row.revoked_at is not None
        row = revoke_key(session, key_id=key_id, tenant_id=scope)
        if row is None:
            raise errors.not_found("API key", key_id)
        if not already:
            audit(session, who, "revoke", "api_key", row.id,
                  {"prefix": row.prefix, "name": row.name, "tenant": row.tenant_id})  # fmt: skip
        view = KeyView.of(row)
    request.app.state.key_cache.forget(view.prefix)  # after the commit: no stale reload
    return view


# ----------------------------------------------------------------------------- audit


@router.get("/audit", tags=["accounts"], response_model=AuditList,
            responses={**UNAUTHORIZED, **FORBIDDEN, **NOT_FOUND})  # fmt: skip
def get_audit(request: Request, who: Principal = Depends(allow("audit.read")),
              object_type: str | None = Query(None, max_length=64,
                                              description="e.g. user, api_key, campaign"),
              object_id: str | None = Query(None, max_length=200),
              tenant: str | None = Query(None, description="Another tenant's (the "
                                         "operator's admins and auditors only)."),
              limit: int = Limit, offset: int = Offset) -> AuditList:
    """The caller's tenant's audit log, newest first: who did what to which object."""
    from jingxin.data.store.audit import list_actions

    with request.app.state.store.transaction() as session:
        tenant_id = who.tenant_id
        if tenant is not None and tenant != who.tenant_id:
            if not who.operator or get_tenant(session, tenant_id=tenant) is None:
                raise errors.not_found("tenant", tenant)
            tenant_id = tenant
        rows = list_actions(session, object_type=object_type, object_id=object_id,
                            tenant_id=tenant_id, limit=offset + limit)[offset:]  # fmt: skip
        count = select(func.count()).select_from(AuditEntry).where(
            AuditEntry.tenant_id == tenant_id)
        if object_type is not None:
            count = count.where(AuditEntry.object_type == object_type)
        if object_id is not None:
            count = count.where(AuditEntry.object_id == object_id)
        total = session.scalar(count) or 0
        items = [AuditView(id=e.id, at=e.at, actor=e.actor, tenant=e.tenant_id,
                           action=e.action, object_type=e.object_type,
                           object_id=e.object_id, detail=e.detail or {})
                 for e in rows]  # fmt: skip
        return AuditList(items=items, total=total)
