"""Hypothesis strategies for policy tests: candidates, contact states, tenant rules, instants.

Pools are small on purpose, so that random batches collide: the same subscriber, the same
campaign, the same idempotency key, the same local day.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import strategies as st

from jingxin.domain.candidate import Candidate
from jingxin.policy.config import CapLimits, PolicyConfig, TenantRules
from jingxin.policy.state import (
    BlacklistMark,
    ConsentMark,
    ContactMark,
    ContactState,
    OptOutMark,
)

MSISDNS = ["+8613800000001", "+8613800000002", "+8615900000003", "+8618600000004"]
BAD_MSISDNS = ["13800000001", "+8612300000000", "+8613800"]
TENANTS = ["op", "shop"]
ZONES = [None, "Asia/Shanghai", "America/New_York", "Europe/London", "Not/AZone"]
COUNTRIES = [None, "US", "GB", "AU", "JP", "ZZ", "cn"]

# Around DST changes too (US: March, November; UK: March, October).
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


MINUTES = st.integers(-4 * 24 * 60, 4 * 24 * 60)
MAYBE_MINUTES = st.none() | MINUTES
DAYS = st.integers(-40, 10)
TENANT_OR_ALL = st.sampled_from([None, *TENANTS])
BLACKLIST = st.sampled_from([[]] * 6 + [[(None, -60)], [("op", -60)], [("shop", 60)]])
CONSENTS = st.lists(
    st.tuples(
        st.sampled_from(TENANTS),
        st.sampled_from(["marketing", "notification"]),
        MINUTES,
        MAYBE_MINUTES,
    ),
    max_size=3,
)
OPT_OUTS = st.lists(
    st.tuples(TENANT_OR_ALL, st.sampled_from([None, "marketing", "notification", "otp"]), MINUTES),
    max_size=2,
)
CONTACTS = st.lists(
    st.tuples(
        st.sampled_from(["marketing", "notification", "otp"]), DAYS, st.sampled_from([None, 1, 2])
    ),
    max_size=4,
)
USED_KEYS = st.lists(st.sampled_from(["k0", "a", "b"]), max_size=2)


def at(now: datetime, minutes: int | None) -> datetime | None:
    return None if minutes is None else now + timedelta(minutes=minutes)


limits = st.builds(
    CapLimits,
    day=st.none() | st.integers(0, 2),
    week=st.none() | st.integers(0, 3),
    month=st.none() | st.integers(0, 5),
)


@st.composite
def tenant_rules(draw, now: datetime) -> TenantRules:
    quiet_start = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    quiet_end = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    return TenantRules(
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        notification_quiet_hours=draw(st.booleans()),
        caps={"marketing": draw(limits), "notification": draw(limits)},
        campaign_caps=draw(limits),
        blackout_dates=frozenset(
            (now + timedelta(days=d)).date() for d in draw(st.lists(st.integers(-1, 5), max_size=4))
        ),
        blackout_action=draw(st.sampled_from(["defer", "reject"])),
        blackout_horizon_days=draw(st.integers(1, 3)),
        cooloff_days=draw(st.integers(0, 40)),
        implied_consent=draw(st.booleans()),
        default_timezone=draw(st.sampled_from(["Asia/Shanghai", "Asia/Tokyo", "America/Chicago"])),
    )


@st.composite
def configs(draw, now: datetime) -> PolicyConfig:
    return PolicyConfig(tenants={t: draw(tenant_rules(now)) for t in TENANTS})


NUMBERS = st.sampled_from(MSISDNS * 6 + BAD_MSISDNS)
TENANT_IDS = st.sampled_from(TENANTS * 6 + ["ghost"])
CATEGORIES = st.sampled_from(["otp", "notification"] * 3 + ["marketing"] * 8 + ["bogus"])
SOURCES = st.sampled_from(["campaign"] * 8 + ["journey", "api", "hall", ""])
KEYS = st.tuples(st.integers(0, 15), st.uuids()).map(
    lambda t: ["", "k0", "a"][t[0]] if t[0] < 3 else t[1].hex[:8]
)
SCORES = st.sampled_from([0.0, 0.5, 1.0, -1.0, float("nan")])
CAMPAIGN_IDS = st.sampled_from([None, 1, 2])


@st.composite
def candidates(draw, now: datetime) -> Candidate:
    return Candidate(
        msisdn=draw(NUMBERS),
        tenant_id=draw(TENANT_IDS),
        category=draw(CATEGORIES),
        source=draw(SOURCES),
        idempotency_key=draw(KEYS),
        source_id=draw(CAMPAIGN_IDS),
        priority=draw(st.integers(0, 2)),
        score=draw(SCORES),
        wanted_at=at(now, draw(MAYBE_MINUTES)),
    )


@st.composite
def contact_states(draw, msisdn: str, now: datetime) -> ContactState:
    return ContactState(
        msisdn=msisdn,
        in_service=draw(st.sampled_from([True] * 9 + [False])),
        invalid_since=at(now, draw(st.sampled_from([None] * 8 + [-60, 60]))),
        blacklist=tuple(BlacklistMark(t, at(now, m)) for t, m in draw(BLACKLIST)),
        consents=tuple(ConsentMark(t, c, at(now, g), at(now, r)) for t, c, g, r in draw(CONSENTS)),
        opt_outs=tuple(OptOutMark(t, c, at(now, m)) for t, c, m in draw(OPT_OUTS)),
        complaint_sensitive=draw(st.sampled_from([False] * 6 + [True])),
        last_complaint_at=at(now, draw(st.sampled_from([None] * 3 + [-35 * 1440, -10 * 1440, 60]))),
        timezone=draw(st.sampled_from(ZONES)),
        roaming_country=draw(st.sampled_from(COUNTRIES)),
        contacts=tuple(
            ContactMark(c, (now + timedelta(days=d)).date(), k) for c, d, k in draw(CONTACTS)
        ),
        used_keys=frozenset(draw(USED_KEYS)),
    )


@st.composite
def scenarios(draw, max_candidates: int = 12):
    """(now, config, candidates, states by msisdn)."""
    now = draw(instants)
    config = draw(configs(now))
    batch = draw(st.lists(candidates(now), min_size=1, max_size=max_candidates))
    states = {m: draw(contact_states(m, now)) for m in {c.msisdn for c in batch}}
    return now, config, batch, states


@st.composite
def contested_scenarios(draw, max_candidates: int = 16):
    """Valid candidates fighting over one or two subscribers' caps (arbitration at work)."""
    now = draw(instants)
    rules = draw(tenant_rules(now)).model_copy(update={"implied_consent": True})
    config = PolicyConfig(tenants={"op": rules})
    batch = draw(
        st.lists(
            st.builds(
                Candidate,
                msisdn=st.sampled_from(MSISDNS[:2]),
                tenant_id=st.just("op"),
                category=st.sampled_from(["marketing", "marketing", "notification"]),
                source=st.sampled_from(["campaign", "campaign", "journey"]),
                idempotency_key=st.uuids().map(lambda u: u.hex[:8]),
                source_id=CAMPAIGN_IDS,
                priority=st.integers(0, 2),
                score=SCORES,
                wanted_at=MAYBE_MINUTES.map(lambda m: at(now, m)),
            ),
            min_size=2,
            max_size=max_candidates,
        )
    )
    states = {
        m: ContactState(
            msisdn=m,
            timezone=draw(st.sampled_from(ZONES)),
            roaming_country=draw(st.sampled_from(COUNTRIES)),
            contacts=tuple(
                ContactMark(c, (now + timedelta(days=d)).date(), k) for c, d, k in draw(CONTACTS)
            ),
        )
        for m in MSISDNS[:2]
    }
    return now, config, batch, states
