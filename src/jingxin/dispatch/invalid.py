"""Invalid numbers: permanent delivery failures counted per number, marked past a threshold.

A final receipt whose state is in ``statuses`` (by default ``undeliverable``: unknown
subscriber, absent for long) adds one to the number's count in ``number_failures``; a
delivery sets it back to zero. At ``threshold`` the number gets
``subscriber_state.invalid_since`` (and a reason), which policy reads to keep it out -
until the subscriber's data changes and the flag is cleared there - or the number itself
writes to us: an MO proves it is in service (:func:`seen_alive`, run before the handlers
answer it, so the reply is not refused as one to a dead number).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jingxin.data.store.bulk import among
from jingxin.data.store.models import NumberFailure, SubscriberState
from jingxin.dispatch.receipts import Finished


def record_outcomes(
    conn: Connection, *, finished: Sequence[Finished], now: datetime, threshold: int,
    statuses: Sequence[str] = ("undeliverable",),
) -> list[str]:  # fmt: skip
    """Count failures and deliveries of ``finished``; returns the numbers newly marked invalid."""
    failed = {f.msisdn: f for f in finished if f.state in statuses}
    delivered = {f.msisdn for f in finished if f.state == "delivered"} - set(failed)
    # A few statements, not one per number: most have no count to reset. PostgreSQL takes
    # the numbers as one array parameter; SQLite in chunks below its variable limit.
    numbers = sorted(delivered)
    step = len(numbers) if conn.dialect.name == "postgresql" else 500
    for start in range(0, len(numbers), max(step, 1)):
        conn.execute(
            update(NumberFailure)
            .where(among(conn, NumberFailure.msisdn, numbers[start : start + step]),
                   NumberFailure.failures != 0)
            .values(failures=0)
        )  # fmt: skip
    if not failed:
        return []
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [{"msisdn": m, "failures": 1, "last_status": f.state, "last_error": f.error_code,
             "last_at": now} for m, f in failed.items()]  # fmt: skip
    stmt = dialect.insert(NumberFailure)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["msisdn"],
        set_={"failures": NumberFailure.failures + 1, "last_status": stmt.excluded.last_status,
              "last_error": stmt.excluded.last_error, "last_at": stmt.excluded.last_at},
    ), rows)  # fmt: skip
    over = conn.execute(
        select(NumberFailure.msisdn, NumberFailure.failures).where(
            NumberFailure.msisdn.in_(list(failed)), NumberFailure.failures >= threshold
        )
    ).all()
    if not over:
        return []
    marks = [{"msisdn": m, "invalid_since": now, "updated_at": now,
              "invalid_reason": f"{n} permanent delivery failures (last: {failed[m].state}"
                                f"{' ' + failed[m].error_code if failed[m].error_code else ''})"}
             for m, n in over]  # fmt: skip
    state = dialect.insert(SubscriberState)
    conn.execute(state.on_conflict_do_update(
        index_elements=["msisdn"],
        set_={"invalid_since": state.excluded.invalid_since,
              "invalid_reason": state.excluded.invalid_reason, "updated_at": now},
        where=SubscriberState.invalid_since.is_(None),
    ), marks)  # fmt: skip
    return [m for m, _ in over]


def seen_alive(conn: Connection, *, msisdns: Sequence[str], now: datetime) -> int:
    """An MO from each of ``msisdns`` proves the number in service: its failure count goes
    back to zero and an invalid mark is cleared. Returns how many marks were cleared."""
    numbers = sorted(set(msisdns))
    if not numbers:
        return 0
    cleared = 0
    step = len(numbers) if conn.dialect.name == "postgresql" else 500
    for start in range(0, len(numbers), step):
        chunk = numbers[start : start + step]
        failures, marks = alive_updates(among(conn, NumberFailure.msisdn, chunk),
                                        among(conn, SubscriberState.msisdn, chunk), now=now)  # fmt: skip
        conn.execute(failures)
        cleared += conn.execute(marks).rowcount
    return cleared


def alive_updates(failures_of: Any, marks_of: Any, *, now: datetime) -> tuple[Any, Any]:
    """The two updates of :func:`seen_alive` for the numbers the conditions ``failures_of``
    (on ``number_failures.msisdn``) and ``marks_of`` (on ``subscriber_state.msisdn``) select:
    the count back to zero, the invalid mark cleared. On PostgreSQL the handler lane runs
    them as data-modifying ``WITH`` parts of its pending read (no round trip of their own)."""
    return (
        update(NumberFailure).where(failures_of, NumberFailure.failures != 0).values(failures=0),
        update(SubscriberState).where(marks_of, SubscriberState.invalid_since.is_not(None))
        .values(invalid_since=None, invalid_reason=None, updated_at=now),
    )  # fmt: skip
