"""Frequency caps: the counting windows a candidate falls in and what the ledger holds.

A candidate sent on local day D counts in up to six windows: its category's day, ISO week
and calendar month containing D, and - for a campaign candidate - its campaign's day, week
and month. A window is full when the contacts already counted in it reach the tenant's
limit. Windows are on the subscriber's local calendar (the ledger stores each contact's
local date), and they are checked on the day the candidate will actually go, so a deferral
past midnight counts against the next day. OTPs are never capped.

Category windows count contacts of that category from every tenant: the cap protects the
subscriber, whoever is sending.
"""

from __future__ import annotations

from dataclasses import dataclass

from jingxin.domain.candidate import Candidate, Category, Reason, Source
from jingxin.policy.config import TenantRules
from jingxin.policy.localtime import day_of_date, month_number, week_number
from jingxin.policy.state import ContactMark

# Slot order of the six windows; also the order their reasons are reported in.
WINDOW_REASONS = (
    Reason.CAP_DAY,
    Reason.CAP_WEEK,
    Reason.CAP_MONTH,
    Reason.CAMPAIGN_CAP_DAY,
    Reason.CAMPAIGN_CAP_WEEK,
    Reason.CAMPAIGN_CAP_MONTH,
)


@dataclass(frozen=True, slots=True)
class Window:
    """One counting window of one subscriber, with its limit and the ledger's count."""

    slot: int  # index into WINDOW_REASONS
    key: tuple[object, ...]  # identifies the window among all of one subscriber's
    limit: int
    used: int


def periods(day: int) -> tuple[int, int, int]:
    """The day, week and month numbers a local day falls in."""
    return day, week_number(day), month_number(day)


def _matches(mark: ContactMark, *, scope: str, value: object, slot: int, period: int) -> bool:
    if scope == "category":
        if mark.category != value:
            return False
    elif mark.campaign_id != value:
        return False
    return periods(day_of_date(mark.local_date))[slot % 3] == period


def campaign_of(candidate: Candidate) -> int | None:
    """The campaign a candidate counts against, if it is a campaign's."""
    if candidate.source == Source.CAMPAIGN and candidate.source_id is not None:
        return candidate.source_id
    return None


def windows(
    candidate: Candidate, rules: TenantRules, day: int, contacts: tuple[ContactMark, ...]
) -> tuple[Window, ...]:
    """Every capped window the candidate would count in if sent on local ``day``."""
    if candidate.category == Category.OTP:
        return ()
    found: list[Window] = []
    scopes: list[tuple[str, object, tuple[int | None, ...]]] = [
        ("category", candidate.category, rules.category_caps(candidate.category))
    ]
    campaign = campaign_of(candidate)
    if campaign is not None:
        scopes.append(("campaign", campaign, rules.campaign_caps.limits()))
    for offset, (scope, value, limits) in enumerate(scopes):
        for index, (limit, period) in enumerate(zip(limits, periods(day), strict=True)):
            if limit is None:
                continue
            slot = offset * 3 + index
            used = sum(
                _matches(m, scope=scope, value=value, slot=slot, period=period) for m in contacts
            )
            found.append(Window(slot, (scope, value, index, period), limit, used))
    return tuple(found)


def full_windows(found: tuple[Window, ...]) -> tuple[Reason, ...]:
    """The cap reasons of the windows the ledger alone has already filled."""
    return tuple(WINDOW_REASONS[w.slot] for w in found if w.used >= w.limit)
