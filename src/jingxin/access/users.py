"""Console users: created by an admin (or ``jingxin users add``), log in with a password.

An admin may change another user's role, password, name or disable them
(:func:`update_user`), but not disable themselves or take away their own admin role: a
tenant could otherwise lose its last admin by a slip of the mouse. A new password or a
disabled account closes the user's open sessions.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jingxin.errors import ConflictError
from jingxin.access.passwords import hash_password, needs_rehash, verify_password
from jingxin.access.roles import check_role
from jingxin.access.sessions import close_user_sessions
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
    """A new console user; an unknown tenant is an InputError, a taken username a
    :class:`~jingxin.errors.ConflictError`."""
    name = check_username(username)
    check_role(role)
    if len(display_name.strip()) > 200:
        raise InputError("display_name: at most 200 characters")
    if session.get(Tenant, tenant_id) is None:
        raise InputError(f"tenant: no tenant {tenant_id!r}")
    if get_user(session, username=name) is not None:
        raise ConflictError(f"username: {name!r} is taken (usernames are unique across "
                            "tenants)")
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


def find_user(session: Session, *, user_id: int, tenant_id: str | None) -> User | None:
    """The user with this id (of ``tenant_id`` unless None), else None."""
    with store_errors(f"reading user {user_id}"):
        user = session.get(User, user_id)
    if user is None or (tenant_id is not None and user.tenant_id != tenant_id):
        return None
    return user


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


def update_user(session: Session, *, user: User, by_user_id: int | None = None,
                role: str | None = None, disabled: bool | None = None,
                password: str | None = None, display_name: str | None = None,
                keep_session: str | None = None) -> dict[str, object]:
    """Change what is given of ``user``; what changed, for the audit log (a new password
    shows as ``"changed"``, never itself).

    ``by_user_id`` is the user making the change (None: the CLI, or an API key): they may
    not disable themselves nor give up their admin role (a ConflictError). A new password
    or a disabled account closes the user's sessions (but ``keep_session``, the token of
    the caller's own session, so changing one's own password does not log one out).
    """
    if role is not None:
        check_role(role)
    if display_name is not None and len(display_name.strip()) > 200:
        raise InputError("display_name: at most 200 characters")
    if by_user_id is not None and by_user_id == user.id:
        if disabled:
            raise ConflictError("disabled: you cannot disable your own account; ask another "
                                "admin")  # fmt: skip
        if role is not None and user.role == "admin" and role != "admin":
            raise ConflictError("role: you cannot take away your own admin role; ask another "
                                "admin to do it")  # fmt: skip
    changed: dict[str, object] = {}
    if role is not None and role != user.role:
        user.role = changed["role"] = role
    shown = (display_name or "").strip() or user.username
    if display_name is not None and shown != user.display_name:
        user.display_name = changed["display_name"] = shown
    if disabled is not None and disabled != user.disabled:
        user.disabled = changed["disabled"] = disabled
    if password is not None:
        user.password_hash = hash_password(password)
        changed["password"] = "changed"
    with store_errors(f"updating user {user.username!r}"):
        session.flush()
    if "password" in changed or changed.get("disabled") is True:
        close_user_sessions(session, user_id=user.id, keep=keep_session)
    return changed
