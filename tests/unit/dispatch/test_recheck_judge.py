"""The send-time re-check's judgement (no store): policy's own rules, applied to the facts
recorded between a message's decision and its claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jingxin.dispatch.recheck import Decided, judge
from jingxin.policy.config import TenantRules
from jingxin.policy.state import BlacklistMark, ConsentMark, ContactState, OptOutMark

DECIDED = datetime(2026, 6, 1, 14, 30, tzinfo=UTC)  # 22:30 Beijing: deferred to 08:00
OPTED = datetime(2026, 6, 1, 23, 0, tzinfo=UTC)  # 07:00 Beijing
CLAIM = datetime(2026, 6, 2, 0, 0, tzinfo=UTC)  # 08:00 Beijing
NUMBER = "+8613900000001"
STRICT = TenantRules()  # no implied consent
IMPLIED = TenantRules(implied_consent=True)


def _message(category: str = "marketing", tenant: str = "shop") -> Decided:
    return Decided(1, NUMBER, tenant, category, "k1", "campaign", DECIDED)


def _state(**facts) -> ContactState:
    return ContactState(msisdn=NUMBER, **facts)


@pytest.mark.parametrize(
    ("mark", "category", "code", "scope"),
    [
        (OptOutMark("shop", None, OPTED), "marketing", "opted_out", "shop"),
        (OptOutMark(None, None, OPTED), "marketing", "opted_out", "global"),
        (OptOutMark(None, "notification", OPTED), "notification", "opted_out", "global"),
        (BlacklistMark(None, OPTED), "marketing", "blacklisted", "global"),
        (BlacklistMark("shop", OPTED), "notification", "blacklisted", "shop"),
        # Policy applies the blacklist to OTPs too.
        (BlacklistMark(None, OPTED), "otp", "blacklisted", "global"),
    ],
)
def test_a_refusal_recorded_after_the_decision_cancels(mark, category, code, scope) -> None:
    # Given a message decided at 22:30 and a refusal recorded at 07:00
    field = "opt_outs" if isinstance(mark, OptOutMark) else "blacklist"
    state = _state(**{field: (mark,)})
    # When it is claimed at 08:00
    refusal = judge(_message(category), state, now=CLAIM, rules=STRICT)
    # Then it is cancelled with the refusal's code, time and scope
    assert refusal is not None
    assert (refusal.code, refusal.recorded_at, refusal.scope) == (code, OPTED, scope)


@pytest.mark.parametrize(
    ("facts", "category"),
    [
        # Another tenant's opt-out and blacklist entry do not concern this tenant.
        ({"opt_outs": (OptOutMark("bank", None, OPTED),)}, "marketing"),
        ({"blacklist": (BlacklistMark("bank", OPTED),)}, "marketing"),
        # Recorded before the decision: policy already applied it (and let this one go).
        ({"opt_outs": (OptOutMark(None, None, DECIDED - timedelta(minutes=1)),)}, "marketing"),
        # Recorded exactly at the decision instant: policy saw it.
        ({"blacklist": (BlacklistMark(None, DECIDED),)}, "marketing"),
        # Recorded after the claim instant: not in force yet.
        ({"opt_outs": (OptOutMark(None, None, CLAIM + timedelta(seconds=1)),)}, "marketing"),
        # An OTP is asked for in that very moment: policy sends it despite opt-outs.
        ({"opt_outs": (OptOutMark(None, None, OPTED),)}, "otp"),
        ({"opt_outs": (OptOutMark("shop", "otp", OPTED),)}, "otp"),
        # A NULL-category opt-out covers marketing only, as in policy.
        ({"opt_outs": (OptOutMark(None, None, OPTED),)}, "notification"),
        # An opt-out of notifications leaves marketing alone.
        ({"opt_outs": (OptOutMark("shop", "notification", OPTED),)}, "marketing"),
    ],
)
def test_what_policy_would_still_send_is_not_cancelled(facts, category) -> None:
    # Given facts policy would not refuse this message for (or already weighed)
    # When it is claimed
    refusal = judge(_message(category), _state(**facts), now=CLAIM, rules=STRICT)
    # Then it goes
    assert refusal is None


def _consent(tenant="shop", revoked=OPTED, given=DECIDED - timedelta(days=30)):
    return ConsentMark(tenant, "marketing", given, revoked)


def test_a_consent_withdrawn_after_the_decision_cancels_marketing() -> None:
    # Given marketing decided on a consent that was withdrawn at 07:00
    state = _state(consents=(_consent(),))
    # When it is claimed at 08:00 for a tenant without implied consent
    refusal = judge(_message(), state, now=CLAIM, rules=STRICT)
    # Then it is cancelled as consent_withdrawn, at the withdrawal's time
    assert refusal is not None
    assert (refusal.code, refusal.recorded_at, refusal.scope) == ("consent_withdrawn", OPTED, "shop")


@pytest.mark.parametrize(
    ("consents", "rules"),
    [
        # Implied consent: policy does not need the recorded one.
        ((_consent(),), IMPLIED),
        # Another consent of the same tenant and category still holds.
        ((_consent(), _consent(revoked=None)), STRICT),
        # Withdrawn before the decision: policy already weighed it (the message went on
        # other grounds).
        ((_consent(revoked=DECIDED - timedelta(hours=1)),), STRICT),
        # The tenant is no longer known: nothing new to judge about its consent.
        ((_consent(),), None),
    ],
)
def test_a_withdrawal_policy_would_not_refuse_for_does_not_cancel(consents, rules) -> None:
    refusal = judge(_message(), _state(consents=consents), now=CLAIM, rules=rules)
    assert refusal is None


def test_a_withdrawn_consent_does_not_stop_a_notification() -> None:
    # Given a notification and its tenant's withdrawn marketing consent
    state = _state(consents=(_consent(),))
    # When it is claimed: consent is needed for marketing only
    assert judge(_message("notification"), state, now=CLAIM, rules=STRICT) is None


def test_every_refusal_is_reported_the_first_in_policy_order_is_the_code() -> None:
    # Given a global opt-out at 07:00 and a blacklist entry at 07:30
    state = _state(
        opt_outs=(OptOutMark(None, None, OPTED),),
        blacklist=(BlacklistMark(None, OPTED + timedelta(minutes=30)),),
    )
    # When it is claimed
    refusal = judge(_message(), state, now=CLAIM, rules=STRICT)
    # Then both reasons are kept, blacklisted first (policy's order)
    assert refusal is not None
    assert refusal.reasons == ("blacklisted", "opted_out")
    assert refusal.recorded_at == OPTED + timedelta(minutes=30)
