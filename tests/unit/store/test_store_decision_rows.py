"""write_decisions checks every row first: one bad row writes nothing and names itself."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from jingxin.data.store import Store, transaction
from jingxin.data.store.audit import write_decisions
from jingxin.data.store.models import DecisionRecord
from jingxin.errors import InputError


def good(i: int) -> dict[str, Any]:
    return {
        "tenant_id": "operator",
        "msisdn": f"1380000{i:04d}",
        "idempotency_key": f"k{i}",
        "source": "campaign",
        "category": "marketing",
        "outcome": "send",
    }


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"outcome": "maybe"}, "decision #2: outcome 'maybe' is not one of send, defer, reject, cancel"),
        ({"msisdn": None}, "decision #2: missing msisdn"),
        ({"colour": "red"}, "decision #2: unknown field(s) colour"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_written(
    store: Store, change: dict[str, Any], says: str
) -> None:
    # Given three rows of which the third is bad
    rows = [good(0), good(1), {**good(2), **change}]
    # When they are written
    with pytest.raises(InputError) as caught, transaction(store.sessions) as session:
        write_decisions(session, decisions=rows)
    # Then the error names the row and the field, and no row was written
    assert str(caught.value) == says
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DecisionRecord)) == 0


def test_reason_lists_are_joined(store: Store) -> None:
    with transaction(store.sessions) as session:
        write_decisions(
            session, decisions=[{**good(0), "outcome": "reject", "reasons": ["OPTED_OUT", "CAP"]}]
        )
    with store.sessions() as session:
        assert session.scalar(select(DecisionRecord.reasons)) == "OPTED_OUT,CAP"
