"""The delivery entry: one message decided and enqueued once per key, bad input refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dispatch_fakes import states

from jingxin.data.store.contact import record_opt_out
from jingxin.dispatch.approval import CategoryError
from jingxin.dispatch.deliver import Delivery, DeliveryContext, deliver_one
from jingxin.errors import InputError, TemplateError

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
NIGHT = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai


def approve(store, code: str, category: str, body: str = "{{ name }}您好，积分可兑换。",
            *, approved: bool = True) -> None:  # fmt: skip
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument
    from jingxin.data.store.tenants import ensure_default_tenant

    with store.transaction() as s:
        ensure_default_tenant(s)
        doc = TemplateDocument(code=code, category=category, body=body, variables={"name": "str"})
        catalog.seed_library(s, documents=[doc], approve_as="reviewer" if approved else None,
                             reviewer=None)  # fmt: skip


def one(**fields) -> Delivery:
    fields.setdefault("msisdn", "13900000001")
    fields.setdefault("source", "api")
    fields.setdefault("idempotency_key", "api:1")
    return Delivery(**fields)


def rows(store, model, *columns):
    from sqlalchemy import select

    with store.sessions() as s:
        return [tuple(r) for r in s.execute(select(*(getattr(model, c) for c in columns)))]


def test_one_message_is_queued_with_its_ledger_and_decision_rows(store) -> None:
    from jingxin.data.store.models import DecisionRecord, LedgerEntry, Message

    # Given an approved notification template
    approve(store, "bill", "notification")
    # When an API sender delivers one message from a service number, in experiment arm B
    got = deliver_one(store, delivery=one(template="bill", variables={"name": "王"},
                                          sender="10658001", arm="B", source_id="req-7"),
                      now=NOON)  # fmt: skip
    # Then it is queued now, and outbox, ledger and decision rows say the same
    assert (got.outcome, got.send_at, got.reasons) == ("queued", NOON, ())
    assert rows(store, Message, "id", "msisdn", "source", "source_id", "sender", "arm") == [
        (got.message_id, "+8613900000001", "api", "req-7", "10658001", "B")]
    assert rows(store, LedgerEntry, "idempotency_key") == [("api:1",)]
    assert rows(store, DecisionRecord, "outcome", "source") == [("send", "api")]
    assert "王您好" in rows(store, Message, "text")[0][0]


def test_the_same_key_twice_is_a_duplicate_with_the_first_id(store) -> None:
    # Given a message delivered under a key
    first = deliver_one(store, delivery=one(text="您的验证码是123456", category="otp"), now=NOON)
    # When the same key is delivered again
    again = deliver_one(store, delivery=one(text="您的验证码是123456", category="otp"), now=NOON)
    # Then nothing more is queued, and the answer names the first message
    assert (again.outcome, again.message_id) == ("duplicate", first.message_id)
    assert states(store) == {"queued": 1}


def test_a_policy_rejection_is_an_outcome_and_is_audited(store) -> None:
    from jingxin.data.store.models import DecisionRecord

    # Given an opted-out number
    with store.transaction() as s:
        record_opt_out(s, msisdn="+8613900000001", source="sms_reply", category="marketing",
                       at=NOON - timedelta(days=1))  # fmt: skip
    # When a marketing reply text is delivered to it
    got = deliver_one(store, delivery=one(text="新品上市", category="marketing",
                                          source="inbox"), now=NOON)  # fmt: skip
    # Then it is rejected with the reason, nothing is queued, the decision is kept
    assert (got.outcome, got.message_id, got.reasons) == ("rejected", None, ("opted_out",))
    assert states(store) == {}
    assert rows(store, DecisionRecord, "outcome", "reasons") == [("reject", "opted_out")]


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({}, InputError, "exactly one of template and text"),
    ({"text": "a", "template": "bill"}, InputError, "exactly one of template and text"),
    ({"text": "a", "msisdn": "12345"}, InputError, "msisdn"),
    ({"text": "a", "source": "pigeon"}, InputError, "source: unknown source 'pigeon'"),
    ({"text": "a", "category": "spam"}, InputError, "category: unknown category 'spam'"),
    ({"text": "a", "tenant_id": "nobody"}, InputError, "tenant: unknown tenant 'nobody'"),
    ({"template": "draft"}, TemplateError, "no approved version"),
    ({"template": "promo", "category": "notification"}, CategoryError,
     "approved as marketing; it cannot be sent as notification"),
])  # fmt: skip
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    store, fields, error, message
) -> None:
    from jingxin.data.store.models import DecisionRecord

    # Given a draft template and an approved marketing one
    approve(store, "draft", "notification", approved=False)
    approve(store, "promo", "marketing")
    # When a bad delivery is asked for, Then it is refused and nothing is written
    with pytest.raises(error, match=message):
        deliver_one(store, delivery=one(variables={"name": "x"}, **fields), now=NOON)
    assert states(store) == {}
    assert rows(store, DecisionRecord, "id") == []


def test_a_stricter_category_is_allowed_and_gets_the_unsubscribe_route(store) -> None:
    from jingxin.data.store.models import Message

    # Given a template approved as a notification
    approve(store, "bill", "notification")
    # When it is sent as marketing (stricter), at noon
    got = deliver_one(store, delivery=one(template="bill", variables={"name": "王"},
                                          category="marketing"), now=NOON)  # fmt: skip
    # Then it goes, with the unsubscribe route
    assert got.outcome == "queued"
    assert rows(store, Message, "text")[0][0].endswith("回T退订")


def test_marketing_at_half_past_eleven_is_deferred_to_the_morning(store) -> None:
    # Given an approved marketing template, 23:30 in Shanghai
    approve(store, "promo", "marketing")
    # When it is delivered
    got = deliver_one(store, delivery=one(template="promo", variables={"name": "王"},
                                          category="marketing"), now=NIGHT)  # fmt: skip
    # Then it waits for the end of quiet hours (08:00 local = 00:00 UTC)
    assert (got.outcome, got.reasons) == ("deferred", ("quiet_hours",))
    assert got.send_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def test_a_context_is_reused_across_deliveries(store) -> None:
    # Given one context for the process
    context = DeliveryContext(policy_defaults={"quiet_start": "21:00", "quiet_end": "08:00"})
    # When two inbox replies go through it
    for i in range(2):
        got = deliver_one(store, delivery=one(text="已收到", source="inbox",
                                              idempotency_key=f"inbox:{i}:reply"),
                          context=context, now=NOON)  # fmt: skip
        # Then each is queued
        assert got.outcome == "queued"
    assert states(store) == {"queued": 2}
