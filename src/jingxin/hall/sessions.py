"""Hall sessions: where a subscriber is in the menu and what waits for their ``Y``.

One ``hall_sessions`` row per (number, service number). It keeps two things that expire
on their own clocks, both measured from the MO's receipt (a late batch does not cost the
subscriber their confirmation):

* the **menu position** (the zone last looked at), until ``expires_at``
  (``[hall] session_seconds``): an order placed after looking at zone 42 counts for 42;
* a **pending** action - ``order`` (a quote), ``cancel`` (a product to drop) or ``survey``
  (a question asked) - as JSON, until ``pending_expires_at`` (``[hall] confirm_seconds``).

An expired pending is not dropped when read: ``Y`` after the deadline must be told
"确认已超时" rather than "nothing to confirm", so :meth:`SessionState.pending_at` hands it
on marked ``expired`` and the router and handler decide.

The handler reads every session of a batch at once (:func:`load_sessions`), moves them
along in memory as it answers the batch's MO in order (``KT`` then ``Y`` in one batch),
and writes the changed ones (:func:`save_sessions`) in the transaction that records the
interactions - so a crash leaves both unwritten and the re-run starts from the same state.
The write is portable: update the rows that were read, insert the rest, and an insert that
loses a race to a twin (unique msisdn + service number) updates the twin's row instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from jingxin.data.store.bulk import among_rows, array_values, unnest_arrays
from jingxin.data.store.engine import store_errors
from jingxin.data.store.frozen import Frozen, Read, run_reads
from jingxin.data.store.models import DEFAULT_TENANT_ID, HallSession, utc_now

PENDING_KINDS = ("order", "cancel", "survey")

Key = tuple[str, str]  # (msisdn, service_number)


@dataclass(frozen=True, slots=True)
class Pending:
    """What waits for the subscriber's answer; ``expired`` as of the MO it is read for."""

    kind: str  # PENDING_KINDS
    payload: Mapping[str, Any]
    expires_at: datetime
    expired: bool = False


@dataclass(frozen=True, slots=True)
class SessionState:
    """One subscriber's session at one service number (stored or not yet)."""

    msisdn: str
    service_number: str
    tenant_id: str = DEFAULT_TENANT_ID
    menu: str | None = None
    expires_at: datetime | None = None
    pending_kind: str | None = None
    pending_json: str | None = None
    pending_expires_at: datetime | None = None
    stored: bool = False  # a row exists (update) or not (insert)

    @property
    def key(self) -> Key:
        return (self.msisdn, self.service_number)

    def pending_at(self, at: datetime) -> Pending | None:
        """The pending action as of ``at`` (an expired one marked so), or None."""
        if self.pending_kind is None or self.pending_expires_at is None:
            return None
        payload = json.loads(self.pending_json) if self.pending_json else {}
        return Pending(kind=self.pending_kind, payload=payload,
                       expires_at=self.pending_expires_at,
                       expired=at >= self.pending_expires_at)  # fmt: skip

    def menu_at(self, at: datetime) -> str | None:
        """The zone last looked at, while the session lasts."""
        if self.menu is None or self.expires_at is None or at >= self.expires_at:
            return None
        return self.menu

    def with_pending(self, kind: str, payload: Mapping[str, Any], *, at: datetime,
                     seconds: float) -> SessionState:  # fmt: skip
        """This session waiting ``seconds`` from ``at`` for an answer to ``kind``."""
        if kind not in PENDING_KINDS:
            raise ValueError(f"pending kind {kind!r}: expected one of {', '.join(PENDING_KINDS)}")
        return replace(self, pending_kind=kind,
                       pending_json=json.dumps(payload, ensure_ascii=False, sort_keys=True),
                       pending_expires_at=at + timedelta(seconds=seconds),
                       expires_at=self._later(at + timedelta(seconds=seconds)))  # fmt: skip

    def without_pending(self) -> SessionState:
        return replace(self, pending_kind=None, pending_json=None, pending_expires_at=None)

    def with_menu(self, menu: str | None, *, at: datetime, seconds: float) -> SessionState:
        """This session at menu position ``menu``, kept ``seconds`` from ``at``."""
        return replace(self, menu=menu, expires_at=self._later(at + timedelta(seconds=seconds)))

    def _later(self, until: datetime) -> datetime:
        # The row lives as long as the longer of its two clocks (purges go by expires_at).
        return until if self.expires_at is None or until > self.expires_at else self.expires_at


def fresh_session(msisdn: str, service_number: str, *, tenant_id: str) -> SessionState:
    """The session of a subscriber the hall has not seen (nothing stored yet)."""
    return SessionState(msisdn=msisdn, service_number=service_number, tenant_id=tenant_id)


def load_sessions(session: Session, keys: Iterable[Key]) -> dict[Key, SessionState]:
    """The stored sessions of ``keys`` (number, service number), in one query; a key with
    no row is absent from the answer."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    found: dict[Key, SessionState] = {}
    with store_errors(f"reading {len(wanted)} hall session(s)"):
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            return run_reads(connection, [sessions_read(wanted)])[0]
        # SQLite: chunks keep the statement within its parameter limit (PostgreSQL: one
        # array per column, one statement whatever the size).
        step = 400
        for start in range(0, len(wanted), step):
            chunk = wanted[start:start + step]
            keyed = among_rows(connection, (HallSession.msisdn, HallSession.service_number), chunk)
            # Core rows, not ORM objects: nothing here is changed through the session.
            for row in session.execute(select(*HallSession.__table__.c).where(keyed)):
                state = _state_of(row)
                found[state.key] = state
    return found


def sessions_read(keys: Iterable[Key]) -> Read:
    """PostgreSQL: :func:`load_sessions` as one :class:`~jingxin.data.store.frozen.Read`
    (a hall batch sends it with its other reads: :func:`~jingxin.data.store.frozen.run_reads`)."""
    wanted = sorted(set(keys))

    def finish(rows: list[Any]) -> dict[Key, SessionState]:
        states = [_state_of(row) for row in rows]
        return {state.key: state for state in states}

    return Read(_sessions_frozen(), {"msisdns": [m for m, _ in wanted],
                                     "services": [n for _, n in wanted]}, finish)  # fmt: skip


@functools.cache
def _sessions_frozen() -> Frozen:
    """PostgreSQL: :func:`load_sessions`' read over the array parameters ``msisdns`` and
    ``services`` (a key a position), built once: building it each batch was 7 % of a
    small hall batch (py-spy, BENCHMARKS.md)."""
    from sqlalchemy import Text, bindparam, cast, func, tuple_
    from sqlalchemy.dialects.postgresql import ARRAY

    def build() -> Any:
        arrays = [cast(bindparam(name, type_=ARRAY(Text())), ARRAY(Text()))
                  for name in ("msisdns", "services")]  # fmt: skip
        keys = func.unnest(*arrays).table_valued("k0", "k1").render_derived()
        table = HallSession.__table__
        return select(*table.c).where(tuple_(table.c.msisdn, table.c.service_number)  # type: ignore[attr-defined]
                                      .in_(select(*keys.c)))  # fmt: skip

    return Frozen(build)


def _state_of(row: Any) -> SessionState:
    return SessionState(msisdn=row.msisdn, service_number=row.service_number,
                        tenant_id=row.tenant_id, menu=row.menu,
                        expires_at=row.expires_at, pending_kind=row.pending_kind,
                        pending_json=row.pending,
                        pending_expires_at=row.pending_expires_at,
                        stored=True)  # fmt: skip


def save_sessions(session: Session, states: Iterable[SessionState]) -> None:
    """Write ``states`` in one upsert (``INSERT … ON CONFLICT (msisdn, service_number) DO
    UPDATE``, on PostgreSQL and SQLite alike): a stored row is updated, a new one inserted,
    and an insert that races a twin updates the twin. Call inside the caller's transaction."""
    rows = session_rows(states)
    if not rows:
        return
    connection = session.connection()
    with store_errors(f"saving {len(rows)} hall session(s)"):
        if connection.dialect.name == "postgresql":
            connection.execute(text(upsert_sql(prefix="")), session_arrays(rows, prefix=""))
            return
        statement = sqlite.insert(HallSession.__table__)
        statement = statement.on_conflict_do_update(
            index_elements=["msisdn", "service_number"],
            set_={name: statement.excluded[name] for name in _VALUE_COLUMNS})  # fmt: skip
        connection.execute(statement, rows)  # Core: no ORM bulk-insert overhead


def session_rows(states: Iterable[SessionState]) -> list[dict[str, Any]]:
    """The rows :func:`save_sessions` writes: one per key, the last state given winning
    (an upsert may not touch a row twice)."""
    now = utc_now()
    return list({state.key: {"msisdn": state.msisdn, "service_number": state.service_number,
                             **_values(state, now)} for state in states}.values())  # fmt: skip


def upsert_sql(*, prefix: str) -> str:
    """PostgreSQL: the sessions' upsert over one array per column (bound by
    :func:`session_arrays` with the same ``prefix``) - one statement text whatever the
    batch, prepared once, where an executemany ran one upsert per session on the server."""
    arrays = unnest_arrays(HallSession.__table__, _SAVED_COLUMNS, prefix=prefix, alias="u")
    return (f"INSERT INTO hall_sessions ({', '.join(_SAVED_COLUMNS)}) SELECT * FROM {arrays} "
            "ON CONFLICT (msisdn, service_number) DO UPDATE SET "
            + ", ".join(f"{name} = excluded.{name}" for name in _VALUE_COLUMNS))


def session_arrays(rows: list[dict[str, Any]], *, prefix: str) -> dict[str, list[Any]]:
    return array_values(rows, _SAVED_COLUMNS, prefix=prefix)


_VALUE_COLUMNS = ("tenant_id", "menu", "pending_kind", "pending", "pending_expires_at",
                  "expires_at", "updated_at")  # fmt: skip
_SAVED_COLUMNS = ("msisdn", "service_number", *_VALUE_COLUMNS)


def _values(state: SessionState, now: datetime) -> dict[str, Any]:
    return {"tenant_id": state.tenant_id, "menu": state.menu,
            "pending_kind": state.pending_kind, "pending": state.pending_json,
            "pending_expires_at": state.pending_expires_at,
            "expires_at": state.expires_at or now, "updated_at": now}  # fmt: skip


# ------------------------------------------------------------------ one session at a time


def get_session(session: Session, *, msisdn: str, service_number: str,
                tenant_id: str = DEFAULT_TENANT_ID) -> SessionState:  # fmt: skip
    """The session of one subscriber (a fresh one when none is stored)."""
    key = (msisdn, service_number)
    return load_sessions(session, [key]).get(key) or fresh_session(
        msisdn, service_number, tenant_id=tenant_id)


def get_pending(session: Session, *, msisdn: str, service_number: str,
                at: datetime) -> Pending | None:  # fmt: skip
    """What waits for this subscriber's answer as of ``at`` (expired ones marked), or None."""
    return get_session(session, msisdn=msisdn, service_number=service_number).pending_at(at)


def put_pending(session: Session, *, msisdn: str, service_number: str, kind: str,
                payload: Mapping[str, Any], at: datetime, seconds: float,
                tenant_id: str = DEFAULT_TENANT_ID) -> SessionState:  # fmt: skip
    """Make ``kind`` wait ``seconds`` from ``at`` for this subscriber's answer."""
    state = get_session(session, msisdn=msisdn, service_number=service_number,
                        tenant_id=tenant_id).with_pending(kind, payload, at=at, seconds=seconds)
    save_sessions(session, [state])
    return state


def clear_pending(session: Session, *, msisdn: str, service_number: str) -> None:
    """Drop whatever waits for this subscriber's answer (nothing stored: nothing to do)."""
    state = get_session(session, msisdn=msisdn, service_number=service_number)
    if state.stored and state.pending_kind is not None:
        save_sessions(session, [state.without_pending()])


def put_menu(session: Session, *, msisdn: str, service_number: str, menu: str | None,
             at: datetime, seconds: float,
             tenant_id: str = DEFAULT_TENANT_ID) -> SessionState:  # fmt: skip
    """Remember the menu position ``menu`` for ``seconds`` from ``at``."""
    state = get_session(session, msisdn=msisdn, service_number=service_number,
                        tenant_id=tenant_id).with_menu(menu, at=at, seconds=seconds)
    save_sessions(session, [state])
    return state
