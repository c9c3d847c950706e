"""When an eligible candidate may go: wanted time, quiet hours, blackout days (single form).

Quiet hours are read on the subscriber's local clock (the visited country's when roaming).
A marketing candidate that falls inside them is deferred to the next allowed minute (the
end of the quiet hours); notifications only if the tenant says so; an OTP never.

Blackout days (marketing only) are local dates with no marketing at all. By default the
candidate is deferred to the first allowed minute of the next non-blackout day
(``blackout_action = "defer"``); a tenant may choose ``"reject"`` instead, and a run of
blackout days longer than ``blackout_horizon_days`` rejects as well.

The batch twin of this module is ``policy.vector_time``.
"""

from __future__ import annotations

from dataclasses import dataclass

from jingxin.domain.candidate import Candidate, Category, Reason
from jingxin.policy.config import TenantRules
from jingxin.policy.localtime import (
    US_PER_DAY,
    US_PER_MINUTE,
    day_number,
    day_of_date,
    local_to_utc_us,
    local_us,
    minute_of_day,
    subscriber_zone,
    to_us,
)
from jingxin.policy.state import StateView


@dataclass(frozen=True, slots=True)
class Timing:
    """The planned send instant (None if rejected) and what moved or stopped it."""

    send_us: int | None
    reasons: tuple[Reason, ...]
    zone: str

    @property
    def rejected(self) -> bool:
        return self.send_us is None


def in_quiet_hours(minute: int, start: int, end: int) -> bool:
    """Is this local minute of the day inside [start, end) (wrapping past midnight)?"""
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def after_quiet_hours(zone: str, utc_us: int, start: int, end: int) -> int:
    """``utc_us`` itself if allowed, else the instant the quiet hours end (local clock)."""
    local = local_us(zone, utc_us)
    minute = minute_of_day(local)
    if not in_quiet_hours(minute, start, end):
        return utc_us
    day = day_number(local)
    target_day = day if minute < end else day + 1
    return local_to_utc_us(zone, target_day * US_PER_DAY + end * US_PER_MINUTE)


def plan_time(candidate: Candidate, view: StateView, rules: TenantRules, now_us: int) -> Timing:
    """The instant an eligible candidate may be sent, or a blackout rejection."""
    zone = subscriber_zone(view.roaming_country, view.timezone, rules.default_timezone)
    send = now_us if candidate.wanted_at is None else max(now_us, to_us(candidate.wanted_at))
    reasons: list[Reason] = []
    if rules.quiet_hours_apply(candidate.category):
        moved = after_quiet_hours(zone, send, rules.quiet_start_minute, rules.quiet_end_minute)
        if moved != send:
            reasons.append(Reason.QUIET_HOURS)
            send = moved
    if candidate.category == Category.MARKETING and rules.blackout_dates:
        blackout = {day_of_date(d) for d in rules.blackout_dates}
        day = day_number(local_us(zone, send))
        if day in blackout:
            reasons.append(Reason.BLACKOUT)
            next_day = day + 1
            while next_day in blackout:
                next_day += 1
            if rules.blackout_action == "reject" or next_day - day > rules.blackout_horizon_days:
                return Timing(None, (Reason.BLACKOUT,), zone)
            send = local_to_utc_us(
                zone, next_day * US_PER_DAY + rules.day_start_minute * US_PER_MINUTE
            )
    return Timing(send, tuple(reasons), zone)
