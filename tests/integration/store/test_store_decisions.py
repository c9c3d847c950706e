"""Decisions are written in bulk (a campaign's worth) and read back per subscriber."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from jingxin.data.store import Store, transaction
from jingxin.data.store.audit import list_decisions, write_decisions
from jingxin.data.store.models import DecisionRecord

ROWS = 10_000
# Generous for a shared 2-core machine; a row-by-row ORM insert takes many times longer.
BUDGET_SECONDS = 10.0


def test_ten_thousand_decisions_are_written_quickly(store: Store) -> None:
    # Given a campaign's worth of decisions
    at = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    rows = [
        {
            "tenant_id": "operator",
            "msisdn": f"138{i:08d}",
            "idempotency_key": f"camp-1:{i}",
            "source": "campaign",
            "category": "marketing",
            "outcome": ("send", "defer", "reject")[i % 3],
            "reasons": ["QUIET_HOURS"] if i % 3 == 1 else [],
            "send_at": at + timedelta(hours=7) if i % 3 == 1 else None,
            "detail": {"rule": "quiet_hours"} if i % 3 == 1 else None,
            "decided_at": at,
        }
        for i in range(ROWS)
    ]
    # When they are written in one call
    started = time.perf_counter()
    with transaction(store.sessions) as session:
        written = write_decisions(session, decisions=rows)
    elapsed = time.perf_counter() - started
    # Then all are there, within the budget
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DecisionRecord)) == ROWS
        deferred = list_decisions(session, msisdn="13800000001", days=1, now=at)
    assert written == ROWS
    assert elapsed < BUDGET_SECONDS, f"{ROWS} decisions took {elapsed:.2f}s"
    assert [(d.outcome, d.reasons, d.detail) for d in deferred] == [
        ("defer", "QUIET_HOURS", {"rule": "quiet_hours"})
    ]
    assert deferred[0].send_at == at + timedelta(hours=7)


def test_list_decisions_looks_back_n_days(store: Store) -> None:
    now = datetime(2026, 5, 31, tzinfo=UTC)
    base = {
        "tenant_id": "operator",
        "msisdn": "13800000000",
        "source": "api",
        "category": "notification",
        "outcome": "send",
    }
    with transaction(store.sessions) as session:
        write_decisions(
            session,
            decisions=[
                {**base, "idempotency_key": f"k{days}", "decided_at": now - timedelta(days=days)}
                for days in (0, 6, 8, 40)
            ],
        )
    with store.sessions() as session:
        week = list_decisions(session, msisdn="13800000000", days=7, now=now)
        month = list_decisions(session, msisdn="13800000000", days=30, now=now)
    assert [d.idempotency_key for d in week] == ["k0", "k6"]
    assert [d.idempotency_key for d in month] == ["k0", "k6", "k8"]
