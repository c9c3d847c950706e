"""Noted opt-outs (the unsubscribe handler's), on SQLite and PostgreSQL: an opt-out whose
note is already recorded for its number is skipped and the call says which went in; the
checks are those of any opt-out (a bad entry refuses the whole batch, nothing written)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from jingxin.data.store.contact import record_noted_opt_outs
from jingxin.data.store.models import OptOut
from jingxin.errors import InputError

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def rows(store) -> list[tuple]:
    with store.sessions() as s:
        return [tuple(r) for r in s.execute(select(OptOut.msisdn, OptOut.tenant_id, OptOut.note,
                                                   OptOut.source).order_by(OptOut.id))]  # fmt: skip


def record(store, entries):
    with store.transaction() as session:
        return record_noted_opt_outs(session, source="sms_reply", at=NOW, entries=entries)


def test_a_note_already_recorded_is_skipped_and_the_rest_go_in(store) -> None:
    # Given two unsubscribes, one in national form
    first = record(store, [{"msisdn": "13912345678", "tenant_id": "operator", "note": "MO 1"},
                           {"msisdn": "+8613912345679", "note": "MO 2"}])  # fmt: skip
    assert first == {("+8613912345678", "MO 1"), ("+8613912345679", "MO 2")}
    # When the first is recorded again (a re-run after a crash) with a new one, and the
    # same number unsubscribes again by another MO
    again = record(store, [{"msisdn": "+8613912345678", "tenant_id": "operator", "note": "MO 1"},
                           {"msisdn": "+8613912345678", "tenant_id": "operator", "note": "MO 3"}])  # fmt: skip
    # Then only the new note goes in
    assert again == {("+8613912345678", "MO 3")}
    assert rows(store) == [("+8613912345678", "operator", "MO 1", "sms_reply"),
                           ("+8613912345679", None, "MO 2", "sms_reply"),
                           ("+8613912345678", "operator", "MO 3", "sms_reply")]  # fmt: skip


def test_a_bad_entry_refuses_the_batch_whole(store) -> None:
    for bad in ({"msisdn": "12345", "note": "MO 9"},
                {"msisdn": "13912345670", "tenant_id": "nobody", "note": "MO 9"}):  # fmt: skip
        with pytest.raises(InputError, match="opt_out"):
            record(store, [{"msisdn": "13912345671", "note": "MO 8"}, bad])
    assert rows(store) == []
    assert record(store, []) == set()


def test_unchecked_tenants_are_recorded_as_named_and_bad_numbers_still_refused(store) -> None:
    # Given the unsubscribe handler's call, which records a no whatever tenant it names
    def unchecked(entries):
        with store.reading() as session:
            return record_noted_opt_outs(session, source="sms_reply", at=NOW,
                                         check_tenants=False, entries=entries)  # fmt: skip

    # When a tenant the store does not know is named
    assert unchecked([{"msisdn": "13912345672", "tenant_id": "gone", "note": "MO 7"}]) == {
        ("+8613912345672", "MO 7")}  # fmt: skip
    # Then it is recorded; a malformed tenant id or number still refuses the batch whole
    for bad in ({"msisdn": "13912345673", "tenant_id": "no spaces!", "note": "MO 8"},
                {"msisdn": "12345", "tenant_id": "gone", "note": "MO 8"}):  # fmt: skip
        with pytest.raises(InputError, match="opt_out"):
            unchecked([{"msisdn": "13912345674", "tenant_id": "gone", "note": "MO 8"}, bad])
    assert rows(store) == [("+8613912345672", "gone", "MO 7", "sms_reply")]
