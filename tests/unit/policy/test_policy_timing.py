"""Quiet hours, roaming clocks, blackout days and wanted times (single form)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from jingxin.domain.candidate import Candidate, Decision, Outcome, Reason
from jingxin.policy.config import CapLimits, PolicyConfig, TenantRules
from jingxin.policy.decide import decide
from jingxin.policy.localtime import country_zone, subscriber_zone
from jingxin.policy.state import ContactMark, ContactState

NUMBER = "+8613812345678"
CONFIG = PolicyConfig(tenants={"op": TenantRules(implied_consent=True)})


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def marketing(**kw) -> Candidate:
    return Candidate(NUMBER, "op", kw.pop("category", "marketing"), "campaign", "k", **kw)


@pytest.mark.parametrize(
    ("now", "state", "expected"),
    [
        # 22:30 Shanghai -> 08:00 next morning Shanghai (00:00 UTC)
        (
            utc(2026, 6, 1, 14, 30),
            ContactState(NUMBER),
            Decision(Outcome.DEFER, utc(2026, 6, 2, 0, 0), (Reason.QUIET_HOURS,)),
        ),
        # 06:00 Shanghai -> 08:00 the same morning
        (
            utc(2026, 6, 1, 22, 0),
            ContactState(NUMBER),
            Decision(Outcome.DEFER, utc(2026, 6, 2, 0, 0), (Reason.QUIET_HOURS,)),
        ),
        # 20:59 Shanghai: still allowed
        (
            utc(2026, 6, 1, 12, 59),
            ContactState(NUMBER),
            Decision(Outcome.SEND, utc(2026, 6, 1, 12, 59)),
        ),
        # 08:00 sharp: allowed
        (
            utc(2026, 6, 2, 0, 0),
            ContactState(NUMBER),
            Decision(Outcome.SEND, utc(2026, 6, 2, 0, 0)),
        ),
        # Roaming in New York (EDT, UTC-4): 22:30 Shanghai is 10:30 there -> send now
        (
            utc(2026, 6, 1, 14, 30),
            ContactState(NUMBER, roaming_country="US"),
            Decision(Outcome.SEND, utc(2026, 6, 1, 14, 30)),
        ),
        # Roaming in New York at 02:00 UTC = 22:00 EDT -> 08:00 EDT = 12:00 UTC
        (
            utc(2026, 6, 2, 2, 0),
            ContactState(NUMBER, roaming_country="US"),
            Decision(Outcome.DEFER, utc(2026, 6, 2, 12, 0), (Reason.QUIET_HOURS,)),
        ),
        # The visited country wins over the home zone
        (
            utc(2026, 6, 1, 14, 30),
            ContactState(NUMBER, roaming_country="GB", timezone="Asia/Shanghai"),
            Decision(Outcome.SEND, utc(2026, 6, 1, 14, 30)),
        ),
        # Unknown country: the subscriber's own zone, then the tenant's default
        (
            utc(2026, 6, 1, 14, 30),
            ContactState(NUMBER, roaming_country="ZZ", timezone="Bad/Zone"),
            Decision(Outcome.DEFER, utc(2026, 6, 2, 0, 0), (Reason.QUIET_HOURS,)),
        ),
    ],
)
def test_marketing_waits_for_the_end_of_local_quiet_hours(now, state, expected):
    assert decide(marketing(), state, now, CONFIG) == expected


def test_quiet_hours_end_across_a_dst_change():
    # Given London at 23:30 on Saturday 28 March 2026 (GMT); clocks go forward that night
    now = utc(2026, 3, 28, 23, 30)
    decision = decide(marketing(), ContactState(NUMBER, roaming_country="GB"), now, CONFIG)
    # Then 08:00 BST on Sunday is 07:00 UTC
    assert decision == Decision(Outcome.DEFER, utc(2026, 3, 29, 7, 0), (Reason.QUIET_HOURS,))


def test_notifications_wait_only_if_the_tenant_says_so():
    now = utc(2026, 6, 1, 14, 30)  # 22:30 Shanghai
    plain = decide(marketing(category="notification"), ContactState(NUMBER), now, CONFIG)
    assert plain == Decision(Outcome.SEND, now)
    strict = PolicyConfig(tenants={"op": TenantRules(notification_quiet_hours=True)})
    assert (
        decide(marketing(category="notification"), ContactState(NUMBER), now, strict).outcome
        == Outcome.DEFER
    )


def test_otp_is_never_deferred():
    now = utc(2026, 6, 1, 17, 0)  # 01:00 Shanghai
    assert decide(marketing(category="otp"), ContactState(NUMBER), now, CONFIG) == Decision(
        Outcome.SEND, now
    )


def test_a_later_wanted_time_is_kept_and_checked():
    now = utc(2026, 6, 1, 2, 0)  # 10:00 Shanghai
    later = utc(2026, 6, 1, 5, 0)
    assert decide(marketing(wanted_at=later), ContactState(NUMBER), now, CONFIG) == Decision(
        Outcome.SEND, later
    )
    night = utc(2026, 6, 1, 15, 0)  # 23:00 Shanghai
    assert decide(marketing(wanted_at=night), ContactState(NUMBER), now, CONFIG).send_at == utc(
        2026, 6, 2, 0, 0
    )
    past = utc(2026, 5, 1)
    assert decide(marketing(wanted_at=past), ContactState(NUMBER), now, CONFIG).send_at == now


def test_a_deferral_past_midnight_rechecks_caps_on_the_deferred_day():
    # Given a marketing contact already made on 2 June (local), and the daily cap of 1
    state = ContactState(NUMBER, contacts=(ContactMark("marketing", date(2026, 6, 2)),))
    rules = TenantRules(implied_consent=True, caps={"marketing": CapLimits(day=1)})
    config = PolicyConfig(tenants={"op": rules})
    # When a candidate at 22:30 on 1 June is deferred to 08:00 on 2 June
    decision = decide(marketing(), state, utc(2026, 6, 1, 14, 30), config)
    # Then the cap of 2 June applies
    assert decision == Decision(Outcome.REJECT, None, (Reason.CAP_DAY,))


BLACKOUT = frozenset({date(2026, 10, 1), date(2026, 10, 2)})


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            TenantRules(implied_consent=True, blackout_dates=BLACKOUT),
            Decision(Outcome.DEFER, utc(2026, 10, 3, 0, 0), (Reason.BLACKOUT,)),
        ),
        (
            TenantRules(implied_consent=True, blackout_dates=BLACKOUT, blackout_action="reject"),
            Decision(Outcome.REJECT, None, (Reason.BLACKOUT,)),
        ),
        (
            TenantRules(implied_consent=True, blackout_dates=BLACKOUT, blackout_horizon_days=1),
            Decision(Outcome.REJECT, None, (Reason.BLACKOUT,)),
        ),
    ],
)
def test_blackout_days_defer_to_the_next_allowed_morning_or_reject(rules, expected):
    now = utc(2026, 10, 1, 3, 0)  # 11:00 on 1 October in Shanghai
    assert (
        decide(marketing(), ContactState(NUMBER), now, PolicyConfig(tenants={"op": rules}))
        == expected
    )


def test_blackout_does_not_touch_notifications():
    rules = TenantRules(implied_consent=True, blackout_dates=BLACKOUT)
    now = utc(2026, 10, 1, 3, 0)
    got = decide(
        marketing(category="notification"),
        ContactState(NUMBER),
        now,
        PolicyConfig(tenants={"op": rules}),
    )
    assert got == Decision(Outcome.SEND, now)


@pytest.mark.parametrize(
    ("country", "zone"),
    [
        ("US", "America/New_York"),
        ("gb", "Europe/London"),
        ("RU", "Europe/Moscow"),
        ("JP", "Asia/Tokyo"),
        ("ZZ", None),
        (None, None),
    ],
)
def test_country_zones(country, zone):
    assert country_zone(country) == zone


def test_subscriber_zone_falls_back_in_order():
    assert subscriber_zone("TH", "Asia/Shanghai", "UTC") == "Asia/Bangkok"
    assert subscriber_zone(None, "Asia/Tokyo", "UTC") == "Asia/Tokyo"
    assert subscriber_zone(None, "Nowhere/Land", "UTC") == "UTC"


def test_quiet_hours_can_be_switched_off():
    rules = TenantRules(implied_consent=True, quiet_start=time(0), quiet_end=time(0))
    now = utc(2026, 6, 1, 18, 0)  # 02:00 Shanghai
    assert (
        decide(marketing(), ContactState(NUMBER), now, PolicyConfig(tenants={"op": rules})).outcome
        == Outcome.SEND
    )
