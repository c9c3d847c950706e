"""Enqueueing: bulk, idempotent, validated; the state machine."""

from __future__ import annotations

import pytest
from dispatch_fakes import entries, states

from jingxin.dispatch.outbox import OutboxEntry, can_move, enqueue, stats
from jingxin.errors import InputError


def test_enqueue_is_idempotent_by_key(store) -> None:
    first = enqueue(store, entries=entries(1200))
    again = enqueue(store, entries=entries(1300))
    assert (first.inserted, first.duplicates) == (1200, 0)
    assert (again.inserted, again.duplicates) == (100, 1200)
    assert states(store) == {"queued": 1300}


def test_a_bad_entry_is_named_and_its_chunk_is_not_half_written(store) -> None:
    bad = entries(3) + [
        OutboxEntry(
            tenant_id="t",
            msisdn="+8613800000009",
            category="spam",
            text="x",
            idempotency_key="bad",
        )
    ]
    with pytest.raises(InputError, match=r"entry #4 \(bad\): unknown category 'spam'"):
        enqueue(store, entries=bad)
    assert states(store) == {}


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ("queued", "submitting", True),
        ("submitting", "submitted", True),
        ("submitting", "queued", True),
        ("submitted", "delivered", True),
        ("submitted", "queued", False),
        ("delivered", "failed", False),
        ("queued", "delivered", False),
    ],
)
def test_transitions(old: str, new: str, ok: bool) -> None:
    assert can_move(old, new) is ok


def test_stats_groups_by_lane_and_state(store) -> None:
    enqueue(store, entries=entries(3) + entries(2, category="otp", prefix="o"))
    got = {(s.lane, s.state): s.count for s in stats(store)}
    assert got == {("otp", "queued"): 2, ("marketing", "queued"): 3}
    assert all(
        s.oldest is not None and s.oldest.tzinfo is not None for s in stats(store)
    )
