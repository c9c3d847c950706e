"""`jingxin db check` finds contact rows stored in another form than E.164; `db normalise`
rewrites them in one transaction, merging duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.store import Store, transaction
from jingxin.data.store.models import BlacklistEntry, OptOut, SubscriberState
from jingxin.data.store.stored_numbers import normalise_numbers, scan_numbers

JAN, FEB, MAR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3))
E164 = "+8613800138000"


def _legacy_rows(store: Store) -> None:
    """Rows as jingxin stored them before every entry normalised (raw SQL, no checks)."""
    with transaction(store.sessions) as session:
        session.execute(insert(OptOut), [
            {"msisdn": "13800138000", "source": "console", "recorded_at": JAN},
            {"msisdn": "abc", "source": "console", "recorded_at": JAN},
        ])  # fmt: skip
        session.execute(insert(BlacklistEntry), [
            {"msisdn": "13800138000", "tenant_id": None, "added_by": "a", "added_at": FEB},
            {"msisdn": E164, "tenant_id": None, "added_by": "b", "added_at": MAR},
            {"msisdn": "8613800138000", "tenant_id": None, "added_by": "c", "added_at": JAN},
        ])  # fmt: skip
        session.execute(insert(SubscriberState), [
            {"msisdn": "13800138000", "complaint_sensitive": True, "in_service": True,
             "last_complaint_at": JAN, "updated_at": JAN},
            {"msisdn": E164, "complaint_sensitive": False, "in_service": False,
             "updated_at": FEB},
        ])  # fmt: skip


def test_scan_counts_rewritable_and_unusable_rows(store: Store) -> None:
    _legacy_rows(store)
    with store.sessions() as session:
        scans = {s.table: s for s in scan_numbers(session)}
    assert (scans["opt_outs"].rewritable, scans["opt_outs"].invalid) == (1, 1)
    assert scans["blacklist"].rewritable == 2 and scans["subscriber_state"].rewritable == 1
    assert scans["consents"].rewritable == 0


def test_normalise_rewrites_and_merges_sensibly(store: Store) -> None:
    # Given legacy rows, some of them duplicates once normalised
    _legacy_rows(store)
    # When they are normalised
    with transaction(store.sessions) as session:
        tally = normalise_numbers(session)
    # Then the opt-out policy could not see now carries the E.164 number
    with store.sessions() as session:
        assert sorted(session.scalars(select(OptOut.msisdn))) == [E164, "abc"]
        # the blacklist keeps the entry that was in force first
        (entry,) = session.execute(select(BlacklistEntry.msisdn, BlacklistEntry.added_by)).all()
        assert tuple(entry) == (E164, "c")
        # the subscriber keeps the newest answers, and the complaint from either row
        (state,) = session.scalars(select(SubscriberState)).all()
        assert (state.msisdn, state.in_service, state.complaint_sensitive) == (E164, False, True)
        assert state.last_complaint_at == JAN
    assert tally.invalid["opt_outs"] == 1 and sum(tally.merged.values()) == 3
    # And a second run has nothing left to do
    with transaction(store.sessions) as session:
        assert normalise_numbers(session).total == 0


def test_db_check_fails_naming_the_rows_and_fix_repairs_them(store: Store,
                                                              sqlite_url: str) -> None:
    _legacy_rows(store)
    runner = CliRunner()
    # When the store is checked, Then it fails naming the table and an example
    checked = runner.invoke(app, ["db", "check", "--url", sqlite_url])
    assert checked.exit_code != 0
    assert "opt_outs: 1 row(s) not in E.164" in str(checked.exception)
    assert "'13800138000' -> +8613800138000" in str(checked.exception)
    # When it is fixed, Then it counts what it did and the check passes (the unusable row
    # is reported, not failed on)
    fixed = runner.invoke(app, ["db", "check", "--url", sqlite_url, "--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert "rewrote 2 row(s) into E.164" in fixed.output and "merged 3 duplicate(s)" in fixed.output
    again = runner.invoke(app, ["db", "check", "--url", sqlite_url])
    assert again.exit_code == 0, again.output
    assert "warning: opt_outs: 0 row(s) not in E.164, 1 row(s) with no usable number" in again.output
