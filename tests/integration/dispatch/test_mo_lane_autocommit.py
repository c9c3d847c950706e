"""The MO lane on PostgreSQL: a round of single-part MO is one statement in autocommit (no
BEGIN, no COMMIT round trips); a round with a part of a long MO, or a sweep, is a
transaction (a group the part completes is written in the same one)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from jingxin.data.store import open_store
from jingxin.data.store.models import MoUnacked
from jingxin.dispatch import mo_lane
from jingxin.dispatch.mo_inbox import fingerprint, one_statement
from tests.unit.dispatch.dispatch_fakes import HappyChannel, make_worker
from tests.unit.dispatch.mo_parts import smpp_parts


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.dispose()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # PostgreSQL's own path
def test_on_postgresql_a_round_of_short_mo_is_stored_in_autocommit(store) -> None:
    # Given the MO lane's store, watched statement by statement (in a transaction or not)
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    seen: list[tuple[str, bool]] = []
    event.listen(store.engine, "before_cursor_execute", lambda conn, cursor, sql, *a: seen.append(
        (" ".join(sql.split()[:3]), conn.connection.driver_connection.autocommit)))  # fmt: skip
    now = datetime.now(UTC)
    # When a round of short MO is stored, then one with a part of a long MO
    short = [("happy", smpp_parts(f"TD{i}", source=f"86137{i:08d}", at=now)[0]) for i in range(3)]
    assert len(worker.store_mo(parts=short).assembled) == 3
    first, seen[:] = list(seen), []
    long = smpp_parts("退订" * 80, source="8613700000009", at=now)  # its siblings not yet due
    assert len(long) > 1 and worker.store_mo(parts=[("happy", long[0])]).assembled == []
    # Then the short ones took one statement and no transaction (no BEGIN, no COMMIT); the
    # long one's part one statement too (its waiting siblings read by the insert), in a
    # transaction: had it completed its group, the message would be written in the same one
    assert first == [("WITH v AS", True)]
    assert seen == [("WITH v AS", False)]
    # And a sweep is a transaction too, whatever it stores
    assert one_statement(short, expire=False) and not one_statement(short, expire=True)
    assert not one_statement([], expire=False)


def test_acknowledgements_in_a_quiet_moment_are_recorded_on_their_own(store) -> None:
    # Given two SMPP MO stored by the MO lane, both waiting for their acknowledgement
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    now = datetime.now(UTC)
    parts = [("happy", smpp_parts(f"Y{i}", source=f"86137{i:08d}", at=now)[0]) for i in range(2)]
    worker.store_mo(parts=parts)
    # When the first one's acknowledgement is recorded with no part to ride with
    assert worker.release_mo(acks=[(0, *parts[0])]) == 1
    # Then only the second still waits
    with store.sessions() as session:
        waiting = session.execute(select(MoUnacked.fingerprint)).scalars().all()
    assert waiting == [fingerprint(*parts[1])]


def test_the_unacknowledged_parts_are_pruned_at_most_every_ten_minutes(store, monkeypatch) -> None:
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    clock = [1000.0]
    monkeypatch.setattr(mo_lane.time, "monotonic", lambda: clock[0])
    # The first sweep prunes; the next ones within PRUNE_EVERY_S do not; then one does
    assert worker.prune_due() and not worker.prune_due()
    clock[0] += mo_lane.PRUNE_EVERY_S - 1
    assert not worker.prune_due()
    clock[0] += 1
    assert worker.prune_due() and not worker.prune_due()
