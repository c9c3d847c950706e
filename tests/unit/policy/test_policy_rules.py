"""Each rule on its own: tables of cases through the single form ``decide``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from jingxin.domain.candidate import Candidate, Decision, Outcome, Reason
from jingxin.policy.config import CapLimits, PolicyConfig, TenantRules
from jingxin.policy.decide import decide
from jingxin.policy.state import (
    BlacklistMark,
    ConsentMark,
    ContactMark,
    ContactState,
    OptOutMark,
)

NUMBER = "+8613812345678"
# 14:00 in Shanghai: outside quiet hours, a Wednesday.
NOW = datetime(2026, 6, 3, 6, 0, tzinfo=UTC)
BEFORE, AFTER = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
CONFIG = PolicyConfig(tenants={"op": TenantRules(implied_consent=True), "shop": TenantRules()})


def candidate(**changes) -> Candidate:
    base = Candidate(NUMBER, "shop", "marketing", "campaign", "k1", source_id=7)
    return replace(base, **changes)


def state(**changes) -> ContactState:
    base = ContactState(
        NUMBER, consents=(ConsentMark("shop", "marketing", BEFORE - timedelta(days=9)),)
    )
    return replace(base, **changes)


def reasons(c: Candidate, s: ContactState, config: PolicyConfig = CONFIG) -> tuple[Reason, ...]:
    return decide(c, s, NOW, config).reasons


SEND_NOW = Decision(Outcome.SEND, NOW)


def test_a_clean_marketing_candidate_is_sent_now():
    assert decide(candidate(), state(), NOW, CONFIG) == SEND_NOW


@pytest.mark.parametrize(
    ("case", "cand", "st", "expected"),
    [
        ("no key", candidate(idempotency_key=""), state(), (Reason.BAD_CANDIDATE,)),
        ("unknown category", candidate(category="promo"), state(), (Reason.BAD_CANDIDATE,)),
        ("no source", candidate(source=""), state(), (Reason.BAD_CANDIDATE,)),
        ("unknown tenant", candidate(tenant_id="ghost"), state(), (Reason.UNKNOWN_TENANT,)),
        ("national format", candidate(msisdn="13812345678"), state(), (Reason.INVALID_NUMBER,)),
        (
            "not a mobile range",
            candidate(msisdn="+8612012345678"),
            state(),
            (Reason.INVALID_NUMBER,),
        ),
        ("marked invalid", candidate(), state(invalid_since=BEFORE), (Reason.INVALID_NUMBER,)),
        ("marked invalid later", candidate(), state(invalid_since=AFTER), ()),
        ("out of service", candidate(), state(in_service=False), (Reason.NOT_IN_SERVICE,)),
        (
            "global blacklist",
            candidate(),
            state(blacklist=(BlacklistMark(None, BEFORE),)),
            (Reason.BLACKLISTED,),
        ),
        (
            "tenant blacklist",
            candidate(),
            state(blacklist=(BlacklistMark("shop", BEFORE),)),
            (Reason.BLACKLISTED,),
        ),
        (
            "other tenant's blacklist",
            candidate(),
            state(blacklist=(BlacklistMark("op", BEFORE),)),
            (),
        ),
        ("key already used", candidate(), state(used_keys=frozenset({"k1"})), (Reason.DUPLICATE,)),
        (
            "global opt-out",
            candidate(),
            state(opt_outs=(OptOutMark(None, None, BEFORE),)),
            (Reason.OPTED_OUT,),
        ),
        (
            "tenant opt-out",
            candidate(),
            state(opt_outs=(OptOutMark("shop", None, BEFORE),)),
            (Reason.OPTED_OUT,),
        ),
        (
            "other tenant's opt-out",
            candidate(),
            state(opt_outs=(OptOutMark("op", None, BEFORE),)),
            (),
        ),
        (
            "notification opt-out",
            candidate(),
            state(opt_outs=(OptOutMark(None, "notification", BEFORE),)),
            (),
        ),
        (
            "opt-out recorded after now",
            candidate(),
            state(opt_outs=(OptOutMark(None, None, AFTER),)),
            (),
        ),
        ("no consent", candidate(), state(consents=()), (Reason.NO_CONSENT,)),
        (
            "consent revoked",
            candidate(),
            state(consents=(ConsentMark("shop", "marketing", BEFORE, BEFORE),)),
            (Reason.NO_CONSENT,),
        ),
        (
            "consent given later",
            candidate(),
            state(consents=(ConsentMark("shop", "marketing", AFTER),)),
            (Reason.NO_CONSENT,),
        ),
        ("implied consent", candidate(tenant_id="op"), state(consents=()), ()),
        (
            "complaint-sensitive",
            candidate(),
            state(complaint_sensitive=True),
            (Reason.COMPLAINT_SENSITIVE,),
        ),
        (
            "complained 10 days ago",
            candidate(),
            state(last_complaint_at=NOW - timedelta(days=10)),
            (Reason.COMPLAINT_COOLOFF,),
        ),
        (
            "complained 31 days ago",
            candidate(),
            state(last_complaint_at=NOW - timedelta(days=31)),
            (),
        ),
        (
            "everything at once",
            candidate(),
            state(in_service=False, consents=(), complaint_sensitive=True),
            (Reason.NOT_IN_SERVICE, Reason.NO_CONSENT, Reason.COMPLAINT_SENSITIVE),
        ),
    ],
)
def test_eligibility_rules(case, cand, st, expected):
    # Given one fact that matters; When decided; Then exactly its reasons (or none)
    assert reasons(cand, st) == expected, case


@pytest.mark.parametrize(
    ("case", "st", "expected"),
    [
        ("opted out of marketing", state(opt_outs=(OptOutMark(None, None, BEFORE),)), Outcome.SEND),
        ("complaint-sensitive", state(complaint_sensitive=True, consents=()), Outcome.SEND),
        ("just complained", state(last_complaint_at=BEFORE), Outcome.SEND),
        ("blacklisted", state(blacklist=(BlacklistMark(None, BEFORE),)), Outcome.REJECT),
        ("out of service", state(in_service=False), Outcome.REJECT),
    ],
)
def test_otp_ignores_marketing_rules_but_not_the_blacklist(case, st, expected):
    assert decide(candidate(category="otp", source="api"), st, NOW, CONFIG).outcome == expected, (
        case
    )


def test_a_notification_opt_out_stops_notifications_only():
    st = state(opt_outs=(OptOutMark("shop", "notification", BEFORE),))
    assert reasons(candidate(category="notification"), st) == (Reason.OPTED_OUT,)
    assert reasons(candidate(), st) == ()


def test_cooloff_days_are_configurable_per_tenant():
    config = PolicyConfig(tenants={"shop": TenantRules(cooloff_days=5)})
    st = state(last_complaint_at=NOW - timedelta(days=6))
    assert reasons(candidate(), st, config) == ()
    assert reasons(candidate(), st) == (Reason.COMPLAINT_COOLOFF,)


def test_caps_count_the_ledger_on_the_local_calendar():
    # Given one marketing contact yesterday and one earlier this week (Mon 1 June 2026)
    week = (ContactMark("marketing", date(2026, 6, 1)), ContactMark("marketing", date(2026, 6, 2)))
    # Then the weekly cap (2) is full; a notification is not capped by default
    assert reasons(candidate(), state(contacts=week)) == (Reason.CAP_WEEK,)
    assert reasons(candidate(category="notification"), state(contacts=week)) == ()
    # And last week's contacts (in May) count for neither this week nor this month
    last_week = tuple(ContactMark("marketing", date(2026, 5, d)) for d in (29, 30, 31))
    assert reasons(candidate(), state(contacts=last_week)) == ()
    monthly = PolicyConfig(
        tenants={"shop": TenantRules(caps={"marketing": CapLimits(day=1, week=5, month=2)})}
    )
    assert reasons(candidate(), state(contacts=last_week + week), monthly) == (Reason.CAP_MONTH,)


def test_campaign_caps_count_that_campaign_only():
    today = date(2026, 6, 3)
    config = PolicyConfig(
        tenants={
            "shop": TenantRules(caps={"marketing": CapLimits()}, campaign_caps=CapLimits(day=1))
        }
    )
    same = state(contacts=(ContactMark("marketing", today, campaign_id=7),))
    other = state(contacts=(ContactMark("marketing", today, campaign_id=8),))
    assert reasons(candidate(), same, config) == (Reason.CAMPAIGN_CAP_DAY,)
    assert reasons(candidate(), other, config) == ()
    # A journey's source id is not a campaign id
    assert reasons(candidate(source="journey"), same, config) == ()


def test_otp_is_never_capped():
    full = state(contacts=tuple(ContactMark("otp", date(2026, 6, 3)) for _ in range(50)))
    zero = PolicyConfig(tenants={"shop": TenantRules(caps={"otp": CapLimits(day=0)})})
    assert decide(candidate(category="otp"), full, NOW, zero) == SEND_NOW


def test_quiet_hours_defaults_and_times():
    rules = TenantRules()
    assert (rules.quiet_start, rules.quiet_end) == (time(21), time(8))
