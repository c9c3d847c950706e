"""Console users: created by an admin (or ``jingxin users add``), log in with a password."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jingxin.access.passwords import hash_password, needs_rehash, verify_password
from jingxin.access.roles import check_role
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import Tenant, User, utc_now
from jingxin.errors import InputError

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")


def check_username(username: str, *, field: str = "username") -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise InputError(f"{field}: 2-64 letters, digits, '.', '_' or '-', starting with a "
                         f"letter or digit (got {username!r})")
    return name


def create_user(session: Session, *, tenant_id: str, username: str, password: str, role: str,
                display_name: str = "") -> User:
    """A new console user; a taken username or an unknown tenant is an InputError."""
    name = check_username(username)
    check_role(role)
    if session.get(Tenant, tenant_id) is None:
        raise InputError(f"tenant: no tenant {tenant_id!r}")
    if get_user(session, username=name) is not None:
        raise InputError(f"username: {name!r} is taken")
    user = User(tenant_id=tenant_id, username=name, display_name=display_name.strip() or name,
                role=role, password_hash=hash_password(password))  # fmt: skip
    with store_errors(f"creating user {name!r}"):
        session.add(user)
        session.flush()
    return user


def get_user(session: Session, *, username: str) -> User | None:
    with store_errors("reading a user"):
        return session.scalars(select(User).where(User.username == username.strip().lower())
                               ).first()  # fmt: skip


def list_users(session: Session, *, tenant_id: str | None) -> list[User]:
    query = select(User).order_by(User.username)
    if tenant_id is not None:
        query = query.where(User.tenant_id == tenant_id)
    with store_errors("listing users"):
        return list(session.scalars(query))


def authenticate(session: Session, *, username: str, password: str,
                 now: datetime | None = None) -> User | None:
    """The user if the password is right and the account enabled, else None (the same
    time either way: an unknown name still verifies a dummy hash)."""
    user = get_user(session, username=username)
    ok = verify_password(user.password_hash if user is not None else None, password)
    if user is None or not ok or user.disabled:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now or utc_now()
    session.flush()
    return user


def set_password(session: Session, *, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    session.flush()
