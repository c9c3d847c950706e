"""The send-time re-check in the claim, on SQLite and PostgreSQL: a message deferred to
08:00 and a refusal recorded at 07:00 meet at the 08:00 claim."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.store import open_store
from jingxin.data.store.audit import list_decisions
from jingxin.data.store.contact import (
    add_to_blacklist,
    record_consent,
    record_opt_out,
    revoke_consent,
)
from jingxin.data.store.models import Message, utc_now
from jingxin.data.store.tenants import create_tenant, ensure_default_tenant
from jingxin.dispatch.claim import claim_batch
from jingxin.dispatch.outbox import OutboxEntry, enqueue

# Decided "last night" (deferred by quiet hours), refusals "at 07:00", claimed "at 08:00".
CLAIM = utc_now().replace(microsecond=0) - timedelta(minutes=5)
OPTED = CLAIM - timedelta(hours=1)
DECIDED = CLAIM - timedelta(hours=9, minutes=30)


def _number(i: int) -> str:
    return f"+86139000000{i:02d}"


# number -> (category, what happened after the decision, error code it cancels with or None)
CASES = {
    1: ("marketing", "tenant opt-out", "opted_out"),
    2: ("marketing", "global opt-out", "opted_out"),
    3: ("notification", "global blacklist", "blacklisted"),
    4: ("marketing", "consent withdrawn", "consent_withdrawn"),
    5: ("marketing", "another tenant's opt-out", None),
    6: ("marketing", "opt-out before the decision", None),
    7: ("otp", "global opt-out", None),
    8: ("otp", "tenant blacklist", "blacklisted"),
    9: ("marketing", "nothing", None),
}


def _given(session) -> None:
    ensure_default_tenant(session)
    create_tenant(session, tenant_id="shop", name="Shop", signature="【商城】")
    create_tenant(session, tenant_id="bank", name="Bank", signature="【银行】")
    for i in (1, 2, 3, 5, 6, 7, 8, 9):
        record_consent(session, tenant_id="shop", msisdn=_number(i), category="marketing",
                       channel="web", wording="同意", given_at=DECIDED - timedelta(days=9))  # fmt: skip
    record_consent(session, tenant_id="shop", msisdn=_number(4), category="marketing",
                   channel="web", wording="同意", given_at=DECIDED - timedelta(days=9))  # fmt: skip
    record_opt_out(session, msisdn=_number(1), source="sms_reply", tenant_id="shop", at=OPTED)
    record_opt_out(session, msisdn=_number(2), source="sms_reply", at=OPTED)
    add_to_blacklist(session, msisdn=_number(3), added_by="ops", at=OPTED)
    revoke_consent(session, tenant_id="shop", msisdn=_number(4), category="marketing", at=OPTED)
    record_opt_out(session, msisdn=_number(5), source="sms_reply", tenant_id="bank", at=OPTED)
    record_opt_out(session, msisdn=_number(6), source="sms_reply",
                   at=DECIDED - timedelta(minutes=1))  # fmt: skip
    record_opt_out(session, msisdn=_number(7), source="sms_reply", at=OPTED)
    add_to_blacklist(session, msisdn=_number(8), added_by="ops", tenant_id="shop", at=OPTED)


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def test_refusals_since_the_decision_cancel_at_claim_and_why_shows_them(store, store_url):
    # Given shop's messages decided last night, deferred to 08:00, and the night's refusals
    entries = [OutboxEntry(tenant_id="shop", msisdn=_number(i), category=category, text="x",
                           idempotency_key=f"k{i}", scheduled_at=CLAIM - timedelta(minutes=1))
               for i, (category, _, _) in CASES.items()]  # fmt: skip
    enqueue(store, entries=entries, now=DECIDED)
    with store.transaction() as session:
        _given(session)
    # When a worker claims at 08:00
    batch = claim_batch(store, worker="w", limit=50, now=CLAIM)
    # Then exactly the messages policy would now refuse are cancelled, with their code
    cancelled = {r.message.msisdn: r.code for r in batch.cancelled}
    assert cancelled == {_number(i): code for i, (_, _, code) in CASES.items() if code}
    assert sorted(c.msisdn for c in batch.messages) == sorted(
        _number(i) for i, (_, _, code) in CASES.items() if code is None
    )
    with store.sessions() as session:
        rows = {m.msisdn: m for m in session.scalars(select(Message))}
    for i, (_, _, code) in CASES.items():
        row = rows[_number(i)]
        if code:
            # ... final, never attempted, nothing left for a worker to submit
            assert (row.state, row.error_code, row.attempts) == ("rejected", code, 0)
            assert row.finished_at == CLAIM and row.submitting_at is None
        else:
            assert row.state == "submitting"
    # ... and each cancellation is in the decision log with its scope and time
    with store.sessions() as session:
        (tenant_opt_out,) = list_decisions(session, msisdn=_number(1))
        (global_opt_out,) = list_decisions(session, msisdn=_number(2))
    assert (tenant_opt_out.outcome, tenant_opt_out.reasons) == ("cancel", "opted_out")
    assert tenant_opt_out.detail["scope"] == "shop"
    assert global_opt_out.detail["scope"] == "global"
    assert global_opt_out.detail["recorded_at"] == OPTED.isoformat()
    # ... which `jingxin why` shows
    result = CliRunner().invoke(app, ["why", _number(4), "--url", store_url],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cancel" in result.output and "consent_withdrawn" in result.output
    assert "after the decision" in result.output  # when the refusal was recorded


def test_a_second_claim_finds_nothing_more_to_cancel(store):
    # Given a message cancelled by a global opt-out at the first claim
    enqueue(store, entries=[OutboxEntry(tenant_id="default", msisdn=_number(1),
                                        category="marketing", text="x", idempotency_key="a")],
            now=DECIDED)  # fmt: skip
    with store.transaction() as session:
        ensure_default_tenant(session)
        record_opt_out(session, msisdn=_number(1), source="sms_reply", at=OPTED)
    first = claim_batch(store, worker="w", limit=10, now=CLAIM)
    # When another worker claims later
    second = claim_batch(store, worker="w2", limit=10, now=CLAIM + timedelta(minutes=1))
    # Then the cancelled message is gone for good: claimed by no one, cancelled once
    assert [r.code for r in first.cancelled] == ["opted_out"] and not first.messages
    assert second.messages == [] and second.cancelled == []
