"""Console sessions: a random token in an HttpOnly cookie, its SHA-256 in the store, a CSRF
token that every form and fetch echoes, and an expiry."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import ConsoleSession, User, utc_now


def _id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, *, user: User, minutes: int,
                 now: datetime | None = None) -> tuple[str, ConsoleSession]:
    """A new session for ``user``: the cookie's token (not stored) and the row."""
    now = now or utc_now()
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(id=_id(token), user_id=user.id, csrf_token=secrets.token_urlsafe(24),
                         created_at=now, expires_at=now + timedelta(minutes=minutes))  # fmt: skip
    with store_errors("opening a console session"):
        session.add(row)
        session.flush()
    return token, row


def find_session(session: Session, token: str, *,
                 now: datetime | None = None) -> tuple[ConsoleSession, User] | None:
    """The live session of ``token`` and its user, else None (expired, closed, disabled)."""
    with store_errors("reading a console session"):
        row = session.get(ConsoleSession, _id(token))
        if row is None or row.revoked_at is not None or row.expires_at <= (now or utc_now()):
            return None
        user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return row, user


def close_session(session: Session, token: str, *, now: datetime | None = None) -> None:
    """Close the session of ``token`` (log-out); nothing if it is unknown or closed."""
    row = session.get(ConsoleSession, _id(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or utc_now()
        session.flush()


def close_user_sessions(session: Session, *, user_id: int, keep: str | None = None,
                        now: datetime | None = None) -> int:
    """Close every open session of ``user_id`` but the one of token ``keep``; how many."""
    query = (update(ConsoleSession)
             .where(ConsoleSession.user_id == user_id, ConsoleSession.revoked_at.is_(None))
             .values(revoked_at=now or utc_now()))  # fmt: skip
    if keep is not None:
        query = query.where(ConsoleSession.id != _id(keep))
    with store_errors(f"closing the sessions of user {user_id}"):
        return session.execute(query, execution_options={"synchronize_session": False}).rowcount
